// Two-factor verification (sign-in step two): "Use passkey", or "Enter a backup code instead".
// The passkey prompt starts straight from the click: the request options came with step one.

import { api } from '../api.js';
import { go, focusHeading, refreshMe } from '../router.js';
import { $, state } from '../state.js';
import { busy, plural, setError } from '../ui.js';
import { credentialToJSON, webauthnAvailable } from '../webauthn.js';
import { explain, webauthnMessage } from '../words.js';

export function showVerify(codePanel) {
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
