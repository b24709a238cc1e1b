// Routing: the hash names the screen (#/signin, #/profile, ...); render() decides what may be
// shown (signed in, signed out, or between sign-in steps) and shows it.

import { api, signedOut } from './api.js';
import { $, forgetCodes, state } from './state.js';
import { announce, clearAnnouncement } from './ui.js';

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

// What each route shows, filled in by the screens' modules (see main.js).
const SCREENS = {};

export function addScreen(route, show) {
  SCREENS[route] = show;
}

export function currentRoute() {
  const hash = location.hash || '';
  return hash.startsWith('#/') ? hash.slice(2) : null;
}

export function go(route) {
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
export function render() {
  let route = currentRoute();
  if (route === null || !VIEWS[route]) route = defaultRoute();
  const view = VIEWS[route];

  if (view.auth === 'in' && !state.me) return go('signin');
  if (view.auth === 'out' && state.me) return go('profile');
  if (view.auth === 'pending' && !state.pending) return go(state.me ? 'profile' : 'signin');
  if (route === 'backup-codes' && !state.codes) return go('profile');
  if (route !== currentRoute()) return go(route);

  if (route !== 'backup-codes') forgetCodes();
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

  SCREENS[route]();
}

export function focusHeading(id) {
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

export async function refreshMe() {
  try {
    state.me = await api('GET', '/api/me');
  } catch (e) {
    if (signedOut(e)) state.me = null;
    else throw e;
  }
  return state.me;
}

// An action answered 401: the session is gone.
export function sessionEnded() {
  state.me = null;
  state.notice = { text: 'Your session has ended. Please sign in again.', kind: 'info' };
  go('signin');
}
