// twofold web UI: sign-up, sign-in with a passkey or a backup code, and the Two-Factor
// Authentication section of My Profile. Plain JavaScript modules, no build step, no external
// URLs. Each screen is a module under screens/; this one wires them to their routes and
// starts.
//
// Safari's user-gesture rule: the browser's passkey prompt must start straight from a click,
// with no network round trip between the click and navigator.credentials.*. So the WebAuthn
// options are always fetched before the click: sign-in options arrive with step one, and
// registration options are fetched by "Continue" before the "Register passkey" click.

import { addScreen, currentRoute, refreshMe, render } from './router.js';
import { $, LEAVE_CODES, state } from './state.js';
import { explain } from './words.js';
import { showActivity } from './screens/activity.js';
import { showBackupCodes } from './screens/backup-codes.js';
import { showPasskeyNew } from './screens/passkey-new.js';
import { showProfile } from './screens/profile.js';
import { showSignin, showSignup } from './screens/sign-in.js';
import { showVerify } from './screens/verify.js';

addScreen('signin', showSignin);
addScreen('signup', showSignup);
addScreen('verify', () => showVerify(false));
addScreen('verify/backup-code', () => showVerify(true));
addScreen('profile', showProfile);
addScreen('passkeys/new', showPasskeyNew);
addScreen('backup-codes', showBackupCodes);
addScreen('activity', showActivity);

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
