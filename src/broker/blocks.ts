/** @module broker/blocks: who may not get a tunnel for a while, after an operator's "kill and block". A
 *  killed client usually reconnects about 80 s later; a block keeps it out until it expires: an account by
 *  id, an anonymous client by its source IPv4. The broker's offer path (BrokerService.reserve) asks `blockedUntil`
 *  and answers TSP 301 while a block holds.
 *
 *  In memory, in the broker process: a restart lifts every block, and another broker process on the same store
 *  does not see it (docs/admin.md). Entries expire by themselves: each lookup drops the expired one, and
 *  `block` sweeps all expired ones, so the map never holds more than the blocks still in force plus one. */

import type { Clock } from '../clock.js';
import { sourceKey } from '../address.js';

/** Longest block, in minutes (one day): a longer ban is what disabling the account is for. */
export const MAX_BLOCK_MINUTES = 1440;

export type BlockKey = { accountId: number } | { source: string };

function keyOf(k: BlockKey): string {
  return 'accountId' in k ? `account:${k.accountId}` : `source:${sourceKey(k.source)}`;
}

export class TunnelBlocks {
  private readonly until = new Map<string, number>();

  constructor(private readonly clock: Clock) {}

  /** Blocks for `minutes` from now (a longer block already in force is kept). Returns when it ends (ms). */
  block(k: BlockKey, minutes: number): number {
    const now = this.clock.now();
    for (const [key, t] of this.until) if (t <= now) this.until.delete(key);
    const key = keyOf(k);
    const end = Math.max(now + minutes * 60_000, this.until.get(key) ?? 0);
    this.until.set(key, end);
    return end;
  }

  /** When the block on k ends (ms since the epoch), or null when none is in force. */
  blockedUntil(k: BlockKey): number | null {
    const key = keyOf(k);
    const t = this.until.get(key);
    if (t === undefined) return null;
    if (t > this.clock.now()) return t;
    this.until.delete(key);
    return null;
  }

  /** Lifts a block before it expires. */
  unblock(k: BlockKey): boolean {
    return this.until.delete(keyOf(k));
  }

  get size(): number {
    return this.until.size;
  }
}
