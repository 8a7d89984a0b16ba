/** @module broker/claims: the addresses a new tunnel claims from the pools, inside the offer's transaction
 *  (BrokerService.reserve). IPv6 inside IPv4 (v6v4, v6udpv4): the owner's link block, whose ::1 and ::2 are the
 *  server's and the client's inner IPv6 addresses, and in router mode a delegated prefix. IPv4 inside IPv6
 *  (v4v6): the owner's /30 of the v4v6 pool (pools.ipv4), whose .1 and .2 are the inner IPv4 addresses; its
 *  outer addresses are the session's, not the pools'. */

import type { Logger } from 'pino';
import { BrokerError, isBrokerError } from '../errors.js';
import type { AllocateRequest, Store } from '../store/types.js';
import type { TunnelType } from '../tunnel-model.js';
import { IPV4_LEASE_LEN, ipv4LinkAddresses, linkAddresses, type Pools } from './pools.js';

/** Which claim was being made (for the log line when a pool is exhausted). */
export type ClaimStage = 'link' | 'delegation' | 'ipv4';

/** The inner addresses of a v6-in-v4 tunnel. */
export interface V6Claim {
  serverIpv6: string;
  clientIpv6: string;
  prefix: string | null;
  prefixLen: number | null;
}

/** The inner addresses of a v4v6 tunnel. */
export interface V4Claim {
  serverIpv4: string;
  clientIpv4: string;
}

export interface ClaimRequest {
  owner: AllocateRequest['owner'];
  /** Router mode: the delegated prefix's length. */
  prefixLen: number | undefined;
  /** allocate({ keepHeld }): an account with a live tunnel keeps a block of another length as it is. */
  keepHeld: boolean;
}

export async function claimV6(
  store: Pick<Store, 'allocate'>,
  pools: Pools,
  req: ClaimRequest,
  at: (stage: ClaimStage) => void,
): Promise<V6Claim> {
  at('link');
  const { owner, keepHeld, prefixLen } = req;
  const link = await store.allocate({
    pool: 'link',
    poolPrefix: pools.link,
    prefixLen: pools.linkLeaseLen,
    owner,
    keepHeld,
  });
  at('delegation');
  const delegated =
    prefixLen === undefined
      ? undefined
      : await store.allocate({ pool: 'delegation', poolPrefix: pools.delegation, prefixLen, owner });
  return { ...linkAddresses(link.prefix), prefix: delegated?.prefix ?? null, prefixLen: delegated?.prefixLen ?? null };
}

/** Every address of a tunnel's rows: the inner ones claimed from the pools, the outer ones given (the server's
 *  and the client's, IPv6 for v4v6 and IPv4 otherwise). */
export async function claimAddresses(
  store: Pick<Store, 'allocate'>,
  pools: Pools,
  req: ClaimRequest & { v4v6: boolean; server: string; client: string },
  at: (stage: ClaimStage) => void,
): Promise<V6Claim & { serverIpv4: string; clientIpv4: string }> {
  if (!req.v4v6) return { ...(await claimV6(store, pools, req, at)), serverIpv4: req.server, clientIpv4: req.client };
  const v4 = await claimV4(store, pools, req, at);
  return { ...v4, serverIpv6: req.server, clientIpv6: req.client, prefix: null, prefixLen: null };
}

export async function claimV4(
  store: Pick<Store, 'allocate'>,
  pools: Pools,
  req: ClaimRequest,
  at: (stage: ClaimStage) => void,
): Promise<V4Claim> {
  at('ipv4');
  // config validation makes pools.ipv4 a condition of offering v4v6: reaching here without it is a bug
  if (!pools.ipv4) throw new BrokerError('INTERNAL', 'v4v6 offered without pools.ipv4');
  const block = await store.allocate({
    pool: 'ipv4',
    poolPrefix: pools.ipv4,
    prefixLen: IPV4_LEASE_LEN,
    owner: req.owner,
    keepHeld: req.keepHeld,
  });
  return ipv4LinkAddresses(block.prefix);
}

/** The pool a type's anonymous share is counted in. */
export function anonymousPool(type: TunnelType, pools: Pools): { name: string; length: number; leaseLength: number } {
  if (type === 'v4v6' && pools.ipv4)
    return { name: 'v4v6 pool', length: Number(pools.ipv4.split('/')[1]), leaseLength: IPV4_LEASE_LEN };
  return { name: 'link pool', length: Number(pools.link.split('/')[1]), leaseLength: pools.linkLeaseLen };
}

/** A claim's error as the session gets it: an exhausted pool is logged for the operator (which pool), and an
 *  exhausted delegation pool is the protocol's "prefix length unavailable". Other errors pass unchanged. */
export function poolError(
  err: unknown,
  stage: ClaimStage | 'tunnel',
  ctx: {
    log: Logger;
    pools: { link: string; delegation: string; ipv4: string | null };
    session: string;
    prefixLen: number | undefined;
  },
): unknown {
  if (!isBrokerError(err) || err.code !== 'POOL_EXHAUSTED') return err;
  const { log, pools, session, prefixLen } = ctx;
  if (stage === 'link') log.error({ pool: pools.link, session }, 'link pool exhausted: no tunnel offered');
  if (stage === 'ipv4') log.error({ pool: pools.ipv4, session }, 'v4v6 pool exhausted: no tunnel offered');
  if (stage !== 'delegation') return err;
  log.error({ pool: pools.delegation, prefixLen, session }, 'delegation pool exhausted for this length');
  return new BrokerError('TSP_PREFIX_LENGTH_UNAVAILABLE', `no /${prefixLen} left in the delegation pool`, {
    cause: err,
  });
}
