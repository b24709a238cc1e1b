// The backup codes screen: shown once, right after a set is made; copy, download, done.

import { focusHeading, go } from '../router.js';
import { $, forgetCodes, state } from '../state.js';
import { announce } from '../ui.js';

// `lead` says what just happened, above the codes (e.g. which passkey was registered).
export function showCodes(codes, reason, lead) {
  state.codes = { codes: codes.slice(), reason, lead };
  state.notice = null;
  go('backup-codes');
}

export function showBackupCodes() {
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
  forgetCodes();
  state.notice = {
    text: reason === 'regenerated'
      ? 'Your new backup codes are active. Your previous codes no longer work.'
      : 'Two-factor authentication is on. Keep your backup codes somewhere safe.',
    kind: 'success',
  };
  go('profile');
});
