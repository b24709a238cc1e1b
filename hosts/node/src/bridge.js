// Synchronous calls into an asynchronous storage adapter on another thread.
//
// The engine's storage imports are synchronous; Node's database clients are not, and Node 20
// cannot suspend WebAssembly (no JSPI). So the thread that runs the engine writes its request
// into a SharedArrayBuffer, rings a doorbell (postMessage) and blocks in Atomics.wait with a
// deadline, while another thread's event loop runs the adapter and answers with
// Atomics.store + Atomics.notify. (The doorbell is a message because Atomics.waitAsync on the
// answering side is not woken while the caller is blocked in Atomics.wait, on Node 20.)
//
// Buffer: a 32-byte Int32 header, then the data area holding the request or the answer as
// JSON text, grown (up to maxBytes) by whichever side writes a longer one.

import { StorageConflict } from './errors.js';

const STATE = 0, SEQ = 1, STATUS = 2, LEN = 3, READY = 4;
const IDLE = 0, REQUEST = 1, TAKEN = 2, ANSWER = 3, DEAD = 4;
const OK = 0, CONFLICT = 1, FAILED = 2;
const STARTING = 0, SERVING = 1, START_FAILED = 2;
const HEADER = 32;
const OPS = new Set(['get', 'scan', 'commit', 'clear']);

export function createChannel(maxBytes = 64 << 20) {
  return new SharedArrayBuffer(HEADER + 64 * 1024, { maxByteLength: HEADER + maxBytes });
}

function writeText(sab, text) {
  const header = new Int32Array(sab, 0, 8);
  const need = HEADER + text.length * 3;
  if (need > sab.byteLength) sab.grow(Math.min(Math.max(need, sab.byteLength * 2), sab.maxByteLength));
  const { read, written } = new TextEncoder().encodeInto(text, new Uint8Array(sab, HEADER));
  if (read < text.length) throw new RangeError(`a message over ${sab.maxByteLength - HEADER} bytes`);
  header[LEN] = written;
}

// TextDecoder refuses views of shared memory: copy first.
const readText = (sab) => new TextDecoder().decode(new Uint8Array(sab, HEADER, new Int32Array(sab, 0, 8)[LEN]).slice());

/** The bridge is unusable: the other side timed out, died or could not start. */
export class BridgeBroken extends Error {
  constructor(message) {
    super(message);
    this.name = 'BridgeBroken';
  }
}

/** The blocking side. `ring()` wakes the answering thread. */
export class BridgeClient {
  #sab;
  #header;
  #ring;
  #seq = 0;

  constructor(sab, ring, { timeoutMs = 10_000, startTimeoutMs = 15_000 } = {}) {
    this.#sab = sab;
    this.#header = new Int32Array(sab, 0, 8);
    this.#ring = ring;
    this.timeoutMs = timeoutMs;
    this.startTimeoutMs = startTimeoutMs;
  }

  /** Blocks until the other side serves; throws BridgeBroken if it failed to start or took too long. */
  waitReady() {
    const h = this.#header;
    const deadline = performance.now() + this.startTimeoutMs;
    while (Atomics.load(h, READY) === STARTING && Atomics.load(h, STATE) !== DEAD) {
      const left = deadline - performance.now();
      if (left <= 0) throw new BridgeBroken(`storage did not start within ${this.startTimeoutMs} ms`);
      Atomics.wait(h, READY, STARTING, left);
    }
    if (Atomics.load(h, READY) === START_FAILED) throw new BridgeBroken(readText(this.#sab));
    if (Atomics.load(h, STATE) === DEAD) throw new BridgeBroken('the storage thread died while starting');
  }

  /** Whether the answering side is known to be gone. */
  get dead() {
    return Atomics.load(this.#header, STATE) === DEAD;
  }

  /** One round trip: the adapter's answer, or StorageConflict, Error (the adapter's failure), BridgeBroken. */
  call(op, ...args) {
    const h = this.#header;
    if (this.dead) throw new BridgeBroken('the storage thread died');
    if (Atomics.load(h, READY) !== SERVING) this.waitReady();
    writeText(this.#sab, JSON.stringify([op, ...args]));
    const seq = (this.#seq = (this.#seq + 1) | 0);
    h[SEQ] = seq;
    Atomics.store(h, STATE, REQUEST);
    this.#ring();
    const deadline = performance.now() + this.timeoutMs;
    let state;
    while ((state = Atomics.load(h, STATE)) === REQUEST || state === TAKEN) {
      const left = deadline - performance.now();
      if (left <= 0) throw new BridgeBroken(`storage did not answer within ${this.timeoutMs} ms`);
      Atomics.wait(h, STATE, state, left);
    }
    if (state === DEAD) throw new BridgeBroken('the storage thread died');
    if (state !== ANSWER || h[SEQ] !== seq) throw new BridgeBroken('the storage bridge is out of step');
    Atomics.store(h, STATE, IDLE);
    const text = readText(this.#sab);
    if (h[STATUS] === OK) return JSON.parse(text) ?? undefined;
    if (h[STATUS] === CONFLICT) throw new StorageConflict();
    throw new Error(text);
  }
}

/** Wakes a blocked caller for good: the answering side is gone. */
export function markDead(sab) {
  const header = new Int32Array(sab, 0, 8);
  Atomics.store(header, STATE, DEAD);
  Atomics.notify(header, STATE);
  Atomics.notify(header, READY);
}

/**
 * The answering side: serves requests rung on `port` with `adapter` (sync or async get, scan,
 * commit, clear). `ready` is a promise of the adapter; if it rejects, the caller is told why.
 * Returns a function that stops serving.
 */
export function serve(sab, port, ready) {
  const header = new Int32Array(sab, 0, 8);
  let adapter = null;

  function answer(seq, status, text) {
    try {
      writeText(sab, text);
    } catch (e) {
      status = FAILED;
      writeText(sab, `the answer does not fit: ${e.message}`);
    }
    header[STATUS] = status;
    header[SEQ] = seq;
    Atomics.store(header, STATE, ANSWER);
    Atomics.notify(header, STATE);
  }

  async function onRing() {
    // Take the request once: a doorbell can be stale, or arrive while starting.
    if (adapter === null || Atomics.compareExchange(header, STATE, REQUEST, TAKEN) !== REQUEST) return;
    const seq = header[SEQ];
    try {
      const [op, ...args] = JSON.parse(readText(sab));
      if (!OPS.has(op) || typeof adapter[op] !== 'function') throw new Error(`the adapter has no ${op}`);
      const result = await adapter[op](...args);
      answer(seq, OK, JSON.stringify(result ?? null));
    } catch (e) {
      if (e?.name === 'StorageConflict') answer(seq, CONFLICT, '');
      else answer(seq, FAILED, (e instanceof Error ? e.message : String(e)) || 'storage failed');
    }
  }

  port.on('message', onRing);
  Promise.resolve(ready).then(
    (a) => {
      adapter = a;
      Atomics.store(header, READY, SERVING);
      Atomics.notify(header, READY);
      void onRing(); // a request may have been rung while starting
    },
    (e) => {
      writeText(sab, e?.message ?? String(e));
      Atomics.store(header, READY, START_FAILED);
      Atomics.notify(header, READY);
    },
  );
  return () => port.off('message', onRing);
}
