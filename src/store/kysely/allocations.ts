/** @module store/kysely/allocations: AllocationStore over Kysely (store/types.ts), each call one transaction
 *  (or the open batch's) around the allocator's functions (store/allocator.ts), which hold the rules, with an
 *  anonymous lease taken from the node's chunks first (store/lease-chunks.ts). */

import type { Clock } from '../../clock.js';
import * as allocator from '../allocator.js';
import type { AllocationStore } from '../types.js';
import type { LeaseChunks } from '../lease-chunks.js';
import type { Runner } from './runner.js';

export function allocationStore(run: Runner, clock: Clock, chunks: LeaseChunks): AllocationStore {
  return {
    allocate(req) {
      return run.write(
        'allocate',
        async (trx, hooks) => (await chunks.allocate(trx, hooks, req)) ?? allocator.allocate(trx, req, clock.now()),
      );
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

    poolUsage() {
      return run.read('poolUsage', (db) => allocator.poolUsage(db));
    },
  };
}
