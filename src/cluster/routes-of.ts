/** @module cluster/routes-of: which prefixes a live tunnel makes this node responsible for, as route
 *  destinations (docs/cluster.md, "Routes"). Pure. Whatever another node could be asked for on this tunnel's
 *  behalf must come here: the client's address, the server's tunnel address (the data plane answers echo to
 *  it in place, so only the carrying node can), and the delegated prefix. */

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

/** The network of `length` bits around `address`, as CIDR text (IPv6 in RFC 5952 form). Hand-rolled rather
 *  than ipaddr.js: a start computes this for every live tunnel, 100,000 of them and more, and the library's
 *  parse and print were most of the start's time on the event loop (bench/routes.ts). */
function blockAround(address: string, length: number): string {
  if (!address.includes(':')) {
    const octets = address.split('.').map(Number);
    return `${masked(octets, 8, length).join('.')}/${length}`;
  }
  return `${formatIpv6(masked(ipv6Groups(address), 16, length))}/${length}`;
}

/** Zeroes every bit from `length` on, in numbers of `width` bits each. */
function masked(parts: number[], width: number, length: number): number[] {
  return parts.map((v, i) => {
    const keep = Math.min(width, Math.max(0, length - i * width));
    return keep === 0 ? 0 : v & ~((1 << (width - keep)) - 1) & ((1 << width) - 1);
  });
}

/** The eight 16-bit groups of an IPv6 address in text (no embedded IPv4: ours never have one). */
function ipv6Groups(address: string): number[] {
  const [head = '', tail] = address.split('::');
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  const groups = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff)))
    throw new Error(`not an IPv6 address: ${address}`);
  return groups;
}

/** RFC 5952 text: lower-case groups without leading zeros, the longest run of two or more zero groups (the
 *  first of equals) as "::". */
function formatIpv6(groups: number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (a: number[]) => a.map((g) => g.toString(16)).join(':');
  return best < 0 ? hex(groups) : `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

/** Whether an IPv6 address is ::2 of its /64 (a /64 link block's client, broker/pools.ts linkAddresses). */
function isSecondOf64(address: string): boolean {
  const g = ipv6Groups(address);
  return g[4] === 0 && g[5] === 0 && g[6] === 0 && g[7] === 2;
}
