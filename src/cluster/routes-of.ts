/** @module cluster/routes-of: which prefixes a live tunnel makes this node responsible for, as route
 *  destinations (docs/cluster.md, "Routes"). Pure. Whatever another node could be asked for on this tunnel's
 *  behalf must come here: the client's address, the server's tunnel address (the data plane answers echo to
 *  it in place, so only the carrying node can), and the delegated prefix. */

import ipaddr from 'ipaddr.js';
import type { TunnelRecord } from '../store/types.js';

/** The shared-64 link block, and the v4v6 client's /30 (its mapped /126, broker/pools.ts IPV4_LEASE_LEN). */
const SHARED_LINK_LEN = 126;
const IPV4_BLOCK_LEN = 30;

export type RoutedTunnel = Pick<TunnelRecord, 'type' | 'clientIpv4' | 'clientIpv6' | 'prefix' | 'prefixLen'>;

/** The prefixes routed to a tunnel, as canonical CIDR text (IPv6 and IPv4 mixed).
 *
 *  - v6v4 and v6udpv4: the link block (server ::1, client ::2), and the delegated prefix if any. The block is a
 *    /64 when `linkLeaseLen` (pools.linkMode) says so and the client is ::2 of its /64; otherwise the /126
 *    around the client. Why the /126 in shared-64 and not the client's /128: it holds the server's ::1 too, in
 *    one route, and is exactly what the allocator gave this owner, so no two tunnels' routes overlap. A tunnel
 *    restored from before a change of pools.linkMode keeps its old block: a /64-era client in shared-64 gets
 *    the /126 around its ::2 (all the data plane answers in its /64), and a /126-era client whose block is not
 *    the first of its /64 is seen by its address. The one left over (a /126-era block at the start of a /64,
 *    under per-account-64) gets the /64: its neighbours' /126s stay more specific wherever they are carried.
 *  - v4v6: the /30 around the client's inner IPv4 (server .1, client .2), for the same reasons. Its IPv6
 *    addresses are the outer endpoints, not ours to route. */
export function routesOf(t: RoutedTunnel, linkLeaseLen: number): string[] {
  if (t.type === 'v4v6') return [blockAround(t.clientIpv4, IPV4_BLOCK_LEN)];
  const routes = [blockAround(t.clientIpv6, linkLeaseLen === 64 && isSecondOf64(t.clientIpv6) ? 64 : SHARED_LINK_LEN)];
  if (t.prefix !== null && t.prefixLen !== null) routes.push(blockAround(t.prefix, t.prefixLen));
  return routes;
}

/** The network of `length` bits around `address`, as canonical CIDR text. */
function blockAround(address: string, length: number): string {
  const addr = ipaddr.parse(address);
  const bytes = addr.toByteArray();
  for (let bit = length; bit < bytes.length * 8; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return `${ipaddr.fromByteArray(bytes).toString()}/${length}`;
}

/** Whether an IPv6 address is ::2 of its /64 (a /64 link block's client, broker/pools.ts linkAddresses). */
function isSecondOf64(address: string): boolean {
  const bytes = ipaddr.IPv6.parse(address).toByteArray();
  for (let i = 8; i < 15; i++) if (bytes[i] !== 0) return false;
  return bytes[15] === 2;
}
