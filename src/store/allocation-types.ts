/** @module store/allocation-types: the pools' blocks and leases as the Store hands them out (allocator.ts,
 *  lease-chunks.ts). Apart from types.ts to keep that file readable; types.ts re-exports them. */

/** 'ipv4': the v4v6 pool, its IPv4 prefixes held as IPv4-mapped IPv6 ones (broker/pools.ts ipv4PoolAsIpv6). */
export type PoolName = 'link' | 'delegation' | 'ipv4';

export interface Allocation {
  id: number;
  pool: PoolName;
  /** Canonical compressed IPv6 text of the block's first address (host bits zero). */
  prefix: string;
  prefixLen: number;
  accountId: number | null;
  leaseId: string | null;
  createdAt: number;
}

/** An anonymous lease held in the node's memory only until the accept writes it (AllocationStore.reserveLease). */
export interface LeaseReservation {
  readonly pool: PoolName;
  readonly leaseId: string;
  /** Canonical compressed IPv6 text of the block's first address, as an Allocation's. */
  readonly prefix: string;
  readonly prefixLen: number;
}

export interface AllocateRequest {
  pool: PoolName;
  /** The pool, e.g. 'fd12:3456:789a::/48'. Blocks are aligned sub-prefixes of it. */
  poolPrefix: string;
  /** Length of the block to hand out; >= the pool's length, <= 128. */
  prefixLen: number;
  /** An account's allocation is sticky: it gets the same block every time while it holds one of that length
   *  in that pool; a different length replaces the old block in the same transaction. An anonymous lease is
   *  keyed by leaseId and released with releaseLease(). */
  owner: { accountId: number } | { leaseId: string };
  /** Return the account's block in this pool as it is even when its length differs (rather than replace it):
   *  a live tunnel still uses its addresses (pools.linkMode changed under it). */
  keepHeld?: boolean;
}

export interface PoolUsage {
  pool: PoolName;
  poolPrefix: string;
  /** Blocks currently allocated from the pool, and how many addresses (as a count of /64s, or /128s for
   *  blocks longer than /64) they cover. */
  blocks: number;
}

/** Address blocks cut from the pools: unique constraints inside transactions, never read-then-write
 *  (store/allocator.ts). */
export interface AllocationStore {
  allocate(req: AllocateRequest): Promise<Allocation>; // POOL_EXHAUSTED when no block is free
  /** The block allocate(req) would give without a write (the owner's, of that length or req.keepHeld), if any. */
  heldBlock(req: AllocateRequest): Promise<Allocation | undefined>;
  findAllocation(accountId: number, pool: PoolName): Promise<Allocation | undefined>;
  releaseLease(leaseId: string): Promise<number>;
  /** An anonymous lease from the node's chunks without a write (store/lease-chunks.ts): its row is written by
   *  createTunnel({ reservation }) or never. Undefined when only allocate() can serve it (the chunks are not
   *  read back yet, none has a free slot, the pool is too small for chunks, or the owner is an account). */
  reserveLease(req: AllocateRequest): LeaseReservation | undefined;
  /** Gives a reservation back unwritten (idempotent; nothing once createTunnel wrote it). */
  releaseReservation(r: LeaseReservation): void;
  releaseOtherChunks(poolPrefix: string, leaseLen: number): Promise<number>; // at start: lease-chunks.ts
  poolUsage(): Promise<PoolUsage[]>;
}
