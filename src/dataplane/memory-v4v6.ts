/** @module dataplane/memory-v4v6: what MemoryDataPlane (memory.ts) needs for v4v6 tunnels (IPv4 inside IPv6,
 *  next header 4, RFC 2473), as the addon has it (native/src/engine/packet.h, engine.cc forward_from_v4v6): the
 *  inner IPv4 packet's checks, the ICMP echo answer, the TTL of a hairpinned packet, the spec checks, and the
 *  channel standing in for the raw IPv6 next-header-4 socket. Pure functions but for the channel. */

import ipaddr from 'ipaddr.js';
import { ipv4Number } from '../address.js';
import type { V4v6TunnelSpec } from './types.js';

// Specification constants (RFC 791, RFC 792), as in native/src/engine/packet.h.
const IPV4_MIN_HEADER_BYTES = 20;
const PROTO_ICMP = 1;
const ICMP_ECHO_REQUEST = 8;
const ICMP_ECHO_REPLY = 0;
const REPLY_TTL = 64;

/** Length of the IPv4 packet in `p` if well formed (version 4, IHL at least 5, header and total length inside
 *  `p`, total length not under the header), else 0. Trailing bytes beyond the total length are ignored. */
export function ipv4PacketLength(p: Buffer): number {
  if (p.length < IPV4_MIN_HEADER_BYTES || p[0]! >> 4 !== 4) return 0;
  const header = (p[0]! & 0x0f) * 4;
  const total = p.readUInt16BE(2);
  return header < IPV4_MIN_HEADER_BYTES || total < header || total > p.length ? 0 : total;
}

/** The IPv4 address at `at` as a number (network order read big-endian). */
export function readIp4(p: Buffer, at: number): number {
  return p.readUInt32BE(at);
}

/** An unfragmented ICMP echo request (type 8, code 0) with its 8-byte header inside the packet. */
export function isEchoRequest4(p: Buffer): boolean {
  const header = (p[0]! & 0x0f) * 4;
  const fragment = (p.readUInt16BE(6) & 0x3fff) !== 0;
  return (
    p[9] === PROTO_ICMP && !fragment && p.length >= header + 8 && p[header] === ICMP_ECHO_REQUEST && p[header + 1] === 0
  );
}

/** In place: addresses swapped, TTL 64, type 0, both checksums recomputed; identifier, sequence and data stay. */
export function makeEchoReply4(p: Buffer): void {
  const header = (p[0]! & 0x0f) * 4;
  const source = Buffer.from(p.subarray(12, 16));
  p.copy(p, 12, 16, 20);
  source.copy(p, 16);
  p[8] = REPLY_TTL;
  p.writeUInt16BE(checksumSkipping(p.subarray(0, header), 10), 10);
  p[header] = ICMP_ECHO_REPLY;
  p.writeUInt16BE(checksumSkipping(p.subarray(header), 2), header + 2);
}

/** One less TTL and the header checksum redone: a router's hop (call with a TTL above 1). */
export function decrementTtl4(p: Buffer): void {
  p[8] = p[8]! - 1;
  p.writeUInt16BE(checksumSkipping(p.subarray(0, (p[0]! & 0x0f) * 4), 10), 10);
}

/** The Internet checksum of `p` with the 16-bit field at `skip` taken as zero. */
function checksumSkipping(p: Buffer, skip: number): number {
  let sum = 0;
  for (let i = 0; i + 1 < p.length; i += 2) if (i !== skip) sum += (p[i]! << 8) | p[i + 1]!;
  if (p.length % 2 === 1) sum += p[p.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** A v4v6 spec's addresses, parsed (native addon.cc v4v6_config: the same checks). `endpoint` is the client's
 *  IPv6 address in one canonical text, the key of the endpoint map. */
export interface ParsedV4v6 {
  endpoint: string;
  serverIp4: number;
  clientIp4: number;
}

export function parseV4v6Spec(spec: V4v6TunnelSpec): ParsedV4v6 {
  const text = spec.client.address;
  if (!ipaddr.IPv6.isValid(text) || text.includes('%')) throw new Error(`clientAddress: not an IPv6 address: ${text}`);
  const serverIp4 = ipv4Number(spec.serverIpv4);
  if (serverIp4 === undefined) throw new Error(`serverIpv4: not an IPv4 address: ${spec.serverIpv4}`);
  const clientIp4 = ipv4Number(spec.clientIpv4);
  if (clientIp4 === undefined) throw new Error(`clientIpv4: not an IPv4 address: ${spec.clientIpv4}`);
  return { endpoint: ipv6Key(text)!, serverIp4, clientIp4 };
}

/** One canonical text per IPv6 address (the endpoint map's key), or undefined when `text` is not IPv6. */
export function ipv6Key(text: string): string | undefined {
  return ipaddr.IPv6.isValid(text) ? ipaddr.IPv6.parse(text).toNormalizedString() : undefined;
}
