// The JSON API client: every request goes through api(), and every refusal becomes an
// ApiError carrying the stable error code (never parsed from a message).

export class ApiError extends Error {
  constructor(code, message, status, retryAfterSecs) {
    super(message || code);
    this.code = code;
    this.status = status;
    this.retryAfterSecs = retryAfterSecs;
  }
}

export async function api(method, path, body) {
  const init = {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json' },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (_) {
    throw new ApiError('network', '', 0);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (_) {
      data = null;
    }
  }
  if (!response.ok) {
    const err = (data && data.error) || {};
    let retry = err.retry_after_secs;
    if (retry === undefined) {
      const header = Number(response.headers.get('Retry-After'));
      if (Number.isFinite(header) && header > 0) retry = header;
    }
    // 403 is the server's Origin check (H4), whatever code the body carries.
    const code = response.status === 403 ? 'forbidden' : err.code || httpCode(response.status);
    throw new ApiError(code, err.message || '', response.status, retry);
  }
  return data || {};
}

// 401 means "not signed in" unless the code says a secret was wrong (the server answers a
// wrong password, passkey or backup code with 401 too).
const WRONG_SECRET = new Set(['invalid_credentials', 'invalid_passkey', 'invalid_backup_code', 'second_factor_required']);

export function signedOut(error) {
  return error instanceof ApiError && error.status === 401 && !WRONG_SECRET.has(error.code);
}

function httpCode(status) {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 429) return 'rate_limited';
  if (status >= 500) return 'internal';
  return 'invalid_input';
}
