// twofold web UI: sign-up, sign-in with a passkey or a backup code, and the Two-Factor
// Authentication section of My Profile. Plain JavaScript, no build step, no external URLs.
//
// Safari's user-gesture rule: the browser's passkey prompt must start straight from a click,
// with no network round trip between the click and navigator.credentials.*. So the WebAuthn
// options are always fetched before the click: sign-in options arrive with step one, and
// registration options are fetched by "Continue" before the "Register passkey" click.
'use strict';

(() => {
  // ---------------------------------------------------------------- state

  const state = {
    me: null, // GET /api/me answer while signed in
    pending: null, // { email, rememberMe, options } between sign-in steps one and two
    registration: null, // { name, options } between "Continue" and "Register passkey"
    codes: null, // { codes, reason } for the backup codes screen; dropped when it closes
    notice: null, // { text, kind } to show once on the next screen
    activityBefore: null, // paging cursor for the activity list
    busy: false,
  };

  const $ = (id) => document.getElementById(id);

  const LEAVE_CODES = 'Leave without saving your backup codes? You won’t be able to view the same codes again.';

  // ---------------------------------------------------------------- HTTP

  class ApiError extends Error {
    constructor(code, message, status, retryAfterSecs) {
      super(message || code);
      this.code = code;
      this.status = status;
      this.retryAfterSecs = retryAfterSecs;
    }
  }

  async function api(method, path, body) {
    const init = {
      method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'application/json' },
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      throw new ApiError('network', '', 0);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (!response.ok) {
      const err = (data && data.error) || {};
      let retry = err.retry_after_secs;
      if (retry === undefined) {
        const header = Number(response.headers.get('Retry-After'));
        if (Number.isFinite(header) && header > 0) retry = header;
      }
      const code = err.code || httpCode(response.status);
      throw new ApiError(code, err.message || '', response.status, retry);
    }
    return data || {};
  }

  // 401 means "not signed in" unless the code says a secret was wrong (the server answers a
  // wrong password, passkey or backup code with 401 too).
  const WRONG_SECRET = new Set(['invalid_credentials', 'invalid_passkey', 'invalid_backup_code', 'second_factor_required']);

  function signedOut(error) {
    return error instanceof ApiError && error.status === 401 && !WRONG_SECRET.has(error.code);
  }

  function httpCode(status) {
    if (status === 401) return 'unauthorized';
    if (status === 403) return 'forbidden';
    if (status === 404) return 'not_found';
    if (status === 429) return 'rate_limited';
    if (status >= 500) return 'internal';
    return 'invalid_input';
  }

  // ---------------------------------------------------------------- friendly errors

  function minutes(secs) {
    const m = Math.max(1, Math.ceil(secs / 60));
    return m === 1 ? '1 minute' : `${m} minutes`;
  }

  // The words a person sees for an error. `where` adjusts a few messages to the form.
  function explain(error, where) {
    if (!(error instanceof ApiError)) return webauthnMessage(error, where);
    const passwordConfirm = where === 'confirm' || where === 'register';
    switch (error.code) {
      case 'network':
        return 'We couldn’t reach the server. Check your connection and try again.';
      case 'invalid_credentials':
        return passwordConfirm
          ? 'That password isn’t correct. Enter the password you sign in with.'
          : 'The email or password isn’t correct. Check them and try again.';
      case 'rate_limited':
        return error.retryAfterSecs
          ? `Too many failed attempts. For your security this account is locked for now. Try again in ${minutes(error.retryAfterSecs)}.`
          : 'Too many failed attempts. For your security this account is locked for now. Try again later.';
      case 'invalid_passkey':
        return 'Your passkey couldn’t be verified. Try again, or use a backup code.';
      case 'invalid_backup_code':
        return 'That backup code isn’t valid or has already been used. Check it and try again, or use another code.';
      case 'expired':
        if (where === 'register') return 'The passkey registration took too long and has ended. Please start again.';
        return 'This sign-in attempt has ended. Please sign in again.';
      case 'already_exists':
        if (where === 'signup') return 'An account with this email already exists. Sign in instead.';
        if (where === 'register') return 'This passkey is already registered. Use a different authenticator.';
        return 'That already exists.';
      case 'already_enabled':
        return 'Two-factor authentication is already on.';
      case 'not_enabled':
        return 'Two-factor authentication is off, so there are no backup codes to regenerate.';
      case 'no_passkey':
        return 'Register a passkey before you turn on two-factor authentication.';
      case 'not_found':
        return where === 'passkey'
          ? 'That passkey no longer exists. The list has been refreshed.'
          : 'We couldn’t find what you asked for. Reload the page and try again.';
      case 'conflict':
        return 'Something else changed your account at the same moment. Nothing was saved; please try again.';
      case 'second_factor_required':
        return 'Please finish signing in with your passkey or a backup code.';
      case 'unauthorized':
      case 'not_signed_in':
        return 'You are signed out. Please sign in again.';
      case 'forbidden':
        return 'The request was refused because it did not come from this page. Reload the page and try again.';
      case 'invalid_input':
        return inputMessage(error.message);
      case 'storage':
      case 'internal':
      default:
        return 'Something went wrong on our side. Nothing was changed. Please try again in a moment.';
    }
  }

  function inputMessage(message) {
    const m = (message || '').toLowerCase();
    if (m.includes('password')) return 'Passwords need at least 8 characters (and at most 1024 bytes).';
    if (m.includes('email')) return 'Enter an email address like name@example.com.';
    if (m.includes('passkey name') || m.includes('name')) return 'A passkey name needs 1 to 64 characters.';
    if (m.includes('backup code')) return 'That doesn’t look like a backup code. Check it and try again.';
    if (m.includes('credential')) return 'Your browser sent a passkey answer we couldn’t read. Please try again.';
    return 'Something in the form isn’t right. Check it and try again.';
  }

  function webauthnMessage(error, where) {
    const name = error && error.name;
    if (name === 'NotAllowedError') {
      return where === 'register'
        ? 'The passkey prompt was closed or timed out. Click “Register passkey” to try again.'
        : 'The passkey prompt was closed or timed out. Click “Use passkey” to try again, or use a backup code.';
    }
    if (name === 'InvalidStateError') {
      return 'This device already holds a passkey for your account. Use another device or security key.';
    }
    if (name === 'SecurityError') {
      return 'Your browser refused passkeys for this site address. Open the page at the address the site is set up for.';
    }
    if (name === 'NotSupportedError' || name === 'unsupported') {
      return 'This browser or device can’t use passkeys. Try another browser, or use a backup code.';
    }
    if (name === 'AbortError') return 'The passkey prompt was cancelled.';
    return 'The passkey step didn’t work. Please try again.';
  }

  // ---------------------------------------------------------------- WebAuthn JSON

  function b64urlToBuffer(text) {
    const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const bin = atob(padded);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes.buffer;
  }

  function bufferToB64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let bin = '';
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function unwrapOptions(options) {
    return options && options.publicKey ? options.publicKey : options;
  }

  function webauthnAvailable() {
    return !!(window.PublicKeyCredential && navigator.credentials);
  }

  // Creation options JSON -> PublicKeyCredentialCreationOptions.
  function parseCreation(json) {
    const options = unwrapOptions(json);
    if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function') {
      return PublicKeyCredential.parseCreationOptionsFromJSON(options);
    }
    const copy = JSON.parse(JSON.stringify(options));
    copy.challenge = b64urlToBuffer(copy.challenge);
    copy.user.id = b64urlToBuffer(copy.user.id);
    copy.excludeCredentials = (copy.excludeCredentials || []).map((c) => ({ ...c, id: b64urlToBuffer(c.id) }));
    return copy;
  }

  // Request options JSON -> PublicKeyCredentialRequestOptions.
  function parseRequest(json) {
    const options = unwrapOptions(json);
    if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function') {
      return PublicKeyCredential.parseRequestOptionsFromJSON(options);
    }
    const copy = JSON.parse(JSON.stringify(options));
    copy.challenge = b64urlToBuffer(copy.challenge);
    copy.allowCredentials = (copy.allowCredentials || []).map((c) => ({ ...c, id: b64urlToBuffer(c.id) }));
    return copy;
  }

  // PublicKeyCredential -> its JSON form, as credential.toJSON() gives it.
  function credentialToJSON(credential) {
    if (typeof credential.toJSON === 'function') return credential.toJSON();
    const r = credential.response;
    const out = {
      id: credential.id,
      rawId: bufferToB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: bufferToB64url(r.clientDataJSON) },
    };
    if (r.attestationObject) {
      out.response.attestationObject = bufferToB64url(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = bufferToB64url(r.authenticatorData);
      out.response.signature = bufferToB64url(r.signature);
      out.response.userHandle = r.userHandle ? bufferToB64url(r.userHandle) : null;
    }
    return out;
  }

  // ---------------------------------------------------------------- small UI helpers

  function setError(id, text) {
    const el = $(id);
    el.textContent = text || '';
    el.classList.toggle('is-visible', !!text);
  }

  function announce(text, kind) {
    const el = $('status');
    el.textContent = text || '';
    // The live region stays in place (never hidden) so screen readers hear each change.
    el.className = text ? `status message message-${kind || 'success'}` : 'status';
  }

  function clearAnnouncement() {
    announce('');
  }

  // Runs `work` with the form's submit button (or the given button) disabled and marked busy.
  async function busy(button, work) {
    if (state.busy) return;
    state.busy = true;
    const label = button.textContent;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      await work();
    } finally {
      state.busy = false;
      button.disabled = false;
      button.removeAttribute('aria-busy');
      button.textContent = label;
    }
  }

  function utf8Length(text) {
    return new TextEncoder().encode(text).length;
  }

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

  function formatTime(ms) {
    if (ms === null || ms === undefined) return 'Never';
    return dateFormat.format(new Date(Number(ms)));
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  // ---------------------------------------------------------------- routing

  const VIEWS = {
    signin: { section: 'view-signin', title: 'Sign in', auth: 'out' },
    signup: { section: 'view-signup', title: 'Sign up', auth: 'out' },
    verify: { section: 'view-verify', title: 'Two-factor verification', auth: 'pending' },
    'verify/backup-code': { section: 'view-verify', title: 'Two-factor verification', auth: 'pending' },
    profile: { section: 'view-profile', title: 'My Profile', auth: 'in' },
    'passkeys/new': { section: 'view-passkey-new', title: 'Register a passkey', auth: 'in' },
    'backup-codes': { section: 'view-backup-codes', title: 'Save your backup codes', auth: 'in' },
    activity: { section: 'view-activity', title: 'Activity', auth: 'in' },
  };

  // Single-column screens; the status banner takes their width.
  const NARROW = new Set(['signin', 'signup', 'verify', 'verify/backup-code', 'passkeys/new', 'backup-codes']);

  function currentRoute() {
    const hash = location.hash || '';
    return hash.startsWith('#/') ? hash.slice(2) : null;
  }

  function go(route) {
    if (currentRoute() === route) {
      render();
    } else {
      location.hash = `#/${route}`;
    }
  }

  function defaultRoute() {
    return state.me ? 'profile' : 'signin';
  }

  // Decides what may be shown, then shows it.
  function render() {
    let route = currentRoute();
    if (route === null || !VIEWS[route]) route = defaultRoute();
    const view = VIEWS[route];

    if (view.auth === 'in' && !state.me) return go('signin');
    if (view.auth === 'out' && state.me) return go('profile');
    if (view.auth === 'pending' && !state.pending) return go(state.me ? 'profile' : 'signin');
    if (route === 'backup-codes' && !state.codes) return go('profile');
    if (route !== currentRoute()) return go(route);

    // Leaving the backup codes screen forgets the codes: they are shown once.
    if (route !== 'backup-codes') clearCodes();
    if (route !== 'passkeys/new') state.registration = null;
    if (!route.startsWith('verify')) state.pending = null;

    $('loading').hidden = true;
    for (const { section } of Object.values(VIEWS)) $(section).hidden = true;
    $(view.section).hidden = false;
    $('main').classList.toggle('narrow', NARROW.has(route));
    document.title = `${view.title} · twofold`;
    updateNav(route);

    if (state.notice) {
      announce(state.notice.text, state.notice.kind);
      state.notice = null;
    } else {
      clearAnnouncement();
    }

    const show = {
      signin: showSignin,
      signup: showSignup,
      verify: () => showVerify(false),
      'verify/backup-code': () => showVerify(true),
      profile: showProfile,
      'passkeys/new': showPasskeyNew,
      'backup-codes': showBackupCodes,
      activity: showActivity,
    }[route];
    show();
  }

  function focusHeading(id) {
    const el = $(id);
    if (el) el.focus();
  }

  function updateNav(route) {
    $('nav-signed-in').hidden = !state.me;
    $('nav-signed-out').hidden = !!state.me;
    $('nav-email').textContent = state.me ? state.me.email : '';
    for (const link of document.querySelectorAll('[data-nav]')) {
      if (link.dataset.nav === route) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }

  async function refreshMe() {
    try {
      state.me = await api('GET', '/api/me');
    } catch (e) {
      if (signedOut(e)) state.me = null;
      else throw e;
    }
    return state.me;
  }

  // An action answered 401: the session is gone.
  function sessionEnded() {
    state.me = null;
    state.notice = { text: 'Your session has ended. Please sign in again.', kind: 'info' };
    go('signin');
  }

  // ---------------------------------------------------------------- sign up / sign in

  function showSignin() {
    setError('signin-error', '');
    $('signin-password').value = '';
    focusHeading('signin-title');
  }

  function showSignup() {
    setError('signup-error', '');
    focusHeading('signup-title');
  }

  $('signup-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const email = $('signup-email').value.trim();
    const password = $('signup-password').value;
    const button = event.submitter || $('signup-form').querySelector('button[type=submit]');
    if (!email || !email.includes('@')) {
      setError('signup-error', 'Enter an email address like name@example.com.');
      return $('signup-email').focus();
    }
    if (utf8Length(password) < 8 || utf8Length(password) > 1024) {
      setError('signup-error', 'Passwords need at least 8 characters (and at most 1024 bytes).');
      return $('signup-password').focus();
    }
    busy(button, async () => {
      setError('signup-error', '');
      try {
        await api('POST', '/api/signup', { email, password });
        $('signup-password').value = '';
        await refreshMe();
        state.notice = {
          text: 'Your account is ready. Protect it with two-factor authentication below.',
          kind: 'success',
        };
        go('profile');
      } catch (e) {
        setError('signup-error', explain(e, 'signup'));
      }
    });
  });

  $('signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const email = $('signin-email').value.trim();
    const password = $('signin-password').value;
    const rememberMe = $('signin-remember').checked;
    const button = event.submitter || $('signin-form').querySelector('button[type=submit]');
    if (!email || !password) {
      setError('signin-error', 'Enter your email and password.');
      return (email ? $('signin-password') : $('signin-email')).focus();
    }
    busy(button, async () => {
      setError('signin-error', '');
      try {
        const answer = await api('POST', '/api/signin', { email, password, remember_me: rememberMe });
        $('signin-password').value = '';
        if (answer.status === 'second_factor_required') {
          // Parse the request options now, before any click, so "Use passkey" can call
          // navigator.credentials.get at once (Safari's user-gesture rule).
          let options = null;
          let optionsError = null;
          if (webauthnAvailable()) {
            try {
              options = parseRequest(answer.options);
            } catch (e) {
              optionsError = e;
            }
          }
          state.pending = { email, rememberMe, options, optionsError };
          go('verify');
        } else {
          await refreshMe();
          state.notice = { text: 'You are signed in.', kind: 'success' };
          go('profile');
        }
      } catch (e) {
        setError('signin-error', explain(e, 'signin'));
        $('signin-password').focus();
      }
    });
  });

  // ---------------------------------------------------------------- two-factor verification

  function showVerify(codePanel) {
    const pending = state.pending;
    $('verify-email').textContent = pending.email;
    $('verify-remember-note').hidden = !pending.rememberMe;
    $('verify-passkey-panel').hidden = codePanel;
    $('verify-code-panel').hidden = !codePanel;
    setError('verify-passkey-error', '');
    setError('verify-code-error', '');
    if (codePanel) {
      $('verify-code').value = '';
      $('verify-code').focus();
    } else {
      if (!webauthnAvailable()) {
        setError('verify-passkey-error', webauthnMessage({ name: 'unsupported' }));
      }
      focusHeading('verify-title');
    }
  }

  // A pending sign-in that the server no longer knows: back to step one.
  function pendingEnded(e) {
    state.pending = null;
    state.notice = { text: explain(e, 'verify'), kind: 'error' };
    go('signin');
  }

  $('verify-passkey-button').addEventListener('click', async () => {
    const pending = state.pending;
    const button = $('verify-passkey-button');
    if (!pending || state.busy) return;
    if (!pending.options) {
      setError('verify-passkey-error', webauthnMessage(pending.optionsError || { name: 'unsupported' }));
      return;
    }
    setError('verify-passkey-error', '');
    state.busy = true;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    let credential;
    try {
      // Straight from the click: no request before this call.
      credential = await navigator.credentials.get({ publicKey: pending.options });
    } catch (e) {
      setError('verify-passkey-error', webauthnMessage(e, 'verify'));
      state.busy = false;
      button.disabled = false;
      button.removeAttribute('aria-busy');
      button.focus();
      return;
    }
    try {
      await api('POST', '/api/signin/passkey', { credential: credentialToJSON(credential) });
      state.pending = null;
      await refreshMe();
      state.notice = { text: 'You are signed in.', kind: 'success' };
      state.busy = false;
      go('profile');
    } catch (e) {
      state.busy = false;
      if (e.code === 'expired' || e.code === 'rate_limited') return pendingEnded(e);
      setError('verify-passkey-error', explain(e, 'verify'));
      button.focus();
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  });

  $('verify-show-code').addEventListener('click', () => go('verify/backup-code'));
  $('verify-show-passkey').addEventListener('click', () => go('verify'));
  $('verify-cancel').addEventListener('click', () => {
    state.pending = null;
    go('signin');
  });

  $('verify-code-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const code = $('verify-code').value.trim();
    const button = event.submitter || $('verify-code-form').querySelector('button[type=submit]');
    if (!code) {
      setError('verify-code-error', 'Enter one of your backup codes.');
      return $('verify-code').focus();
    }
    busy(button, async () => {
      setError('verify-code-error', '');
      try {
        const answer = await api('POST', '/api/signin/backup-code', { code });
        state.pending = null;
        await refreshMe();
        const left = Number(answer.backup_codes_remaining);
        const low = answer.backup_codes_running_low === true; // the engine decides (B6)
        // When codes run low, the profile's own warning says so and offers to regenerate.
        const text = `You are signed in with a backup code. That code can’t be used again. You have ${plural(left, 'backup code', 'backup codes')} left.`;
        state.notice = { text, kind: low ? 'warning' : 'success' };
        go('profile');
      } catch (e) {
        if (e.code === 'expired' || e.code === 'rate_limited') return pendingEnded(e);
        setError('verify-code-error', explain(e, 'verify'));
        $('verify-code').select();
        $('verify-code').focus();
      }
    });
  });

  // ---------------------------------------------------------------- sign out

  $('signout-button').addEventListener('click', async () => {
    if (state.codes) {
      if (!window.confirm(LEAVE_CODES)) return;
      clearCodes();
    }
    try {
      await api('POST', '/api/signout');
    } catch (_) {
      // Signed out already, or the server is unreachable: either way forget the session here.
    }
    state.me = null;
    state.notice = { text: 'You are signed out.', kind: 'info' };
    go('signin');
  });

  // ---------------------------------------------------------------- My Profile

  function showProfile() {
    renderProfile();
    focusHeading('profile-title');
  }

  function renderProfile() {
    const me = state.me;
    const tf = me.two_factor || {};
    const enabled = !!tf.enabled;
    const passkeys = tf.passkeys || [];
    const remaining = Number(tf.backup_codes_remaining || 0);

    $('profile-email').textContent = me.email;
    $('tfa-badge').textContent = enabled ? 'On' : 'Off';
    $('tfa-badge').className = `badge ${enabled ? 'badge-on' : 'badge-off'}`;
    $('tfa-off').hidden = enabled;
    $('tfa-on').hidden = !enabled;
    $('tfa-off-first').hidden = passkeys.length > 0;
    $('tfa-off-has-passkeys').hidden = passkeys.length === 0;
    $('tfa-codes-left').textContent = `Backup codes: ${remaining} of 10 unused.`;

    const low = enabled && tf.backup_codes_running_low === true;
    $('profile-codes-low').hidden = !low;
    $('profile-codes-low-text').textContent =
      remaining === 0
        ? 'You have no backup codes left. Regenerate new codes so you can still sign in if you lose your passkey.'
        : `You are running low on backup codes: only ${remaining} left. Regenerate new codes so you can still sign in if you lose your passkey.`;

    $('passkeys-block').hidden = passkeys.length === 0;
    $('tfa-manage').hidden = !enabled && passkeys.length === 0;
    $('codes-regenerate').hidden = !enabled;
    $('tfa-disable').hidden = !enabled;

    const body = $('passkeys-body');
    body.replaceChildren();
    for (const passkey of passkeys) {
      const row = document.createElement('tr');
      const name = document.createElement('th');
      name.scope = 'row';
      name.textContent = passkey.name;
      const created = document.createElement('td');
      created.dataset.label = 'Created';
      created.textContent = formatTime(passkey.created_at);
      const used = document.createElement('td');
      used.dataset.label = 'Last used';
      used.textContent = formatTime(passkey.last_used_at);
      const actions = document.createElement('td');
      actions.className = 'row-actions';
      const rename = document.createElement('button');
      rename.type = 'button';
      rename.className = 'button button-small button-secondary';
      rename.textContent = 'Rename';
      rename.setAttribute('aria-label', `Rename passkey ${passkey.name}`);
      rename.dataset.rename = passkey.id;
      rename.addEventListener('click', () => openRename(passkey, rename));
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'button button-small button-danger';
      remove.textContent = 'Remove';
      remove.setAttribute('aria-label', `Remove passkey ${passkey.name}`);
      remove.addEventListener('click', () => openRemove(passkey, remove, passkeys.length, enabled));
      actions.append(rename, remove);
      row.append(name, created, used, actions);
      body.append(row);
    }
  }

  // Re-reads /api/me and redraws the profile after a change, then puts focus on `focus`
  // (an element or a function that finds one), or on the section's heading.
  async function afterChange(text, kind, focus) {
    try {
      await refreshMe();
    } catch (_) {
      // Keep the old state; the message below still says what happened.
    }
    if (!state.me) return sessionEnded();
    if (currentRoute() === 'profile') {
      renderProfile();
      announce(text, kind || 'success');
      const target = (typeof focus === 'function' ? focus() : focus) || $('tfa-title');
      target.focus();
    } else {
      state.notice = { text, kind: kind || 'success' };
      go('profile');
    }
  }

  $('tfa-enable').addEventListener('click', () => {
    const passkeys = (state.me.two_factor && state.me.two_factor.passkeys) || [];
    if (passkeys.length === 0) {
      // The first passkey turns 2FA on (help page): go to the passkey page.
      go('passkeys/new');
      return;
    }
    openPasswordDialog({
      opener: $('tfa-enable'),
      title: 'Enable two-factor authentication',
      text: ['Signing in will need your password and then your passkey or a backup code.',
        'You will get a new set of 10 backup codes.'],
      confirm: 'Enable two-factor authentication',
      action: async (password, close) => {
        const answer = await api('POST', '/api/two-factor/enable', { password });
        close();
        await refreshMe();
        showCodes(answer.codes, 'enabled');
      },
    });
  });

  $('passkey-add').addEventListener('click', () => go('passkeys/new'));

  function regenerate(opener) {
    openPasswordDialog({
      opener,
      title: 'Regenerate backup codes',
      text: ['You will get 10 new backup codes.',
        'This invalidates your previous codes: every old code stops working at once.'],
      warning: true,
      confirm: 'Regenerate codes',
      action: async (password, close) => {
        const answer = await api('POST', '/api/backup-codes/regenerate', { password });
        close();
        await refreshMe();
        showCodes(answer.codes, 'regenerated');
      },
    });
  }
  $('codes-regenerate').addEventListener('click', () => regenerate($('codes-regenerate')));
  $('profile-codes-low-regenerate').addEventListener('click', () => regenerate($('profile-codes-low-regenerate')));

  $('tfa-disable').addEventListener('click', () => {
    openPasswordDialog({
      opener: $('tfa-disable'),
      title: 'Disable two-factor authentication',
      text: ['Signing in will need only your password.',
        'Your passkeys are kept, but your backup codes stop working.'],
      warning: true,
      confirm: 'Disable two-factor authentication',
      danger: true,
      action: async (password, close) => {
        await api('POST', '/api/two-factor/disable', { password });
        close();
        await afterChange('Two-factor authentication is off. Signing in now needs only your password.', 'info');
      },
    });
  });

  function openRemove(passkey, opener, count, enabled) {
    const text = [`“${passkey.name}” will no longer sign you in.`];
    if (count === 1 && enabled) {
      text.push('This is your last passkey: removing it turns off two-factor authentication and your backup codes stop working.');
    }
    openPasswordDialog({
      opener,
      title: 'Remove passkey',
      text,
      warning: count === 1 && enabled,
      confirm: 'Remove passkey',
      danger: true,
      action: async (password, close) => {
        const answer = await api('DELETE', `/api/passkeys/${encodeURIComponent(passkey.id)}`, { password });
        close();
        let message = `Passkey “${passkey.name}” was removed.`;
        if (enabled && answer.two_factor_enabled === false) {
          message += ' That was your last passkey, so two-factor authentication is now off.';
        }
        await afterChange(message, 'info');
      },
    });
  }

  // ---------------------------------------------------------------- dialogs

  let passwordDialogConfig = null;
  let dialogOpener = null;

  function openDialog(dialog, opener) {
    clearAnnouncement();
    dialogOpener = opener || document.activeElement;
    dialog.showModal();
  }

  function closeDialog(dialog) {
    if (dialog.open) dialog.close();
  }

  for (const dialog of [$('password-dialog'), $('rename-dialog')]) {
    dialog.addEventListener('close', () => {
      const opener = dialogOpener;
      dialogOpener = null;
      if (opener && opener.isConnected && !opener.closest('[hidden]')) opener.focus();
    });
  }

  function openPasswordDialog(config) {
    passwordDialogConfig = config;
    $('password-dialog-title').textContent = config.title;
    const text = $('password-dialog-text');
    text.replaceChildren();
    text.className = config.warning ? 'message message-warning' : '';
    for (const line of config.text) {
      const p = document.createElement('p');
      p.textContent = line;
      text.append(p);
    }
    const confirm = $('password-dialog-confirm');
    confirm.textContent = config.confirm;
    confirm.className = `button ${config.danger ? 'button-danger' : 'button-primary'}`;
    $('password-dialog-input').value = '';
    setError('password-dialog-error', '');
    openDialog($('password-dialog'), config.opener);
    $('password-dialog-input').focus();
  }

  $('password-dialog-cancel').addEventListener('click', () => closeDialog($('password-dialog')));

  $('password-dialog-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const config = passwordDialogConfig;
    const password = $('password-dialog-input').value;
    if (!config) return;
    if (!password) {
      setError('password-dialog-error', 'Enter your current password.');
      return $('password-dialog-input').focus();
    }
    busy($('password-dialog-confirm'), async () => {
      setError('password-dialog-error', '');
      try {
        // The action calls `close` once the server has said yes, then updates the screen
        // (focus can only move outside a modal dialog after it closes).
        const close = () => {
          dialogOpener = null;
          $('password-dialog-input').value = '';
          closeDialog($('password-dialog'));
        };
        await config.action(password, close);
      } catch (e) {
        if (signedOut(e)) {
          closeDialog($('password-dialog'));
          return sessionEnded();
        }
        if (!$('password-dialog').open) {
          // The change was made; only redrawing the screen failed.
          announce(explain(e), 'error');
          return;
        }
        setError('password-dialog-error', explain(e, e.code === 'not_found' ? 'passkey' : 'confirm'));
        if (e.code === 'not_found') {
          closeDialog($('password-dialog'));
          await afterChange(explain(e, 'passkey'), 'error');
          return;
        }
        $('password-dialog-input').select();
        $('password-dialog-input').focus();
      }
    });
  });

  let renaming = null;

  function openRename(passkey, opener) {
    renaming = passkey;
    $('rename-dialog-input').value = passkey.name;
    setError('rename-dialog-error', '');
    openDialog($('rename-dialog'), opener);
    $('rename-dialog-input').select();
    $('rename-dialog-input').focus();
  }

  $('rename-dialog-cancel').addEventListener('click', () => closeDialog($('rename-dialog')));

  $('rename-dialog-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const passkey = renaming;
    const name = $('rename-dialog-input').value.trim();
    const button = event.submitter || $('rename-dialog-form').querySelector('button[type=submit]');
    if (!passkey) return;
    if (name.length < 1 || [...name].length > 64) {
      setError('rename-dialog-error', 'A passkey name needs 1 to 64 characters.');
      return $('rename-dialog-input').focus();
    }
    busy(button, async () => {
      setError('rename-dialog-error', '');
      try {
        await api('PATCH', `/api/passkeys/${encodeURIComponent(passkey.id)}`, { name });
        dialogOpener = null;
        closeDialog($('rename-dialog'));
        await afterChange(`Passkey renamed to “${name}”.`, 'success',
          () => document.querySelector(`[data-rename="${CSS.escape(passkey.id)}"]`));
      } catch (e) {
        if (signedOut(e)) {
          closeDialog($('rename-dialog'));
          return sessionEnded();
        }
        setError('rename-dialog-error', explain(e, 'passkey'));
      }
    });
  });

  // ---------------------------------------------------------------- passkey registration

  function showPasskeyNew() {
    const tf = state.me.two_factor || {};
    $('passkey-new-first').hidden = (tf.passkeys || []).length > 0;
    state.registration = null;
    $('passkey-name').value = '';
    $('passkey-password').value = '';
    setRegistrationStep(false);
    setError('passkey-new-error', '');
    setError('passkey-register-error', '');
    if (!webauthnAvailable()) {
      setError('passkey-new-error', webauthnMessage({ name: 'unsupported' }));
    }
    focusHeading('passkey-new-title');
  }

  function setRegistrationStep(ready) {
    $('passkey-step-details').hidden = ready;
    $('passkey-step-register').hidden = !ready;
    $('passkey-name').readOnly = ready;
    $('passkey-password').readOnly = ready;
  }

  // "Continue": checks the password and fetches the creation options, so that the
  // "Register passkey" click can call navigator.credentials.create at once.
  $('passkey-new-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (state.registration) return;
    const name = $('passkey-name').value.trim();
    const password = $('passkey-password').value;
    const button = $('passkey-continue');
    if (!webauthnAvailable()) {
      setError('passkey-new-error', webauthnMessage({ name: 'unsupported' }));
      return;
    }
    if (name.length < 1 || [...name].length > 64) {
      setError('passkey-new-error', 'Give the passkey a name of 1 to 64 characters.');
      return $('passkey-name').focus();
    }
    if (!password) {
      setError('passkey-new-error', 'Enter your current password.');
      return $('passkey-password').focus();
    }
    busy(button, async () => {
      setError('passkey-new-error', '');
      try {
        const answer = await api('POST', '/api/passkeys/registration/start', { name, password });
        const options = parseCreation(answer.options);
        state.registration = { name, options };
        $('passkey-password').value = '';
        $('passkey-ready-text').textContent =
          `Ready to register “${name}”. Click Register passkey and follow your browser or device prompt.`;
        setError('passkey-register-error', '');
        setRegistrationStep(true);
        $('passkey-register').focus();
      } catch (e) {
        if (signedOut(e)) return sessionEnded();
        setError('passkey-new-error', explain(e, 'register'));
        (e.code === 'invalid_credentials' ? $('passkey-password') : $('passkey-name')).focus();
      }
    });
  });

  $('passkey-back').addEventListener('click', () => {
    state.registration = null;
    setRegistrationStep(false);
    setError('passkey-register-error', '');
    $('passkey-name').focus();
  });

  $('passkey-register').addEventListener('click', async () => {
    const registration = state.registration;
    const button = $('passkey-register');
    if (!registration || state.busy) return;
    setError('passkey-register-error', '');
    state.busy = true;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    let credential;
    try {
      // Straight from the click: the options were fetched by "Continue".
      credential = await navigator.credentials.create({ publicKey: registration.options });
    } catch (e) {
      state.busy = false;
      button.disabled = false;
      button.removeAttribute('aria-busy');
      setError('passkey-register-error', webauthnMessage(e, 'register'));
      button.focus();
      return;
    }
    try {
      const answer = await api('POST', '/api/passkeys/registration/finish', {
        credential: credentialToJSON(credential),
      });
      state.registration = null;
      await refreshMe();
      state.busy = false;
      const name = (answer.passkey && answer.passkey.name) || registration.name;
      if (answer.backup_codes && answer.backup_codes.length) {
        showCodes(answer.backup_codes, 'enabled', `Passkey “${name}” is registered.`);
      } else {
        state.notice = { text: `Passkey “${name}” is registered.`, kind: 'success' };
        go('profile');
      }
    } catch (e) {
      state.busy = false;
      if (signedOut(e)) return sessionEnded();
      if (e.code === 'expired') {
        // The ceremony is over: back to the first step.
        state.registration = null;
        setRegistrationStep(false);
        setError('passkey-new-error', explain(e, 'register'));
        $('passkey-password').focus();
        return;
      }
      setError('passkey-register-error', explain(e, 'register'));
      if (e.code === 'already_exists' || e.code === 'invalid_passkey') {
        // The server has consumed this ceremony; a new attempt needs fresh options.
        state.registration = null;
        setRegistrationStep(false);
        setError('passkey-new-error', explain(e, 'register'));
        $('passkey-password').focus();
      } else {
        button.focus();
      }
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  });

  // ---------------------------------------------------------------- backup codes screen

  // `lead` says what just happened, above the codes (e.g. which passkey was registered).
  function showCodes(codes, reason, lead) {
    state.codes = { codes: codes.slice(), reason, lead };
    state.notice = null;
    go('backup-codes');
  }

  function clearCodes() {
    state.codes = null;
    $('codes-list').replaceChildren();
  }

  function showBackupCodes() {
    const { codes, reason, lead } = state.codes;
    $('codes-enabled-note').textContent = `${lead ? `${lead} ` : ''}Two-factor authentication is on.`;
    $('codes-enabled-note').hidden = reason !== 'enabled';
    $('codes-replaced-note').hidden = reason !== 'regenerated';
    const list = $('codes-list');
    list.replaceChildren();
    for (const code of codes) {
      const li = document.createElement('li');
      const span = document.createElement('code');
      span.textContent = code;
      li.append(span);
      list.append(li);
    }
    focusHeading('codes-title');
  }

  function codesText() {
    const email = state.me ? state.me.email : '';
    const lines = [
      'twofold backup codes',
      email ? `Account: ${email}` : null,
      `Created: ${new Date().toISOString()}`,
      '',
      'Each code can be used once. Keep these in a secure place.',
      '',
      ...state.codes.codes,
      '',
    ];
    return lines.filter((l) => l !== null).join('\n');
  }

  $('codes-copy').addEventListener('click', async () => {
    if (!state.codes) return;
    const text = state.codes.codes.join('\n');
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch (_) {
      // Fallback for browsers without the async clipboard API.
      const area = document.createElement('textarea');
      area.value = text;
      area.setAttribute('readonly', '');
      area.className = 'offscreen';
      document.body.append(area);
      area.select();
      try {
        ok = document.execCommand('copy');
      } catch (_) {
        ok = false;
      }
      area.remove();
      $('codes-copy').focus();
    }
    announce(ok ? 'Backup codes copied to the clipboard.' : 'Copying didn’t work here. Select the codes and copy them, or download them.',
      ok ? 'success' : 'error');
  });

  $('codes-download').addEventListener('click', () => {
    if (!state.codes) return;
    const blob = new Blob([codesText()], { type: 'text/plain;charset=utf-8' });
    const url = URL.createObjectURL(blob);
    const link = document.createElement('a');
    link.href = url;
    link.download = 'twofold-backup-codes.txt';
    link.className = 'offscreen';
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    announce('Downloaded twofold-backup-codes.txt.', 'success');
  });

  $('codes-done').addEventListener('click', () => {
    const reason = state.codes && state.codes.reason;
    clearCodes();
    state.notice = {
      text: reason === 'regenerated'
        ? 'Your new backup codes are active. Your previous codes no longer work.'
        : 'Two-factor authentication is on. Keep your backup codes somewhere safe.',
      kind: 'success',
    };
    go('profile');
  });

  // ---------------------------------------------------------------- activity

  const EVENT_WORDS = {
    account_created: 'Account created',
    password_ok: 'Password accepted',
    password_failed: 'Wrong password entered',
    second_factor_required: 'Asked for two-factor verification',
    passkey_ok: 'Verified with a passkey',
    passkey_failed: 'Passkey verification failed',
    backup_code_ok: 'Signed in with a backup code',
    backup_code_failed: 'Backup code refused',
    throttled: 'Sign-in locked after too many failed attempts',
    passkey_registered: 'Passkey added',
    passkey_renamed: 'Passkey renamed',
    passkey_removed: 'Passkey removed',
    two_factor_enabled: 'Two-factor authentication turned on',
    two_factor_disabled: 'Two-factor authentication turned off',
    backup_codes_generated: 'New backup codes created',
  };

  function passkeyName(id) {
    const passkeys = (state.me && state.me.two_factor && state.me.two_factor.passkeys) || [];
    const found = passkeys.find((p) => p.id === id);
    return found ? found.name : null;
  }

  function describeEvent(event) {
    const d = event.details || {};
    let text = EVENT_WORDS[event.kind] || String(event.kind || 'Event').replace(/_/g, ' ');
    if (event.kind === 'backup_codes_generated' && d.reason === 'regenerated') text = 'Backup codes regenerated';
    if (event.kind === 'passkey_renamed' && d.old_name && d.name) {
      return `${text}: “${d.old_name}” to “${d.name}”`;
    }
    const name = (typeof d.name === 'string' && d.name) || (d.passkey_id && passkeyName(d.passkey_id));
    if (name) text += `: “${name}”`;
    if (event.kind === 'two_factor_disabled' && d.reason === 'last_passkey_removed') {
      text += ' (the last passkey was removed)';
    }
    if (event.kind === 'two_factor_enabled' && d.reason === 'first_passkey') text += ' (first passkey registered)';
    if (typeof d.remaining === 'number') text += ` (${plural(d.remaining, 'code', 'codes')} left)`;
    if (event.kind === 'throttled' && typeof d.until === 'number') text += ` until ${formatTime(d.until)}`;
    return text;
  }

  function browserName(ua) {
    if (!ua) return '';
    if (/Edg\//.test(ua)) return 'Edge';
    if (/Firefox\//.test(ua)) return 'Firefox';
    if (/HeadlessChrome\//.test(ua)) return 'Chrome (headless)';
    if (/Chrom(e|ium)\//.test(ua)) return 'Chrome';
    if (/Safari\//.test(ua)) return 'Safari';
    return 'another browser';
  }

  function showActivity() {
    $('activity-body').replaceChildren();
    $('activity-chain').textContent = '';
    $('activity-chain').className = 'message';
    $('activity-chain').hidden = true;
    state.activityBefore = null;
    focusHeading('activity-title');
    loadActivity(false);
    verifyActivity();
  }

  async function loadActivity(more) {
    const path = more && state.activityBefore !== null ? `/api/audit?before=${state.activityBefore}` : '/api/audit';
    try {
      const answer = await api('GET', path);
      const events = Array.isArray(answer) ? answer : answer.events || [];
      state.activityBefore = answer.next_before ?? null;
      const body = $('activity-body');
      for (const event of events) {
        const row = document.createElement('tr');
        const when = document.createElement('td');
        when.textContent = formatTime(event.at);
        const what = document.createElement('td');
        what.textContent = describeEvent(event);
        if (event.notify) {
          const tag = document.createElement('span');
          tag.className = 'tag';
          tag.textContent = 'Important';
          what.append(' ', tag);
        }
        const from = document.createElement('td');
        from.textContent = [event.ip, browserName(event.user_agent)].filter(Boolean).join(' · ');
        row.append(when, what, from);
        body.append(row);
      }
      if (!more && events.length === 0) {
        const row = document.createElement('tr');
        const cell = document.createElement('td');
        cell.colSpan = 3;
        cell.textContent = 'No activity yet.';
        row.append(cell);
        body.append(row);
      }
      $('activity-more').hidden = state.activityBefore === null;
    } catch (e) {
      if (signedOut(e)) return sessionEnded();
      announce(explain(e), 'error');
    }
  }

  async function verifyActivity() {
    const el = $('activity-chain');
    try {
      const report = await api('GET', '/api/audit/verify');
      const checked = report.events_checked;
      if (report.intact) {
        el.textContent = `The activity log is intact: all ${plural(checked, 'event', 'events')} check out.`;
        el.className = 'message message-success';
      } else {
        el.textContent = `Warning: the activity log has been tampered with (${plural((report.problems || []).length, 'problem', 'problems')} found). Contact your administrator.`;
        el.className = 'message message-error';
      }
      el.hidden = false;
    } catch (e) {
      if (signedOut(e)) return;
      el.textContent = 'The activity log could not be checked just now.';
      el.className = 'message message-warning';
      el.hidden = false;
    }
  }

  $('activity-more').addEventListener('click', () => loadActivity(true));

  // ---------------------------------------------------------------- start

  $('skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    $('main').focus();
  });

  window.addEventListener('hashchange', () => {
    const route = currentRoute();
    if (route === null) return;
    // The codes are shown once: leaving their screen by a link or Back asks first.
    if (state.codes && route !== 'backup-codes' && !window.confirm(LEAVE_CODES)) {
      location.hash = '#/backup-codes';
      return;
    }
    render();
  });

  window.addEventListener('beforeunload', (event) => {
    if (state.codes) {
      event.preventDefault();
      event.returnValue = '';
    }
  });

  (async () => {
    try {
      await refreshMe();
    } catch (e) {
      state.notice = { text: explain(e), kind: 'error' };
    }
    render();
  })();
})();
