/** @module broker/pending-offer: an offer that nothing on disk knows of yet, because its link block needs no
 *  write: an anonymous lease that is a slot of one of the node's chunks, held in memory
 *  (AllocationStore.reserveLease), or the block an account holds already (AllocationStore.heldBlock). Its tunnel
 *  row (and an anonymous lease's row) is written by the accept's transaction, already established
 *  (TunnelRegistry.establish). So a session that is offered a tunnel and accepts it writes its rows once, in one
 *  group commit, and the offer is answered without waiting for any commit; an offer never accepted (refused,
 *  timed out, a spoofed source that never answers) costs no write at all, its slot given back in memory. A crash
 *  loses nothing: nothing was written, and the client was told of no tunnel. Every other offer (a new block, a
 *  delegated prefix, v4v6, a lease the chunks could not give) writes its claims and an 'offered' row at the
 *  offer, because those claims are on disk and the row is how a restart finds them and gives them back. */

import type { NewTunnel, TunnelRecord } from '../store/types.js';
import { newTunnelRecord } from '../store/tunnel-record.js';

/** Stand-in ids for pending offers: negative, so they never meet a row's id (the anonymous holdings count them
 *  by id until the accept gives them a row). */
let lastPendingId = 0;

/** The record of a pending offer: what the offer says, what the holdings count and the row its accept writes
 *  (a TunnelRecord is a NewTunnel and more); its id is a stand-in (< 0). */
export function pendingRecord(t: NewTunnel, at: number, username: string | null): TunnelRecord {
  lastPendingId = lastPendingId <= -Number.MAX_SAFE_INTEGER ? 0 : lastPendingId;
  return newTunnelRecord(t, at, { id: --lastPendingId, username });
}

/** Whether a record is a pending offer's (its id a stand-in). */
export function isPending(t: Pick<TunnelRecord, 'id'>): boolean {
  return t.id < 0;
}
