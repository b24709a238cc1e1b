// Modal dialogs: focus returns to the button that opened them; the password dialog asks for
// the current password before a change and runs the change (config.action) itself.

import { signedOut } from './api.js';
import { sessionEnded } from './router.js';
import { $ } from './state.js';
import { announce, busy, clearAnnouncement, setError } from './ui.js';
import { explain } from './words.js';

let passwordDialogConfig = null;
let dialogOpener = null;

// After a change that redraws the screen, focus goes where the caller puts it, not back to
// the button that opened the dialog.
export function forgetOpener() {
  dialogOpener = null;
}

export function openDialog(dialog, opener) {
  clearAnnouncement();
  dialogOpener = opener || document.activeElement;
  dialog.showModal();
}

export function closeDialog(dialog) {
  if (dialog.open) dialog.close();
}

for (const dialog of document.querySelectorAll('dialog')) {
  dialog.addEventListener('close', () => {
    const opener = dialogOpener;
    dialogOpener = null;
    if (opener && opener.isConnected && !opener.closest('[hidden]')) opener.focus();
  });
}

export function openPasswordDialog(config) {
  passwordDialogConfig = config;
  $('password-dialog-title').textContent = config.title;
  const text = $('password-dialog-text');
  text.replaceChildren();
  text.className = config.warning ? 'message message-warning' : '';
  for (const line of config.text) {
    const p = document.createElement('p');
    p.textContent = line;
    text.append(p);
  }
  const confirm = $('password-dialog-confirm');
  confirm.textContent = config.confirm;
  confirm.className = `button ${config.danger ? 'button-danger' : 'button-primary'}`;
  $('password-dialog-input').value = '';
  setError('password-dialog-error', '');
  openDialog($('password-dialog'), config.opener);
  $('password-dialog-input').focus();
}

$('password-dialog-cancel').addEventListener('click', () => closeDialog($('password-dialog')));

$('password-dialog-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const config = passwordDialogConfig;
  const password = $('password-dialog-input').value;
  if (!config) return;
  if (!password) {
    setError('password-dialog-error', 'Enter your current password.');
    return $('password-dialog-input').focus();
  }
  busy($('password-dialog-confirm'), async () => {
    setError('password-dialog-error', '');
    try {
      // The action calls `close` once the server has said yes, then updates the screen
      // (focus can only move outside a modal dialog after it closes).
      const close = () => {
        forgetOpener();
        $('password-dialog-input').value = '';
        closeDialog($('password-dialog'));
      };
      await config.action(password, close);
    } catch (e) {
      if (signedOut(e)) {
        closeDialog($('password-dialog'));
        return sessionEnded();
      }
      if (!$('password-dialog').open) {
        // The change was made; only redrawing the screen failed.
        announce(explain(e), 'error');
        return;
      }
      setError('password-dialog-error', explain(e, e.code === 'not_found' ? 'passkey' : 'confirm'));
      if (e.code === 'not_found' && config.gone) {
        // What the dialog was about no longer exists.
        closeDialog($('password-dialog'));
        await config.gone(e);
        return;
      }
      $('password-dialog-input').select();
      $('password-dialog-input').focus();
    }
  });
});
