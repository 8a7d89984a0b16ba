/** @module store/kysely/allocations: AllocationStore over Kysely (store/types.ts), each call one transaction
 *  (or the open batch's) around the allocator's functions (store/allocator.ts), which hold the rules, with an
 *  anonymous lease taken from the node's chunks first (store/lease-chunks.ts). */

import type { Clock } from '../../clock.js';
import * as allocator from '../allocator.js';
import { CHUNK_LEASE_PREFIX, type LeaseChunks } from '../lease-chunks.js';
import { likePrefix, type Runner } from './runner.js';
import { sql, type Kysely, type SqlBool } from 'kysely';
import type { Database } from '../schema.js';
import type { AllocationStore, PoolName, PoolUsage } from '../types.js';

export function allocationStore(run: Runner, clock: Clock, chunks: LeaseChunks): AllocationStore {
  return {
    allocate(req) {
      return run.write(
        'allocate',
        async (trx, hooks) => (await chunks.allocate(trx, hooks, req)) ?? allocator.allocate(trx, req, clock.now()),
      );
    },

    heldBlock(req) {
      return run.read('heldBlock', (db) => allocator.heldBlock(db, req));
    },

    findAllocation(accountId, pool) {
      return run.read('findAllocation', (db) => allocator.findAllocation(db, { accountId }, pool));
    },

    releaseLease(leaseId) {
      return run.write('releaseLease', async (trx, hooks) => {
        const rows = await allocator.releaseLease(trx, leaseId);
        chunks.released(rows, hooks);
        return rows.length;
      });
    },

    reserveLease(req) {
      return chunks.reserve(req);
    },

    releaseReservation(r) {
      chunks.unreserve(r);
    },

    releaseOtherChunks(poolPrefix, leaseLen) {
      return chunks.releaseOtherChunks(poolPrefix, leaseLen);
    },

    poolUsage() {
      return run.read('poolUsage', (db) => poolUsage(db));
    },
  };
}

/** Blocks allocated per pool: a node's chunk (lease-chunks.ts) is room for leases, and its leases count. */
async function poolUsage(db: Kysely<Database>): Promise<PoolUsage[]> {
  const rows = await db
    .selectFrom('allocations')
    .select((eb) => ['pool', 'pool_prefix', eb.fn.countAll().as('blocks')])
    .where((eb) =>
      eb.or([
        eb('lease_id', 'is', null),
        sql<SqlBool>`lease_id not like ${likePrefix(CHUNK_LEASE_PREFIX)} escape '\\'`,
      ]),
    )
    .groupBy(['pool', 'pool_prefix'])
    .orderBy('pool')
    .orderBy('pool_prefix')
    .execute();
  return rows.map((r) => ({ pool: r.pool as PoolName, poolPrefix: r.pool_prefix, blocks: Number(r.blocks) }));
}
