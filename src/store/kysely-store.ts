/** @module store/kysely-store: the one implementation of Store's queries, over any Kysely<Database>.
 *  sqlite.ts (and open.ts for PostgreSQL) only build the Kysely instance and a StoreDriver that says how to run a
 *  write transaction on that dialect; everything else is here, in portable SQL built with Kysely: no dialect
 *  functions, ON CONFLICT for upserts (SQLite >= 3.24, PostgreSQL >= 9.5), RETURNING (SQLite >= 3.35), savepoints.
 *  Every method converts unexpected database errors into BrokerError STORE_FAILED (with the cause), so a full
 *  disk or a broken connection reaches the caller as a coded error and never crashes the process from here.
 *  Imports nothing of ours but errors, clock and the store's own modules. */

import { AsyncLocalStorage } from 'node:async_hooks';
import { sql, type Expression, type ExpressionBuilder, type Kysely, type Selectable, type SqlBool } from 'kysely';
import { BrokerError } from '../errors.js';
import { systemClock, type Clock } from '../clock.js';
import type {
  Account,
  AccountLimits,
  AccountSecrets,
  AllocateRequest,
  ApiToken,
  Allocation,
  AuditEvent,
  CounterUpdate,
  EndReason,
  NewAccount,
  NewTunnel,
  Page,
  PasswordSecrets,
  PoolName,
  PoolUsage,
  Role,
  Store,
  TunnelFilter,
  TunnelRecord,
  AuditFilter,
  TrafficBucket,
  TrafficSampleRow,
  TunnelState,
  WebSession,
} from './types.js';
import type { Database, AllocationsTable, AccountsTable, TunnelsTable, AuditTable, ApiTokensTable } from './schema.js';
import { migrate, type Dialect } from './migrations.js';
import {
  ancestorsOf,
  blockSize,
  canonicalAddress,
  formatAddress,
  formatPrefix,
  fromHex,
  parsePrefix,
  toHex,
  type Prefix,
} from './prefix.js';

/** What differs between dialects: how a write transaction is run and which errors are worth a retry. */
export interface StoreDriver {
  readonly dialect: Dialect;
  /** Runs fn inside one read-write transaction on `db` and commits before resolving; rolls back and rethrows if
   *  fn throws. fn must issue its queries on the handle it is given. Implementations serialise writers as the
   *  dialect needs (SQLite: BEGIN IMMEDIATE behind a per-file lock; PostgreSQL: row locks). */
  write<T>(db: Kysely<Database>, fn: (trx: Kysely<Database>) => Promise<T>): Promise<T>;
  /** Inside a write transaction, waits until no other process is migrating the same database. */
  lockForMigration(trx: Kysely<Database>): Promise<void>;
  /** Errors after which the whole transaction may simply be run again (deadlock, serialization failure). */
  isTransient(error: unknown): boolean;
  /** Called once by Store.close() after the Kysely instance is destroyed. */
  onClose?(): void;
}

/** Default and largest page for listing methods (types.ts TunnelFilter). */
export const DEFAULT_PAGE = 100;
export const MAX_PAGE = 1000;
/** Whole-transaction retries after a transient error or a lost allocation race; a few are plenty, since
 *  each retry sees the winner's committed row. */
const TRANSACTION_ATTEMPTS = 5;
/** Rows read per query while scanning for the next unclaimed block. */
const SCAN_BATCH = 256;

/** Thrown inside a write transaction to have it rolled back and run again (e.g. another session of the same
 *  owner committed an allocation first). Never leaves this module. */
class RetryTransaction extends Error {}

type AccountRow = Selectable<AccountsTable>;
type AllocationRow = Selectable<AllocationsTable>;
type TunnelRow = Selectable<TunnelsTable> & { username: string | null };
type AuditRow = Selectable<AuditTable>;

export class KyselyStore implements Store {
  readonly dialect: Dialect;
  #closed = false;

  /** The transaction of the batch the current async call chain runs in, if any. */
  private readonly openBatch = new AsyncLocalStorage<Kysely<Database>>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly driver: StoreDriver,
    private readonly clock: Clock = systemClock,
  ) {
    this.dialect = driver.dialect;
  }

  /** Brings the schema up to date (migrations.ts). Called by the open functions before handing the store out. */
  async migrate(): Promise<number[]> {
    return this.write('migrate', async (trx) => {
      await this.driver.lockForMigration(trx);
      return migrate(trx, this.dialect, this.clock.now());
    });
  }

  /** Idempotent. Pending calls may fail with STORE_FAILED. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.db.destroy();
    } finally {
      this.driver.onClose?.();
    }
  }

  // ---- settings

  getSetting(key: string): Promise<string | undefined> {
    return this.read('getSetting', async (db) => {
      const row = await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
      return row?.value;
    });
  }

  setSettingIfAbsent(key: string, value: string): Promise<string> {
    return this.write('setSettingIfAbsent', async (trx) => {
      await trx
        .insertInto('settings')
        .values({ key, value })
        .onConflict((oc) => oc.column('key').doNothing())
        .execute();
      const row = await trx.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirstOrThrow();
      return row.value;
    });
  }

  // ---- accounts

  createAccount(a: NewAccount): Promise<Account> {
    return this.write('createAccount', async (trx) => {
      checkDigestPair(a);
      const now = this.clock.now();
      const row = await trx
        .insertInto('accounts')
        .values({
          username: a.username,
          role: a.role,
          disabled: 0,
          limits: JSON.stringify(a.limits ?? {}),
          password_hash: a.passwordHash,
          digest_ha1: a.digestHa1,
          digest_realm: a.digestRealm,
          created_at: now,
          updated_at: now,
        })
        .onConflict((oc) => oc.column('username').doNothing())
        .returningAll()
        .executeTakeFirst();
      if (row === undefined) throw new BrokerError('STORE_CONFLICT', `username '${a.username}' already exists`);
      return toAccount(row);
    });
  }

  getAccount(id: number): Promise<Account | undefined> {
    return this.read('getAccount', async (db) => {
      const row = await db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
      return row && toAccount(row);
    });
  }

  getAccountSecrets(username: string): Promise<AccountSecrets | undefined> {
    return this.read('getAccountSecrets', async (db) => {
      const row = await db.selectFrom('accounts').selectAll().where('username', '=', username).executeTakeFirst();
      if (row === undefined) return undefined;
      return {
        ...toAccount(row),
        passwordHash: row.password_hash,
        digestHa1: row.digest_ha1,
        digestRealm: row.digest_realm,
      };
    });
  }

  /** Ordered by username. `search` matches a case-insensitive substring of the username; % and _ in it are
   *  literal characters. */
  listAccounts(q: { search?: string; offset?: number; limit?: number }): Promise<Page<Account>> {
    return this.read('listAccounts', async (db) => {
      const where = (eb: ExpressionBuilder<Database, 'accounts'>): Expression<SqlBool> =>
        q.search ? sql<SqlBool>`lower(${eb.ref('username')}) like ${likeSubstring(q.search)} escape '\\'` : eb.and([]);
      const { limit, offset } = page(q);
      const [count, rows] = await Promise.all([
        db
          .selectFrom('accounts')
          .select((eb) => eb.fn.countAll().as('n'))
          .where(where)
          .executeTakeFirstOrThrow(),
        db
          .selectFrom('accounts')
          .selectAll()
          .where(where)
          .orderBy('username')
          .orderBy('id')
          .limit(limit)
          .offset(offset)
          .execute(),
      ]);
      return { items: rows.map(toAccount), total: Number(count.n) };
    });
  }

  setPassword(id: number, p: PasswordSecrets): Promise<void> {
    try {
      checkDigestPair(p);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    return this.updateAccount('setPassword', id, {
      password_hash: p.passwordHash,
      digest_ha1: p.digestHa1,
      digest_realm: p.digestRealm,
    });
  }

  setDisabled(id: number, disabled: boolean): Promise<void> {
    return this.updateAccount('setDisabled', id, { disabled: disabled ? 1 : 0 });
  }

  setLimits(id: number, limits: AccountLimits): Promise<void> {
    return this.updateAccount('setLimits', id, { limits: JSON.stringify(limits) });
  }

  /** One transaction: releases the account's allocations, deletes it; its tunnels keep their rows with
   *  account_id set to NULL by the foreign key (ON DELETE SET NULL). STORE_NOT_FOUND if there is no such id. */
  deleteAccount(id: number): Promise<void> {
    return this.write('deleteAccount', async (trx) => {
      const allocations = await trx.selectFrom('allocations').selectAll().where('account_id', '=', id).execute();
      for (const row of allocations) await releaseAllocation(trx, row);
      const deleted = await trx.deleteFrom('accounts').where('id', '=', id).returning('id').executeTakeFirst();
      if (deleted === undefined) throw new BrokerError('STORE_NOT_FOUND', `no account with id ${id}`);
    });
  }

  private updateAccount(
    op: string,
    id: number,
    set: Partial<Pick<AccountRow, 'password_hash' | 'digest_ha1' | 'digest_realm' | 'disabled' | 'limits'>>,
  ): Promise<void> {
    return this.write(op, async (trx) => {
      const row = await trx
        .updateTable('accounts')
        .set({ ...set, updated_at: this.clock.now() })
        .where('id', '=', id)
        .returning('id')
        .executeTakeFirst();
      if (row === undefined) throw new BrokerError('STORE_NOT_FOUND', `no account with id ${id}`);
    });
  }

  // ---- allocation
  //
  // Each pool is a binary tree of prefixes; prefix_claims holds the claimed nodes, keyed by
  // (pool_prefix, prefix_len, addr_hex) — the primary key is the constraint that forbids overlaps:
  //   'block' P/L   the allocated block itself;
  //   'split' A/k   for every ancestor poolLen <= k < L of an allocated block, with `children` = how many
  //                 blocks lie inside it (a reference count, so release knows when the row is no longer needed).
  // Allocating P/L, inside one write transaction and a savepoint per candidate:
  //   1. insert the allocations row, ON CONFLICT (owner, pool) DO NOTHING. No row back: another session of the
  //      same owner committed first: roll back the transaction and run it again, which returns the winner's row.
  //   2. upsert a 'split' for every ancestor (insert with children 1, or on conflict children + 1 but only WHERE
  //      the existing row is a split). Fewer rows back than ancestors: an ancestor is a 'block', i.e. P lies
  //      inside an allocated bigger block: roll back to the savepoint, jump past that block.
  //   3. insert the 'block' P/L, ON CONFLICT DO NOTHING. No row back: P/L is a block already, or a 'split'
  //      because a smaller block inside it exists: roll back to the savepoint, try the next block.
  // Any two overlapping blocks share a node (the longer one's ancestor at the shorter one's length is the
  // shorter one), and one of them would have to write that node as 'block' while the other needs it as
  // 'split', so the constraint rejects the second whatever the interleaving; the checks are never
  // read-then-write. On PostgreSQL the pool's root split row is updated by every allocation, which also
  // queues concurrent allocators of one pool behind each other.
  //
  // Candidate choice (a hint only; the constraints decide): next-fit from just above the highest claim of that
  // length in the pool, wrapping around to a first-fit scan from the pool start. The scan reads the claims at
  // length L in address order (the primary key's index) and stops at the first gap, so its cost grows with
  // the claims present, never with the size of the pool (a /64 of /128s has 2^64 candidates). Next-fit also
  // means a released block is handed out again only after the pool wraps, so a prefix does not go to a new
  // owner right after the old one let it go. Both loops advance strictly, so they end; when both find nothing
  // the pool is exhausted for that length.
  //
  // Release: delete the block claim, decrement the ancestors' split counts and delete the splits at zero.

  allocate(req: AllocateRequest): Promise<Allocation> {
    return this.write('allocate', async (trx) => {
      const pool = parsePrefix(req.poolPrefix);
      if (!Number.isInteger(req.prefixLen) || req.prefixLen < pool.len || req.prefixLen > 128) {
        throw new BrokerError(
          'CFG_INVALID',
          `cannot cut a /${req.prefixLen} from pool ${formatPrefix(pool)}: length must be ${pool.len} to 128`,
        );
      }
      const poolKey = formatPrefix(pool);
      const existing = await ownerAllocation(trx, req.owner, req.pool);
      if (existing !== undefined) {
        if (existing.pool_prefix === poolKey && Number(existing.prefix_len) === req.prefixLen) {
          return toAllocation(existing);
        }
        await releaseAllocation(trx, existing);
      }
      return this.claimFreeBlock(trx, req, pool, poolKey);
    });
  }

  findAllocation(accountId: number, pool: PoolName): Promise<Allocation | undefined> {
    return this.read('findAllocation', async (db) => {
      const row = await ownerAllocation(db, { accountId }, pool);
      return row && toAllocation(row);
    });
  }

  releaseLease(leaseId: string): Promise<number> {
    return this.write('releaseLease', async (trx) => {
      const rows = await trx.selectFrom('allocations').selectAll().where('lease_id', '=', leaseId).execute();
      for (const row of rows) await releaseAllocation(trx, row);
      return rows.length;
    });
  }

  poolUsage(): Promise<PoolUsage[]> {
    return this.read('poolUsage', async (db) => {
      const rows = await db
        .selectFrom('allocations')
        .select((eb) => ['pool', 'pool_prefix', eb.fn.countAll().as('blocks')])
        .groupBy(['pool', 'pool_prefix'])
        .orderBy('pool')
        .orderBy('pool_prefix')
        .execute();
      return rows.map((r) => ({ pool: r.pool as PoolName, poolPrefix: r.pool_prefix, blocks: Number(r.blocks) }));
    });
  }

  private async claimFreeBlock(
    trx: Kysely<Database>,
    req: AllocateRequest,
    pool: Prefix,
    poolKey: string,
  ): Promise<Allocation> {
    const len = req.prefixLen;
    const poolEnd = pool.start + blockSize(pool.len);
    const highest = await trx
      .selectFrom('prefix_claims')
      .select('addr_hex')
      .where('pool_prefix', '=', poolKey)
      .where('prefix_len', '=', len)
      .orderBy('addr_hex', 'desc')
      .limit(1)
      .executeTakeFirst();
    const cursor = highest === undefined ? pool.start : fromHex(highest.addr_hex) + blockSize(len);
    const ranges: [bigint, bigint][] =
      cursor > pool.start && cursor < poolEnd
        ? [
            [cursor, poolEnd],
            [pool.start, cursor],
          ]
        : [[pool.start, poolEnd]];
    for (const [from, to] of ranges) {
      // Just above the highest claim of this length nothing of this length is claimed: skip the first scan.
      let candidate =
        from === cursor && highest !== undefined ? from : await nextUnclaimed(trx, poolKey, len, from, to);
      while (candidate !== undefined) {
        const outcome = await tryClaim(trx, req, pool, poolKey, candidate, this.clock.now());
        if ('allocation' in outcome) return outcome.allocation;
        candidate = await nextUnclaimed(trx, poolKey, len, outcome.next, to);
      }
    }
    throw new BrokerError('POOL_EXHAUSTED', `pool ${req.pool} ${poolKey} has no free /${len} left`);
  }

  // ---- tunnels

  createTunnel(t: NewTunnel, at: number): Promise<TunnelRecord> {
    return this.write('createTunnel', async (trx) => {
      const row = await trx
        .insertInto('tunnels')
        .values({
          account_id: t.accountId,
          lease_id: t.leaseId,
          type: t.type,
          transport: t.transport,
          client_ipv4: t.clientIpv4,
          client_port: t.clientPort,
          server_ipv4: t.serverIpv4,
          server_ipv6: t.serverIpv6,
          client_ipv6: t.clientIpv6,
          prefix: t.prefix === null ? null : canonicalAddress(t.prefix),
          prefix_len: t.prefixLen,
          keepalive_interval: t.keepaliveInterval,
          lifetime_s: t.lifetimeS,
          state: 'offered',
          created_at: at,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      const record = await selectTunnel(trx, Number(row.id));
      if (record === undefined) throw new Error(`tunnel ${row.id} vanished inside its own transaction`);
      return record;
    });
  }

  /** offered -> established. Idempotent on an established tunnel; STORE_CONFLICT on an ended one (it timed out
   *  or was replaced before the accept was handled); STORE_NOT_FOUND on an unknown id. */
  establishTunnel(id: number, at: number): Promise<void> {
    return this.write('establishTunnel', async (trx) => {
      const row = await trx
        .updateTable('tunnels')
        .set({ state: 'established', established_at: at })
        .where('id', '=', id)
        .where('state', '=', 'offered')
        .returning('id')
        .executeTakeFirst();
      if (row !== undefined) return;
      const state = await tunnelState(trx, id);
      if (state === 'ended') throw new BrokerError('STORE_CONFLICT', `tunnel ${id} has already ended`);
    });
  }

  /** Idempotent: an ended tunnel keeps its first end time and reason. STORE_NOT_FOUND on an unknown id. */
  endTunnel(id: number, reason: EndReason, at: number): Promise<void> {
    return this.write('endTunnel', async (trx) => {
      const row = await trx
        .updateTable('tunnels')
        .set({ state: 'ended', ended_at: at, end_reason: reason })
        .where('id', '=', id)
        .where('state', '<>', 'ended')
        .returning('id')
        .executeTakeFirst();
      if (row === undefined) await tunnelState(trx, id);
    });
  }

  /** One transaction for the whole batch. The values replace the stored ones (they are the data plane's totals
   *  for the tunnel); a null lastSeenAt keeps the stored one. Ids the store does not know are ignored: the
   *  data plane may report a tunnel a moment after it ended, and one stray id must not lose the batch. */
  updateCounters(updates: CounterUpdate[]): Promise<void> {
    if (updates.length === 0) return Promise.resolve();
    return this.write('updateCounters', async (trx) => {
      for (const u of updates) {
        await trx
          .updateTable('tunnels')
          .set({
            rx_packets: u.rxPackets,
            rx_bytes: u.rxBytes,
            tx_packets: u.txPackets,
            tx_bytes: u.txBytes,
            ...(u.lastSeenAt === null ? {} : { last_seen_at: u.lastSeenAt }),
          })
          .where('id', '=', u.id)
          .execute();
      }
    });
  }

  getTunnel(id: number): Promise<TunnelRecord | undefined> {
    return this.read('getTunnel', (db) => selectTunnel(db, id));
  }

  /** Newest first (created_at, then id) unless f.sort and f.order say otherwise; ties by id in the same order. */
  listTunnels(f: TunnelFilter): Promise<Page<TunnelRecord>> {
    return this.read('listTunnels', async (db) => {
      const where = (eb: ExpressionBuilder<Database, 'tunnels' | 'accounts'>): Expression<SqlBool> => {
        const conds: Expression<SqlBool>[] = [];
        if (f.state === 'live') conds.push(eb('tunnels.state', 'in', ['offered', 'established']));
        else if (f.state !== undefined) conds.push(eb('tunnels.state', '=', f.state));
        if (f.accountId !== undefined) conds.push(eb('tunnels.account_id', '=', f.accountId));
        if (f.type !== undefined) conds.push(eb('tunnels.type', '=', f.type));
        if (f.search) {
          const like = likeSubstring(f.search);
          conds.push(
            eb.or(
              (['accounts.username', 'tunnels.client_ipv4', 'tunnels.client_ipv6', 'tunnels.prefix'] as const).map(
                (c) => sql<SqlBool>`lower(${eb.ref(c)}) like ${like} escape '\\'`,
              ),
            ),
          );
        }
        return eb.and(conds);
      };
      const dir = f.order === 'asc' ? 'asc' : 'desc';
      const key = {
        started: sql`${sql.ref('tunnels.created_at')}`,
        account: sql`coalesce(${sql.ref('accounts.username')}, '')`,
        type: sql`${sql.ref('tunnels.type')}`,
        traffic: sql`${sql.ref('tunnels.rx_bytes')} + ${sql.ref('tunnels.tx_bytes')}`,
      }[f.sort ?? 'started'];
      const { limit, offset } = page(f);
      const [count, rows] = await Promise.all([
        db
          .selectFrom('tunnels')
          .leftJoin('accounts', 'accounts.id', 'tunnels.account_id')
          .select((eb) => eb.fn.countAll().as('n'))
          .where(where)
          .executeTakeFirstOrThrow(),
        tunnelQuery(db).where(where).orderBy(key, dir).orderBy('tunnels.id', dir).limit(limit).offset(offset).execute(),
      ]);
      return { items: rows.map(toTunnel), total: Number(count.n) };
    });
  }

  /** The tunnels_state_created index finds the candidates: a tunnel that ended before `before` was also created
   *  before it. An anonymous tunnel's block is tied to it by lease_id, not a foreign key: the end releases
   *  it, but a lease still held by an ended tunnel would stay allocated forever once the row is gone, so it is
   *  released here (unless a live tunnel holds the same lease). Nothing else references tunnel rows. */
  pruneEndedTunnels(before: number, limit: number): Promise<number> {
    return this.write('pruneEndedTunnels', async (trx) => {
      const rows = await trx
        .selectFrom('tunnels')
        .select(['id', 'lease_id'])
        .where('state', '=', 'ended')
        .where('created_at', '<', before)
        .where('ended_at', '<', before)
        .orderBy('created_at')
        .limit(Math.max(0, Math.trunc(limit)))
        .execute();
      if (rows.length === 0) return 0;
      const leases = [...new Set(rows.flatMap((r) => (r.lease_id === null ? [] : [r.lease_id])))];
      if (leases.length > 0) {
        const held = await trx
          .selectFrom('allocations')
          .selectAll()
          .where('lease_id', 'in', leases)
          .where((eb) =>
            eb.not(
              eb.exists(
                eb
                  .selectFrom('tunnels')
                  .select('tunnels.id')
                  .whereRef('tunnels.lease_id', '=', 'allocations.lease_id')
                  .where('tunnels.state', '<>', 'ended'),
              ),
            ),
          )
          .execute();
        for (const row of held) await releaseAllocation(trx, row);
      }
      const r = await trx
        .deleteFrom('tunnels')
        .where(
          'id',
          'in',
          rows.map((x) => Number(x.id)),
        )
        .executeTakeFirst();
      return Number(r.numDeletedRows);
    });
  }

  // ---- audit

  addAudit(e: Omit<AuditEvent, 'id'>): Promise<void> {
    return this.write('addAudit', async (trx) => {
      await trx
        .insertInto('audit')
        .values({
          at: e.at,
          actor: e.actor,
          action: e.action,
          target: e.target,
          detail: e.detail === null ? null : JSON.stringify(e.detail),
        })
        .execute();
    });
  }

  pruneAudit(before: number, limit: number): Promise<number> {
    return this.write('pruneAudit', async (trx) => {
      const r = await trx
        .deleteFrom('audit')
        .where('id', 'in', (eb) =>
          eb
            .selectFrom('audit')
            .select('id')
            .where('at', '<', before)
            .orderBy('at')
            .orderBy('id')
            .limit(Math.max(0, Math.trunc(limit))),
        )
        .executeTakeFirst();
      return Number(r.numDeletedRows);
    });
  }

  /** Newest first (at, then id). `action` and `actor` match exactly, `actorContains` and `target` as
   *  case-insensitive substrings; `from` is inclusive, `to` exclusive. */
  listAudit(q: AuditFilter): Promise<Page<AuditEvent>> {
    return this.read('listAudit', async (db) => {
      const where = (eb: ExpressionBuilder<Database, 'audit'>): Expression<SqlBool> => {
        const conds: Expression<SqlBool>[] = [];
        if (q.action !== undefined) conds.push(eb('action', '=', q.action));
        if (q.actor !== undefined) conds.push(eb('actor', '=', q.actor));
        if (q.actorContains)
          conds.push(sql<SqlBool>`lower(${eb.ref('actor')}) like ${likeSubstring(q.actorContains)} escape '\\'`);
        if (q.target) conds.push(sql<SqlBool>`lower(${eb.ref('target')}) like ${likeSubstring(q.target)} escape '\\'`);
        if (q.from !== undefined) conds.push(eb('at', '>=', q.from));
        if (q.to !== undefined) conds.push(eb('at', '<', q.to));
        return eb.and(conds);
      };
      const { limit, offset } = page(q);
      const [count, rows] = await Promise.all([
        db
          .selectFrom('audit')
          .select((eb) => eb.fn.countAll().as('n'))
          .where(where)
          .executeTakeFirstOrThrow(),
        db
          .selectFrom('audit')
          .selectAll()
          .where(where)
          .orderBy('at', 'desc')
          .orderBy('id', 'desc')
          .limit(limit)
          .offset(offset)
          .execute(),
      ]);
      return { items: rows.map(toAuditEvent), total: Number(count.n) };
    });
  }

  // ---- admin API tokens and web sessions (schema version 2)

  createApiToken(
    t: { name: string; tokenHash: string; createdBy: string; expiresAt?: number | null },
    at: number,
  ): Promise<ApiToken> {
    return this.write('createApiToken', async (trx) => {
      const row = await trx
        .insertInto('api_tokens')
        .values({
          name: t.name,
          token_hash: t.tokenHash,
          created_by: t.createdBy,
          created_at: at,
          last_used_at: null,
          expires_at: t.expiresAt ?? null,
        })
        .onConflict((oc) => oc.column('name').doNothing())
        .returningAll()
        .executeTakeFirst();
      if (row === undefined) throw new BrokerError('STORE_CONFLICT', `a token named '${t.name}' already exists`);
      return toApiToken(row);
    });
  }

  listApiTokens(): Promise<ApiToken[]> {
    return this.read('listApiTokens', async (db) =>
      (await db.selectFrom('api_tokens').selectAll().orderBy('name').execute()).map(toApiToken),
    );
  }

  findApiToken(tokenHash: string): Promise<ApiToken | undefined> {
    return this.read('findApiToken', async (db) => {
      const row = await db.selectFrom('api_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
      return row && toApiToken(row);
    });
  }

  touchApiToken(id: number, at: number): Promise<void> {
    return this.write('touchApiToken', async (trx) => {
      await trx.updateTable('api_tokens').set({ last_used_at: at }).where('id', '=', id).execute();
    });
  }

  deleteApiToken(name: string): Promise<boolean> {
    return this.write('deleteApiToken', async (trx) => {
      const row = await trx.deleteFrom('api_tokens').where('name', '=', name).returning('id').executeTakeFirst();
      return row !== undefined;
    });
  }

  createWebSession(idHash: string, s: WebSession): Promise<void> {
    return this.write('createWebSession', async (trx) => {
      await trx
        .insertInto('web_sessions')
        .values({
          id_hash: idHash,
          account_id: s.accountId,
          csrf_token: s.csrfToken,
          created_at: s.createdAt,
          expires_at: s.expiresAt,
        })
        .execute();
    });
  }

  getWebSession(idHash: string, now: number): Promise<WebSession | undefined> {
    return this.read('getWebSession', async (db) => {
      const row = await db
        .selectFrom('web_sessions')
        .selectAll()
        .where('id_hash', '=', idHash)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return (
        row && {
          accountId: Number(row.account_id),
          csrfToken: row.csrf_token,
          createdAt: Number(row.created_at),
          expiresAt: Number(row.expires_at),
        }
      );
    });
  }

  deleteWebSession(idHash: string): Promise<void> {
    return this.write('deleteWebSession', async (trx) => {
      await trx.deleteFrom('web_sessions').where('id_hash', '=', idHash).execute();
    });
  }

  deleteExpiredWebSessions(now: number, limit?: number): Promise<number> {
    return this.write('deleteExpiredWebSessions', async (trx) => {
      const r = await trx
        .deleteFrom('web_sessions')
        .where((eb) =>
          limit === undefined
            ? eb('expires_at', '<=', now)
            : eb(
                'id_hash',
                'in',
                eb
                  .selectFrom('web_sessions')
                  .select('id_hash')
                  .where('expires_at', '<=', now)
                  .orderBy('expires_at')
                  .limit(limit),
              ),
        )
        .executeTakeFirst();
      return Number(r.numDeletedRows);
    });
  }

  // ---- traffic history (schema version 5)

  addTrafficSample(t: TrafficSampleRow): Promise<void> {
    return this.write('addTrafficSample', async (trx) => {
      await trx
        .insertInto('traffic_samples')
        .values({
          at: t.at,
          interval_ms: t.intervalMs,
          rx_bytes: t.rxBytes,
          tx_bytes: t.txBytes,
          rx_packets: t.rxPackets,
          tx_packets: t.txPackets,
        })
        .execute();
    });
  }

  /** By age first, then by count: the newest `keep` rows (by at, then id) stay. */
  pruneTrafficSamples(olderThan: number, keep: number): Promise<number> {
    return this.write('pruneTrafficSamples', async (trx) => {
      const old = await trx.deleteFrom('traffic_samples').where('at', '<', olderThan).executeTakeFirst();
      const cutoff = await trx
        .selectFrom('traffic_samples')
        .select('id')
        .orderBy('at', 'desc')
        .orderBy('id', 'desc')
        .limit(1)
        .offset(Math.max(0, Math.trunc(keep)))
        .executeTakeFirst();
      let extra = 0;
      if (cutoff !== undefined) {
        const edge = await trx
          .selectFrom('traffic_samples')
          .select(['at', 'id'])
          .where('id', '=', Number(cutoff.id))
          .executeTakeFirstOrThrow();
        const r = await trx
          .deleteFrom('traffic_samples')
          .where((eb) =>
            eb.or([
              eb('at', '<', Number(edge.at)),
              eb.and([eb('at', '=', Number(edge.at)), eb('id', '<=', Number(edge.id))]),
            ]),
          )
          .executeTakeFirst();
        extra = Number(r.numDeletedRows);
      }
      return Number(old.numDeletedRows) + extra;
    });
  }

  trafficHistory(from: number, to: number, bucketMs: number): Promise<TrafficBucket[]> {
    const bucket = Math.trunc(bucketMs);
    if (!(bucket >= 1)) throw new BrokerError('INTERNAL', 'trafficHistory: bucketMs must be >= 1');
    return this.read('trafficHistory', async (db) => {
      // integer division on both dialects (bigint / bigint); the bucket is a validated integer literal
      const b = sql<number | string>`${sql.ref('at')} / ${sql.lit(bucket)}`;
      const rows = await db
        .selectFrom('traffic_samples')
        .select([
          b.as('b'),
          (eb) => eb.fn.sum<number | string>('rx_bytes').as('rx'),
          (eb) => eb.fn.sum<number | string>('tx_bytes').as('tx'),
          (eb) => eb.fn.sum<number | string>('interval_ms').as('ms'),
        ])
        .where('at', '>=', from)
        .where('at', '<', to)
        .groupBy(b)
        .orderBy(b)
        .execute();
      return rows.map((r) => ({
        at: Number(r.b) * bucket,
        rxBytes: Number(r.rx),
        txBytes: Number(r.tx),
        intervalMs: Number(r.ms),
      }));
    });
  }

  // ---- plumbing

  /** Runs fn's calls on this store in one write transaction (Store.batch). Calls inside find the open
   *  transaction through AsyncLocalStorage and run in it instead of opening their own (which on SQLite would
   *  wait behind this one in the file's queue forever). A transient error or a lost race runs fn again. */
  batch<T>(fn: () => Promise<T>): Promise<T> {
    if (this.openBatch.getStore() !== undefined) return fn();
    return this.write('batch', (trx) => this.openBatch.run(trx, fn));
  }

  /** A read, with errors coded: inside a batch, on the batch's transaction. */
  private async read<T>(op: string, fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    try {
      return await fn(this.openBatch.getStore() ?? this.db);
    } catch (e) {
      throw storeError(op, e);
    }
  }

  /** A write transaction through the driver, run again after a transient error or a lost race. Inside a
   *  batch it runs on the batch's transaction, and a retry is the batch's to make. */
  private async write<T>(op: string, fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
    const open = this.openBatch.getStore();
    if (open !== undefined) {
      try {
        return await fn(open);
      } catch (e) {
        throw e instanceof RetryTransaction || this.driver.isTransient(e) ? e : storeError(op, e);
      }
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.driver.write(this.db, fn);
      } catch (e) {
        const again = e instanceof RetryTransaction || this.driver.isTransient(e);
        if (again && attempt < TRANSACTION_ATTEMPTS) continue;
        throw storeError(op, e);
      }
    }
  }
}

// ---- allocation helpers (all run inside the caller's write transaction)

type ClaimOutcome = { allocation: Allocation } | { next: bigint };

/** The first block start in [from, to) at length `len` with no claim row of that length (neither a block nor a
 *  split), or undefined. Blocks covered by a shorter allocated block are not filtered here: tryClaim finds them
 *  and says where to jump. */
async function nextUnclaimed(
  trx: Kysely<Database>,
  poolKey: string,
  len: number,
  from: bigint,
  to: bigint,
): Promise<bigint | undefined> {
  const step = blockSize(len);
  let candidate = from;
  for (;;) {
    if (candidate >= to) return undefined;
    const rows = await trx
      .selectFrom('prefix_claims')
      .select('addr_hex')
      .where('pool_prefix', '=', poolKey)
      .where('prefix_len', '=', len)
      .where('addr_hex', '>=', toHex(candidate))
      .where('addr_hex', '<', toHex(to))
      .orderBy('addr_hex')
      .limit(SCAN_BATCH)
      .execute();
    for (const row of rows) {
      if (fromHex(row.addr_hex) !== candidate) return candidate;
      candidate += step;
    }
    if (rows.length < SCAN_BATCH) return candidate < to ? candidate : undefined;
  }
}

/** Claims block `start`/req.prefixLen for req.owner, or says where to look next. See the comment above
 *  KyselyStore.allocate for the protocol. Leaves no trace when it does not succeed (savepoint). */
async function tryClaim(
  trx: Kysely<Database>,
  req: AllocateRequest,
  pool: Prefix,
  poolKey: string,
  start: bigint,
  now: number,
): Promise<ClaimOutcome> {
  const len = req.prefixLen;
  const addrHex = toHex(start);
  const ancestors = ancestorsOf(start, len, pool.len);
  await sql`savepoint claim_block`.execute(trx);
  const undo = async (): Promise<void> => {
    await sql`rollback to savepoint claim_block`.execute(trx);
    await sql`release savepoint claim_block`.execute(trx);
  };

  const owner = 'accountId' in req.owner ? req.owner : undefined;
  const lease = 'leaseId' in req.owner ? req.owner : undefined;
  const row = await trx
    .insertInto('allocations')
    .values({
      pool: req.pool,
      pool_prefix: poolKey,
      prefix: formatAddress(start),
      prefix_len: len,
      account_id: owner?.accountId ?? null,
      lease_id: lease?.leaseId ?? null,
      created_at: now,
    })
    .onConflict((oc) => oc.columns(owner ? ['account_id', 'pool'] : ['lease_id', 'pool']).doNothing())
    .returningAll()
    .executeTakeFirst();
  if (row === undefined) {
    // Another session of the same owner committed an allocation in this pool after we looked: start over, and
    // the existing-allocation check will return (or replace) the winner's block.
    await undo();
    throw new RetryTransaction('allocation race lost');
  }
  const allocationId = Number(row.id);

  if (ancestors.length > 0) {
    const splits = await trx
      .insertInto('prefix_claims')
      .values(
        ancestors.map((a) => ({
          pool_prefix: poolKey,
          prefix_len: a.len,
          addr_hex: toHex(a.start),
          kind: 'split' as const,
          children: 1,
          allocation_id: null,
        })),
      )
      .onConflict((oc) =>
        oc
          .columns(['pool_prefix', 'prefix_len', 'addr_hex'])
          .doUpdateSet((eb) => ({ children: eb('prefix_claims.children', '+', 1) }))
          .where('prefix_claims.kind', '=', 'split'),
      )
      .returning('prefix_len')
      .execute();
    if (splits.length !== ancestors.length) {
      await undo();
      // Inside an allocated shorter block: jump past the shortest one found (the biggest jump).
      const cover = await trx
        .selectFrom('prefix_claims')
        .select(['prefix_len', 'addr_hex'])
        .where('pool_prefix', '=', poolKey)
        .where('kind', '=', 'block')
        .where((eb) => isOneOf(eb, ancestors))
        .orderBy('prefix_len')
        .limit(1)
        .executeTakeFirst();
      const next = cover === undefined ? start : fromHex(cover.addr_hex) + blockSize(Number(cover.prefix_len));
      return { next: next > start ? next : start + blockSize(len) };
    }
  }

  const block = await trx
    .insertInto('prefix_claims')
    .values({
      pool_prefix: poolKey,
      prefix_len: len,
      addr_hex: addrHex,
      kind: 'block',
      children: 0,
      allocation_id: allocationId,
    })
    .onConflict((oc) => oc.columns(['pool_prefix', 'prefix_len', 'addr_hex']).doNothing())
    .returning('prefix_len')
    .executeTakeFirst();
  if (block === undefined) {
    await undo();
    return { next: start + blockSize(len) };
  }

  await sql`release savepoint claim_block`.execute(trx);
  return { allocation: toAllocation(row) };
}

/** Frees a block: its claim, the split counts of its ancestors (splits at zero go), and the allocation row. */
async function releaseAllocation(trx: Kysely<Database>, row: AllocationRow): Promise<void> {
  const pool = parsePrefix(row.pool_prefix);
  const len = Number(row.prefix_len);
  const block = parsePrefix(`${row.prefix}/${len}`);
  await trx
    .deleteFrom('prefix_claims')
    .where('pool_prefix', '=', row.pool_prefix)
    .where('prefix_len', '=', len)
    .where('addr_hex', '=', toHex(block.start))
    .where('kind', '=', 'block')
    .execute();
  const ancestors = ancestorsOf(block.start, len, pool.len);
  if (ancestors.length > 0) {
    await trx
      .updateTable('prefix_claims')
      .set((eb) => ({ children: eb('children', '-', 1) }))
      .where('pool_prefix', '=', row.pool_prefix)
      .where('kind', '=', 'split')
      .where((eb) => isOneOf(eb, ancestors))
      .execute();
    await trx
      .deleteFrom('prefix_claims')
      .where('pool_prefix', '=', row.pool_prefix)
      .where('kind', '=', 'split')
      .where('children', '<=', 0)
      .where((eb) => isOneOf(eb, ancestors))
      .execute();
  }
  await trx.deleteFrom('allocations').where('id', '=', Number(row.id)).execute();
}

function isOneOf(eb: ExpressionBuilder<Database, 'prefix_claims'>, nodes: Prefix[]): Expression<SqlBool> {
  return eb.or(
    nodes.map((n) =>
      eb.and([eb('prefix_claims.prefix_len', '=', n.len), eb('prefix_claims.addr_hex', '=', toHex(n.start))]),
    ),
  );
}

function ownerAllocation(
  db: Kysely<Database>,
  owner: AllocateRequest['owner'],
  pool: PoolName,
): Promise<AllocationRow | undefined> {
  const q = db.selectFrom('allocations').selectAll().where('pool', '=', pool);
  return (
    'accountId' in owner ? q.where('account_id', '=', owner.accountId) : q.where('lease_id', '=', owner.leaseId)
  ).executeTakeFirst();
}

// ---- tunnel helpers

function tunnelQuery(db: Kysely<Database>) {
  return db
    .selectFrom('tunnels')
    .leftJoin('accounts', 'accounts.id', 'tunnels.account_id')
    .selectAll('tunnels')
    .select('accounts.username');
}

async function selectTunnel(db: Kysely<Database>, id: number): Promise<TunnelRecord | undefined> {
  const row = await tunnelQuery(db).where('tunnels.id', '=', id).executeTakeFirst();
  return row && toTunnel(row);
}

/** The tunnel's state; STORE_NOT_FOUND if there is no such tunnel. */
async function tunnelState(db: Kysely<Database>, id: number): Promise<TunnelState> {
  const row = await db.selectFrom('tunnels').select('state').where('id', '=', id).executeTakeFirst();
  if (row === undefined) throw new BrokerError('STORE_NOT_FOUND', `no tunnel with id ${id}`);
  return row.state as TunnelState;
}

// ---- rows to records

function toAccount(r: AccountRow): Account {
  return {
    id: Number(r.id),
    username: r.username,
    role: r.role as Role,
    disabled: Number(r.disabled) !== 0,
    limits: JSON.parse(r.limits) as AccountLimits,
    webOnly: r.digest_ha1 === null,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

function toAllocation(r: AllocationRow): Allocation {
  return {
    id: Number(r.id),
    pool: r.pool as PoolName,
    prefix: r.prefix,
    prefixLen: Number(r.prefix_len),
    accountId: nullableNumber(r.account_id),
    leaseId: r.lease_id,
    createdAt: Number(r.created_at),
  };
}

function toTunnel(r: TunnelRow): TunnelRecord {
  return {
    id: Number(r.id),
    accountId: nullableNumber(r.account_id),
    username: r.username,
    leaseId: r.lease_id,
    type: r.type as TunnelRecord['type'],
    transport: r.transport as TunnelRecord['transport'],
    clientIpv4: r.client_ipv4,
    clientPort: Number(r.client_port),
    serverIpv4: r.server_ipv4,
    serverIpv6: r.server_ipv6,
    clientIpv6: r.client_ipv6,
    prefix: r.prefix,
    prefixLen: nullableNumber(r.prefix_len),
    keepaliveInterval: Number(r.keepalive_interval),
    lifetimeS: Number(r.lifetime_s),
    state: r.state as TunnelState,
    createdAt: Number(r.created_at),
    establishedAt: nullableNumber(r.established_at),
    endedAt: nullableNumber(r.ended_at),
    endReason: r.end_reason as EndReason | null,
    lastSeenAt: nullableNumber(r.last_seen_at),
    rxPackets: Number(r.rx_packets),
    rxBytes: Number(r.rx_bytes),
    txPackets: Number(r.tx_packets),
    txBytes: Number(r.tx_bytes),
  };
}

function toAuditEvent(r: AuditRow): AuditEvent {
  return {
    id: Number(r.id),
    at: Number(r.at),
    actor: r.actor,
    action: r.action,
    target: r.target,
    detail: r.detail === null ? null : (JSON.parse(r.detail) as Record<string, unknown>),
  };
}

function toApiToken(r: Selectable<ApiTokensTable>): ApiToken {
  return {
    id: Number(r.id),
    name: r.name,
    createdBy: r.created_by,
    createdAt: Number(r.created_at),
    lastUsedAt: nullableNumber(r.last_used_at),
    expiresAt: nullableNumber(r.expires_at),
  };
}

function nullableNumber(v: number | string | null): number | null {
  return v === null ? null : Number(v);
}

// ---- small pure helpers

/** A DIGEST-MD5 secret is meaningless without its realm, and a realm without a secret is a mistake. */
function checkDigestPair(p: PasswordSecrets): void {
  if ((p.digestHa1 === null) !== (p.digestRealm === null))
    throw new BrokerError('INTERNAL', 'digestHa1 and digestRealm must both be set or both be null');
}

/** limit defaults to DEFAULT_PAGE and is clamped to 0..MAX_PAGE; offset to >= 0. */
function page(q: { limit?: number; offset?: number }): { limit: number; offset: number } {
  const limit = Math.min(MAX_PAGE, Math.max(0, Math.trunc(q.limit ?? DEFAULT_PAGE)));
  const offset = Math.max(0, Math.trunc(q.offset ?? 0));
  return { limit: Number.isFinite(limit) ? limit : DEFAULT_PAGE, offset: Number.isFinite(offset) ? offset : 0 };
}

/** A LIKE pattern matching `text` as a lower-cased substring, with \ % _ escaped (ESCAPE '\'). */
function likeSubstring(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
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
