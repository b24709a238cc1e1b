// The WASI 0.2 imports the twofold component uses (clocks, randomness, an empty environment,
// stdio), implemented directly. @bytecodealliance/preview2-shim would do too, but it starts an
// I/O worker thread in every thread that imports it; the component reads no files and no stdin.
//
// `wallClock.fixedMs` lets the conformance driver set the time the engine sees.

import { writeSync } from 'node:fs';
import { getRandomValues, randomFillSync } from 'node:crypto';

/** The engine's time: the system clock, or `fixedMs` (milliseconds since the epoch) when set. */
export const wallClock = { fixedMs: null };

class IoError { toDebugString() { return 'io error'; } }
class Pollable { ready() { return true; } block() {} }
class InputStream {
  read() { throw { tag: 'closed' }; }
  blockingRead() { throw { tag: 'closed' }; }
  subscribe() { return new Pollable(); }
}
class OutputStream {
  #fd;
  constructor(fd) { this.#fd = fd; }
  checkWrite() { return 1n << 20n; }
  write(bytes) { writeSync(this.#fd, bytes); }
  blockingWriteAndFlush(bytes) { writeSync(this.#fd, bytes); }
  flush() {}
  blockingFlush() {}
  subscribe() { return new Pollable(); }
}
class TerminalInput {}
class TerminalOutput {}

// Rust's getrandom reaches WASI 0.2 through get-random-u64: serve it from a refilled batch.
const batch = new BigUint64Array(64);
let left = 0;
function getRandomU64() {
  if (left === 0) { getRandomValues(batch); left = batch.length; }
  return batch[--left];
}

export const wasiImports = {
  'wasi:cli/environment': { getEnvironment: () => [], getArguments: () => [], initialCwd: () => undefined },
  'wasi:cli/exit': { exit: (status) => { throw new Error(`the component called exit(${JSON.stringify(status)})`); } },
  'wasi:cli/stdin': { getStdin: () => new InputStream() },
  'wasi:cli/stdout': { getStdout: () => new OutputStream(1) },
  'wasi:cli/stderr': { getStderr: () => new OutputStream(2) },
  'wasi:cli/terminal-input': { TerminalInput },
  'wasi:cli/terminal-output': { TerminalOutput },
  'wasi:cli/terminal-stdin': { getTerminalStdin: () => undefined },
  'wasi:cli/terminal-stdout': { getTerminalStdout: () => undefined },
  'wasi:cli/terminal-stderr': { getTerminalStderr: () => undefined },
  'wasi:clocks/monotonic-clock': { now: () => process.hrtime.bigint(), resolution: () => 1n },
  'wasi:clocks/wall-clock': {
    now: () => {
      const ms = wallClock.fixedMs ?? Date.now();
      return { seconds: BigInt(Math.floor(ms / 1000)), nanoseconds: (ms % 1000) * 1_000_000 };
    },
    resolution: () => ({ seconds: 0n, nanoseconds: 1_000_000 }),
  },
  'wasi:io/error': { Error: IoError },
  'wasi:io/poll': { Pollable, poll: (list) => new Uint32Array(list.map((_, i) => i)) },
  'wasi:io/streams': { InputStream, OutputStream },
  'wasi:random/insecure-seed': { insecureSeed: () => [getRandomU64(), getRandomU64()] },
  'wasi:random/random': { getRandomU64, getRandomBytes: (n) => randomFillSync(new Uint8Array(Number(n))) },
};
