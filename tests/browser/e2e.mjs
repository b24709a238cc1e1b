// Browser end-to-end test of the twofold web UI (issue 5, point 4).
//
// Starts twofold-server on a free port with a fresh SQLite file, opens the UI at
// http://localhost:PORT in Debian's headless Chromium (driven by playwright-core), gives the
// page a DevTools WebAuthn virtual authenticator, and walks the whole two-factor lifecycle
// through the UI only. Each screen is saved as a screenshot. Prints one line per step and a
// last line `browser: N passed, M failed`; exits non-zero when anything failed.
//
// Environment:
//   TWOFOLD_SERVER_BIN   server binary (default: target/debug/twofold-server)
//   TWOFOLD_SERVER_ARGS  extra arguments for the server, split on spaces (e.g. --component PATH)
//   CHROMIUM_PATH        browser (default: /usr/bin/chromium)
//   SCREENSHOT_DIR       where screenshots go (default: target/browser-screenshots)
//   E2E_TIMEOUT_MS       per-action timeout (default: 30000)

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const serverBin = path.resolve(repoRoot, process.env.TWOFOLD_SERVER_BIN || 'target/debug/twofold-server');
const extraServerArgs = (process.env.TWOFOLD_SERVER_ARGS || '').split(/\s+/).filter(Boolean);
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const shotsDir = path.resolve(repoRoot, process.env.SCREENSHOT_DIR || 'target/browser-screenshots');
const timeoutMs = Number(process.env.E2E_TIMEOUT_MS || 30000);

const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const EMAIL = 'dana.e2e@example.com';
const PASSWORD = 'correct horse battery staple';
const PASSKEY_NAME = 'Work laptop';
const RENAMED = 'Laptop (renamed)';

// ------------------------------------------------------------------ bookkeeping

const results = [];
let aborted = false;
let shotCount = 0;
const pageErrors = [];

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function log(line) {
  process.stdout.write(`${line}\n`);
}

// ------------------------------------------------------------------ server

// The server must not outlive this script, however it ends (failure, Ctrl-C, a closed pipe).
let liveServer = null;
let workDir = null;
process.on('exit', () => {
  if (liveServer && liveServer.exitCode === null && liveServer.signalCode === null) liveServer.kill('SIGKILL');
  if (workDir) {
    try {
      fs.rmSync(workDir, { recursive: true, force: true });
    } catch (_) {
      // best effort
    }
  }
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGPIPE']) {
  process.on(signal, () => {
    log(`browser: interrupted by ${signal}`);
    process.exit(130);
  });
}
process.stdout.on('error', () => process.exit(1));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function startServer(port, dbPath, logPath) {
  check(fs.existsSync(serverBin), `server binary not found: ${serverBin} (build it with: cargo build -p twofold-server)`);
  const args = [
    '--listen', `127.0.0.1:${port}`,
    '--origin', `http://localhost:${port}`,
    '--rp-id', 'localhost',
    '--db', dbPath,
    ...extraServerArgs,
  ];
  const out = fs.openSync(logPath, 'w');
  const child = spawn(serverBin, args, { cwd: repoRoot, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  liveServer = child;
  let exited = null;
  child.on('exit', (code, signal) => {
    exited = { code, signal };
  });
  const deadline = Date.now() + 180000;
  for (;;) {
    if (exited) {
      throw new Error(`server exited early (code ${exited.code}, signal ${exited.signal}); log: ${logPath}\n${tail(logPath)}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) break;
    } catch (_) {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`server did not answer within 180 s; log: ${logPath}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    child,
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      const stopped = await Promise.race([
        new Promise((r) => child.once('exit', () => r(true))),
        new Promise((r) => setTimeout(() => r(false), 10000)),
      ]);
      if (!stopped) {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        return { code: null, signal: 'SIGKILL' };
      }
      return exited;
    },
  };
}

function tail(file) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch (_) {
    return '';
  }
}

// ------------------------------------------------------------------ main

async function main() {
  fs.mkdirSync(shotsDir, { recursive: true });
  for (const f of fs.readdirSync(shotsDir)) {
    if (f.endsWith('.png')) fs.rmSync(path.join(shotsDir, f));
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-e2e-'));
  workDir = work;
  const dbPath = path.join(work, 'twofold.db');
  const profileDir = path.join(work, 'chromium-profile');
  const serverLog = path.join(shotsDir, 'server.log');
  const port = await freePort();
  const base = `http://localhost:${port}`;

  log(`browser: server ${path.relative(repoRoot, serverBin) || serverBin} on ${base}, database ${dbPath}`);
  log(`browser: screenshots in ${shotsDir}`);

  let server = null;
  let context = null;
  try {
    server = await startServer(port, dbPath, serverLog);
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: chromiumPath,
      headless: true,
      args: CHROMIUM_FLAGS,
      acceptDownloads: true,
      viewport: { width: 1024, height: 768 },
      permissions: ['clipboard-read', 'clipboard-write'],
      locale: 'en-US',
      timezoneId: 'UTC',
    });
    context.setDefaultTimeout(timeoutMs);
    const page = context.pages()[0] || (await context.newPage());
    page.on('pageerror', (e) => pageErrors.push(String(e)));

    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });

    await runFlow({ page, context, cdp, authenticatorId, base });
  } catch (e) {
    results.push({ name: 'set-up', ok: false, error: e });
    log(`FAIL set-up: ${e.message}`);
    aborted = true;
  } finally {
    if (context) await context.close().catch(() => {});
    if (server) {
      const how = await server.stop();
      if (how && how.signal === 'SIGKILL') log('browser: the server did not stop on SIGTERM within 10 s');
    }
    fs.rmSync(work, { recursive: true, force: true });
  }

  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  const notRun = results.filter((r) => r.notRun).length;
  if (notRun) log(`browser: ${notRun} step(s) not run after an earlier failure (counted as failed)`);
  log(`browser: ${shotCount} screenshots in ${shotsDir}; server log ${serverLog}`);
  log(`browser: ${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
}

// ------------------------------------------------------------------ the flow

async function runFlow({ page, context, cdp, authenticatorId, base }) {
  // One step = one screen or action of the flow. After a failure the rest cannot run.
  async function step(name, fn, { always = false } = {}) {
    if (aborted && !always) {
      results.push({ name, ok: false, notRun: true });
      log(`SKIP ${name}`);
      return;
    }
    const started = Date.now();
    try {
      await fn();
      results.push({ name, ok: true });
      log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      results.push({ name, ok: false, error: e });
      log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
      if (process.env.E2E_VERBOSE) log(e.stack);
      aborted = true;
      await shot(`FAILED-${slug(name)}`, { skipA11y: true }).catch(() => {});
    }
  }

  function slug(text) {
    return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
  }

  // A screenshot of the whole page, plus accessibility checks of what is visible.
  async function shot(name, { skipA11y = false } = {}) {
    await page.waitForFunction(() => !document.querySelector('[aria-busy="true"]'));
    shotCount += 1;
    const file = path.join(shotsDir, `${String(shotCount).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    if (!skipA11y) {
      const problems = await page.evaluate(() => {
        const out = [];
        const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
        for (const el of document.querySelectorAll('input, select, textarea')) {
          if (!visible(el) || el.type === 'hidden') continue;
          const labelled = (el.labels && el.labels.length > 0) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
          if (!labelled) out.push(`input #${el.id || '(no id)'} has no label`);
        }
        for (const el of document.querySelectorAll('button, a[href]')) {
          if (!visible(el)) continue;
          const name = (el.getAttribute('aria-label') || el.textContent || '').trim();
          if (!name) out.push(`a ${el.tagName.toLowerCase()} has no accessible name`);
        }
        const h1 = [...document.querySelectorAll('h1')].filter(visible);
        if (h1.length !== 1) out.push(`${h1.length} visible h1 headings`);
        return out;
      });
      check(problems.length === 0, `accessibility on ${name}: ${problems.join('; ')}`);
    }
  }

  const heading = (name) => page.getByRole('heading', { level: 1, name, exact: true });
  const button = (name, exact = true) => page.getByRole('button', { name, exact });
  const view = (id) => page.locator(`#${id}`);
  const statusText = () => page.locator('#status').innerText();

  async function me() {
    return page.evaluate(async () => {
      const res = await fetch('/api/me', { credentials: 'same-origin', cache: 'no-store' });
      return { status: res.status, body: res.status === 200 ? await res.json() : null };
    });
  }

  async function sessionCookies() {
    const cookies = await context.cookies(base);
    // The device-token cookie (S6, `twofold_device`) is long-lived by design: not a session.
    return cookies.filter((c) => c.httpOnly && !c.name.endsWith('twofold_device'));
  }

  async function signInStepOne({ remember = false, password = PASSWORD } = {}) {
    await heading('Sign in').waitFor();
    const form = view('view-signin');
    await form.getByLabel('Email').fill(EMAIL);
    await form.getByLabel('Password', { exact: true }).fill(password);
    await form.getByLabel('Remember me').setChecked(remember);
    await form.getByRole('button', { name: 'Sign in' }).click();
  }

  async function signOut() {
    await button('Sign out').click();
    await heading('Sign in').waitFor();
    const who = await me();
    check(who.status === 401, `after signing out /api/me answered ${who.status}, expected 401`);
  }

  async function readCodes() {
    const items = page.locator('#codes-list li code');
    await items.first().waitFor();
    return (await items.allInnerTexts()).map((t) => t.trim());
  }

  async function confirmPassword(password = PASSWORD) {
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Current password').fill(password);
    await dialog.locator('#password-dialog-confirm').click();
  }

  let codes = [];
  let newCodes = [];

  await step('the sign-in screen loads', async () => {
    await page.goto(base + '/');
    await heading('Sign in').waitFor();
    check(await view('view-signin').getByLabel('Remember me').isVisible(), 'no "Remember me" checkbox');
    await shot('sign-in');
  });

  await step('h4: opened at another address than the configured origin, the page says so', async () => {
    const elsewhere = base.replace('localhost', '127.0.0.1');
    await page.goto(`${elsewhere}/#/signup`);
    await heading('Sign up').waitFor();
    const form = view('view-signup');
    await form.getByLabel('Email').fill('someone.else@example.com');
    await form.getByLabel('Password').fill(PASSWORD);
    await form.getByRole('button', { name: 'Create account' }).click();
    const error = page.locator('#signup-error');
    await error.filter({ hasText: 'configured origin' }).waitFor();
    const text = await error.innerText();
    check(text.includes(elsewhere) && text.includes(base), `the message names neither address: ${text}`);
    await shot('wrong-origin');
    await page.goto(base + '/');
    await heading('Sign in').waitFor();
  });

  await step('sign up', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Sign up' }).click();
    await heading('Sign up').waitFor();
    const form = view('view-signup');
    await form.getByLabel('Email').fill(EMAIL);
    await form.getByLabel('Password').fill(PASSWORD);
    await shot('sign-up');
    await form.getByRole('button', { name: 'Create account' }).click();
    await heading('My Profile').waitFor();
    check((await page.locator('#tfa-badge').innerText()) === 'Off', 'two-factor badge is not "Off" after sign-up');
    await button('Enable two-factor authentication').waitFor();
    const who = await me();
    check(who.status === 200 && who.body.email === EMAIL, `/api/me after sign-up: ${who.status}`);
    check(who.body.two_factor.enabled === false, '2FA is on right after sign-up');
    await shot('profile-two-factor-off');
  });

  await step('register the first passkey: 2FA turns on and 10 backup codes are shown', async () => {
    await button('Enable two-factor authentication').click();
    await heading('Register a passkey').waitFor();
    const form = view('view-passkey-new');
    await form.getByLabel('Passkey name').fill(PASSKEY_NAME);
    await form.getByLabel('Current password').fill(PASSWORD);
    await shot('passkey-registration');
    await button('Continue').click();
    await button('Register passkey').waitFor();
    await shot('passkey-registration-ready');
    const finish = page.waitForResponse((r) => r.url().endsWith('/api/passkeys/registration/finish'));
    await button('Register passkey').click();
    const answer = await (await finish).json();
    await heading('Save your backup codes').waitFor();
    codes = await readCodes();
    check(codes.length === 10, `${codes.length} backup codes shown, expected 10`);
    check(new Set(codes).size === 10, 'the backup codes are not all different');
    check(answer.two_factor_enabled === true, 'finish did not report two_factor_enabled: true');
    check(JSON.stringify(answer.backup_codes) === JSON.stringify(codes), 'the codes on screen differ from the server’s answer');
    await page.getByText('You won’t be able to view the same codes again').waitFor();
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    check(credentials.length === 1, `the authenticator holds ${credentials.length} credentials, expected 1`);
    await shot('backup-codes');
  });

  await step('backup codes: copy to clipboard and download as twofold-backup-codes.txt', async () => {
    await button('Copy to clipboard').click();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    check(copied === codes.join('\n'), 'the clipboard does not hold the 10 codes');
    const downloading = page.waitForEvent('download');
    await button('Download as .txt').click();
    const download = await downloading;
    check(download.suggestedFilename() === 'twofold-backup-codes.txt', `downloaded as ${download.suggestedFilename()}`);
    const text = fs.readFileSync(await download.path(), 'utf8');
    for (const code of codes) check(text.includes(code), `the download lacks code ${code}`);
  });

  await step('the codes are shown once; My Profile shows 2FA on with the passkey', async () => {
    await button('I have saved my codes').click();
    await heading('My Profile').waitFor();
    check((await page.locator('#tfa-badge').innerText()) === 'On', 'two-factor badge is not "On"');
    await page.locator('#passkeys-body').getByText(PASSKEY_NAME, { exact: true }).waitFor();
    check((await page.locator('#passkeys-body tr').count()) === 1, 'the passkey list does not have one row');
    check((await page.locator('#tfa-codes-left').innerText()).includes('10 of 10'), 'profile does not say 10 of 10 codes unused');
    for (const name of ['Add a passkey', 'Regenerate backup codes', 'Disable two-factor authentication']) {
      check(await button(name).isVisible(), `no "${name}" button`);
    }
    const who = await me();
    check(who.body.two_factor.enabled === true, '/api/me: 2FA is not on');
    check(who.body.two_factor.passkeys.length === 1, '/api/me: not one passkey');
    check(who.body.two_factor.backup_codes_remaining === 10, '/api/me: not 10 codes remaining');
    await shot('profile-two-factor-on');
    // Coming back to the codes screen shows nothing: the codes were shown once.
    await page.goto(`${base}/#/backup-codes`);
    await heading('My Profile').waitFor();
    check((await page.locator('#codes-list li').count()) === 0, 'the backup codes can be shown again');
    await page.reload();
    await heading('My Profile').waitFor();
  });

  await step('sign out', async () => {
    await signOut();
    check((await statusText()).includes('signed out'), 'no "signed out" message');
  });

  await step('a wrong password is refused in words a person understands', async () => {
    await signInStepOne({ password: 'not the password' });
    const error = page.locator('#signin-error');
    await error.filter({ hasText: 'isn’t correct' }).waitFor();
    await shot('sign-in-wrong-password');
  });

  await step('sign in with Remember me ticked asks for the second factor', async () => {
    await signInStepOne({ remember: true });
    await heading('Two-factor verification').waitFor();
    await page.getByText('Remember me is ignored').waitFor();
    await button('Use passkey').waitFor();
    await button('Enter a backup code instead').waitFor();
    const who = await me();
    check(who.status === 401, `before the second factor /api/me answered ${who.status}, expected 401`);
    await shot('two-factor-verification');
  });

  await step('the passkey signs in, with remember-me false and a non-persistent session cookie', async () => {
    const answered = page.waitForResponse((r) => r.url().endsWith('/api/signin/passkey'));
    await button('Use passkey').click();
    const answer = await (await answered).json();
    await heading('My Profile').waitFor();
    check(answer.status === 'signed_in', `passkey sign-in answered status ${answer.status}`);
    check(answer.remember_me === false, 'remember_me is not false after a passkey sign-in');
    const who = await me();
    check(who.status === 200 && who.body.email === EMAIL, `/api/me answered ${who.status}`);
    const cookies = await sessionCookies();
    check(cookies.length > 0, 'no HttpOnly session cookie');
    for (const c of cookies) {
      check(c.expires === -1, `session cookie ${c.name} is persistent (expires ${c.expires})`);
      check(c.sameSite === 'Strict', `session cookie ${c.name} is SameSite=${c.sameSite}, expected Strict`);
    }
    const lastUsed = await page.locator('#passkeys-body tr td').nth(1).innerText();
    check(lastUsed !== 'Never', 'the passkey’s "last used" was not updated');
    await shot('signed-in-with-passkey');
  });

  await step('sign out, then sign in with a backup code', async () => {
    await signOut();
    await signInStepOne();
    await heading('Two-factor verification').waitFor();
    check(!(await page.getByText('Remember me is ignored').isVisible()), 'the remember-me note shows though it was not ticked');
    await button('Enter a backup code instead').click();
    const field = page.getByLabel('Backup code', { exact: true });
    await field.waitFor();
    // Case and hyphens don't matter (B1): type it in capitals without hyphens.
    await field.fill(codes[0].toUpperCase().replace(/-/g, ' '));
    await shot('backup-code-form');
    const answered = page.waitForResponse((r) => r.url().endsWith('/api/signin/backup-code'));
    await button('Verify code').click();
    const answer = await (await answered).json();
    await heading('My Profile').waitFor();
    check(answer.remember_me === false, 'remember_me is not false after a backup-code sign-in');
    check(answer.backup_codes_remaining === 9, `backup_codes_remaining is ${answer.backup_codes_remaining}, expected 9`);
    check((await statusText()).includes('9 backup codes left'), 'no "9 backup codes left" message');
    const who = await me();
    check(who.body.two_factor.backup_codes_remaining === 9, '/api/me does not say 9 codes remain');
    await shot('signed-in-with-backup-code');
  });

  await step('sign out; the same backup code is refused', async () => {
    await signOut();
    await signInStepOne();
    await heading('Two-factor verification').waitFor();
    await button('Enter a backup code instead').click();
    await page.getByLabel('Backup code', { exact: true }).fill(codes[0]);
    await button('Verify code').click();
    await page.locator('#verify-code-error').filter({ hasText: 'already been used' }).waitFor();
    await heading('Two-factor verification').waitFor();
    const who = await me();
    check(who.status === 401, `after a refused code /api/me answered ${who.status}, expected 401`);
    await shot('backup-code-refused');
  });

  await step('then the passkey signs in from the same screen', async () => {
    await button('Use your passkey instead').click();
    await button('Use passkey').click();
    await heading('My Profile').waitFor();
    check((await me()).status === 200, 'not signed in after the passkey');
  });

  await step('rename the passkey', async () => {
    await button(`Rename passkey ${PASSKEY_NAME}`).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Passkey name').fill(RENAMED);
    await shot('rename-passkey');
    await dialog.getByRole('button', { name: 'Save name' }).click();
    await page.locator('#passkeys-body').getByText(RENAMED, { exact: true }).waitFor();
    const who = await me();
    check(who.body.two_factor.passkeys[0].name === RENAMED, '/api/me does not show the new name');
    const focused = await page.evaluate(() => document.activeElement && document.activeElement.getAttribute('aria-label'));
    check(focused === `Rename passkey ${RENAMED}`, `focus after renaming is on ${focused}`);
  });

  await step('regenerate backup codes: password asked, old codes invalidated', async () => {
    await button('Regenerate backup codes').click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('heading', { name: 'Regenerate backup codes' }).waitFor();
    await dialog.getByText('invalidates your previous codes').waitFor();
    await confirmPassword('wrong password here');
    await dialog.locator('#password-dialog-error').filter({ hasText: 'isn’t correct' }).waitFor();
    await shot('regenerate-codes-wrong-password');
    await confirmPassword();
    await heading('Save your backup codes').waitFor();
    newCodes = await readCodes();
    check(newCodes.length === 10, `${newCodes.length} new codes, expected 10`);
    check(newCodes.every((c) => !codes.includes(c)), 'a new code equals an old one');
    await page.getByText('Your previous backup codes no longer work').waitFor();
    await shot('new-backup-codes');
    // Leaving the codes unsaved asks first; answering "Cancel" keeps them on screen.
    let asked = '';
    page.once('dialog', (d) => {
      asked = d.message();
      d.dismiss();
    });
    await page.getByRole('navigation').getByRole('link', { name: 'My Profile' }).click();
    await heading('Save your backup codes').waitFor();
    check(asked.includes('Leave without saving your backup codes'), `leaving the codes asked "${asked}"`);
    check((await readCodes()).join() === newCodes.join(), 'the codes changed after cancelling the leave');
    await button('I have saved my codes').click();
    await heading('My Profile').waitFor();
    check((await me()).body.two_factor.backup_codes_remaining === 10, '/api/me does not say 10 codes remain');
  });

  await step('an old code is refused after regenerating, a new one works', async () => {
    await signOut();
    await signInStepOne();
    await button('Enter a backup code instead').click();
    await page.getByLabel('Backup code', { exact: true }).fill(codes[1]);
    await button('Verify code').click();
    await page.locator('#verify-code-error').filter({ hasText: 'already been used' }).waitFor();
    await page.getByLabel('Backup code', { exact: true }).fill(newCodes[0]);
    await button('Verify code').click();
    await heading('My Profile').waitFor();
    check((await me()).body.two_factor.backup_codes_remaining === 9, 'not 9 new codes left');
  });

  await step('running low: at 3 codes left the UI warns and offers to regenerate', async () => {
    // 9 of the new codes are left; use 6 more (newCodes[1..6]).
    for (let i = 1; i <= 6; i++) {
      await signOut();
      await signInStepOne();
      await button('Enter a backup code instead').click();
      await page.getByLabel('Backup code', { exact: true }).fill(newCodes[i]);
      await button('Verify code').click();
      await heading('My Profile').waitFor();
    }
    check((await statusText()).includes('3 backup codes left'), 'no "3 backup codes left" message');
    const banner = page.locator('#profile-codes-low');
    await banner.filter({ hasText: 'running low' }).waitFor();
    check(await banner.getByRole('button', { name: 'Regenerate backup codes' }).isVisible(), 'the low-codes warning has no regenerate button');
    const who = await me();
    check(who.body.two_factor.backup_codes_remaining === 3, '/api/me does not say 3 codes remain');
    await shot('backup-codes-running-low');
  });

  await step('disable 2FA (password asked), then enable it again with the kept passkey', async () => {
    // Escape closes a dialog and gives focus back to the button that opened it.
    await button('Disable two-factor authentication').click();
    await page.getByRole('dialog').waitFor();
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'hidden' });
    const back = await page.evaluate(() => document.activeElement.textContent.trim());
    check(back === 'Disable two-factor authentication', `after Escape focus is on "${back}"`);
    await button('Disable two-factor authentication').click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('heading', { name: 'Disable two-factor authentication' }).waitFor();
    await shot('disable-two-factor');
    await confirmPassword();
    await page.locator('#tfa-badge').filter({ hasText: 'Off' }).waitFor();
    await page.locator('#passkeys-body').getByText(RENAMED, { exact: true }).waitFor();
    let who = await me();
    check(who.body.two_factor.enabled === false, '/api/me: 2FA still on after disabling');
    check(who.body.two_factor.passkeys.length === 1, '/api/me: the passkey was not kept');
    await shot('profile-two-factor-disabled');
    await button('Enable two-factor authentication').click();
    await page.getByRole('dialog').getByRole('heading', { name: 'Enable two-factor authentication' }).waitFor();
    await confirmPassword();
    await heading('Save your backup codes').waitFor();
    newCodes = await readCodes();
    check(newCodes.length === 10, `${newCodes.length} codes after enabling, expected 10`);
    await button('I have saved my codes').click();
    await heading('My Profile').waitFor();
    who = await me();
    check(who.body.two_factor.enabled === true, '/api/me: 2FA not on after enabling');
  });

  await step('remove the last passkey (password asked): 2FA turns off', async () => {
    await button(`Remove passkey ${RENAMED}`).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('This is your last passkey').waitFor();
    await shot('remove-last-passkey');
    await confirmPassword();
    await page.locator('#tfa-badge').filter({ hasText: 'Off' }).waitFor();
    check((await statusText()).includes('two-factor authentication is now off'), 'no message that 2FA is now off');
    check(!(await page.locator('#passkeys-block').isVisible()), 'the passkey list is still shown');
    await button('Enable two-factor authentication').waitFor();
    const who = await me();
    check(who.body.two_factor.enabled === false, '/api/me: 2FA still on');
    check(who.body.two_factor.passkeys.length === 0, '/api/me: passkeys remain');
    check(who.body.two_factor.backup_codes_remaining === 0, '/api/me: backup codes remain');
    await shot('profile-after-removing-last-passkey');
  });

  await step('sign-in needs only the password, keyboard only, and Remember me is honoured', async () => {
    await signOut();
    // Keyboard only: focus starts on the heading; Tab through the form in order.
    await page.locator('#signin-title').focus();
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement.id) === 'signin-email', 'Tab from the heading does not reach Email');
    await page.keyboard.type(EMAIL);
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement.id) === 'signin-password', 'Tab from Email does not reach Password');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement.id) === 'signin-remember', 'Tab from Password does not reach Remember me');
    await page.keyboard.press('Space');
    await page.keyboard.press('Tab');
    const focusedText = await page.evaluate(() => document.activeElement.textContent.trim());
    check(focusedText === 'Sign in', `Tab from Remember me reaches "${focusedText}", not the Sign in button`);
    const answered = page.waitForResponse((r) => r.url().endsWith('/api/signin'));
    await page.keyboard.press('Enter');
    const answer = await (await answered).json();
    await heading('My Profile').waitFor();
    check(answer.status === 'signed_in', `sign-in answered ${answer.status}`);
    check(answer.remember_me === true, 'remember_me is not true with 2FA off');
    const cookies = await sessionCookies();
    check(cookies.length > 0, 'no HttpOnly session cookie');
    check(cookies.some((c) => c.expires > Date.now() / 1000), 'Remember me did not make the session cookie persistent');
    await shot('signed-in-password-only');
  });

  await step('the activity list shows the events and an intact chain', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Activity' }).click();
    await heading('Activity').waitFor();
    await page.locator('#activity-chain').filter({ hasText: 'intact' }).waitFor();
    const rows = await page.locator('#activity-body tr').count();
    check(rows >= 10, `only ${rows} events listed`);
    await page.locator('#activity-body').getByText('Passkey added').first().waitFor();
    await page.locator('#activity-body').getByText('Signed in with a backup code').first().waitFor();
    await shot('activity');
  });

  await step('no JavaScript errors on the page', async () => {
    check(pageErrors.length === 0, `page errors: ${pageErrors.join(' | ')}`);
  }, { always: true });

}

main().catch((e) => {
  log(`FAIL ${e.stack || e}`);
  log('browser: 0 passed, 1 failed');
  process.exitCode = 1;
});
