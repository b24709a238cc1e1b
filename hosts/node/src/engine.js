// `Engine`: the twofold component (transpiled by jco) behind synchronous methods, one per
// operation of the WIT, taking and giving plain values (convert.js).
//
// What this layer absorbs, measured on jco 1.35 / Node 20:
// - instantiating the generated code costs 50-90 ms, a new engine resource on a live instance
//   about 1 ms: so one instance per thread serves every Engine of that thread, and the storage
//   imports dispatch to the storage of the Engine whose call is running (calls cannot nest);
// - the generated JS reads the unversioned import key and destructures each import object:
//   plain closures under 'twofold:engine/storage';
// - an exception thrown inside an import unwinds the guest without restoring its stack pointer
//   (about 1.4 KB leaked per throw; the instance traps a few hundred throws later): the storage
//   imports never throw, every adapter error becomes `failed` (or `conflict`);
// - a trap leaves the instance unusable: it is dropped and the next call makes a new one.

import { readFileSync } from 'node:fs';
import schema from '../gen/schema.js';
import { instantiate } from '../gen/jco/twofold.js';
import { lift, lower, ShapeError } from './convert.js';
import { StorageConflict, TwofoldError } from './errors.js';
import { wasiImports } from './wasi.js';

const modules = new Map();
function coreModule(name) {
  let m = modules.get(name);
  if (m === undefined) {
    m = new WebAssembly.Module(readFileSync(new URL(`../gen/jco/${name}`, import.meta.url)));
    modules.set(name, m);
  }
  return m;
}

/** Input that does not fit its WIT type, as the engine's own `invalid_input`. */
function checked(type, value, path) {
  try {
    return lower(type, value, path);
  } catch (e) {
    if (e instanceof ShapeError) throw new TwofoldError('invalid_input', e.message);
    throw e;
  }
}

// ---- the storage imports ------------------------------------------------------------------

let active = null; // { storage, errors: [] } of the call that is running, or null
const isThenable = (v) => typeof v?.then === 'function';
const OK_UNIT = { tag: 'ok', val: undefined };
const CONFLICT = { tag: 'err', val: { tag: 'conflict' } };

/** Runs one adapter call and answers jco's result shape; never throws into the guest. */
function answer(what, run, resultType) {
  try {
    const value = run(active.storage);
    if (isThenable(value)) {
      value.catch(() => {}); // its outcome no longer matters
      throw new TypeError(`storage.${what} returned a Promise; an Engine needs a synchronous adapter (MemoryStorage, PgStorage, WorkerStorage), or use EnginePool`);
    }
    return resultType ? { tag: 'ok', val: lower(resultType, value, `storage.${what}()`) } : OK_UNIT;
  } catch (e) {
    if (e instanceof StorageConflict && what === 'commit') return CONFLICT;
    active.errors.push(e);
    const message = e instanceof Error ? e.message : String(e);
    return { tag: 'err', val: { tag: 'failed', val: `storage.${what}: ${message || 'failed'}` } };
  }
}

const storageImports = {
  get: (key) => answer('get', (s) => s.get(key), schema.storage.get.result[1]),
  scan: (prefix, after, limit) => answer('scan', (s) => s.scan(prefix, after, limit), schema.storage.scan.result[1]),
  commit: (writes) => answer('commit', (s) => s.commit(lift(['list', 'write'], writes))),
};

// ---- one instance per thread --------------------------------------------------------------

let instance = null; // { root, generation }
let generation = 0;

function liveInstance() {
  if (instance === null) {
    generation += 1;
    const root = instantiate(coreModule, { ...wasiImports, 'twofold:engine/storage': storageImports });
    instance = { root, generation };
  }
  return instance;
}

/** Component instances this thread has made: 1, plus one after every trap. */
export function instancesMade() {
  return generation;
}

/** jco's ComponentError (an `engine-error` payload) as a TwofoldError; anything else is internal. */
function toTwofoldError(e, storageErrors) {
  if (e?.payload?.code !== undefined) {
    const { code, message, retryAfterSecs } = lift(schema.error, e.payload);
    const cause = code === 'storage' && storageErrors.length > 0 ? storageErrors.at(-1) : undefined;
    return new TwofoldError(code, message, { retryAfterSecs, cause });
  }
  return new TwofoldError('internal', `the engine failed: ${e?.message ?? e}`, { cause: e });
}

export class Engine {
  #config;
  #storage;
  #raw = null;
  #generation = 0;

  /**
   * @param config the engine's configuration (the WIT `config`)
   * @param storage a synchronous storage adapter: get, scan, commit
   */
  constructor(config, storage) {
    for (const m of ['get', 'scan', 'commit']) {
      if (typeof storage?.[m] !== 'function') throw new TypeError(`storage.${m} must be a function`);
    }
    this.#config = checked(schema.config, config, 'config');
    this.#storage = storage;
    this.#open();
  }

  #open() {
    const { root, generation: g } = liveInstance();
    try {
      this.#raw = new root.engine.Engine(this.#config);
      this.#generation = g;
    } catch (e) {
      if (e?.payload === undefined) instance = null;
      throw toTwofoldError(e, []);
    }
  }

  #call(method, ctx, req) {
    if (this.#storage === null) throw new TwofoldError('internal', 'the engine was disposed');
    if (active !== null) throw new TwofoldError('internal', 'engine calls cannot nest (was an engine called from a storage adapter?)');
    const witCtx = checked('context', ctx, 'ctx');
    const witReq = checked(method.request, req, 'req');
    if (instance === null || this.#generation !== instance.generation) this.#open();
    active = { storage: this.#storage, errors: [] };
    const { errors } = active;
    let out;
    try {
      out = this.#raw[method.js](witCtx, witReq);
    } catch (e) {
      // Not an engine-error: a trap, or an exception that unwound the guest. Either way the
      // instance cannot be trusted again; every Engine of this thread reopens on a new one.
      if (e?.payload === undefined) instance = null;
      throw toTwofoldError(e, errors);
    } finally {
      active = null;
    }
    try {
      return lift(method.answer, out);
    } catch (e) {
      throw new TwofoldError('internal', e.message, { cause: e });
    }
  }

  /** Frees the engine's resource now (garbage collection would, later). */
  dispose() {
    if (this.#raw !== null && this.#generation === instance?.generation) this.#raw[Symbol.dispose]?.();
    this.#raw = null;
    this.#storage = null;
  }

  [Symbol.dispose]() {
    this.dispose();
  }

  static {
    for (const method of schema.methods) {
      Object.defineProperty(this.prototype, method.js, {
        value: function (ctx, req) { return this.#call(method, ctx, req); },
        writable: true,
        configurable: true,
      });
    }
  }
}
