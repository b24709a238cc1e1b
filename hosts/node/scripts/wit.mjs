// Reads the repository's WIT package (wit/*.wit) and the serde facts of its JSON form
// (proto/src/*.rs) into one description of the API: every type, field, case, method and doc
// comment. build.mjs turns it into the runtime schema (gen/schema.js) and the TypeScript
// declarations (gen/api.d.ts), so nothing in the package spells the API out by hand.
//
// The parser covers the WIT this project writes (records, variants, enums, resources, funcs,
// option/list/result) and fails loudly on anything else, so a WIT change it does not
// understand stops the build instead of producing a wrong schema.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const PRIMITIVES = new Set(['string', 'bool', 'u8', 'u16', 'u32', 'u64', 's32', 's64']);

function tokenize(text, file) {
  const tokens = [];
  const re = /\s+|\/\/\/[^\n]*|\/\/[^\n]*|(->)|([{}()<>,:;.=@/*_])|(%?[a-z][a-z0-9-]*|[0-9]+(?:\.[0-9]+)*)|(\S)/gy;
  let m;
  while ((m = re.exec(text)) !== null) {
    if (m[0].startsWith('///')) tokens.push({ doc: m[0].slice(3).replace(/^ /, '') });
    else if (m[1] || m[2]) tokens.push({ p: m[1] ?? m[2] });
    else if (m[3]) tokens.push({ id: m[3].replace(/^%/, '') });
    else if (m[4]) throw new Error(`${file}: unexpected character ${JSON.stringify(m[4])}`);
  }
  return tokens;
}

class Parser {
  constructor(tokens, file) { this.t = tokens; this.i = 0; this.file = file; }
  docs() {
    const lines = [];
    while (this.t[this.i]?.doc !== undefined) lines.push(this.t[this.i++].doc);
    return lines.join('\n').trim();
  }
  peek() { return this.t[this.i]; }
  fail(what) { throw new Error(`${this.file}: expected ${what}, found ${JSON.stringify(this.peek())}`); }
  punct(p) { if (this.peek()?.p !== p) this.fail(`'${p}'`); this.i++; }
  maybe(p) { if (this.peek()?.p === p) { this.i++; return true; } return false; }
  ident() { const tok = this.peek(); if (tok?.id === undefined) this.fail('a name'); this.i++; return tok.id; }

  type() {
    const name = this.ident();
    if (name === 'option' || name === 'list') {
      this.punct('<'); const of = this.type(); this.punct('>');
      return [name, of];
    }
    if (name === 'result') {
      if (!this.maybe('<')) return ['result', null, null];
      const ok = this.maybe('_') ? null : this.type();
      let err = null;
      if (this.maybe(',')) err = this.type();
      this.punct('>');
      return ['result', ok, err];
    }
    return name;
  }
  params() {
    const params = [];
    this.punct('(');
    while (!this.maybe(')')) {
      const name = this.ident(); this.punct(':');
      params.push({ name, type: this.type() });
      this.maybe(',');
    }
    return params;
  }
  func() {
    const params = this.params();
    const result = this.maybe('->') ? this.type() : null;
    this.punct(';');
    return { params, result };
  }
  cases(withPayload) {
    const cases = [];
    this.punct('{');
    for (;;) {
      const doc = this.docs();
      if (this.maybe('}')) return cases;
      const name = this.ident();
      let type = null;
      if (withPayload && this.maybe('(')) { type = this.type(); this.punct(')'); }
      cases.push({ name, type, doc });
      this.maybe(',');
    }
  }
  item(iface) {
    const doc = this.docs();
    const kw = this.ident();
    if (kw === 'use') { while (!this.maybe(';')) this.i++; return; }
    if (this.maybe(':')) {
      if (this.ident() !== 'func') this.fail('func');
      iface.funcs.push({ name: kw, ...this.func(), doc });
      return;
    }
    const name = this.ident();
    const add = (def) => { iface.types[name] = { name, doc, ...def }; };
    if (kw === 'record') {
      const fields = [];
      this.punct('{');
      for (;;) {
        const fdoc = this.docs();
        if (this.maybe('}')) break;
        const fname = this.ident(); this.punct(':');
        fields.push({ name: fname, type: this.type(), doc: fdoc });
        this.maybe(',');
      }
      add({ kind: 'record', fields });
    } else if (kw === 'enum') add({ kind: 'enum', cases: this.cases(false) });
    else if (kw === 'variant') add({ kind: 'variant', cases: this.cases(true) });
    else if (kw === 'resource') {
      const resource = { name, doc, kind: 'resource', constructor: null, methods: [] };
      this.punct('{');
      for (;;) {
        const mdoc = this.docs();
        if (this.maybe('}')) break;
        if (this.peek()?.id === 'constructor') {
          this.i++;
          resource.constructor = { ...this.func(), doc: mdoc };
          continue;
        }
        const mname = this.ident(); this.punct(':');
        if (this.ident() !== 'func') this.fail('func');
        resource.methods.push({ name: mname, ...this.func(), doc: mdoc });
      }
      iface.types[name] = resource;
    } else throw new Error(`${this.file}: unsupported WIT item '${kw}'`);
  }
  parseFile(pkg) {
    while (this.i < this.t.length) {
      const doc = this.docs();
      if (this.i >= this.t.length) break;
      const kw = this.ident();
      if (kw === 'package') {
        let text = '';
        while (!this.maybe(';')) { const tok = this.t[this.i++]; text += tok.id ?? tok.p; }
        pkg.name = text;
      } else if (kw === 'interface' || kw === 'world') {
        const name = this.ident();
        const iface = { name, doc, types: {}, funcs: [] };
        this.punct('{');
        if (kw === 'world') { while (!this.maybe('}')) this.i++; pkg.world = { name, doc }; continue; }
        while (!this.maybe('}')) this.item(iface);
        pkg.interfaces[name] = iface;
      } else throw new Error(`${this.file}: unsupported top-level item '${kw}'`);
    }
  }
}

/** The WIT package in `dir`: { name, interfaces: { name: { types, funcs } } }. */
export function readWit(dir) {
  const pkg = { name: null, interfaces: {}, world: null };
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.wit')).sort()) {
    new Parser(tokenize(readFileSync(join(dir, f), 'utf8'), f), f).parseFile(pkg);
  }
  return pkg;
}

// ---- proto: what the JSON form adds to WIT ------------------------------------------------

const kebab = (rust) => rust.replace(/[A-Z]/g, (c, i) => (i ? '-' : '') + c.toLowerCase());

/** The attribute lines right above line `at` (docs, `#[...]`, and their continuations). */
function attributesAbove(lines, at) {
  let i = at - 1;
  while (i >= 0) {
    const s = lines[i].trim();
    if (s.startsWith('///') || s.startsWith('#')) { i--; continue; }
    if (s === '' || /[;{}]$/.test(s) || s.startsWith('wire!') || s.startsWith('pub ')) break;
    i--;
  }
  return lines.slice(i + 1, at).join('\n');
}

const serdeArgs = (attrs) => [...attrs.matchAll(/#\[serde\(([^\]]*)\)\]/g)].map((m) => m[1]).join(',');

/**
 * Serde facts of every proto struct and enum, by WIT name:
 * { record: { default: bool, fields: { field: { default, skipNone, jsonText } } }, enum: { tag } }.
 */
export function readProto(dir) {
  const facts = {};
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.rs'))) {
    const lines = readFileSync(join(dir, f), 'utf8').split('\n');
    lines.forEach((line, at) => {
      const m = /^\s*pub (struct|enum) (\w+)\b/.exec(line);
      if (!m) return;
      const own = serdeArgs(attributesAbove(lines, at));
      const entry = { rust: m[2], default: /(^|[\s,])default\b/.test(own), tag: /tag = "(\w+)"/.exec(own)?.[1] ?? null, fields: {} };
      if (m[1] === 'struct') {
        for (let j = at + 1; j < lines.length && !/^\s*}\)?;?\s*$/.test(lines[j]); j++) {
          const field = /^\s*pub (\w+): /.exec(lines[j]);
          if (!field) continue;
          const a = serdeArgs(attributesAbove(lines, j));
          entry.fields[field[1].replaceAll('_', '-')] = {
            default: entry.default || /(^|[\s,(])default\b/.test(a),
            skipNone: a.includes('skip_serializing_if'),
            jsonText: /json::(optional_)?text/.test(a),
          };
        }
      }
      facts[kebab(m[2])] = entry;
    });
  }
  return facts;
}

/** The operation table (`for_each_op!` in proto/src/ops.rs): [{ json, wit, request, answer }]. */
export function readOps(file) {
  const text = readFileSync(file, 'utf8');
  const ops = [...text.matchAll(/(\w+), (\w+),\s+"(\w+)",\s+"([\w-]+)",\s+\$crate::(\w+) => \$crate::(\w+);/g)]
    .map((m) => ({ json: m[3], wit: m[4], request: kebab(m[5]), answer: kebab(m[6]) }));
  if (ops.length === 0) throw new Error(`${file}: no operation table found`);
  return ops;
}

export { PRIMITIVES };
