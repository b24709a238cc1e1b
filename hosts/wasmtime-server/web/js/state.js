// What the UI remembers between screens, and the one DOM lookup every module uses.

export const state = {
  me: null, // GET /api/me answer while signed in
  pending: null, // { email, rememberMe, options } between sign-in steps one and two
  registration: null, // { name, options } between "Continue" and "Register passkey"
  codes: null, // { codes, reason } for the backup codes screen; dropped when it closes
  notice: null, // { text, kind } to show once on the next screen
  activityBefore: null, // paging cursor for the activity list
  busy: false,
};

export const $ = (id) => document.getElementById(id);

export const LEAVE_CODES = 'Leave without saving your backup codes? You won’t be able to view the same codes again.';

// Leaving the backup codes screen forgets the codes: they are shown once.
export function forgetCodes() {
  state.codes = null;
  $('codes-list').replaceChildren();
}
