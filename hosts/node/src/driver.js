// The conformance driver (tests/conformance/PROTOCOL.md): JSON lines on stdin and stdout, one
// answer per request, in order. The JSON form is serde's form of the proto types; it differs
// from the package's plain values only by what gen/schema.js records (snake_case members,
// JSON-text members embedded as JSON, members serde defaults, `null` for the one option serde
// writes out), so the conversion below is generic.

import { writeSync } from 'node:fs';
import schema from '../gen/schema.js';
import { ShapeError } from './convert.js';
import { Engine } from './engine.js';
import { TwofoldError } from './errors.js';
import { MemoryStorage } from './memory.js';
import { wallClock } from './wasi.js';

const RESET_CLOCK_MS = 1_767_225_600_000;
const MAX_ARGS_BYTES = 64 * 1024;
const DEFAULT_CONFIG = {
  rp_id: 'localhost',
  rp_name: 'twofold',
  origins: ['http://localhost:8080'],
  audit_keys: [{ id: 'test', secret: '8f1d5c0a3b7e9f2461d8c7b5a3e9f0c2d4b6a8e0f2c4d6b8a0e2f4c6d8b0a2e4' }],
};

const { types } = schema;
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const invalid = (message) => new TwofoldError('invalid_input', message);

/** A JSON value to the package's plain value: member names, JSON text. Types are checked later by the Engine. */
function fromJson(type, v, path) {
  if (Array.isArray(type)) {
    const [kind, of] = type;
    if (kind === 'option') return v === null || v === undefined ? undefined : fromJson(of, v, path);
    return Array.isArray(v) ? v.map((x, i) => fromJson(of, x, `${path}[${i}]`)) : v;
  }
  const t = types[type];
  if (t?.kind === 'record' && isObject(v)) return recordFromJson(t, v, path, null);
  if (t?.kind === 'variant' && t.tag && isObject(v)) {
    const c = t.cases.find((x) => x.name.replaceAll('-', '_') === v[t.tag]);
    return c ? { [t.tag]: v[t.tag], ...recordFromJson(types[c.type], v, path, t.tag) } : v;
  }
  return v;
}

function recordFromJson(t, v, path, tagKey) {
  const out = {};
  for (const [key, x] of Object.entries(v)) {
    if (key === tagKey) continue;
    const f = t.fields.find((field) => field.json === key);
    if (!f) throw new ShapeError(`${path}.${key}`, `left out: ${t.name} has no such member`);
    out[f.js] = f.jsonText && x !== null && typeof x !== 'string' ? JSON.stringify(x) : fromJson(f.type, x, `${path}.${key}`);
  }
  return out;
}

/** A plain value to JSON text, as serde writes its proto type. */
function toJson(type, v) {
  if (Array.isArray(type)) {
    const [kind, of] = type;
    if (kind === 'option') return v === undefined ? 'null' : toJson(of, v);
    return `[${v.map((x) => toJson(of, x)).join(',')}]`;
  }
  const t = types[type];
  if (t?.kind === 'record') return recordToJson(t, v, []);
  if (t?.kind === 'variant' && t.tag) {
    const c = t.cases.find((x) => x.name.replaceAll('-', '_') === v[t.tag]);
    return recordToJson(types[c.type], v, [`${JSON.stringify(t.tag)}:${JSON.stringify(v[t.tag])}`]);
  }
  return JSON.stringify(v); // primitives, enums, untagged variants
}

function recordToJson(t, v, members) {
  for (const f of t.fields) {
    const x = v[f.js];
    if (x === undefined) {
      if (f.nullWhenNone) members.push(`${JSON.stringify(f.json)}:null`);
      continue;
    }
    let text = toJson(f.type, x);
    if (f.jsonText) {
      JSON.parse(x); // the engine's JSON text, embedded as it is: it must be JSON
      text = x;
    }
    members.push(`${JSON.stringify(f.json)}:${text}`);
  }
  return `{${members.join(',')}}`;
}

/** Test-only arguments: exactly these members, each a non-negative integer. */
function integers(args, names) {
  const keys = Object.keys(args);
  for (const k of keys) if (!names.includes(k)) throw invalid(`arguments: unknown member ${k}`);
  return names.map((n) => {
    const x = args[n];
    if (!Number.isInteger(x) || x < 0) throw invalid(`arguments: ${n} must be a non-negative integer`);
    return x;
  });
}

export class Driver {
  #storage;
  #engine;
  #methods = new Map(schema.methods.map((m) => [m.json, m]));

  /** @param storage a synchronous storage adapter with `clear()` (MemoryStorage, PgStorage). */
  constructor(storage = new MemoryStorage()) {
    this.#storage = storage;
    wallClock.fixedMs = RESET_CLOCK_MS;
    this.#engine = this.#newEngine(DEFAULT_CONFIG);
  }

  #newEngine(json) {
    const config = fromJson(schema.config, json, 'config');
    return new Engine(config, this.#storage);
  }

  /** The answer line for one request line (bytes, without the newline). */
  answer(line) {
    let id = null;
    try {
      let request;
      try {
        request = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(line));
      } catch {
        throw invalid('a request is one JSON object on one line, in UTF-8');
      }
      if (!isObject(request) || typeof request.id !== 'number') throw invalid('a request needs a numeric id');
      id = request.id;
      const { op, args = {}, context } = request;
      if (typeof op !== 'string') throw invalid('a request needs a string op');
      if (!isObject(args)) throw invalid('args must be a JSON object');
      if (context !== undefined && context !== null && !isObject(context)) throw invalid('context must be a JSON object');
      return `{"id":${JSON.stringify(id)},"ok":${this.#dispatch(op, args, context ?? {})}}`;
    } catch (e) {
      const error = e instanceof TwofoldError ? e
        : e instanceof ShapeError ? invalid(e.message)
          : new TwofoldError('internal', `the driver failed: ${e?.message ?? e}`);
      return `{"id":${JSON.stringify(id)},"error":${JSON.stringify(error)}}`;
    }
  }

  #dispatch(op, args, context) {
    switch (op) {
      case 'reset': {
        integers(args, []);
        this.#storage.clear();
        wallClock.fixedMs = RESET_CLOCK_MS;
        this.#engine.dispose();
        this.#engine = this.#newEngine(DEFAULT_CONFIG);
        return '{}';
      }
      case 'configure': {
        const engine = this.#newEngine(args);
        this.#engine.dispose();
        this.#engine = engine;
        return '{}';
      }
      case 'set_clock': {
        [wallClock.fixedMs] = integers(args, ['now_ms']);
        return '{}';
      }
      case 'advance_clock': {
        const [ms] = integers(args, ['ms']);
        wallClock.fixedMs += ms;
        return '{}';
      }
      case 'seed': {
        integers(args, ['seed']);
        return '{"seeded":false}'; // the component's randomness stays the OS's
      }
    }
    const method = this.#methods.get(op);
    if (!method) throw invalid(`unknown op ${JSON.stringify(op)}`);
    if (Buffer.byteLength(JSON.stringify(args)) > MAX_ARGS_BYTES) throw invalid('arguments are larger than 64 KiB');
    const ctx = fromJson('context', context, 'context');
    const req = fromJson(method.request, args, 'args');
    return toJson(method.answer, this.#engine[method.js](ctx, req));
  }
}

/** Serves the protocol on stdin/stdout until stdin ends. */
export function serve(driver) {
  let pending = Buffer.alloc(0);
  process.stdin.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    let nl;
    while ((nl = pending.indexOf(10)) >= 0) {
      let line = pending.subarray(0, nl);
      pending = pending.subarray(nl + 1);
      if (line.at(-1) === 13) line = line.subarray(0, -1);
      if (line.length > 0) writeSync(1, `${driver.answer(line)}\n`);
    }
  });
  return new Promise((resolve) => process.stdin.on('end', resolve));
}
