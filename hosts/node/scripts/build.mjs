// `npm run build`: makes gen/ from the repository.
//   gen/jco/        the WASI component transpiled by jco (--instantiation sync)
//   gen/schema.js   the API's shape from wit/*.wit and proto's serde facts, for the converters
//   gen/api.d.ts    TypeScript declarations of the same, with the WIT doc comments
// The component comes from TWOFOLD_COMPONENT, or the workspace's release build
// (`wasm-component/build.sh`).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readOps, readProto, readWit } from './wit.mjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const repo = here('../../../');
const targetDir = process.env.CARGO_TARGET_DIR ?? `${repo}target`;
const component = process.env.TWOFOLD_COMPONENT ?? `${targetDir}/wasm32-wasip2/release/twofold_component.wasm`;

const camel = (kebab) => kebab.replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());
const pascal = (kebab) => camel(`-${kebab}`);
const snake = (kebab) => kebab.replaceAll('-', '_');

const wit = readWit(`${repo}wit`);
const proto = readProto(`${repo}proto/src`);
const ops = readOps(`${repo}proto/src/ops.rs`);
const { types: shared } = wit.interfaces.types;
const storage = wit.interfaces.storage;
const engine = wit.interfaces.engine.types.engine;
const allTypes = { ...shared, ...storage.types };

// ---- the runtime schema --------------------------------------------------------------------

/** Checks a WIT record against its proto struct and returns the serde facts of its fields. */
function factsOf(record) {
  const p = proto[record.name];
  if (!p) throw new Error(`WIT record ${record.name} has no proto struct`);
  const names = Object.keys(p.fields);
  const witNames = record.fields.map((f) => f.name);
  if (names.join() !== witNames.join()) {
    throw new Error(`WIT record ${record.name} (${witNames}) and its proto struct (${names}) differ`);
  }
  return p.fields;
}

const schemaTypes = {};
for (const t of Object.values(allTypes)) {
  if (t.kind === 'record') {
    const facts = factsOf(t);
    schemaTypes[t.name] = {
      kind: 'record',
      name: pascal(t.name),
      fields: t.fields.map((f) => ({
        js: camel(f.name),
        json: snake(f.name),
        type: f.type,
        // May be left out of a request: an option, or a member serde defaults.
        optional: (Array.isArray(f.type) && f.type[0] === 'option') || facts[f.name].default,
        jsonText: facts[f.name].jsonText,
        nullWhenNone: !facts[f.name].skipNone,
      })),
    };
  } else if (t.kind === 'enum') {
    schemaTypes[t.name] = { kind: 'enum', name: pascal(t.name), cases: t.cases.map((c) => c.name) };
  } else if (t.kind === 'variant') {
    schemaTypes[t.name] = {
      kind: 'variant',
      name: pascal(t.name),
      // serde's internal tag (`status` for sign-in-outcome): the case's record, flattened.
      tag: proto[t.name]?.tag ?? null,
      cases: t.cases.map((c) => ({ name: c.name, type: c.type })),
    };
  }
}

const methods = engine.methods.map((m) => {
  const op = ops.find((o) => o.wit === m.name);
  if (!op) throw new Error(`WIT method ${m.name} is not in proto's operation table`);
  const [ctx, req] = m.params;
  const [, ok, err] = m.result;
  if (ctx.type !== 'context' || req.type !== op.request || ok !== op.answer || err !== 'engine-error') {
    throw new Error(`WIT method ${m.name} does not match proto's operation ${op.json}`);
  }
  return { wit: m.name, js: camel(m.name), json: op.json, request: req.type, answer: ok };
});
if (methods.length !== ops.length) throw new Error('proto has operations the WIT engine lacks');

const schema = {
  package: wit.name,
  types: schemaTypes,
  config: engine.constructor.params[0].type,
  error: 'engine-error',
  methods,
  storage: Object.fromEntries(storage.funcs.map((f) => [f.name, { params: f.params, result: f.result }])),
};

// ---- TypeScript declarations ---------------------------------------------------------------

const jsdoc = (doc, indent = '') => {
  if (!doc) return '';
  return `${indent}/**\n${doc.split('\n').map((l) => `${indent} *${l ? ` ${l}` : ''}`).join('\n')}\n${indent} */\n`;
};

// Types a caller hands in (they accept null for none) versus types the package hands out.
const inputTypes = new Set();
function reach(type) {
  if (Array.isArray(type)) { type.slice(1).forEach((t) => t && reach(t)); return; }
  const t = allTypes[type];
  if (!t || inputTypes.has(type)) return;
  inputTypes.add(type);
  if (t.kind === 'record') t.fields.forEach((f) => reach(f.type));
  if (t.kind === 'variant') t.cases.forEach((c) => c.type && reach(c.type));
}
reach(schema.config);
engine.methods.forEach((m) => m.params.forEach((p) => reach(p.type)));
storage.funcs.forEach((f) => reach(f.result[1])); // what an adapter returns

function ts(type, input) {
  if (Array.isArray(type)) {
    const [kind, of] = type;
    if (kind === 'list') return `${ts(of, input)}[]`;
    if (kind === 'option') return `${ts(of, input)}${input ? ' | null' : ''} | undefined`;
    throw new Error(`no TypeScript type for ${kind}`);
  }
  if (type === 'string') return 'string';
  if (type === 'bool') return 'boolean';
  if (/^[us](8|16|32|64)$/.test(type)) return 'number';
  return pascal(type);
}

let dts = `// Generated by scripts/build.mjs from ${wit.name} (wit/*.wit) and proto's serde facts.
// Do not edit: run \`npm run build\`.
//
// Names are camelCase (as jco and JavaScript write them); enum values are the snake_case codes
// of the SPEC and the JSON protocol; u32/u64 are numbers (u64 values stay below 2^53); an
// absent option is an absent property.

`;
for (const t of Object.values(allTypes)) {
  const input = inputTypes.has(t.name);
  if (t.kind === 'enum') {
    const cases = t.cases.map((c) => `\`${snake(c.name)}\`: ${c.doc.replaceAll('\n', ' ')}`).join('\n- ');
    dts += jsdoc(`${t.doc}\n\n- ${cases}`);
    dts += `export type ${pascal(t.name)} = ${t.cases.map((c) => `'${snake(c.name)}'`).join(' | ')};\n\n`;
  } else if (t.kind === 'record') {
    dts += jsdoc(t.doc);
    dts += `export interface ${pascal(t.name)} {\n`;
    const facts = factsOf(t);
    for (const f of t.fields) {
      const isOption = Array.isArray(f.type) && f.type[0] === 'option';
      const optional = isOption || (input && facts[f.name].default);
      const type = isOption ? ts(f.type[1], input) + (input ? ' | null' : '') : ts(f.type, input);
      dts += jsdoc(f.doc, '  ');
      dts += `  ${camel(f.name)}${optional ? '?' : ''}: ${type};\n`;
    }
    dts += '}\n\n';
  } else if (t.kind === 'variant') {
    const tag = proto[t.name]?.tag;
    dts += jsdoc(t.doc);
    const cases = t.cases.map((c) => (tag
      ? `({ ${tag}: '${snake(c.name)}' } & ${ts(c.type, input)})`
      : `{ tag: '${snake(c.name)}'${c.type ? `; val: ${ts(c.type, input)}` : ''} }`));
    dts += `export type ${pascal(t.name)} =\n  | ${cases.join('\n  | ')};\n\n`;
  }
}

const params = (m) => m.params.map((p) => `${p.name}: ${ts(p.type, true)}`).join(', ');
const opsOf = (wrap) => engine.methods.map((m) => `${jsdoc(m.doc, '  ')}  ${camel(m.name)}(${params(m)}): ${wrap(ts(m.result[1], false))};\n`).join('');
dts += `/** The engine's operations, called synchronously (\`Engine\`). */\nexport interface Operations {\n${opsOf((t) => t)}}\n\n`;
dts += `/** The same operations, answered by worker threads (\`EnginePool\`). */\nexport interface AsyncOperations {\n${opsOf((t) => `Promise<${t}>`)}}\n\n`;

const storageMethods = (wrap) => storage.funcs.map((f) => {
  const args = f.params.map((p) => `${p.name}: ${ts(p.type, false)}`).join(', ');
  const ok = f.result[1] ? ts(f.result[1], true) : 'void';
  return `${jsdoc(f.doc, '  ')}  ${f.name}(${args}): ${wrap(ok)};\n`;
}).join('');
dts += jsdoc(`${storage.doc}\n\nA synchronous adapter, for \`Engine\`: return the value, throw \`StorageConflict\` when a\ncommit's expectation fails, throw any other error for a failure (its message reaches the\ncaller; it must not contain secrets).`);
dts += `export interface Storage {\n${storageMethods((t) => t)}}\n\n`;
dts += '/** The same contract with Promises, for `EnginePool`, `WorkerStorage` and `PgAdapter`. */\n';
dts += `export interface AsyncStorage {\n${storageMethods((t) => `${t} | Promise<${t}>`)}}\n`;

// ---- write everything ----------------------------------------------------------------------

if (!existsSync(component)) {
  console.error(`build: ${component} not found; build it with wasm-component/build.sh (or set TWOFOLD_COMPONENT)`);
  process.exit(1);
}
const gen = here('../gen/');
rmSync(gen, { recursive: true, force: true });
mkdirSync(gen);
writeFileSync(`${gen}schema.js`, `// Generated by scripts/build.mjs from ${wit.name}; do not edit.\nexport default ${JSON.stringify(schema, null, 1)};\n`);
writeFileSync(`${gen}api.d.ts`, dts);
const jco = here('../node_modules/.bin/jco');
execFileSync(jco, ['transpile', component, '-o', `${gen}jco`, '--name', 'twofold', '--instantiation', 'sync', '-q'], { stdio: 'inherit' });
// jco's own declarations (BigInt, kebab-case enums) describe its bindings, not this package: drop them.
rmSync(`${gen}jco/interfaces`, { recursive: true, force: true });
rmSync(`${gen}jco/twofold.d.ts`, { force: true });
console.log(`build: gen/ from ${component} (${wit.name}, ${methods.length} operations)`);
