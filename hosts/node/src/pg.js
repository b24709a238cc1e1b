// twofold's storage contract on PostgreSQL, with the pure-JavaScript `pg` client: the same
// schema and commit as the Rust server's store, so Rust, Python and Node hosts can share one
// database.
//
// - `PgAdapter`: asynchronous (get, scan, commit return Promises), for `EnginePool` or any
//   thread with a free event loop.
// - `PgStorage`: synchronous, for `Engine`: a PgAdapter in a worker thread (worker-storage.js).
//
// Schema: kv(key text COLLATE "C" PRIMARY KEY, value text, version bigint) plus
// twofold_schema(version), created or migrated under an advisory lock. A commit is one READ
// COMMITTED transaction of conditional statements, in key order, whose affected-row counts
// decide a conflict: INSERT .. ON CONFLICT DO NOTHING for an absent key, UPDATE/DELETE ..
// WHERE version = v for a versioned one. Each statement takes the key's lock and re-checks
// against the newest committed row, so commits serialise on their keys. An absent key that is
// deleted claims the key the same way (a placeholder inserted and deleted in the transaction);
// a bare "is it there?" read would allow write skew. SQLSTATE 40001/40P01 count as conflicts.
// A COMMIT whose connection broke is settled by its transaction id (pg_xact_status), so that
// `failed` keeps meaning "nothing was applied" whenever that can be known.

import pg from 'pg';
import { StorageConflict } from './errors.js';
import { compareUtf8 } from './memory.js';
import { WorkerStorage } from './worker-storage.js';

// `MIGRATIONS[i]` takes a database from schema version i to i + 1. Every host on one database
// must know the same steps (the Rust server's store, hosts/python/src/twofold/postgres.py):
// step 2 is the sample web servers' sessions table, which this package does not use.
const MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS kv (
     key text COLLATE "C" PRIMARY KEY,
     value text NOT NULL,
     version bigint NOT NULL CHECK (version >= 1)
   )`,
  `CREATE TABLE IF NOT EXISTS sessions (
     id_hash text PRIMARY KEY,
     user_id text NOT NULL,
     epoch bigint NOT NULL,
     remember boolean NOT NULL,
     pending_hash text,
     created_at bigint NOT NULL,
     expires_at bigint NOT NULL
   );
   CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at)`,
];
const SCHEMA_LOCK = '32782417642089572'; // 0x0074776f666f6c64, "twofold", as the Rust store
const SCHEMA_TABLE = `CREATE TABLE IF NOT EXISTS twofold_schema (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version integer NOT NULL
)`;

// Named statements: pg prepares each once per connection.
const SQL = {
  get: 'SELECT value, version FROM kv WHERE key = $1',
  scanFrom: 'SELECT key, value, version FROM kv WHERE key >= $1 ORDER BY key LIMIT $2',
  scanAfter: 'SELECT key, value, version FROM kv WHERE key > $1 ORDER BY key LIMIT $2',
  scanFromBelow: 'SELECT key, value, version FROM kv WHERE key >= $1 AND key < $2 ORDER BY key LIMIT $3',
  scanAfterBelow: 'SELECT key, value, version FROM kv WHERE key > $1 AND key < $2 ORDER BY key LIMIT $3',
  insert: 'INSERT INTO kv (key, value, version) VALUES ($1, $2, 1) ON CONFLICT (key) DO NOTHING',
  update: 'UPDATE kv SET value = $2, version = $4 WHERE key = $1 AND version = $3',
  deleteVersion: 'DELETE FROM kv WHERE key = $1 AND version = $2',
  deleteKey: 'DELETE FROM kv WHERE key = $1',
};
const statement = (name, values) => ({ name: `twofold_${name}`, text: SQL[name], values });
const BEGIN = 'BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_current_xact_id()::text AS xid';

/** The least string above every string that starts with `prefix` (code point order), or null. */
export function prefixUpperBound(prefix) {
  const chars = [...prefix];
  while (chars.length > 0) {
    const last = chars.pop().codePointAt(0);
    if (last === 0x10ffff) continue;
    chars.push(String.fromCodePoint(last === 0xd7ff ? 0xe000 : last + 1)); // no surrogates
    return chars.join('');
  }
  return null;
}

const isServerError = (e) => e instanceof pg.DatabaseError;
const retryable = (e) => isServerError(e) && (e.code === '40001' || e.code === '40P01');

/** The server's SQLSTATE and primary message, or the client's error: never DETAIL (it can quote a key). */
function describe(e) {
  return isServerError(e) ? `${e.code} ${e.severity}: ${e.message}` : e?.message ?? String(e);
}
const failed = (e) => (retryable(e) ? new StorageConflict() : new Error(`postgres: ${describe(e)}`));

function checkText(...texts) {
  if (texts.some((t) => t.includes('\0'))) throw new Error('postgres: keys and values cannot contain NUL characters');
}

function versioned(row) {
  const version = Number(row.version);
  if (!Number.isSafeInteger(version)) throw new Error(`postgres: stored version ${row.version} is beyond 2^53`);
  return { value: row.value, version };
}

export class PgAdapter {
  #pool;

  /**
   * Connects, creates or migrates twofold's tables, and checks them.
   * @param options `pg.Pool` options (connectionString or host/port/user/...; `max` connections,
   *   default 1), plus `statementTimeoutMs` for connections the DBA gave no statement_timeout;
   *   or `{ pool }`, an existing `pg.Pool`.
   */
  static async open({ pool, statementTimeoutMs, ...options } = {}) {
    const target = PgAdapter.#target(options);
    pool ??= new pg.Pool({ max: 1, connectionTimeoutMillis: 10_000, application_name: 'twofold', ...options });
    pool.on('error', () => {}); // an idle connection broke: the pool drops it
    // Per connection, before any other query: durability as the contract promises, and bounded
    // waits for locks (and statements) unless the DBA chose their own.
    const settings = ["SELECT set_config('synchronous_commit', 'on', false) WHERE current_setting('synchronous_commit') = 'off'",
      "SELECT set_config('lock_timeout', '5000', false) WHERE current_setting('lock_timeout') = '0'"];
    if (statementTimeoutMs) settings.push(`SELECT set_config('statement_timeout', '${Math.trunc(statementTimeoutMs)}', false) WHERE current_setting('statement_timeout') = '0'`);
    pool.on('connect', (client) => { client.query(settings.join('; ')).catch(() => {}); });
    let client;
    try {
      client = await pool.connect();
    } catch (e) {
      await pool.end().catch(() => {});
      throw new Error(`cannot connect to PostgreSQL at ${target}: ${describe(e)}`);
    }
    try {
      await migrate(client, target);
    } catch (e) {
      client.release(true);
      await pool.end().catch(() => {});
      throw e;
    }
    client.release();
    return new PgAdapter(pool);
  }

  /** host:port/database, for messages; never the password. */
  static #target(options) {
    const { host, port, database } = new pg.Client(options);
    return `${host}:${port}/${database}`;
  }

  constructor(pool) {
    this.#pool = pool;
  }

  /** A read, run once more on a new connection if the first one turns out to be dead. */
  async #read(query) {
    try {
      return await this.#pool.query(query);
    } catch (e) {
      if (isServerError(e)) throw failed(e);
      try {
        return await this.#pool.query(query);
      } catch (again) {
        throw failed(again);
      }
    }
  }

  async get(key) {
    checkText(key);
    const { rows } = await this.#read(statement('get', [key]));
    return rows.length === 0 ? undefined : versioned(rows[0]);
  }

  async scan(prefix, after, limit) {
    checkText(prefix, after ?? '');
    if (limit === 0) return [];
    // Start at the prefix, or just past `after` when that is further on.
    const exclusive = after !== null && after !== undefined && compareUtf8(after, prefix) >= 0;
    const lower = exclusive ? after : prefix;
    const upper = prefixUpperBound(prefix);
    const query = upper === null
      ? statement(exclusive ? 'scanAfter' : 'scanFrom', [lower, limit])
      : statement(exclusive ? 'scanAfterBelow' : 'scanFromBelow', [lower, upper, limit]);
    const { rows } = await this.#read(query);
    return rows.map((row) => ({ key: row.key, value: versioned(row) }));
  }

  async commit(writes) {
    if (writes.length === 0) return;
    for (const w of writes) checkText(w.key, w.value ?? '');
    // Key order everywhere: two commits that share keys lock them in the same order, so one
    // waits for the other instead of deadlocking.
    const sorted = [...writes].sort((a, b) => compareUtf8(a.key, b.key));
    if (sorted.some((w, i) => i > 0 && sorted[i - 1].key === w.key)) throw new Error('postgres: the batch names a key twice');

    const client = await this.#pool.connect().catch((e) => { throw failed(e); });
    let xid;
    try {
      xid = (await client.query(BEGIN))[1].rows[0].xid;
      for (const w of sorted) {
        if (!(await apply(client, w))) {
          await client.query('ROLLBACK');
          throw new StorageConflict();
        }
      }
    } catch (e) {
      if (!(e instanceof StorageConflict)) await client.query('ROLLBACK').catch(() => {});
      client.release(!isServerError(e) && !(e instanceof StorageConflict));
      throw e instanceof StorageConflict ? e : failed(e);
    }
    try {
      await client.query('COMMIT');
      client.release();
    } catch (e) {
      client.release(true);
      if (isServerError(e)) throw failed(e); // the server answered: not committed
      await this.#settle(xid, describe(e));
    }
  }

  /** Whether a transaction whose COMMIT got no answer committed. */
  async #settle(xid, reason) {
    let status = null;
    try {
      ({ rows: [{ status }] } = await this.#pool.query('SELECT pg_xact_status($1::text::xid8) AS status', [xid]));
    } catch {
      // unknown, below
    }
    if (status === 'committed') return;
    if (status === 'aborted') throw new Error(`postgres: the connection broke during COMMIT (${reason}); the batch was not applied`);
    throw new Error(`postgres: the connection broke during COMMIT (${reason}); whether the batch was applied is unknown`);
  }

  /** Deletes every key (for tests: the conformance driver's `reset`). */
  async clear() {
    await this.#pool.query('DELETE FROM kv').catch((e) => { throw failed(e); });
  }

  /** Closes the connections. */
  end() {
    return this.#pool.end();
  }
}

/** Applies one write in the open transaction; false when its expectation does not hold. */
async function apply(client, { key, value, expect }) {
  const absent = expect.tag === 'absent';
  let q;
  if (value !== undefined && value !== null) q = absent ? statement('insert', [key, value]) : statement('update', [key, value, expect.val, expect.val + 1]);
  else if (!absent) q = statement('deleteVersion', [key, expect.val]);
  else {
    // Claim the key as an insert would, so no concurrent commit can create it meanwhile, then
    // take the placeholder out again.
    if ((await client.query(statement('insert', [key, '']))).rowCount !== 1) return false;
    q = statement('deleteKey', [key]);
  }
  return (await client.query(q)).rowCount === 1;
}

async function migrate(client, target) {
  const setup = (e) => new Error(`cannot set up twofold's tables in ${target}: ${describe(e)}`);
  const { rows: [{ server_encoding: encoding }] } = await client.query('SHOW server_encoding').catch((e) => { throw setup(e); });
  if (encoding !== 'UTF8') throw new Error(`database ${target} has encoding ${encoding}; twofold needs UTF8`);
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
    await client.query(SCHEMA_TABLE);
    const { rows } = await client.query('SELECT version FROM twofold_schema');
    const found = rows[0]?.version ?? 0;
    if (found > MIGRATIONS.length) {
      throw new Error(`database ${target} has twofold schema ${found}; this build knows up to ${MIGRATIONS.length}`);
    }
    for (const step of MIGRATIONS.slice(found)) await client.query(step);
    if (found < MIGRATIONS.length) {
      await client.query(`INSERT INTO twofold_schema (version) VALUES ($1)
        ON CONFLICT (singleton) DO UPDATE SET version = excluded.version`, [MIGRATIONS.length]);
    }
    // A kv table made without COLLATE "C" would scan in the wrong order: refuse it.
    const { rows: [column] } = await client.query(`SELECT collation_name::text AS collation FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = 'kv' AND column_name = 'key'`);
    if (column?.collation !== 'C') {
      throw new Error(`table kv in ${target} has key collation ${column?.collation ?? 'none'}; twofold needs "C" (byte order)`);
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e.message.startsWith('database') || e.message.startsWith('table') ? e : setup(e);
  }
}

/** The synchronous PostgreSQL storage for `Engine`: a PgAdapter in a worker thread. */
export class PgStorage extends WorkerStorage {
  /**
   * @param options as PgAdapter.open's (plain data: they are copied into the worker); the
   *   statement timeout defaults to 1 s below the bridge's timeoutMs
   * @param timeouts { timeoutMs: 10000, startTimeoutMs: 15000 }
   */
  constructor(options = {}, timeouts = {}) {
    const timeoutMs = timeouts.timeoutMs ?? 10_000;
    super(import.meta.url, { statementTimeoutMs: Math.max(timeoutMs - 1000, 100), ...options }, { ...timeouts, timeoutMs });
  }
}

/** What a WorkerStorage opens (PgStorage names this module). */
export default function open(options) {
  return PgAdapter.open(options);
}
