/** @module store/allocation-rows: reading an owner's allocation rows (allocator.ts re-exports these): the
 *  block an owner holds in a pool, and whether allocate() would give it as it is. */

import type { AllocateRequest, Allocation, PoolName } from './types.js';
import type { AllocationRow, Owner, TransactionHandle } from './allocator.js';
import { formatPrefix, parsePrefix } from './prefix.js';
import { nullableNumber } from './kysely/runner.js';
import { param, prepared } from './kysely/prepared.js';

/** The owner's block in that pool, if it holds one. */
export async function findAllocation(
  db: TransactionHandle,
  owner: Owner,
  pool: PoolName,
): Promise<Allocation | undefined> {
  const row = await ownerRow(db, owner, pool);
  return row && toAllocation(row);
}

/** The block allocate(req) would give without writing anything: the one the owner holds in that pool, when it
 *  is of the length asked (or req.keepHeld). */
export async function heldBlock(db: TransactionHandle, req: AllocateRequest): Promise<Allocation | undefined> {
  const existing = await ownerRow(db, req.owner, req.pool);
  return existing !== undefined && holds(existing, formatPrefix(parsePrefix(req.poolPrefix)), req)
    ? toAllocation(existing)
    : undefined;
}

/** Whether allocate(req) would give the owner's existing row as it is (same pool, and its length or keepHeld). */
export function holds(row: AllocationRow, poolKey: string, req: AllocateRequest): boolean {
  return row.pool_prefix === poolKey && (Number(row.prefix_len) === req.prefixLen || req.keepHeld === true);
}

export function ownerRow(db: TransactionHandle, owner: Owner, pool: PoolName): Promise<AllocationRow | undefined> {
  return 'accountId' in owner
    ? accountRow.first(db, { pool, owner: owner.accountId })
    : leaseRow.first(db, { pool, owner: owner.leaseId });
}

const ownerQuery = (db: TransactionHandle, column: 'account_id' | 'lease_id') =>
  db
    .selectFrom('allocations')
    .selectAll()
    .where('pool', '=', param<string>('pool'))
    .where(column, '=', param<string>('owner'));
const accountRow = prepared<'pool' | 'owner', AllocationRow>((db) => ownerQuery(db, 'account_id'));
const leaseRow = prepared<'pool' | 'owner', AllocationRow>((db) => ownerQuery(db, 'lease_id'));

export function toAllocation(r: AllocationRow): Allocation {
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
