/** @module store/lease-chunks: anonymous leases cut from chunks the node already holds, so a lease is one row
 *  written and one row deleted instead of a walk of the pool's buddy tree (allocator.ts).
 *
 *  An anonymous /64 from a /33 pool costs the buddy allocator an upsert of 31 split rows to claim and as many
 *  updates to release, and on PostgreSQL every claim and release of a pool queues on the pool's root row. A
 *  reconnect storm is all anonymous claims and releases. So the node claims a chunk (CHUNK_BITS shorter than
 *  the lease: 256 /64s in a /56) through the buddy allocator, once, as an allocation of its own with lease_id
 *  'chunk:<node>:<uuid>', and hands out the leases inside it from memory:
 *    - a lease is an allocations row with chunk_id naming the chunk; the unique index (chunk_id, prefix) is what
 *      keeps two leases of a chunk apart, whatever memory believes (a conflict marks the slot used and moves
 *      on), so memory is a hint that is right almost always, and the rows are the truth;
 *    - memory changes with the rows only: a slot taken is given back if the transaction rolls back, a slot
 *      released is reused only after the release commits (Runner's TxHooks);
 *    - a slot may also be reserved, in memory only, for an anonymous offer waiting for its accept
 *      (broker/pending-offer.ts): the accept's transaction writes its row (insertReserved), or the slot is
 *      given back (unreserve); a chunk with a reserved slot is never given back to the pool;
 *    - a new chunk is claimed in a transaction of its own (detached from the session's batch, whose rollback
 *      must not take a chunk that other sessions' leases already point at), ahead of need when the free slots
 *      run low; a session that finds none free takes the buddy allocator's path meanwhile;
 *    - an empty chunk goes back to the pool when at least two chunks' worth of slots are free elsewhere, so
 *      a storm's chunks return and accounts can have the space; the release checks in the same transaction
 *      that no lease names it;
 *    - on the first lease after a start, the node's chunks and their leases are read back from the rows.
 *  A pool too small for chunks (under 2^12 leases of that length) always takes the buddy allocator's path.
 *  A lease released by another process (the CLI's tunnel kill) frees its row; this process's memory keeps the
 *  slot taken until its next start: never a double allocation, at worst a slot idle for a while.
 *  Which node a chunk belongs to is its lease_id: 'local' on SQLite (one broker a file), the host name on
 *  PostgreSQL so several brokers on one database each use their own (issue 12's node id will replace it; a
 *  node whose name changes leaves its old chunks behind until a node registry can give them back). */

import { randomUUID } from 'node:crypto';
import { sql, type SqlBool } from 'kysely';
import type { Clock } from '../clock.js';
import { BrokerError } from '../errors.js';
import {
  CHUNK_BITS,
  ChunkSet,
  HELD,
  SLOTS,
  heldOf,
  type Chunk,
  type Held,
  type HeldReservation,
} from './lease-chunk-set.js';
import type { AllocateRequest, Allocation, LeaseReservation } from './types.js';
import * as allocator from './allocator.js';
import type { AllocationRow, TransactionHandle } from './allocator.js';
import { blockSize, formatAddress, formatPrefix, parsePrefix } from './prefix.js';
import { likePrefix, type Runner, type TxHooks } from './kysely/runner.js';
import { param, prepared } from './kysely/prepared.js';

/** Every chunk's lease_id starts with this, then the node and a UUID (poolUsage leaves chunks out by it). */
export const CHUNK_LEASE_PREFIX = 'chunk:';
export { CHUNK_BITS } from './lease-chunk-set.js';
/** A pool must hold at least 2^MIN_POOL_BITS leases of a length for chunks of it (16 chunks at least). */
const MIN_POOL_BITS = CHUNK_BITS + 4;
/** Claim the next chunk when fewer slots than this are free. */
const LOW_WATER = SLOTS / 2;
/** After the pool could not give a chunk, wait this long before asking again. */
const EXHAUSTED_BACKOFF_MS = 10_000;
/** Slots tried per lease before leaving it to the buddy allocator (each failure is a row memory missed). */
const TRIES = 4;

export class LeaseChunks {
  private readonly sets = new Map<string, ChunkSet>();
  private readonly owner: string;

  constructor(
    private readonly run: Runner,
    private readonly clock: Clock,
    nodeId: string,
  ) {
    this.owner = `${CHUNK_LEASE_PREFIX}${nodeId}:`;
  }

  /** A lease for req.owner (a leaseId) from one of the node's chunks, or undefined when the buddy allocator
   *  must serve it (no chunk has a free slot yet, the pool is too small for chunks, or the lease holds a row
   *  in that pool already). */
  async allocate(trx: TransactionHandle, hooks: TxHooks, req: AllocateRequest): Promise<Allocation | undefined> {
    if (!('leaseId' in req.owner)) return undefined;
    const set = this.setFor(req);
    if (set === undefined) return undefined;
    if (!set.loaded) {
      // being read back by another transaction: the buddy allocator serves meanwhile (waiting for it here, while
      // this transaction holds a connection, could leave that load none on PostgreSQL)
      if (set.loading !== undefined) return undefined;
      // a load that failed (a lost connection) is tried again by the next lease, not remembered
      await (set.loading = this.load(trx, set).catch((e: unknown) => {
        set.loading = undefined;
        throw e;
      }));
    }
    for (let i = 0; i < TRIES; i++) {
      const pick = set.take();
      if (set.free < LOW_WATER) this.refill(set);
      if (pick === undefined) return undefined;
      const { chunk, slot } = pick;
      hooks.onRollback(() => set.unmark(chunk, slot));
      const row = await insertLease(trx, req, set, chunk, slot, this.clock.now());
      if (row !== undefined) return allocator.toAllocation(row);
      // a row memory did not know: the slot is taken (it stays marked), or the lease has a row in this pool
      if ((await allocator.ownerRow(trx, req.owner, req.pool)) !== undefined) {
        set.unmark(chunk, slot);
        return undefined;
      }
    }
    return undefined;
  }

  /** Memory follows leases released in `trx`: their slots are free once it commits. */
  released(rows: readonly AllocationRow[], hooks: TxHooks): void {
    for (const row of rows) {
      if (row.chunk_id === null) continue;
      const set = this.sets.get(setKey(row.pool_prefix, Number(row.prefix_len)));
      const chunk = set?.byId.get(Number(row.chunk_id));
      if (set === undefined || chunk === undefined) continue;
      const slot = set.slotOf(chunk, startOf(row.prefix, set.leaseLen));
      hooks.onCommit(() => {
        set.unmark(chunk, slot);
        if (chunk.usedCount === 0 && set.free - SLOTS >= 2 * SLOTS) this.retire(set, chunk);
      });
    }
  }

  /** A free slot of one of the node's chunks, held for req.owner (a leaseId) in memory only: no row is written
   *  until `insertReserved` (the accept's transaction); `unreserve` gives it back. Undefined when the write path
   *  (allocate) must serve the lease: the chunks of that pool and length are not read back yet (this call
   *  starts that), none has a free slot, or the pool is too small for chunks. */
  reserve(req: AllocateRequest): HeldReservation | undefined {
    if (!('leaseId' in req.owner)) return undefined;
    const set = this.setFor(req);
    if (set === undefined) return undefined;
    if (!set.loaded) {
      // read the rows back now, in a transaction of its own (one snapshot); no lease of this set is handed out
      // from memory before they are
      set.loading ??= this.run
        .detached(() => this.run.write('loadChunks', (trx) => this.load(trx, set)))
        .catch((e: unknown) => {
          set.loading = undefined;
          throw e;
        });
      set.loading.catch(() => undefined);
      return undefined;
    }
    const pick = set.take();
    if (set.free < LOW_WATER) this.refill(set);
    if (pick === undefined) return undefined;
    const address = pick.chunk.start + BigInt(pick.slot) * blockSize(set.leaseLen);
    const held: Held = { set, chunk: pick.chunk, slot: pick.slot, state: 'reserved' };
    return {
      pool: req.pool,
      leaseId: req.owner.leaseId,
      prefix: formatAddress(address),
      prefixLen: set.leaseLen,
      [HELD]: held,
    };
  }

  /** Gives a reservation's slot back (idempotent; nothing once its row committed: releaseLease frees that). */
  unreserve(r: LeaseReservation): void {
    const held = heldOf(r);
    if (held.state !== 'reserved') return;
    held.state = 'returned';
    const { set, chunk, slot } = held;
    set.unmark(chunk, slot);
    if (chunk.usedCount === 0 && set.free - SLOTS >= 2 * SLOTS) this.retire(set, chunk);
  }

  /** Writes a reservation's lease row in `trx`; once that commits the row holds the slot (releaseLease frees
   *  it). STORE_CONFLICT when the slot has a row memory did not know of, or the reservation was given back. */
  async insertReserved(trx: TransactionHandle, hooks: TxHooks, r: LeaseReservation, now: number): Promise<Allocation> {
    const held = heldOf(r);
    if (held.state !== 'reserved') throw new BrokerError('STORE_CONFLICT', `lease ${r.leaseId} is no longer reserved`);
    const req: AllocateRequest = {
      pool: r.pool,
      poolPrefix: held.set.poolKey,
      prefixLen: r.prefixLen,
      owner: { leaseId: r.leaseId },
    };
    const row = await insertLease(trx, req, held.set, held.chunk, held.slot, now);
    if (row === undefined) {
      // a row memory did not know of holds the slot: it stays marked, and giving the reservation back is nothing
      held.state = 'returned';
      throw new BrokerError('STORE_CONFLICT', `the slot of ${r.prefix}/${r.prefixLen} is taken`);
    }
    hooks.onCommit(() => (held.state = 'written'));
    return allocator.toAllocation(row);
  }

  /** Gives back the node's chunks in `poolPrefix` cut for leases of another length than `leaseLen` that no
   *  lease names (left by the other pools.linkMode: its leases end with their tunnels, and nothing here loads
   *  chunks of a length no longer leased, so they would stay claimed for good); returns how many went. A chunk
   *  this handle has in memory is kept; the start calls it before any lease. */
  async releaseOtherChunks(poolPrefix: string, leaseLen: number): Promise<number> {
    const pool = parsePrefix(poolPrefix);
    const inMemory = new Set([...this.sets.values()].flatMap((set) => [...set.byId.keys()]));
    return this.run.write('releaseOtherChunks', async (trx) => {
      const stale = await trx
        .selectFrom('allocations as c')
        .selectAll('c')
        .where('c.pool_prefix', '=', formatPrefix(pool))
        .where('c.prefix_len', '!=', leaseLen - CHUNK_BITS)
        .where(sql<SqlBool>`c.lease_id like ${likePrefix(this.owner)} escape '\\'`)
        .where(({ not, exists, selectFrom }) =>
          not(exists(selectFrom('allocations as l').select('l.id').whereRef('l.chunk_id', '=', 'c.id'))),
        )
        .execute();
      const gone = stale.filter((c) => !inMemory.has(Number(c.id)));
      for (const c of gone) await allocator.releaseRow(trx, c);
      return gone.length;
    });
  }

  private setFor(req: AllocateRequest): ChunkSet | undefined {
    let set = this.sets.get(setKey(req.poolPrefix, req.prefixLen));
    if (set === undefined) {
      const pool = parsePrefix(req.poolPrefix); // CFG_INVALID for a bad pool, as from the buddy allocator
      if (req.prefixLen > 128 || req.prefixLen - pool.len < MIN_POOL_BITS) return undefined;
      // keyed by the text as given (the common case is the same text every time) and by the canonical one,
      // which is what rows hold and what released() looks up
      const key = setKey(formatPrefix(pool), req.prefixLen);
      set = this.sets.get(key) ?? new ChunkSet(req.pool, pool, formatPrefix(pool), req.prefixLen);
      this.sets.set(key, set);
      this.sets.set(setKey(req.poolPrefix, req.prefixLen), set);
    }
    return set;
  }

  /** The node's chunks of this set and the leases in them, from the rows. */
  private async load(trx: TransactionHandle, set: ChunkSet): Promise<void> {
    const chunks = await trx
      .selectFrom('allocations')
      .select(['id', 'prefix'])
      .where('pool_prefix', '=', set.poolKey)
      .where('prefix_len', '=', set.chunkLen)
      // LIKE, not a range: under PostgreSQL's language collations ':' and ';' do not sort as bytes do
      .where(sql<SqlBool>`lease_id like ${likePrefix(this.owner)} escape '\\'`)
      .execute();
    const leases = chunks.length
      ? await trx
          .selectFrom('allocations')
          .select(['chunk_id', 'prefix'])
          .where(
            'chunk_id',
            'in',
            chunks.map((c) => Number(c.id)),
          )
          .execute()
      : [];
    for (const c of chunks) set.add(Number(c.id), startOf(c.prefix, set.chunkLen));
    for (const l of leases) {
      const chunk = set.byId.get(Number(l.chunk_id))!;
      set.mark(chunk, set.slotOf(chunk, startOf(l.prefix, set.leaseLen)));
    }
    set.loaded = true;
  }

  /** Claims one more chunk for `set`, in a transaction of its own, unless one is on its way. */
  private refill(set: ChunkSet): void {
    if (set.refilling || this.clock.now() < set.noChunksUntil) return;
    set.refilling = true;
    const claim = this.run.detached(() =>
      this.run.write('leaseChunk', async (trx, hooks) => {
        const a = await allocator.allocate(
          trx,
          {
            pool: set.poolName,
            poolPrefix: set.poolKey,
            prefixLen: set.chunkLen,
            owner: { leaseId: `${this.owner}${randomUUID()}` },
          },
          this.clock.now(),
        );
        hooks.onCommit(() => set.add(a.id, startOf(a.prefix, a.prefixLen)));
      }),
    );
    claim
      .catch(() => {
        // the pool has no chunk left (the buddy allocator still serves single leases: POOL_EXHAUSTED), or the
        // store failed: either way, not again for a while
        set.noChunksUntil = this.clock.now() + EXHAUSTED_BACKOFF_MS;
      })
      .finally(() => (set.refilling = false));
  }

  /** Gives an empty chunk back to the pool, in a transaction of its own that checks no lease names it. */
  private retire(set: ChunkSet, chunk: Chunk): void {
    chunk.retiring = true;
    void this.run
      .detached(() =>
        this.run.write('retireChunk', async (trx, hooks) => {
          const leased = await trx
            .selectFrom('allocations')
            .select('id')
            .where('chunk_id', '=', chunk.id)
            .limit(1)
            .executeTakeFirst();
          const row = await trx.selectFrom('allocations').selectAll().where('id', '=', chunk.id).executeTakeFirst();
          if (leased !== undefined || row === undefined) {
            hooks.onCommit(() => (chunk.retiring = false));
            return;
          }
          await allocator.releaseRow(trx, row);
          hooks.onCommit(() => set.remove(chunk));
        }),
      )
      .catch(() => (chunk.retiring = false));
  }
}

/** The first address of a block as a row holds it (its canonical address text and its length). */
function startOf(prefix: string, len: number): bigint {
  return parsePrefix(`${prefix}/${len}`).start;
}

function setKey(poolPrefix: string, leaseLen: number): string {
  return `${poolPrefix}|${leaseLen}`;
}

/** The lease's row in `slot` of `chunk`, or undefined when a row conflicts (the slot, or the lease's own row). */
async function insertLease(
  trx: TransactionHandle,
  req: AllocateRequest,
  set: ChunkSet,
  chunk: Chunk,
  slot: number,
  now: number,
): Promise<AllocationRow | undefined> {
  const row = {
    pool: req.pool,
    pool_prefix: set.poolKey,
    prefix: formatAddress(chunk.start + BigInt(slot) * blockSize(set.leaseLen)),
    prefix_len: set.leaseLen,
    account_id: null,
    lease_id: (req.owner as { leaseId: string }).leaseId,
    chunk_id: chunk.id,
    created_at: now,
  };
  // the row is built from what was written: returning every column costs more than the id alone
  const inserted = await insertLeaseRow.first(trx, row);
  return inserted === undefined ? undefined : { id: inserted.id, ...row };
}

const insertLeaseRow = prepared<
  'pool' | 'pool_prefix' | 'prefix' | 'prefix_len' | 'lease_id' | 'chunk_id' | 'created_at',
  { id: number | string }
>((db) =>
  db
    .insertInto('allocations')
    .values({
      pool: param('pool'),
      pool_prefix: param('pool_prefix'),
      prefix: param('prefix'),
      prefix_len: param('prefix_len'),
      account_id: null,
      lease_id: param('lease_id'),
      chunk_id: param('chunk_id'),
      created_at: param('created_at'),
    })
    .onConflict((oc) => oc.doNothing())
    .returning('id'),
);
