/** @module store/kysely/runner: how every store call reaches the database. A read runs on the pool (or on the
 *  open batch's transaction), a write in a transaction through the dialect's StoreDriver, run again after a
 *  transient error or a lost allocation race; either way unexpected database errors come back as BrokerError
 *  STORE_FAILED with the cause, so a full disk or a broken connection reaches the caller as a coded error and
 *  never crashes the process from here. Also the small SQL helpers the per-concern files share. */

import { AsyncLocalStorage } from 'node:async_hooks';
import type { Kysely } from 'kysely';
import { BrokerError } from '../../errors.js';
import type { Database } from '../schema.js';
import type { WriteStats, BatchOptions } from '../types.js';
import type { Dialect } from '../migrations.js';

/** What differs between dialects: how a write transaction is run and which errors are worth a retry. */
export interface StoreDriver {
  readonly dialect: Dialect;
  /** Runs fn inside one read-write transaction on `db` and commits before resolving; rolls back and rethrows if
   *  fn throws. fn must issue its queries on the handle it is given. Implementations serialise writers as the
   *  dialect needs (SQLite: BEGIN IMMEDIATE behind a per-file lock; PostgreSQL: row locks). */
  write<T>(db: Kysely<Database>, fn: (trx: Kysely<Database>) => Promise<T>, opts?: BatchOptions): Promise<T>;
  /** Inside a write transaction, waits until no other process is migrating the same database. */
  lockForMigration(trx: Kysely<Database>): Promise<void>;
  /** Errors after which the whole transaction may simply be run again (deadlock, serialization failure). */
  isTransient(error: unknown): boolean;
  /** The handle reads outside a write run on, when it is not the writer's (SQLite: a connection of its own,
   *  sqlite.ts); undefined: the Kysely instance writes go through. */
  reader?(): Kysely<Database>;
  /** Called once by Store.close() after the Kysely instance is destroyed; close() waits for it. */
  onClose?(): void | Promise<void>;
  /** Write transactions asked for and the commits that carried them (SQLite groups them: group-commit.ts). */
  stats?(): WriteStats;
}

/** Thrown inside a write transaction to have it rolled back and run again from the start (e.g. another session
 *  of the same owner committed an allocation first: the next run sees the winner's committed row). */
export class RetryTransaction extends Error {}

/** Whole-transaction retries after a transient error or a lost allocation race; a few are plenty, since
 *  each retry sees the winner's committed row. */
const TRANSACTION_ATTEMPTS = 5;

/** What a write transaction's caller wants done once it is known whether the transaction took effect: memory
 *  that mirrors rows (store/lease-chunks.ts) changes only with them. */
export interface TxHooks {
  /** After the transaction committed (on SQLite: after its group's commit). */
  onCommit(fn: () => void): void;
  /** After it was rolled back (each failed attempt: a retried transaction gets fresh hooks). */
  onRollback(fn: () => void): void;
}

class Hooks implements TxHooks {
  private readonly commit: (() => void)[] = [];
  private readonly rollback: (() => void)[] = [];
  onCommit(fn: () => void): void {
    this.commit.push(fn);
  }
  onRollback(fn: () => void): void {
    this.rollback.push(fn);
  }
  settle(committed: boolean): void {
    // memory bookkeeping only: one that fails must not turn a committed transaction into a reported failure
    for (const fn of committed ? this.commit : this.rollback) {
      try {
        fn();
      } catch {
        // nothing the caller could do: the rows are the truth, and memory is rebuilt from them on restart
      }
    }
  }
}

interface OpenBatch {
  trx: Kysely<Database>;
  hooks: TxHooks;
}

/** Set TSP_STORE_CHECKS=1 (the test runner does) to have a store call that bypasses the batch it runs in
 *  fail loudly: a write would open a transaction of its own, which on SQLite waits behind the batch's group
 *  forever, and a read would answer from the last commit, without the batch's own writes. It needs
 *  AsyncLocalStorage, whose promise hooks cost every promise of the process (about 7 % of an anonymous TSP
 *  session's CPU in bench:control), so it is off in production. */
const checks: AsyncLocalStorage<true> | undefined =
  process.env.TSP_STORE_CHECKS === '1' ? new AsyncLocalStorage<true>() : undefined;

/** Runs reads and write transactions for one store: the store's own runner, or a batch's (`open`), on which
 *  every call runs in the batch's transaction. The batch is passed by hand (Store.batch gives its callback a
 *  store on the batch's runner), never looked up from the call chain. */
export class Runner {
  /** A batch's runner once its callback has settled: a call on it then throws (a `tx` kept past its batch
   *  would run on the group's connection, outside the group, maybe inside another group's transaction). */
  private done = false;

  constructor(
    readonly db: Kysely<Database>,
    readonly driver: StoreDriver,
    private readonly open?: OpenBatch,
  ) {}

  /** Whether this runner runs a batch's calls (in its transaction). */
  get inBatch(): boolean {
    return this.open !== undefined;
  }

  /** Runs fn's calls, made on the runner it is given, in one write transaction (Store.batch). On a batch's
   *  runner fn joins that batch. A transient error or a lost race runs fn again. */
  batch<T>(fn: (run: Runner) => Promise<T>, opts?: BatchOptions): Promise<T> {
    if (this.open !== undefined) return fn(this);
    return this.write(
      'batch',
      (trx, hooks) => {
        const run = new Runner(this.db, this.driver, { trx, hooks });
        return (checks ? checks.run(true, () => fn(run)) : fn(run)).finally(() => (run.done = true));
      },
      opts,
    );
  }

  /** Runs fn, whose writes on the store's own runner are transactions of their own, committed whether or not
   *  a batch that started it commits (store/lease-chunks.ts claims a chunk this way). Only marks the intent
   *  for TSP_STORE_CHECKS: on the store's own runner every write is its own transaction (and on a batch's
   *  runner, the batch's). */
  detached<T>(fn: () => Promise<T>): Promise<T> {
    return checks ? checks.exit(fn) : fn();
  }

  /** A read, with errors coded: in a batch, on the batch's transaction; otherwise on the driver's reader if it
   *  has one (the last commit's rows, without waiting for a group to commit). */
  async read<T>(op: string, fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    this.check(op);
    try {
      return await fn(this.open?.trx ?? this.driver.reader?.() ?? this.db);
    } catch (e) {
      throw storeError(op, e);
    }
  }

  /** A write transaction through the driver, run again after a transient error or a lost race (so fn may run
   *  more than once). Inside a batch it runs on the batch's transaction, and a retry is the batch's to make.
   *  fn's hooks run once the outcome is known (the batch's, inside a batch). */
  async write<T>(
    op: string,
    fn: (trx: Kysely<Database>, hooks: TxHooks) => Promise<T>,
    opts?: BatchOptions,
  ): Promise<T> {
    this.check(op);
    const open = this.open;
    if (open !== undefined) {
      try {
        return await fn(open.trx, open.hooks);
      } catch (e) {
        throw e instanceof RetryTransaction || this.driver.isTransient(e) ? e : storeError(op, e);
      }
    }
    for (let attempt = 1; ; attempt++) {
      const hooks = new Hooks();
      try {
        const value = await this.driver.write(this.db, (trx) => fn(trx, hooks), opts);
        hooks.settle(true);
        return value;
      } catch (e) {
        hooks.settle(false);
        const again = e instanceof RetryTransaction || this.driver.isTransient(e);
        if (again && attempt < TRANSACTION_ATTEMPTS) continue;
        throw storeError(op, e);
      }
    }
  }

  /** A batch's runner after its batch; TSP_STORE_CHECKS: a call on the store's own runner from inside a
   *  batch's callback bypasses the batch. */
  private check(op: string): void {
    if (this.done) throw new Error(`store.${op} was called on a batch's store after its batch ended`);
    if (checks !== undefined && this.open === undefined && checks.getStore() === true)
      throw new Error(`store.${op} was called on the store inside a batch: call it on the batch's store`);
  }
}

/** Codes errors for the caller: BrokerErrors pass through; a unique violation is STORE_CONFLICT, a foreign key
 *  violation (a tunnel for an unknown account) STORE_NOT_FOUND; anything else (SQLITE_FULL, a lost
 *  connection, SQLITE_BUSY after busy_timeout) is STORE_FAILED with the original as cause. */
function storeError(op: string, e: unknown): BrokerError {
  if (e instanceof BrokerError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  const message = e instanceof Error ? e.message : String(e);
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505') {
    return new BrokerError('STORE_CONFLICT', `store.${op}: ${message}`, { cause: e });
  }
  if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY' || code === '23503') {
    return new BrokerError('STORE_NOT_FOUND', `store.${op}: a referenced row does not exist (${message})`, {
      cause: e,
    });
  }
  return new BrokerError('STORE_FAILED', `store.${op} failed: ${message}`, { cause: e });
}

// ---- helpers the per-concern files share

/** Default and largest page for listing methods (types.ts TunnelFilter). */
export const DEFAULT_PAGE = 100;
export const MAX_PAGE = 1000;

/** limit defaults to DEFAULT_PAGE and is clamped to 0..MAX_PAGE; offset to >= 0. */
export function page(q: { limit?: number; offset?: number }): { limit: number; offset: number } {
  const limit = Math.min(MAX_PAGE, Math.max(0, Math.trunc(q.limit ?? DEFAULT_PAGE)));
  const offset = Math.max(0, Math.trunc(q.offset ?? 0));
  return { limit: Number.isFinite(limit) ? limit : DEFAULT_PAGE, offset: Number.isFinite(offset) ? offset : 0 };
}

/** A LIKE pattern matching `text` as a lower-cased substring, with \ % _ escaped (ESCAPE '\'). */
export function likeSubstring(text: string): string {
  return `%${escapeLike(text.toLowerCase())}%`;
}

/** A LIKE pattern matching text that starts with `prefix` (case as given), with \ % _ escaped (ESCAPE '\'). */
export function likePrefix(prefix: string): string {
  return `${escapeLike(prefix)}%`;
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** Integer columns come back as number or string (PostgreSQL bigint); null stays null. */
export function nullableNumber(v: number | string | null): number | null {
  return v === null ? null : Number(v);
}
