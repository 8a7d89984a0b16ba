/** @module broker/lease-id: the ids of anonymous leases. An anonymous tunnel's address block is owned by a
 *  lease id rather than an account (store/types.ts AllocateRequest), and the allocations table keeps a unique
 *  index on (lease_id, pool). Random ids (a UUID each) put every new lease's index entry on a random page of
 *  that index, and under a reconnect storm over 100,000 tunnels each such page is one more 4 KB page the
 *  group's COMMIT writes to the WAL. These ids increase with time, so new entries go to the index's last page,
 *  which the same commit writes anyway.
 *
 *  Unique across nodes and restarts: the time in milliseconds, a counter for leases within one millisecond (or
 *  while the clock stands behind the last id's time, after a step back), and 48 random bits drawn when the
 *  process starts. */

import { randomBytes } from 'node:crypto';

const PROCESS = randomBytes(6).toString('hex');
let lastMs = 0;
let seq = 0;

/** A new anonymous lease id, `anon-<ms>-<seq>-<process>` in fixed-width hex: later ids sort after earlier
 *  ones of the same process. */
export function anonymousLeaseId(nowMs: number = Date.now()): string {
  if (nowMs > lastMs) {
    lastMs = nowMs;
    seq = 0;
  } else seq++;
  return `anon-${lastMs.toString(16).padStart(12, '0')}-${seq.toString(16).padStart(8, '0')}-${PROCESS}`;
}
