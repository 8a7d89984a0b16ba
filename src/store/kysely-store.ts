/** @module store/kysely-store: the one Store implementation, over any Kysely<Database>, put together from one
 *  file per concern (kysely/settings, accounts, allocations, tunnels, audit, web, traffic), the allocator
 *  (allocator.ts) and the runner every call goes through (kysely/runner.ts).
 *  sqlite.ts (and open.ts for PostgreSQL) only build the Kysely instance and a StoreDriver that says how to run a
 *  write transaction on that dialect; the queries are portable SQL built with Kysely: no dialect functions, ON
 *  CONFLICT for upserts (SQLite >= 3.24, PostgreSQL >= 9.5), RETURNING (SQLite >= 3.35), savepoints.
 *  Every call converts unexpected database errors into BrokerError STORE_FAILED (with the cause).
 *  Imports nothing of ours but errors, clock, tunnel-model and the store's own modules. */

import { systemClock, type Clock } from '../clock.js';
import type { Kysely } from 'kysely';
import type { Store, WriteStats } from './types.js';
import type { Database } from './schema.js';
import { migrate } from './migrations.js';
import type { TransactionHandle } from './allocator.js';
import { Runner, type StoreDriver } from './kysely/runner.js';
import { settingsStore } from './kysely/settings.js';
import { accountStore } from './kysely/accounts.js';
import { allocationStore } from './kysely/allocations.js';
import { tunnelStore } from './kysely/tunnels.js';
import { staticTunnelStore } from './kysely/static-tunnels.js';
import { auditStore } from './kysely/audit.js';
import { webStore } from './kysely/web.js';
import { trafficStore } from './kysely/traffic.js';
import { reverseDnsStore } from './kysely/reverse-dns.js';
import { nodeStore } from './kysely/nodes.js';
import { LeaseChunks } from './lease-chunks.js';

/** A Store, plus what its opener and the store's own modules need. */
export interface KyselyStore extends Store {
  /** Brings the schema up to date (migrations.ts). Called by the open functions before handing the store out. */
  migrate(): Promise<number[]>;
  /** Runs fn in one write transaction (inside a batch: the batch's) and commits before resolving; a transient
   *  error or a lost allocation race (allocator.ts) rolls back and runs fn again, so fn must do nothing but
   *  queries on the handle and computing from their results. The handle is what allocator.ts's functions
   *  take: several allocations drawn on it commit together or not at all. */
  transaction<T>(fn: (trx: TransactionHandle) => Promise<T>): Promise<T>;
  /** Write transactions asked for and the commits that carried them, when the dialect counts them (SQLite). */
  writeStats(): WriteStats | undefined;
}

/** The node name of a store opened without one: a SQLite file's only broker, or a CLI command. */
export const DEFAULT_NODE_ID = 'local';

export function createKyselyStore(
  db: Kysely<Database>,
  driver: StoreDriver,
  clock: Clock = systemClock,
  nodeId: string = DEFAULT_NODE_ID,
): KyselyStore {
  const run = new Runner(db, driver);
  // one broker a SQLite file; on PostgreSQL, several, each with chunks of its own (lease-chunks.ts)
  const chunks = new LeaseChunks(run, clock, driver.dialect === 'sqlite' ? DEFAULT_NODE_ID : nodeId);
  let closed = false;
  /** The per-concern parts, each built on a runner: the store's own, or a batch's. */
  const parts: ((r: Runner) => object)[] = [
    (r) => settingsStore(r),
    (r) => accountStore(r, clock),
    (r) => allocationStore(r, clock, chunks),
    (r) => tunnelStore(r, chunks, nodeId),
    (r) => staticTunnelStore(r),
    (r) => auditStore(r, driver.dialect),
    (r) => webStore(r),
    (r) => trafficStore(r),
    (r) => reverseDnsStore(r),
    (r) => nodeStore(r, driver.dialect, nodeId),
  ];
  /** What is not a part: a batch on `r`'s store (`self`) joins it; close() only on the store itself. */
  const own = (r: Runner, self: () => KyselyStore): Partial<KyselyStore> => ({
    dialect: driver.dialect,
    batch: (fn, opts) => r.batch((b) => fn(b === r ? self() : onBatch(b)), opts),
    transaction: (fn) => r.write('transaction', fn),
    writeStats: () => driver.stats?.(),
    migrate() {
      return r.write('migrate', async (trx) => {
        await driver.lockForMigration(trx);
        return migrate(trx, driver.dialect, clock.now());
      });
    },
    async close() {
      if (r.inBatch) throw new Error("close the store, not a batch's store");
      if (closed) return;
      closed = true;
      try {
        await db.destroy();
      } finally {
        await driver.onClose?.();
      }
    },
  });
  // A batch's store (Store.batch hands one to its callback) builds a part when the batch first calls one of its
  // methods, through getters on a shared prototype: an accept uses two parts of ten, and building all ten a
  // batch was 1 % of an anonymous session's CPU.
  const ownParts = parts.map((part) => part(run));
  const proto = {};
  ownParts.forEach((built, i) => {
    for (const key of Object.keys(built))
      Object.defineProperty(proto, key, {
        get(this: { run: Runner; built: object[] }) {
          return (this.built[i] ??= parts[i]!(this.run))[key as keyof object];
        },
      });
  });
  const onBatch = (r: Runner): KyselyStore => {
    const s: KyselyStore = Object.assign(
      Object.create(proto) as KyselyStore,
      { run: r, built: [] },
      own(r, () => s),
    );
    return s;
  };
  const store: KyselyStore = Object.assign(
    {},
    ...ownParts,
    own(run, () => store),
  );
  return store;
}

/** A store over `db`, migrated to the current schema; closed again if the migration fails. */
export async function openKyselyStore(
  db: Kysely<Database>,
  driver: StoreDriver,
  clock?: Clock,
  nodeId?: string,
): Promise<KyselyStore> {
  const store = createKyselyStore(db, driver, clock, nodeId);
  try {
    await store.migrate();
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }
  return store;
}
