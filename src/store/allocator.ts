/** @module store/allocator: the buddy allocator of address blocks, as functions over a transaction the caller
 *  holds, so one transaction can draw several blocks (or release some and draw others) and commit them together.
 *  Every function that writes takes a TransactionHandle on an open write transaction and never commits, rolls
 *  back or opens a connection of its own; calls on one handle must be awaited one after another (a claim uses a
 *  savepoint on that handle). Same SQL on SQLite and PostgreSQL. Imports only errors and the store's modules.
 *
 *  Each pool is a binary tree of prefixes; prefix_claims holds the claimed nodes, keyed by
 *  (pool_prefix, prefix_len, addr_hex): the primary key is the constraint that forbids overlaps:
 *    'block' P/L   the allocated block itself;
 *    'split' A/k   for every ancestor poolLen <= k < L of an allocated block, with `children` = how many
 *                  blocks lie inside it (a reference count, so release knows when the row is no longer needed).
 *  Claiming P/L, inside the caller's transaction and a savepoint per candidate:
 *    1. insert the allocations row, ON CONFLICT (owner, pool) DO NOTHING. No row back: another session of the
 *       same owner committed first: throw RetryTransaction, and the caller's runner rolls back and runs the
 *       transaction again, which then finds (or replaces) the winner's row.
 *    2. upsert a 'split' for every ancestor (insert with children 1, or on conflict children + 1 but only WHERE
 *       the existing row is a split). Fewer rows back than ancestors: an ancestor is a 'block', i.e. P lies
 *       inside an allocated bigger block: roll back to the savepoint, jump past that block.
 *    3. insert the 'block' P/L, ON CONFLICT DO NOTHING. No row back: P/L is a block already, or a 'split'
 *       because a smaller block inside it exists: roll back to the savepoint, try the next block.
 *  Any two overlapping blocks share a node (the longer one's ancestor at the shorter one's length is the
 *  shorter one), and one of them would have to write that node as 'block' while the other needs it as
 *  'split', so the constraint rejects the second whatever the interleaving; the checks are never
 *  read-then-write. On PostgreSQL the pool's root split row is updated by every allocation, which also
 *  queues concurrent allocators of one pool behind each other.
 *
 *  Candidate choice (a hint only; the constraints decide): next-fit from just above the highest claim of that
 *  length in the pool, wrapping around to a first-fit scan from the pool start. The scan reads the claims at
 *  length L in address order (the primary key's index) and stops at the first gap, so its cost grows with
 *  the claims present, never with the size of the pool (a /64 of /128s has 2^64 candidates). Next-fit also
 *  means a released block is handed out again only after the pool wraps, so a prefix does not go to a new
 *  owner right after the old one let it go. Both loops advance strictly, so they end; when both find nothing
 *  the pool is exhausted for that length.
 *
 *  Release: delete the block claim, decrement the ancestors' split counts and delete the splits at zero.
 *  Anonymous leases mostly come from chunks the node holds (lease-chunks.ts), one row each, not from here. */

import { sql, type Expression, type ExpressionBuilder, type Kysely, type Selectable, type SqlBool } from 'kysely';
import { BrokerError } from '../errors.js';
import type { AllocateRequest, Allocation } from './types.js';
import type { AllocationsTable, Database } from './schema.js';
import {
  ancestorsOf,
  blockSize,
  formatAddress,
  formatPrefix,
  fromHex,
  parsePrefix,
  toHex,
  type Prefix,
} from './prefix.js';
import { RetryTransaction } from './kysely/runner.js';
import { holds, ownerRow, toAllocation } from './allocation-rows.js';

export { findAllocation, heldBlock, ownerRow, toAllocation } from './allocation-rows.js';
import { param, prepared } from './kysely/prepared.js';

/** A handle on an open write transaction: a Kysely Transaction (PostgreSQL), or the connection SQLite's driver
 *  has begun a transaction on. Any Kysely<Database> works for the read-only functions. */
export type TransactionHandle = Kysely<Database>;

export type Owner = AllocateRequest['owner'];

/** Rows read per query while scanning for the next unclaimed block. */
const SCAN_BATCH = 256;

export type AllocationRow = Selectable<AllocationsTable>;
type ClaimOutcome = { allocation: Allocation } | { next: bigint };

/** Gives req.owner a block of req.prefixLen in req.poolPrefix: the one it holds there already (an account's
 *  block is sticky), or a free one, replacing a block of another length it held in that pool (unless
 *  req.keepHeld: then that block is returned as it is). Throws
 *  POOL_EXHAUSTED when no block of that length is free (leaving the transaction as it was, still usable),
 *  CFG_INVALID for a length the pool cannot give, RetryTransaction when the owner's race was lost. */
export async function allocate(trx: TransactionHandle, req: AllocateRequest, now: number): Promise<Allocation> {
  const pool = parsePrefix(req.poolPrefix);
  if (!Number.isInteger(req.prefixLen) || req.prefixLen < pool.len || req.prefixLen > 128) {
    throw new BrokerError(
      'CFG_INVALID',
      `cannot cut a /${req.prefixLen} from pool ${formatPrefix(pool)}: length must be ${pool.len} to 128`,
    );
  }
  const poolKey = formatPrefix(pool);
  const existing = await ownerRow(trx, req.owner, req.pool);
  if (existing !== undefined) {
    if (holds(existing, poolKey, req)) return toAllocation(existing);
    await releaseRow(trx, existing);
  }
  return claimFreeBlock(trx, req, pool, poolKey, now);
}

/** Frees every block of an anonymous lease; returns their rows (for lease-chunks.ts's memory). */
export async function releaseLease(trx: TransactionHandle, leaseId: string): Promise<AllocationRow[]> {
  const rows = await leaseRows.execute(trx, { id: leaseId });
  for (const row of rows) await releaseRow(trx, row);
  return rows;
}

const leaseRows = prepared<'id', AllocationRow>((db) =>
  db.selectFrom('allocations').selectAll().where('lease_id', '=', param<string>('id')),
);
const deleteRow = prepared<'id', unknown>((db) => db.deleteFrom('allocations').where('id', '=', param<number>('id')));

/** Frees every block of an account (before it is deleted); returns how many. */
export async function releaseAccount(trx: TransactionHandle, accountId: number): Promise<number> {
  const rows = await trx.selectFrom('allocations').selectAll().where('account_id', '=', accountId).execute();
  for (const row of rows) await releaseRow(trx, row);
  return rows.length;
}

// ---- claiming

/** Next-fit from just above the highest claim of this length, then first-fit from the pool start. */
async function claimFreeBlock(
  trx: TransactionHandle,
  req: AllocateRequest,
  pool: Prefix,
  poolKey: string,
  now: number,
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
    let candidate = from === cursor && highest !== undefined ? from : await nextUnclaimed(trx, poolKey, len, from, to);
    while (candidate !== undefined) {
      const outcome = await tryClaim(trx, req, pool, poolKey, candidate, now);
      if ('allocation' in outcome) return outcome.allocation;
      candidate = await nextUnclaimed(trx, poolKey, len, outcome.next, to);
    }
  }
  throw new BrokerError('POOL_EXHAUSTED', `pool ${req.pool} ${poolKey} has no free /${len} left`);
}

/** The first block start in [from, to) at length `len` with no claim row of that length (neither a block nor a
 *  split), or undefined. Blocks covered by a shorter allocated block are not filtered here: tryClaim finds them
 *  and says where to jump. */
async function nextUnclaimed(
  trx: TransactionHandle,
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

/** Claims block `start`/req.prefixLen for req.owner (steps 1 to 3 of the module comment), or says where to look
 *  next. Leaves no trace when it does not succeed (savepoint). */
async function tryClaim(
  trx: TransactionHandle,
  req: AllocateRequest,
  pool: Prefix,
  poolKey: string,
  start: bigint,
  now: number,
): Promise<ClaimOutcome> {
  const len = req.prefixLen;
  const ancestors = ancestorsOf(start, len, pool.len);
  await sql`savepoint claim_block`.execute(trx);
  const undo = async (): Promise<void> => {
    await sql`rollback to savepoint claim_block`.execute(trx);
    await sql`release savepoint claim_block`.execute(trx);
  };

  const row = await insertAllocationRow(trx, req, poolKey, start, now);
  if (row === undefined) {
    // Another session of the same owner committed an allocation in this pool after we looked: start over, and
    // the existing-allocation check will return (or replace) the winner's block.
    await undo();
    throw new RetryTransaction('allocation race lost');
  }
  if (!(await claimSplits(trx, poolKey, ancestors))) {
    await undo();
    const next = await endOfCoveringBlock(trx, poolKey, ancestors);
    return { next: next !== undefined && next > start ? next : start + blockSize(len) };
  }
  if (!(await claimBlock(trx, poolKey, len, start, Number(row.id)))) {
    await undo();
    return { next: start + blockSize(len) };
  }
  await sql`release savepoint claim_block`.execute(trx);
  return { allocation: toAllocation(row) };
}

/** Step 1: the owner's allocations row, or undefined when the owner already has one in that pool. */
function insertAllocationRow(
  trx: TransactionHandle,
  req: AllocateRequest,
  poolKey: string,
  start: bigint,
  now: number,
): Promise<AllocationRow | undefined> {
  const account = 'accountId' in req.owner ? req.owner : undefined;
  const lease = 'leaseId' in req.owner ? req.owner : undefined;
  return trx
    .insertInto('allocations')
    .values({
      pool: req.pool,
      pool_prefix: poolKey,
      prefix: formatAddress(start),
      prefix_len: req.prefixLen,
      account_id: account?.accountId ?? null,
      lease_id: lease?.leaseId ?? null,
      created_at: now,
    })
    .onConflict((oc) => oc.columns(account ? ['account_id', 'pool'] : ['lease_id', 'pool']).doNothing())
    .returningAll()
    .executeTakeFirst();
}

/** Step 2: a split row (or one more child on it) for every ancestor; false when one of them is a block. */
async function claimSplits(trx: TransactionHandle, poolKey: string, ancestors: Prefix[]): Promise<boolean> {
  if (ancestors.length === 0) return true;
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
  return splits.length === ancestors.length;
}

/** Where the shortest allocated block among `ancestors` ends (the biggest jump past it), if there is one. */
async function endOfCoveringBlock(
  trx: TransactionHandle,
  poolKey: string,
  ancestors: Prefix[],
): Promise<bigint | undefined> {
  const cover = await trx
    .selectFrom('prefix_claims')
    .select(['prefix_len', 'addr_hex'])
    .where('pool_prefix', '=', poolKey)
    .where('kind', '=', 'block')
    .where((eb) => isOneOf(eb, ancestors))
    .orderBy('prefix_len')
    .limit(1)
    .executeTakeFirst();
  return cover && fromHex(cover.addr_hex) + blockSize(Number(cover.prefix_len));
}

/** Step 3: the block row itself; false when that node is claimed already (as a block or a split). */
async function claimBlock(
  trx: TransactionHandle,
  poolKey: string,
  len: number,
  start: bigint,
  allocationId: number,
): Promise<boolean> {
  const block = await trx
    .insertInto('prefix_claims')
    .values({
      pool_prefix: poolKey,
      prefix_len: len,
      addr_hex: toHex(start),
      kind: 'block',
      children: 0,
      allocation_id: allocationId,
    })
    .onConflict((oc) => oc.columns(['pool_prefix', 'prefix_len', 'addr_hex']).doNothing())
    .returning('prefix_len')
    .executeTakeFirst();
  return block !== undefined;
}

// ---- releasing and reading

/** Frees a block: its claim, the split counts of its ancestors (splits at zero go), and the allocation row. */
export async function releaseRow(trx: TransactionHandle, row: AllocationRow): Promise<void> {
  // a lease cut from a chunk (lease-chunks.ts): the chunk holds the claims, the row is all there is
  if (row.chunk_id !== null) return void (await deleteRow.execute(trx, { id: Number(row.id) }));
  const pool = parsePrefix(row.pool_prefix);
  const len = Number(row.prefix_len);
  const block = parsePrefix(`${row.prefix}/${len}`);
  const ancestors = ancestorsOf(block.start, len, pool.len);
  const decrement = (nodes: Prefix[]) =>
    trx
      .updateTable('prefix_claims')
      .set((eb) => ({ children: eb('children', '-', 1) }))
      .where('pool_prefix', '=', row.pool_prefix)
      .where('kind', '=', 'split')
      .where((eb) => isOneOf(eb, nodes))
      .execute();
  // The pool's root split before anything else, alone: a claim locks it first too (its split upsert lists the
  // ancestors shortest first), so a release and a claim queue on the root instead of each holding a row the
  // other wants (the freed block, or a deeper split: an UPDATE of several rows locks them in heap order). On
  // PostgreSQL that was a deadlock, broken only after deadlock_timeout (1 s), under a storm of anonymous sessions.
  if (ancestors.length > 0) await decrement(ancestors.slice(0, 1));
  await trx
    .deleteFrom('prefix_claims')
    .where('pool_prefix', '=', row.pool_prefix)
    .where('prefix_len', '=', len)
    .where('addr_hex', '=', toHex(block.start))
    .where('kind', '=', 'block')
    .execute();
  if (ancestors.length > 1) await decrement(ancestors.slice(1));
  if (ancestors.length > 0)
    await trx
      .deleteFrom('prefix_claims')
      .where('pool_prefix', '=', row.pool_prefix)
      .where('kind', '=', 'split')
      .where('children', '<=', 0)
      .where((eb) => isOneOf(eb, ancestors))
      .execute();
  await trx.deleteFrom('allocations').where('id', '=', Number(row.id)).execute();
}

function isOneOf(eb: ExpressionBuilder<Database, 'prefix_claims'>, nodes: Prefix[]): Expression<SqlBool> {
  return eb.or(
    nodes.map((n) =>
      eb.and([eb('prefix_claims.prefix_len', '=', n.len), eb('prefix_claims.addr_hex', '=', toHex(n.start))]),
    ),
  );
}
