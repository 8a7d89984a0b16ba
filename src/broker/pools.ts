/** @module broker/pools: which prefixes the broker hands out, and how a link block becomes addresses.
 *  Pools come from the configuration, or are generated once as ULAs (RFC 4193: fd00::/8 and random bits) on
 *  first start and kept in the store, so a restart never renumbers anyone (docs/design.md "Addresses"). */

import { randomBytes } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import type { Config } from '../config/schema.js';
import type { SettingsStore } from '../store/types.js';

export interface Pools {
  /** Link pool, CIDR text: one /64 per tunnel owner. */
  link: string;
  /** Delegation pool, CIDR text: router-mode prefixes. */
  delegation: string;
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
  return { link: normalisePrefix(link), delegation: normalisePrefix(delegation) };
}

export function normalisePrefix(cidr: string): string {
  const [addr, len] = ipaddr.parseCIDR(cidr);
  const bytes = addr.toByteArray();
  for (let bit = len; bit < bytes.length * 8; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return `${ipaddr.fromByteArray(bytes).toString()}/${len}`;
}

/** The address at `offset` inside a block (offset < 2^32), as canonical text. */
export function addressInBlock(blockPrefix: string, offset: number): string {
  const bytes = ipaddr.parse(blockPrefix).toByteArray();
  let carry = offset;
  for (let i = bytes.length - 1; i >= 0 && carry > 0; i--) {
    const v = bytes[i]! + (carry & 0xff);
    bytes[i] = v & 0xff;
    carry = (carry >>> 8) + (v >> 8);
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** Link addresses of a /64 link block: server ::1, client ::2 (docs/design.md). */
export function linkAddresses(blockPrefix: string): { serverIpv6: string; clientIpv6: string } {
  return { serverIpv6: addressInBlock(blockPrefix, 1), clientIpv6: addressInBlock(blockPrefix, 2) };
}

export function prefixLength(cidr: string): number {
  return ipaddr.parseCIDR(cidr)[1];
}
