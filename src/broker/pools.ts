/** @module broker/pools: which prefixes the broker hands out, and how a link block becomes addresses.
 *  Pools come from the configuration, or are generated once as ULAs (RFC 4193: fd00::/8 and random bits) on
 *  first start and kept in the store, so a restart never renumbers anyone (docs/design.md "Addresses"). */

import { randomBytes } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { formatIpv6, parseIpv6 } from '../ipv6-text.js';
import type { Config, LinkMode } from '../config/schema.js';
import type { SettingsStore } from '../store/types.js';

export interface Pools {
  /** Link pool, CIDR text: one link block of linkLeaseLen per tunnel owner. */
  link: string;
  /** The length of a tunnel owner's link block (linkLeaseLength of pools.linkMode). */
  linkLeaseLen: number;
  /** Delegation pool, CIDR text: router-mode prefixes. */
  delegation: string;
  /** The v4v6 pool (pools.ipv4) as the allocator holds it, an IPv4-mapped IPv6 prefix; absent when not
   *  configured. */
  ipv4?: string;
}

/** The length of a tunnel owner's block in the v4v6 pool: a /30 (as its mapped /126), server .1, client .2. */
export const IPV4_LEASE_LEN = 126;

/** An IPv4 prefix as the IPv4-mapped IPv6 prefix the allocator works on ('198.51.100.0/24' becomes
 *  '::ffff:c633:6400/120'): one allocator, one set of claim rows and one store contract for both families. */
export function ipv4PoolAsIpv6(cidr: string): string {
  const [addr, len] = ipaddr.IPv4.parseCIDR(cidr);
  return normalisePrefix(`${addr.toIPv4MappedAddress().toString()}/${len + 96}`);
}

/** The inner addresses of a v4v6 block (the address of a mapped /126): server .1 and client .2 of its /30, as
 *  IPv4 text. */
export function ipv4LinkAddresses(mappedBlock: string): { serverIpv4: string; clientIpv4: string } {
  const v4 = (offset: number) => ipaddr.IPv6.parse(addressInBlock(mappedBlock, offset)).toIPv4Address().toString();
  return { serverIpv4: v4(1), clientIpv4: v4(2) };
}

function randomUla(lengthBits: 40 | 48): string {
  // fd + the random bits; a /48 is one RFC 4193 global ID, a /40 spans 256 of them
  const b = randomBytes(16).fill(0, lengthBits / 8);
  b[0] = 0xfd;
  return `${ipaddr.fromByteArray([...b]).toString()}/${lengthBits}`;
}

export async function resolvePools(config: Config, store: SettingsStore): Promise<Pools> {
  const link = config.pools.link ?? (await store.setSettingIfAbsent('pools.link', randomUla(48)));
  const delegation = config.pools.delegation ?? (await store.setSettingIfAbsent('pools.delegation', randomUla(40)));
  return {
    link: normalisePrefix(link),
    linkLeaseLen: linkLeaseLength(config.pools.linkMode),
    delegation: normalisePrefix(delegation),
    ...(config.pools.ipv4 ? { ipv4: ipv4PoolAsIpv6(config.pools.ipv4) } : {}),
  };
}

/** The link block a tunnel owner gets in each mode. per-account-64: a /64 of its own. shared-64: a /126, so
 *  2^62 owners share each /64 of the pool; its ::1 is the server's address and ::2 the client's, as in a /64
 *  (linkAddresses), each routed and source-checked as a /128 by the data plane. Why a /126 and not a /127 or two
 *  /128s: one row per owner (a lease is one allocation), the same offsets as the /64 mode, and no address with
 *  an all-zero interface identifier (the subnet-router anycast of the /64 at ::0) is ever handed out. */
export function linkLeaseLength(mode: LinkMode): number {
  return mode === 'shared-64' ? 126 : 64;
}

export function normalisePrefix(cidr: string): string {
  const [addr, len] = ipaddr.parseCIDR(cidr);
  if (addr.kind() === 'ipv4') return ipaddr.IPv4.networkAddressFromCIDR(cidr).toString() + `/${len}`;
  const bytes = addr.toByteArray();
  for (let bit = len; bit < bytes.length * 8; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return `${ipaddr.fromByteArray(bytes).toString()}/${len}`;
}

/** The address at `offset` inside a block (offset < 2^32), as canonical text. */
export function addressInBlock(blockPrefix: string, offset: number): string {
  const bytes = parseIpv6(blockPrefix);
  if (bytes === undefined) throw new Error(`not an IPv6 block address: ${blockPrefix}`);
  let carry = offset;
  for (let i = bytes.length - 1; i >= 0 && carry > 0; i--) {
    const v = bytes[i]! + (carry & 0xff);
    bytes[i] = v & 0xff;
    carry = (carry >>> 8) + (v >> 8);
  }
  return formatIpv6(bytes);
}

/** Link addresses of a link block (a /64, or a /126 in shared-64 mode): server ::1, client ::2 (docs/design.md). */
export function linkAddresses(blockPrefix: string): { serverIpv6: string; clientIpv6: string } {
  return { serverIpv6: addressInBlock(blockPrefix, 1), clientIpv6: addressInBlock(blockPrefix, 2) };
}

export function prefixLength(cidr: string): number {
  return ipaddr.parseCIDR(cidr)[1];
}
