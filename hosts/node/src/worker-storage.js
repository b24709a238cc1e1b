// `WorkerStorage`: a synchronous storage adapter (for `Engine`) over an asynchronous one that
// runs in its own worker thread, reached through bridge.js. `PgStorage` is one; any async
// adapter becomes one:
//
//   // my-adapter.js:  export default async function open(options) { return new MyAdapter(options); }
//   const storage = new WorkerStorage(new URL('./my-adapter.js', import.meta.url), options);
//
// Failures: an adapter error answers `failed` and the worker keeps serving. No answer within
// `timeoutMs` (10 s): the worker is terminated (its connections close, an open transaction
// rolls back) and the call fails; the next call starts a new worker. A worker that dies wakes
// the caller at once. A commit that timed out after its COMMIT was sent may have applied:
// keep the database's own timeouts below `timeoutMs` (PgStorage does) so that it answers first.

import { Worker } from 'node:worker_threads';
import { BridgeBroken, BridgeClient, createChannel, markDead } from './bridge.js';

export class WorkerStorage {
  #module;
  #options;
  #timeouts;
  #worker = null;
  #client = null;
  #closed = false;
  /** Workers started so far: 1, plus one after every timeout or death. */
  workersStarted = 0;

  /**
   * @param module URL of a module whose default export, `(options) => adapter | Promise<adapter>`,
   *   opens the asynchronous adapter (get, scan, commit; clear for tests)
   * @param options passed to it (structured-cloned into the worker)
   * @param timeouts { timeoutMs: 10000, startTimeoutMs: 15000 }: how long a call, and opening, may take
   */
  constructor(module, options = {}, { timeoutMs = 10_000, startTimeoutMs = 15_000 } = {}) {
    this.#module = String(module);
    this.#options = options;
    this.#timeouts = { timeoutMs, startTimeoutMs };
    this.#start().waitReady(); // fail here, not at the first call, if the adapter cannot open
  }

  #start() {
    const sab = createChannel();
    const worker = new Worker(new URL('./storage-worker.js', import.meta.url), {
      workerData: { sab, module: this.#module, options: this.#options },
    });
    worker.unref(); // an idle storage does not keep the process alive
    worker.on('error', () => markDead(sab));
    worker.on('exit', () => markDead(sab));
    this.#worker = worker;
    this.workersStarted += 1;
    this.#client = new BridgeClient(sab, () => worker.postMessage(null), this.#timeouts);
    return this.#client;
  }

  #call(op, ...args) {
    if (this.#closed) throw new Error('the storage is closed');
    if (this.#worker === null || this.#client.dead) {
      void this.#worker?.terminate();
      this.#start();
    }
    try {
      return this.#client.call(op, ...args);
    } catch (e) {
      if (e instanceof BridgeBroken) {
        void this.#worker.terminate();
        this.#worker = null;
      }
      throw e;
    }
  }

  get(key) { return this.#call('get', key); }
  scan(prefix, after, limit) { return this.#call('scan', prefix, after ?? null, limit); }
  commit(writes) { this.#call('commit', writes); }
  /** Removes every key (the adapter's `clear`; for tests). */
  clear() { this.#call('clear'); }

  /** Stops the worker; its adapter's connections close with it. */
  async close() {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = null;
    await worker?.terminate();
  }
}
