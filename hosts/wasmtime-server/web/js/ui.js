// Small UI helpers: form errors, the live status banner, busy buttons, times and plurals.

import { $, state } from './state.js';

export function setError(id, text) {
  const el = $(id);
  el.textContent = text || '';
  el.classList.toggle('is-visible', !!text);
}

export function announce(text, kind) {
  const el = $('status');
  el.textContent = text || '';
  // The live region stays in place (never hidden) so screen readers hear each change.
  el.className = text ? `status message message-${kind || 'success'}` : 'status';
}

export function clearAnnouncement() {
  announce('');
}

// Runs `work` with the form's submit button (or the given button) disabled and marked busy.
export async function busy(button, work) {
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

export function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function formatTime(ms) {
  if (ms === null || ms === undefined) return 'Never';
  return dateFormat.format(new Date(Number(ms)));
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}
