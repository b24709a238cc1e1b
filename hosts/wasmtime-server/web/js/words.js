// The words a person sees for an error: one sentence per error code, adjusted to the form.

import { ApiError } from './api.js';

export function minutes(secs) {
  const m = Math.max(1, Math.ceil(secs / 60));
  return m === 1 ? '1 minute' : `${m} minutes`;
}

// The words a person sees for an error. `where` adjusts a few messages to the form.
export function explain(error, where) {
  if (!(error instanceof ApiError)) return webauthnMessage(error, where);
  const passwordConfirm = where === 'confirm' || where === 'register';
  switch (error.code) {
    case 'network':
      return 'We couldn’t reach the server. Check your connection and try again.';
    case 'invalid_credentials':
      return passwordConfirm
        ? 'That password isn’t correct. Enter the password you sign in with.'
        : 'The email or password isn’t correct. Check them and try again.';
    case 'rate_limited':
      return error.retryAfterSecs
        ? `Too many failed attempts. For your security this account is locked for now. Try again in ${minutes(error.retryAfterSecs)}.`
        : 'Too many failed attempts. For your security this account is locked for now. Try again later.';
    case 'invalid_passkey':
      return 'Your passkey couldn’t be verified. Try again, or use a backup code.';
    case 'invalid_backup_code':
      return 'That backup code isn’t valid or has already been used. Check it and try again, or use another code.';
    case 'expired':
      if (where === 'register') return 'The passkey registration took too long and has ended. Please start again.';
      return 'This sign-in attempt has ended. Please sign in again.';
    case 'already_exists':
      if (where === 'signup') return 'An account with this email already exists. Sign in instead.';
      if (where === 'register') return 'This passkey is already registered. Use a different authenticator.';
      return 'That already exists.';
    case 'already_enabled':
      return 'Two-factor authentication is already on.';
    case 'not_enabled':
      return 'Two-factor authentication is off, so there are no backup codes to regenerate.';
    case 'no_passkey':
      return 'Register a passkey before you turn on two-factor authentication.';
    case 'not_found':
      return where === 'passkey'
        ? 'That passkey no longer exists. The list has been refreshed.'
        : 'We couldn’t find what you asked for. Reload the page and try again.';
    case 'conflict':
      return 'Something else changed your account at the same moment. Nothing was saved; please try again.';
    case 'second_factor_required':
      return 'Please finish signing in with your passkey or a backup code.';
    case 'unauthorized':
    case 'not_signed_in':
      return 'You are signed out. Please sign in again.';
    case 'forbidden':
      // Usually the page was opened at another address than the server's configured origin
      // (127.0.0.1 for localhost); the server's message names the address to open.
      return `This page’s address must match the server’s configured origin. ${error.message}`.trim();
    case 'invalid_input':
      return inputMessage(error.message);
    case 'storage':
    case 'internal':
    default:
      return 'Something went wrong on our side. Nothing was changed. Please try again in a moment.';
  }
}

function inputMessage(message) {
  const m = (message || '').toLowerCase();
  if (m.includes('password')) return 'Passwords need at least 8 characters (and at most 1024 bytes).';
  if (m.includes('email')) return 'Enter an email address like name@example.com.';
  if (m.includes('passkey name') || m.includes('name')) return 'A passkey name needs 1 to 64 characters.';
  if (m.includes('backup code')) return 'That doesn’t look like a backup code. Check it and try again.';
  if (m.includes('credential')) return 'Your browser sent a passkey answer we couldn’t read. Please try again.';
  return 'Something in the form isn’t right. Check it and try again.';
}

export function webauthnMessage(error, where) {
  const name = error && error.name;
  if (name === 'NotAllowedError') {
    return where === 'register'
      ? 'The passkey prompt was closed or timed out. Click “Register passkey” to try again.'
      : 'The passkey prompt was closed or timed out. Click “Use passkey” to try again, or use a backup code.';
  }
  if (name === 'InvalidStateError') {
    return 'This device already holds a passkey for your account. Use another device or security key.';
  }
  if (name === 'SecurityError') {
    return 'Your browser refused passkeys for this site address. Open the page at the address the site is set up for.';
  }
  if (name === 'NotSupportedError' || name === 'unsupported') {
    return 'This browser or device can’t use passkeys. Try another browser, or use a backup code.';
  }
  if (name === 'AbortError') return 'The passkey prompt was cancelled.';
  return 'The passkey step didn’t work. Please try again.';
}
