// PostgreSQL, on a throwaway server this file starts: the storage contract for PgAdapter
// (async) and PgStorage (sync, through the bridge), commit races, schema checks, and the
// engine on both sharing one database, as hosts of a mixed fleet do.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Engine, EnginePool, TwofoldError } from 'twofold';
import { PgAdapter, PgStorage } from 'twofold/pg';
import { SoftAuthenticator } from './support/authenticator.js';
import { config, ctx, password } from './support/config.js';
import { contract } from './support/contract.js';
import * as postgres from './support/postgres.js';

const required = process.env.TWOFOLD_REQUIRE_HOSTS === '1';
const skip = postgres.find() === null && !required ? 'PostgreSQL is not installed (tests/setup.sh installs it)' : false;

let server = null;
let databases = 0;
const opened = [];

/** A fresh database on the test server; its URL. */
async function database() {
  const name = `t${++databases}`;
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return server.url.replace(/\/postgres$/, `/${name}`);
}

async function adapter(url) {
  const a = await PgAdapter.open({ connectionString: url ?? await database(), max: 4 });
  opened.push(() => a.end());
  return a;
}

function storage(url) {
  const s = new PgStorage({ connectionString: url });
  opened.push(() => s.close());
  return s;
}

before(async () => { if (!skip) server = await postgres.start(); });
after(async () => {
  for (const close of opened) await close();
  server?.stop();
});

if (!skip) {
  contract('pg adapter', () => adapter());
  contract('pg storage', async () => storage(await database()));
}

test('d1_racing_commits_on_one_key_let_exactly_one_through', { skip }, async () => {
  const url = await database();
  const [a, b] = [await adapter(url), await adapter(url)];
  for (let round = 0; round < 20; round++) {
    const key = `race/${round}`;
    const results = await Promise.allSettled([a, b, a, b].map((s, i) => s.commit([{ key, value: `${i}`, expect: { tag: 'absent' } }])));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    assert.ok(results.filter((r) => r.status === 'rejected').every((r) => r.reason.name === 'StorageConflict'));
  }
});

test('d1_an_absent_key_deleted_claims_the_key_so_crossed_commits_cannot_both_apply', { skip }, async () => {
  // Each batch requires the other's key absent and creates its own: at most one may apply
  // (a bare "is it absent?" read at READ COMMITTED would let both through).
  const url = await database();
  const [a, b] = [await adapter(url), await adapter(url)];
  for (let round = 0; round < 30; round++) {
    const [x, y] = [`skew/${round}/x`, `skew/${round}/y`];
    const results = await Promise.allSettled([
      a.commit([{ key: x, value: 'a', expect: { tag: 'absent' } }, { key: y, expect: { tag: 'absent' } }]),
      b.commit([{ key: y, value: 'b', expect: { tag: 'absent' } }, { key: x, expect: { tag: 'absent' } }]),
    ]);
    assert.ok(results.some((r) => r.status === 'rejected'), `round ${round}: both applied`);
  }
});

test('keys_and_values_with_nul_are_a_failure_not_a_server_error', { skip }, async () => {
  const a = await adapter();
  await assert.rejects(a.commit([{ key: 'a\0b', value: 'v', expect: { tag: 'absent' } }]), /cannot contain NUL/);
});

test('a_schema_from_a_newer_build_or_a_kv_table_without_byte_order_is_refused', { skip }, async () => {
  const newer = await database();
  const raw = new pg.Client({ connectionString: newer });
  await raw.connect();
  await raw.query('CREATE TABLE twofold_schema (singleton boolean PRIMARY KEY DEFAULT true, version integer NOT NULL); INSERT INTO twofold_schema VALUES (true, 99)');
  await raw.end();
  await assert.rejects(adapter(newer), /twofold schema 99; this build knows up to 2/);

  const collated = await database();
  const raw2 = new pg.Client({ connectionString: collated });
  await raw2.connect();
  await raw2.query('CREATE TABLE kv (key text COLLATE "POSIX" PRIMARY KEY, value text NOT NULL, version bigint NOT NULL)');
  await raw2.end();
  await assert.rejects(adapter(collated), /needs "C"/);
});

test('an_unreachable_server_fails_the_constructor_without_the_password', { skip }, () => {
  assert.throws(() => new PgStorage({ connectionString: 'postgres://twofold:hunter2@127.0.0.1:1/x', connectionTimeoutMillis: 2000 }),
    (e) => /cannot connect to PostgreSQL at 127\.0\.0\.1:1\/x/.test(e.message) && !e.message.includes('hunter2'));
});

test('d1_an_account_made_through_one_host_signs_in_through_another_on_the_same_database', { skip }, async () => {
  const url = await database();
  const engine = new Engine(config, storage(url));
  const pool = await EnginePool.start({ config, storage: await adapter(url), size: 2 });
  try {
    const key = new SoftAuthenticator();
    const { userId } = engine.createAccount(ctx, { email: 'ada@example.com', password });
    const { options } = await pool.startPasskeyRegistration(ctx, { userId, name: 'Laptop', password });
    const { backupCodes } = engine.finishPasskeyRegistration(ctx, { userId, credential: key.create(options) });

    const step1 = await pool.signIn(ctx, { email: 'ada@example.com', password, rememberMe: false });
    assert.equal(step1.status, 'second_factor_required');
    const done = engine.signInWithPasskey(ctx, { pendingToken: step1.pendingToken, credential: key.get(step1.options) });
    assert.equal(done.userId, userId);

    // A backup code spent through one is spent for all.
    const again = engine.signIn(ctx, { email: 'ada@example.com', password });
    await pool.signInWithBackupCode(ctx, { pendingToken: again.pendingToken, code: backupCodes[0] });
    const third = await pool.signIn(ctx, { email: 'ada@example.com', password });
    const e = await engineError(() => engine.signInWithBackupCode(ctx, { pendingToken: third.pendingToken, code: backupCodes[0] }));
    assert.equal(e.code, 'invalid_backup_code');
    assert.deepEqual((await pool.verifyAuditChain(ctx, { userId })).problems, []);
  } finally {
    await pool.close();
  }
});

async function engineError(fn) {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof TwofoldError);
    return e;
  }
  assert.fail('no error');
}
