// In-memory storage: the storage contract (wit/storage.wit) over a Map, for tests, demos and
// single-process use. Keys sort in UTF-8 byte order, as the contract asks.

import { StorageConflict } from './errors.js';

/** UTF-8 byte order. JavaScript's `<` compares UTF-16 units, which differs above U+FFFF. */
export function compareUtf8(a, b) {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // A surrogate (a code point above U+FFFF) sorts after U+E000-U+FFFF in UTF-8.
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

export class MemoryStorage {
  #rows = new Map(); // key -> { value, version }
  #sorted = null; // the keys in order, rebuilt after the key set changes

  get(key) {
    const row = this.#rows.get(key);
    return row === undefined ? undefined : { ...row };
  }

  scan(prefix, after, limit) {
    this.#sorted ??= [...this.#rows.keys()].sort(compareUtf8);
    const keys = this.#sorted;
    const from = after !== undefined && after !== null && compareUtf8(after, prefix) >= 0 ? after : prefix;
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareUtf8(keys[mid], from) < 0) lo = mid + 1;
      else hi = mid;
    }
    if (keys[lo] === after) lo += 1;
    const out = [];
    for (let i = lo; i < keys.length && out.length < limit && keys[i].startsWith(prefix); i++) {
      out.push({ key: keys[i], value: { ...this.#rows.get(keys[i]) } });
    }
    return out;
  }

  commit(writes) {
    const seen = new Set();
    for (const { key, expect } of writes) {
      if (seen.has(key)) throw new Error('the batch names a key twice');
      seen.add(key);
      const row = this.#rows.get(key);
      const holds = expect.tag === 'absent' ? row === undefined : row?.version === expect.val;
      if (!holds) throw new StorageConflict();
    }
    for (const { key, value, expect } of writes) {
      const known = this.#rows.has(key);
      if (value === undefined) this.#rows.delete(key);
      else this.#rows.set(key, { value, version: expect.tag === 'absent' ? 1 : expect.val + 1 });
      if (known !== this.#rows.has(key)) this.#sorted = null;
    }
  }

  /** Removes every key. */
  clear() {
    this.#rows.clear();
    this.#sorted = null;
  }

  /** How many keys are stored. */
  get size() {
    return this.#rows.size;
  }
}
