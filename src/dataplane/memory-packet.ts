/** @module dataplane/memory-packet: the packet rules MemoryDataPlane (memory.ts) applies, as pure functions:
 *  IPv6 parsing, the source check, the echo answer, and the tunnel spec checks, each as the addon has it
 *  (native/src/engine/engine.cc, native/src/addon/addon.cc AddTunnel). */

import { parseIpv6 } from '../ipv6-text.js';
import { ipv4Number } from '../address.js';
import type { V6TunnelSpec } from './types.js';

// Specification constants (RFC 8200, RFC 4443), as in native/src/engine/packet.h.
const IPV6_HEADER_BYTES = 40;
const NEXT_HEADER_ICMPV6 = 58;
const ICMPV6_ECHO_REQUEST = 128;
const ICMPV6_ECHO_REPLY = 129;
const REPLY_HOP_LIMIT = 64;
const ALL_ONES = (1n << 128n) - 1n;

/** A tunnel's addresses, parsed: what the packet rules look at (memory-table.ts Entry holds them). */
export interface ParsedAddresses {
  serverIp6: bigint;
  clientIp6: bigint;
  delegated: { prefix: bigint; length: number } | undefined;
}

// ----- packets and addresses (native/src/engine/engine.cc) --------------------------------------------------------

/** Length of the IPv6 packet in `p` if well formed (version 6, header present, payload length fits), else 0. */
export function ipv6PacketLength(p: Buffer): number {
  if (p.length < IPV6_HEADER_BYTES || p[0]! >> 4 !== 6) return 0;
  const total = IPV6_HEADER_BYTES + p.readUInt16BE(4);
  return total <= p.length ? total : 0;
}

export function readIp6(p: Buffer, at: number): bigint {
  return (p.readBigUInt64BE(at) << 64n) | p.readBigUInt64BE(at + 8);
}

export function mask(a: bigint, length: number): bigint {
  return length <= 0 ? 0n : a & (ALL_ONES ^ ((1n << BigInt(128 - length)) - 1n));
}

/** fe80::/10 */
export function isLinkLocal(a: bigint): boolean {
  return a >> 118n === 0xfe80n >> 6n;
}

export function mayUseSource(t: ParsedAddresses, source: bigint): boolean {
  return (
    source === t.clientIp6 || (t.delegated !== undefined && mask(source, t.delegated.length) === t.delegated.prefix)
  );
}

/** An ICMPv6 echo request directly after the IPv6 header (what gogoc sends, docs/protocol.md §9.1). */
export function isEchoRequest(p: Buffer): boolean {
  return (
    p[6] === NEXT_HEADER_ICMPV6 &&
    p.length >= IPV6_HEADER_BYTES + 8 &&
    p[IPV6_HEADER_BYTES] === ICMPV6_ECHO_REQUEST &&
    p[IPV6_HEADER_BYTES + 1] === 0
  );
}

/** In place: addresses swapped, fresh hop limit, type 129, checksum recomputed; identifier, sequence and data
 *  stay (RFC 4443 §4.2). */
export function makeEchoReply(p: Buffer): void {
  const source = Buffer.from(p.subarray(8, 24));
  p.copy(p, 8, 24, 40);
  source.copy(p, 24);
  p[7] = REPLY_HOP_LIMIT;
  p[IPV6_HEADER_BYTES] = ICMPV6_ECHO_REPLY;
  p.writeUInt16BE(icmpv6Checksum(p), IPV6_HEADER_BYTES + 2);
}

/** The ICMPv6 checksum of a whole packet (no extension headers), with the checksum field taken as zero. */
function icmpv6Checksum(p: Buffer): number {
  const message = p.length - IPV6_HEADER_BYTES;
  let sum = sumWords(p, 8, 40, 0); // source and destination
  sum += Math.floor(message / 0x10000) + (message & 0xffff) + NEXT_HEADER_ICMPV6;
  sum = sumWords(p, IPV6_HEADER_BYTES, IPV6_HEADER_BYTES + 2, sum); // type, code
  sum = sumWords(p, IPV6_HEADER_BYTES + 4, p.length, sum); // skip the checksum
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

function sumWords(p: Buffer, from: number, to: number, sum: number): number {
  let i = from;
  for (; i + 1 < to; i += 2) sum += (p[i]! << 8) | p[i + 1]!;
  if (i < to) sum += p[i]! << 8;
  return sum;
}

// ----- specs (native addon.cc AddTunnel: the same checks) --------------------------------------------------------

export function parseSpec(spec: V6TunnelSpec): ParsedAddresses & { clientIpv4: number } {
  if (spec.type !== 'v6udpv4' && spec.type !== 'v6v4') throw new Error(`type must be v6v4 or v6udpv4: ${spec.type}`);
  const clientIpv4 = ipv4Number(spec.client.address);
  if (clientIpv4 === undefined) throw new Error(`clientAddress: not an IPv4 address: ${spec.client.address}`);
  if (
    spec.type === 'v6udpv4' &&
    !(Number.isInteger(spec.client.port) && spec.client.port >= 1 && spec.client.port <= 65535)
  )
    throw new Error('clientPort out of range');
  const parsed = {
    clientIpv4,
    serverIp6: parseIp6(spec.serverIpv6, 'serverIpv6'),
    clientIp6: parseIp6(spec.clientIpv6, 'clientIpv6'),
    delegated: undefined as ParsedAddresses['delegated'],
  };
  if (spec.delegated) {
    const { address, length } = spec.delegated;
    if (!(Number.isInteger(length) && length >= 1 && length <= 128)) throw new Error('delegatedLength out of range');
    const prefix = parseIp6(address, 'delegatedAddress');
    if (mask(prefix, length) !== prefix) throw new Error(`delegated prefix has host bits set: ${address}`);
    parsed.delegated = { prefix, length };
  }
  return parsed;
}

function parseIp6(text: string, what: string): bigint {
  const bytes = parseIpv6(text);
  if (bytes === undefined) throw new Error(`${what}: not an IPv6 address: ${text}`);
  return bytes.reduce((a, b) => (a << 8n) | BigInt(b), 0n);
}
