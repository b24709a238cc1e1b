// An async adapter with a planted fault, opened in a WorkerStorage's thread by the bridge
// tests. `fault` applies to every `get`: 'hang' never answers, 'crash' kills the thread,
// 'boom' rejects; `refuse` fails the opening.
import { MemoryStorage } from '../../src/memory.js';

export default async function open({ fault = null, refuse = false } = {}) {
  if (refuse) throw new Error('cannot open: refused on purpose');
  const memory = new MemoryStorage();
  return {
    async get(key) {
      if (fault === 'hang') return new Promise(() => {});
      if (fault === 'crash') {
        setImmediate(() => { throw new Error('the adapter crashed'); });
        return new Promise(() => {});
      }
      if (fault === 'boom') throw new Error('boom: the disk is on fire');
      return memory.get(key);
    },
    async scan(prefix, after, limit) { return memory.scan(prefix, after, limit); },
    async commit(writes) { memory.commit(writes); },
    async clear() { memory.clear(); },
  };
}
