/** @module store/lease-chunk-set: the memory of store/lease-chunks.ts: the node's chunks of one pool for leases
 *  of one length, which of their slots are taken, and the slots held by reservations. Apart from lease-chunks.ts
 *  to keep that file readable. */

import { BrokerError } from '../errors.js';
import type { AllocateRequest, LeaseReservation } from './types.js';
import { blockSize, type Prefix } from './prefix.js';

/** A chunk is this many bits shorter than its leases: 256 leases a chunk. */
export const CHUNK_BITS = 8;
export const SLOTS = 1 << CHUNK_BITS;

export const HELD = Symbol('held');

export interface Held {
  set: ChunkSet;
  chunk: Chunk;
  slot: number;
  /** reserved: memory holds the slot; written: its row does (committed); returned: given back. */
  state: 'reserved' | 'written' | 'returned';
}

export interface HeldReservation extends LeaseReservation {
  readonly [HELD]: Held;
}

/** The memory behind a reservation this store handed out. */
export function heldOf(r: LeaseReservation): Held {
  const held = (r as Partial<HeldReservation>)[HELD];
  if (held === undefined) throw new BrokerError('INTERNAL', `lease ${r.leaseId} was not reserved by this store`);
  return held;
}

export interface Chunk {
  id: number;
  start: bigint;
  used: Uint8Array;
  usedCount: number;
  /** Next slot to try: next-fit, so a released lease is not handed out again at once. */
  cursor: number;
  retiring: boolean;
}

/** The node's chunks of one pool for leases of one length. */
export class ChunkSet {
  readonly chunks: Chunk[] = [];
  free = 0;
  current = 0;
  loading: Promise<void> | undefined;
  /** The rows are read back (load): memory may hand out slots without a transaction (reserve). */
  loaded = false;
  refilling = false;
  noChunksUntil = 0;

  readonly byId = new Map<number, Chunk>();

  constructor(
    readonly poolName: AllocateRequest['pool'],
    readonly pool: Prefix,
    readonly poolKey: string,
    readonly leaseLen: number,
  ) {}

  get chunkLen(): number {
    return this.leaseLen - CHUNK_BITS;
  }

  add(id: number, start: bigint): void {
    const c: Chunk = { id, start, used: new Uint8Array(SLOTS), usedCount: 0, cursor: 0, retiring: false };
    this.chunks.push(c);
    this.byId.set(id, c);
    this.chunks.sort((a, b) => (a.start < b.start ? -1 : 1));
    this.free += SLOTS;
  }

  remove(c: Chunk): void {
    const i = this.chunks.indexOf(c);
    if (i < 0) return;
    this.chunks.splice(i, 1);
    this.byId.delete(c.id);
    this.free -= SLOTS - c.usedCount;
    if (this.current >= this.chunks.length) this.current = 0;
  }

  /** A free slot, marked used: next-fit through the chunks in address order. */
  take(): { chunk: Chunk; slot: number } | undefined {
    if (this.chunks.length === 0) return undefined;
    // once round, and the chunk it starts in twice: slots below that chunk's cursor are looked at last
    for (let n = 0; n <= this.chunks.length; n++) {
      const c = this.chunks[this.current]!;
      if (!c.retiring && c.usedCount < SLOTS) {
        for (let s = c.cursor; s < SLOTS; s++) {
          if (c.used[s] === 0) {
            this.mark(c, s);
            c.cursor = s + 1;
            return { chunk: c, slot: s };
          }
        }
      }
      c.cursor = 0;
      this.current = (this.current + 1) % this.chunks.length;
    }
    return undefined;
  }

  mark(c: Chunk, slot: number): void {
    if (c.used[slot] === 1) return;
    c.used[slot] = 1;
    c.usedCount++;
    this.free--;
  }

  unmark(c: Chunk, slot: number): void {
    if (c.used[slot] === 0) return;
    c.used[slot] = 0;
    c.usedCount--;
    this.free++;
  }

  slotOf(c: Chunk, address: bigint): number {
    return Number((address - c.start) / blockSize(this.leaseLen));
  }
}
