// The thread behind a WorkerStorage: opens the adapter module it was given and serves it over
// the bridge on its event loop, while the engine's thread blocks in Atomics.wait.

import { writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { markDead, serve } from './bridge.js';

const { sab, module, options } = workerData;

function die(error) {
  markDead(sab); // wake the blocked caller now rather than at its timeout
  // Written synchronously: a worker's process.stderr is relayed by its (blocked) parent thread.
  try { writeSync(2, `twofold storage worker: ${error?.stack ?? error}\n`); } catch {}
  process.exit(1);
}
process.on('uncaughtException', die);
process.on('unhandledRejection', die);

const ready = import(module).then(({ default: open }) => open(options));
serve(sab, parentPort, ready);
