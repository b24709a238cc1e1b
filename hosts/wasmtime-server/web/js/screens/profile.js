// My Profile and its Two-Factor Authentication section: the state of 2FA, the passkeys (rename,
// remove), enable and disable, and regenerating backup codes.

import { api, signedOut } from '../api.js';
import { closeDialog, forgetOpener, openDialog, openPasswordDialog } from '../dialogs.js';
import { currentRoute, focusHeading, go, refreshMe, sessionEnded } from '../router.js';
import { $, state } from '../state.js';
import { announce, busy, formatTime, setError } from '../ui.js';
import { explain } from '../words.js';
import { showCodes } from './backup-codes.js';

export function showProfile() {
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
export async function afterChange(text, kind, focus) {
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
    gone: (e) => afterChange(explain(e, 'passkey'), 'error'),
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
      forgetOpener();
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
