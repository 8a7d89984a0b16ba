/** @module store/open: openStore(config.store), the one place that picks a Store implementation.
 *  SQLite (sqlite.ts) by default; PostgreSQL for several broker nodes sharing state, with the same queries
 *  (kysely-store.ts) over Kysely's PostgresDialect and a pg Pool.
 *  PostgreSQL notes: transactions run at READ COMMITTED. Allocation stays race-free through the unique
 *  constraints and ON CONFLICT (an inserter waits for a concurrent inserter of the same key and then sees its
 *  row); deadlocks (40P01) and serialization failures (40001) roll back and run the transaction again.
 *  Migrations take a transaction-scoped advisory lock so two nodes starting at once do not both create tables.
 *  The contract suite runs on PostgreSQL when TSP_TEST_PG_URL is set (test/unit/store/postgres.test.ts). */

import pg from 'pg';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { BrokerError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { Store } from './types.js';
import type { Database } from './schema.js';
import { openKyselyStore, type KyselyStore } from './kysely-store.js';
import type { StoreDriver } from './kysely/runner.js';
import { openSqliteStore } from './sqlite.js';

/** The `store` section of the configuration (config/schema.ts), structurally, so store/ does not import config/. */
export interface StoreConfig {
  driver: 'sqlite' | 'postgres';
  path: string;
  url: string | null;
  /** SQLite: accept an existing database file that group or others may read or write (sqlite.ts). */
  allowGroupReadable?: boolean;
}

export interface OpenOptions {
  clock?: Clock;
  /** The broker node this process is (cluster/node.ts): the tunnels it creates carry the name, and on
   *  PostgreSQL its anonymous lease chunks are its own. Default 'local' (a CLI command, a SQLite broker). */
  nodeId?: string;
}

/** Opens the configured store with its schema up to date. Rejects with CFG_INVALID when the configuration
 *  cannot work, STORE_FAILED when the database cannot be reached or migrated. */
export function openStore(config: StoreConfig, opts: OpenOptions = {}): Promise<Store> {
  if (config.driver === 'sqlite')
    return openSqliteStore({ file: config.path, allowGroupReadable: config.allowGroupReadable ?? false, ...opts });
  if (!config.url)
    return Promise.reject(new BrokerError('CFG_INVALID', "store.url: is required for driver 'postgres'"));
  return openPostgresStore({ url: config.url, ...opts });
}

export interface PostgresStoreOptions {
  /** Connection string, e.g. postgres://user:pass@host/db. */
  url: string;
  clock?: Clock;
  /** Connections in the pool. Default 10: each write holds one for a few statements only. */
  maxConnections?: number;
  nodeId?: string;
}

/** An arbitrary constant naming our migration lock among the database's advisory locks (3653: the TSP port). */
const MIGRATION_LOCK_KEY = 0x7370_3653;

export async function openPostgresStore(opts: PostgresStoreOptions): Promise<KyselyStore> {
  const pool = new pg.Pool({ connectionString: opts.url, max: opts.maxConnections ?? 10 });
  // An idle connection that dies (server restart) emits 'error' on the pool; unhandled it would crash the
  // process. The pool drops that connection, and the next query reports a lasting problem as STORE_FAILED.
  pool.on('error', () => undefined);
  const driver: StoreDriver = {
    dialect: 'postgres',
    // BatchOptions.provisional is not taken here: the database can crash and come back while the broker runs
    // on, and an offer acknowledged before its flush would be gone under a live session
    write: (db, fn) => db.transaction().execute((trx) => fn(trx)),
    async lockForMigration(trx) {
      await sql`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`.execute(trx);
    },
    isTransient(error) {
      const code = (error as { code?: unknown } | null)?.code;
      return code === '40001' || code === '40P01';
    },
  };
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return openKyselyStore(db, driver, opts.clock, opts.nodeId);
}
