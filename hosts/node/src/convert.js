// The one converter between the package's plain values and jco's, driven by gen/schema.js
// (which build.mjs derives from the WIT). Plain values: camelCase members, numbers for
// u32/u64, snake_case enum values, an absent property for `none`, and the sign-in outcome
// flattened under its `status`. jco's: the same members, BigInt for u64, kebab-case enum
// values and `{ tag, val }` variants.
//
// `lower` checks everything before jco sees it: jco's own lowering wraps out-of-range numbers
// silently (`-1` becomes 2^32 - 1) and an exception half way through leaks guest memory.

import schema from '../gen/schema.js';

const { types } = schema;
const MAX_U32 = 0xffff_ffff;
const kebab = (s) => s.replaceAll('_', '-');
const snake = (s) => s.replaceAll('-', '_');

/** A value that does not fit its type; `path` names where (never the value: it may be secret). */
export class ShapeError extends Error {
  constructor(path, expected) {
    super(`${path} must be ${expected}`);
    this.name = 'ShapeError';
  }
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The zero value serde gives a defaulted member. */
function empty(type) {
  if (type === 'string') return '';
  if (type === 'bool') return false;
  if (Array.isArray(type) && type[0] === 'list') return [];
  throw new Error(`no default for ${JSON.stringify(type)}`);
}

/** Plain value -> jco value, checked. */
export function lower(type, v, path) {
  if (Array.isArray(type)) {
    const [kind, of] = type;
    if (kind === 'option') return v === null || v === undefined ? undefined : lower(of, v, path);
    if (kind === 'list') {
      if (!Array.isArray(v)) throw new ShapeError(path, 'an array');
      return v.map((x, i) => lower(of, x, `${path}[${i}]`));
    }
    throw new Error(`cannot lower ${kind}`);
  }
  switch (type) {
    case 'string':
      if (typeof v !== 'string' || !v.isWellFormed()) throw new ShapeError(path, 'a string');
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw new ShapeError(path, 'a boolean');
      return v;
    case 'u32':
      if (!Number.isInteger(v) || v < 0 || v > MAX_U32) throw new ShapeError(path, 'an integer from 0 to 2^32 - 1');
      return v;
    case 'u64':
      if (!Number.isSafeInteger(v) || v < 0) throw new ShapeError(path, 'an integer from 0 to 2^53 - 1');
      return BigInt(v);
  }
  const t = types[type];
  switch (t?.kind) {
    case 'enum': {
      if (typeof v !== 'string' || !t.cases.includes(kebab(v)) || v.includes('-')) {
        throw new ShapeError(path, `one of ${t.cases.map((c) => `'${snake(c)}'`).join(', ')}`);
      }
      return kebab(v);
    }
    case 'record': return lowerRecord(t, v, path, null);
    case 'variant': {
      if (!isObject(v)) throw new ShapeError(path, `a ${t.name} object`);
      const tagKey = t.tag ?? 'tag';
      const c = t.cases.find((x) => snake(x.name) === v[tagKey]);
      if (!c) throw new ShapeError(`${path}.${tagKey}`, `one of ${t.cases.map((x) => `'${snake(x.name)}'`).join(', ')}`);
      if (t.tag) return { tag: c.name, val: lowerRecord(types[c.type], v, path, t.tag) };
      return c.type ? { tag: c.name, val: lower(c.type, v.val, `${path}.val`) } : { tag: c.name };
    }
  }
  throw new Error(`unknown WIT type ${JSON.stringify(type)}`);
}

function lowerRecord(t, v, path, tagKey) {
  if (!isObject(v)) throw new ShapeError(path, `a ${t.name} object`);
  const out = {};
  for (const f of t.fields) {
    const x = v[f.js];
    if (x === undefined && !f.optional) throw new ShapeError(`${path}.${f.js}`, `given (${t.name}.${f.js} is required)`);
    out[f.js] = x === undefined && !(Array.isArray(f.type) && f.type[0] === 'option')
      ? empty(f.type)
      : lower(f.type, x, `${path}.${f.js}`);
  }
  for (const k of Object.keys(v)) {
    if (k !== tagKey && !t.fields.some((f) => f.js === k)) throw new ShapeError(`${path}.${k}`, `left out: ${t.name} has no such member`);
  }
  return out;
}

/** jco value -> plain value. Throws RangeError for a u64 above 2^53 (no such value is expected). */
export function lift(type, v) {
  if (Array.isArray(type)) {
    const [kind, of] = type;
    if (kind === 'option') return v === undefined || v === null ? undefined : lift(of, v);
    if (kind === 'list') return v.map((x) => lift(of, x));
    throw new Error(`cannot lift ${kind}`);
  }
  switch (type) {
    case 'string': case 'bool': case 'u32': return v;
    case 'u64':
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`a u64 of ${v} does not fit a JavaScript number`);
      return Number(v);
  }
  const t = types[type];
  switch (t.kind) {
    case 'enum': return snake(v);
    case 'record': return liftRecord(t, v, {});
    case 'variant': {
      const c = t.cases.find((x) => x.name === v.tag);
      if (t.tag) return liftRecord(types[c.type], v.val, { [t.tag]: snake(c.name) });
      return c.type ? { tag: snake(c.name), val: lift(c.type, v.val) } : { tag: snake(c.name) };
    }
  }
  throw new Error(`unknown WIT type ${JSON.stringify(type)}`);
}

function liftRecord(t, v, out) {
  for (const f of t.fields) {
    const x = lift(f.type, v[f.js]);
    if (x !== undefined) out[f.js] = x;
  }
  return out;
}
