// The package's errors: `TwofoldError` from every engine call, `StorageConflict` from adapters.

/** What every engine method throws. Match on `code` (the SPEC's snake_case code), never on the message. */
export class TwofoldError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{ retryAfterSecs?: number, cause?: unknown }} [options]
   */
  constructor(code, message, { retryAfterSecs, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'TwofoldError';
    this.code = code;
    if (retryAfterSecs !== undefined) this.retryAfterSecs = retryAfterSecs;
  }

  /** The JSON protocol's error object: `{ code, message, retry_after_secs? }`. */
  toJSON() {
    return { code: this.code, message: this.message, ...(this.retryAfterSecs !== undefined && { retry_after_secs: this.retryAfterSecs }) };
  }
}

/** A storage adapter's `commit` throws this when an expectation does not hold; nothing was applied. */
export class StorageConflict extends Error {
  constructor(message = 'a write expected another version') {
    super(message);
    this.name = 'StorageConflict';
  }
}
