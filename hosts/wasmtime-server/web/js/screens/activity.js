// Activity: the audit log, newest first, in words, and whether its chain verifies.

import { api, signedOut } from '../api.js';
import { focusHeading, sessionEnded } from '../router.js';
import { $, state } from '../state.js';
import { announce, formatTime, plural } from '../ui.js';
import { explain } from '../words.js';

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

export function showActivity() {
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
