// Registering a passkey: "Continue" checks the password and fetches the creation options, so
// the "Register passkey" click can start the browser's prompt at once (Safari's user-gesture
// rule). The first passkey turns 2FA on and brings the backup codes.

import { api, signedOut } from '../api.js';
import { focusHeading, go, refreshMe, sessionEnded } from '../router.js';
import { $, state } from '../state.js';
import { busy, setError } from '../ui.js';
import { credentialToJSON, parseCreation, webauthnAvailable } from '../webauthn.js';
import { explain, webauthnMessage } from '../words.js';
import { showCodes } from './backup-codes.js';

export function showPasskeyNew() {
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
