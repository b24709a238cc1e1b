// Sign up, sign in (step one: email, password, Remember me) and sign out.

import { api } from '../api.js';
import { go, focusHeading, refreshMe } from '../router.js';
import { $, LEAVE_CODES, forgetCodes, state } from '../state.js';
import { busy, setError, utf8Length } from '../ui.js';
import { parseRequest, webauthnAvailable } from '../webauthn.js';
import { explain } from '../words.js';

export function showSignin() {
  setError('signin-error', '');
  $('signin-password').value = '';
  focusHeading('signin-title');
}

export function showSignup() {
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

$('signout-button').addEventListener('click', async () => {
  if (state.codes) {
    if (!window.confirm(LEAVE_CODES)) return;
    forgetCodes();
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
