// Types of the twofold package. The API's records, enums and operations are generated from
// the WIT into gen/api.d.ts (`npm run build`); this file adds the classes.

import type { AsyncOperations, AsyncStorage, Config, ErrorCode, Operations, Storage } from './gen/api.js';

export * from './gen/api.js';

/** What every engine call throws. Match on `code`, never on the message. */
export class TwofoldError extends Error {
  constructor(code: ErrorCode, message: string, options?: { retryAfterSecs?: number; cause?: unknown });
  readonly name: 'TwofoldError';
  /** The SPEC's error code, snake_case. */
  readonly code: ErrorCode;
  /** With `rate_limited`: seconds until this client may try again. */
  readonly retryAfterSecs?: number;
  /** With `storage`: what the adapter threw. */
  readonly cause?: unknown;
  /** The JSON protocol's error object. */
  toJSON(): { code: ErrorCode; message: string; retry_after_secs?: number };
}

/** Thrown by an adapter's `commit` when an expectation does not hold (nothing was applied). */
export class StorageConflict extends Error {
  constructor(message?: string);
}

/**
 * The engine, called synchronously: each method blocks its thread until the answer (a password
 * check takes tens of milliseconds). In a server, prefer `EnginePool`.
 */
export class Engine implements Disposable {
  /** Throws TwofoldError `invalid_input` for a configuration the engine refuses. */
  constructor(config: Config, storage: Storage);
  /** Frees the engine now (garbage collection would, later). */
  dispose(): void;
  [Symbol.dispose](): void;
}
export interface Engine extends Operations {}

/** The engine's operations as Promises, run by worker threads over storage served from this thread. */
export class EnginePool {
  /** Rejects with TwofoldError `invalid_input` for a configuration the engine refuses. */
  static start(options: {
    config: Config;
    /** Served from the calling thread's event loop: async (PgAdapter) or sync (MemoryStorage). */
    storage: AsyncStorage;
    /** Worker threads; default one per core. */
    size?: number;
    /** How long one storage call may take, in ms (default 10000). */
    timeoutMs?: number;
  }): Promise<EnginePool>;
  /** Stops the workers; calls in flight fail. */
  close(): Promise<void>;
}
export interface EnginePool extends AsyncOperations {}

/** Storage in memory: for tests, demos and single-process use. */
export class MemoryStorage implements Storage {
  get: Storage['get'];
  scan: Storage['scan'];
  commit: Storage['commit'];
  /** Removes every key. */
  clear(): void;
  /** How many keys are stored. */
  readonly size: number;
}

/** Timeouts of a storage running in a worker thread, in ms. */
export interface WorkerTimeouts {
  /** How long one call may take (default 10000); then the worker is replaced and the call fails. */
  timeoutMs?: number;
  /** How long opening the adapter may take (default 15000). */
  startTimeoutMs?: number;
}

/**
 * A synchronous Storage (for Engine) over an asynchronous adapter that runs in its own worker
 * thread. `module`'s default export, `(options) => AsyncStorage | Promise<AsyncStorage>`,
 * opens the adapter; the constructor blocks until it has opened, or throws why not.
 */
export class WorkerStorage implements Storage {
  constructor(module: string | URL, options?: unknown, timeouts?: WorkerTimeouts);
  get: Storage['get'];
  scan: Storage['scan'];
  commit: Storage['commit'];
  /** Removes every key, if the adapter has `clear` (tests). */
  clear(): void;
  /** Workers started so far: 1, plus one after every timeout or crash. */
  readonly workersStarted: number;
  /** Stops the worker and its connections. */
  close(): Promise<void>;
}
