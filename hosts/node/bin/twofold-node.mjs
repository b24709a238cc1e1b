#!/usr/bin/env node
// twofold-node --driver [--db postgres://...]: the conformance driver over the Node package
// (tests/conformance/PROTOCOL.md), with storage in memory or in PostgreSQL.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';

const usage = 'usage: twofold-node --driver [--db postgres://user@host:port/database]';
let values;
try {
  ({ values } = parseArgs({ options: { driver: { type: 'boolean' }, db: { type: 'string' }, help: { type: 'boolean' } } }));
} catch (e) {
  console.error(`twofold-node: ${e.message}\n${usage}`);
  process.exit(2);
}
if (values.help || !values.driver) {
  console.error(usage);
  process.exit(values.help ? 0 : 2);
}

if (!existsSync(new URL('../gen/schema.js', import.meta.url))) {
  console.error('twofold-node: the package is not built: run `npm ci && npm run build` in hosts/node');
  process.exit(1);
}
const { Driver, serve } = await import('../src/driver.js');

let storage;
if (values.db) {
  const { PgStorage } = await import('../src/pg.js');
  storage = new PgStorage({ connectionString: values.db });
}
await serve(new Driver(storage));
await storage?.close();
