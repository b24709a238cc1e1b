// Types of 'twofold/pg': storage on PostgreSQL with the pure-JavaScript `pg` client.

import type { AsyncStorage, Entry, Versioned, Write } from './gen/api.js';
import type { WorkerStorage, WorkerTimeouts } from './index.js';

/** `pg` connection options (connectionString, or host, port, user, password, database, ...). */
export interface PgOptions {
  connectionString?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  /** Connections (default 1). */
  max?: number;
  /** statement_timeout for connections whose DBA set none, in ms. */
  statementTimeoutMs?: number;
  [option: string]: unknown;
}

/** The storage contract on PostgreSQL, asynchronous: for EnginePool. */
export class PgAdapter implements AsyncStorage {
  /** Connects, creates or migrates twofold's tables and checks them. `pool`: an existing `pg.Pool`. */
  static open(options: PgOptions | { pool: unknown; statementTimeoutMs?: number }): Promise<PgAdapter>;
  get(key: string): Promise<Versioned | undefined>;
  scan(prefix: string, after: string | undefined, limit: number): Promise<Entry[]>;
  commit(writes: Write[]): Promise<void>;
  /** Deletes every key (tests). */
  clear(): Promise<void>;
  /** Closes the connections. */
  end(): Promise<void>;
}

/** The storage contract on PostgreSQL, synchronous: for Engine (a PgAdapter in a worker thread). */
export class PgStorage extends WorkerStorage {
  constructor(options: PgOptions, timeouts?: WorkerTimeouts);
}

/** The least string above every string that starts with `prefix`, or null. */
export function prefixUpperBound(prefix: string): string | null;
