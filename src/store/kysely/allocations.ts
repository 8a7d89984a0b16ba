/** @module store/kysely/allocations: AllocationStore over Kysely (store/types.ts), each call one transaction
 *  (or the open batch's) around the allocator's functions (store/allocator.ts), which hold the rules. */

import type { Clock } from '../../clock.js';
import * as allocator from '../allocator.js';
import type { AllocationStore } from '../types.js';
import type { Runner } from './runner.js';

export function allocationStore(run: Runner, clock: Clock): AllocationStore {
  return {
    allocate(req) {
      return run.write('allocate', (trx) => allocator.allocate(trx, req, clock.now()));
    },

    findAllocation(accountId, pool) {
      return run.read('findAllocation', (db) => allocator.findAllocation(db, { accountId }, pool));
    },

    releaseLease(leaseId) {
      return run.write('releaseLease', (trx) => allocator.releaseLease(trx, leaseId));
    },

    poolUsage() {
      return run.read('poolUsage', (db) => allocator.poolUsage(db));
    },
  };
}
