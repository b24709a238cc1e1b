// `EnginePool`: the Engine's operations answered by worker threads, as Promises, so that a
// server's event loop never waits for argon2 (a password check holds a thread for tens of
// milliseconds) and every core is used.
//
// Each worker holds an Engine whose storage is a bridge (bridge.js) back to the adapter given
// here, which runs on this thread's event loop: any async adapter (PgAdapter over the
// application's own pool, a Redis or DynamoDB client) or a sync one (MemoryStorage).

import { availableParallelism } from 'node:os';
import { MessageChannel, Worker } from 'node:worker_threads';
import schema from '../gen/schema.js';
import { createChannel, markDead, serve } from './bridge.js';
import { TwofoldError } from './errors.js';

export class EnginePool {
  #config;
  #storage;
  #timeoutMs;
  #slots = [];
  #calls = new Map(); // id -> { resolve, reject, slot }
  #nextId = 1;
  #closed = false;

  /**
   * Starts `size` workers (default: one per core), each with an Engine on `config`.
   * Rejects with the engine's error if the configuration is refused.
   * @param options { config, storage, size?, timeoutMs? (10000: how long one storage call may take) }
   */
  static async start({ config, storage, size = availableParallelism(), timeoutMs = 10_000 }) {
    for (const m of ['get', 'scan', 'commit']) {
      if (typeof storage?.[m] !== 'function') throw new TypeError(`storage.${m} must be a function`);
    }
    const pool = new EnginePool();
    pool.#config = config;
    pool.#storage = storage;
    pool.#timeoutMs = timeoutMs;
    try {
      await Promise.all(Array.from({ length: size }, () => pool.#spawn()));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  #spawn() {
    const sab = createChannel();
    const { port1, port2 } = new MessageChannel();
    const stop = serve(sab, port1, this.#storage);
    port1.unref();
    const worker = new Worker(new URL('./pool-worker.js', import.meta.url), {
      workerData: { config: this.#config, sab, ring: port2, timeoutMs: this.#timeoutMs },
      transferList: [port2],
    });
    const slot = { worker, inflight: 0 };
    return new Promise((resolve, reject) => {
      worker.on('message', (m) => {
        if (m.ready) {
          this.#slots.push(slot);
          resolve();
          return;
        }
        if (m.refused) {
          reject(new TwofoldError(m.refused.code, m.refused.message));
          return;
        }
        const call = this.#calls.get(m.id);
        this.#calls.delete(m.id);
        slot.inflight -= 1;
        if (m.error) call.reject(new TwofoldError(m.error.code, m.error.message, { retryAfterSecs: m.error.retryAfterSecs }));
        else call.resolve(m.ok);
      });
      worker.on('error', (e) => reject(e));
      worker.on('exit', (code) => {
        markDead(sab);
        stop();
        port1.close();
        this.#slots = this.#slots.filter((s) => s !== slot);
        for (const [id, call] of this.#calls) {
          if (call.slot !== slot) continue;
          this.#calls.delete(id);
          call.reject(new TwofoldError('internal', `the engine worker exited (${code})`));
        }
        if (!this.#closed && this.#slots.length > 0) void this.#spawn().catch(() => {}); // keep the pool's size
      });
    });
  }

  #call(method, ctx, req) {
    if (this.#closed || this.#slots.length === 0) return Promise.reject(new TwofoldError('internal', 'the pool is closed'));
    let slot = this.#slots[0];
    for (const s of this.#slots) if (s.inflight < slot.inflight) slot = s;
    const id = this.#nextId++;
    slot.inflight += 1;
    return new Promise((resolve, reject) => {
      this.#calls.set(id, { resolve, reject, slot });
      slot.worker.postMessage({ id, method, ctx, req });
    });
  }

  /** Stops the workers; calls in flight fail. */
  async close() {
    this.#closed = true;
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }

  static {
    for (const { js } of schema.methods) {
      Object.defineProperty(this.prototype, js, {
        value: function (ctx, req) { return this.#call(js, ctx, req); },
        writable: true,
        configurable: true,
      });
    }
  }
}
