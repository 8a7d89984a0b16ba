/** @module store/prefix: IPv6 prefix arithmetic for allocation, in BigInt (128 bits do not fit a number).
 *  Addresses cross the store boundary as canonical compressed text (RFC 5952, as ipaddr.js toString() gives it); inside the
 *  claims table they are keyed by `addrHex`, 32 lower-case hex digits, which sort like the addresses themselves,
 *  so "next block at this length" is an ordered index scan with no 128-bit integers in SQL.
 *  Pure: imports only ipaddr.js, ipv6-text.ts and errors.ts. */

import ipaddr from 'ipaddr.js';
import { BrokerError } from '../errors.js';
import { formatIpv6, parseIpv6 } from '../ipv6-text.js';

const ADDRESS_BITS = 128;
const ALL_ONES = (1n << 128n) - 1n;

/** An IPv6 prefix as a number: `start` is its first address (host bits zero), `len` its length. */
export interface Prefix {
  start: bigint;
  len: number;
}

/** Parses 'addr/len' as an IPv6 prefix whose host bits are zero. Throws CFG_INVALID otherwise: pool prefixes
 *  come from the configuration (or from settings generated from it). */
export function parsePrefix(text: string): Prefix {
  const slash = text.indexOf('/');
  const bytes = slash > 0 ? parseIpv6(text.slice(0, slash)) : undefined;
  const lenText = text.slice(slash + 1);
  const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
  if (bytes === undefined || !(len <= ADDRESS_BITS))
    throw new BrokerError('CFG_INVALID', `not an IPv6 prefix: '${text}'`);
  const start = bytesToBigInt(bytes);
  if ((start & hostMask(len)) !== 0n) {
    throw new BrokerError('CFG_INVALID', `prefix '${text}' has host bits set`);
  }
  return { start, len };
}

/** Canonical compressed text of an address given as a number, e.g. 0xfd00...n -> 'fd00::'. */
export function formatAddress(addr: bigint): string {
  const hex = toHex(addr);
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return formatIpv6(bytes);
}

/** Canonical 'addr/len' text. */
export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p.start)}/${p.len}`;
}

/** Canonical text of any IPv6 address text (throws CFG_INVALID on anything else). */
export function canonicalAddress(text: string): string {
  if (!ipaddr.IPv6.isValid(text)) throw new BrokerError('CFG_INVALID', `not an IPv6 address: '${text}'`);
  return ipaddr.IPv6.parse(text).toString();
}

/** 32 lower-case hex digits: sorts as the address does. */
export function toHex(addr: bigint): string {
  return addr.toString(16).padStart(32, '0');
}

export function fromHex(hex: string): bigint {
  return BigInt(`0x${hex}`);
}

/** Number of addresses in a prefix of length `len`, i.e. the distance between two adjacent blocks. */
export function blockSize(len: number): bigint {
  return 1n << BigInt(ADDRESS_BITS - len);
}

/** The prefix of length `len` that contains `addr`. */
export function truncate(addr: bigint, len: number): bigint {
  return addr & ~hostMask(len) & ALL_ONES;
}

/** The enclosing prefixes of block (start, len) inside a pool of length poolLen, shortest first: one for each
 *  length poolLen <= k < len. Empty when the block is the whole pool. */
export function ancestorsOf(start: bigint, len: number, poolLen: number): Prefix[] {
  const out: Prefix[] = [];
  for (let k = poolLen; k < len; k++) out.push({ start: truncate(start, k), len: k });
  return out;
}

/** True when the two prefixes share any address. */
export function overlaps(a: Prefix, b: Prefix): boolean {
  const len = Math.min(a.len, b.len);
  return truncate(a.start, len) === truncate(b.start, len);
}

function hostMask(len: number): bigint {
  return blockSize(len) - 1n;
}

function bytesToBigInt(bytes: Iterable<number>): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}
