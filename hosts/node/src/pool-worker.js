// One worker of an EnginePool: an Engine whose storage calls cross the bridge to the pool's
// thread. It may block in Atomics.wait freely; the application's thread never does.

import { parentPort, workerData } from 'node:worker_threads';
import { BridgeClient } from './bridge.js';
import { Engine } from './engine.js';
import { TwofoldError } from './errors.js';

const { config, sab, ring, timeoutMs } = workerData;
const client = new BridgeClient(sab, () => ring.postMessage(null), { timeoutMs });
const storage = {
  get: (key) => client.call('get', key),
  scan: (prefix, after, limit) => client.call('scan', prefix, after ?? null, limit),
  commit: (writes) => { client.call('commit', writes); },
};

let engine;
try {
  engine = new Engine(config, storage);
} catch (e) {
  parentPort.postMessage({ refused: { code: e.code ?? 'internal', message: e.message } });
  process.exit(1);
}

parentPort.on('message', ({ id, method, ctx, req }) => {
  try {
    parentPort.postMessage({ id, ok: engine[method](ctx, req) });
  } catch (e) {
    const { code, message, retryAfterSecs } = e instanceof TwofoldError ? e : new TwofoldError('internal', String(e?.message ?? e));
    parentPort.postMessage({ id, error: { code, message, retryAfterSecs } });
  }
});
parentPort.postMessage({ ready: true });
