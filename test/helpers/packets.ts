/** @module test/helpers/packets: builders for the raw packets data-plane tests and benchmarks send: IPv6 with
 *  a UDP or ICMPv6 payload (checksums right), and IPv4/UDP headers for generators on IPPROTO_RAW sockets. */

import ipaddr from 'ipaddr.js';

export const NEXT_HEADER_UDP = 17;
export const NEXT_HEADER_ICMPV6 = 58;

export function ipv6Bytes(text: string): Buffer {
  return Buffer.from(ipaddr.IPv6.parse(text).toByteArray());
}

export function ipv4Bytes(text: string): Buffer {
  return Buffer.from(ipaddr.IPv4.parse(text).toByteArray());
}

function foldChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function sumWords(b: Uint8Array, sum = 0): number {
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (b.length % 2 === 1) sum += b[b.length - 1]! << 8;
  return sum;
}

/** Upper-layer checksum over the IPv6 pseudo-header (RFC 8200 §8.1). */
function ipv6UpperChecksum(src: Buffer, dst: Buffer, nextHeader: number, upper: Buffer): number {
  let sum = sumWords(src) + sumWords(dst);
  sum += (upper.length >>> 16) + (upper.length & 0xffff) + nextHeader;
  return foldChecksum(sumWords(upper, sum));
}

export interface Ipv6PacketSpec {
  src: string;
  dst: string;
  nextHeader: number;
  payload: Buffer;
  hopLimit?: number;
}

export function ipv6Packet(spec: Ipv6PacketSpec): Buffer {
  const header = Buffer.alloc(40);
  header[0] = 0x60;
  header.writeUInt16BE(spec.payload.length, 4);
  header[6] = spec.nextHeader;
  header[7] = spec.hopLimit ?? 64;
  ipv6Bytes(spec.src).copy(header, 8);
  ipv6Bytes(spec.dst).copy(header, 24);
  return Buffer.concat([header, spec.payload]);
}

/** An IPv6/UDP packet whose whole length is `totalLength` bytes (at least 48). */
export function ipv6Udp(src: string, dst: string, totalLength: number, ports = { src: 40000, dst: 9 }): Buffer {
  const data = Buffer.alloc(Math.max(0, totalLength - 48));
  for (let i = 0; i < data.length; i++) data[i] = (i + 8) & 0xff;
  return ipv6UdpWith(src, dst, data, ports);
}

/** An IPv6/UDP packet carrying `data`, with the UDP checksum right (so a kernel delivers it). */
export function ipv6UdpWith(
  src: string,
  dst: string,
  data: Uint8Array,
  ports = { src: 40000, dst: 9 },
  hopLimit = 64,
): Buffer {
  const udp = Buffer.alloc(8 + data.length);
  udp.writeUInt16BE(ports.src, 0);
  udp.writeUInt16BE(ports.dst, 2);
  udp.writeUInt16BE(udp.length, 4);
  udp.set(data, 8);
  udp.writeUInt16BE(ipv6UpperChecksum(ipv6Bytes(src), ipv6Bytes(dst), NEXT_HEADER_UDP, udp) || 0xffff, 6);
  return ipv6Packet({ src, dst, nextHeader: NEXT_HEADER_UDP, payload: udp, hopLimit });
}

/** An ICMPv6 echo request (type 128) with a correct checksum. */
export function icmpv6EchoRequest(src: string, dst: string, identifier = 0x1234, sequence = 1, data = 16): Buffer {
  const icmp = Buffer.alloc(8 + data);
  icmp[0] = 128;
  icmp.writeUInt16BE(identifier, 4);
  icmp.writeUInt16BE(sequence, 6);
  for (let i = 8; i < icmp.length; i++) icmp[i] = i;
  icmp.writeUInt16BE(ipv6UpperChecksum(ipv6Bytes(src), ipv6Bytes(dst), NEXT_HEADER_ICMPV6, icmp), 2);
  return ipv6Packet({ src, dst, nextHeader: NEXT_HEADER_ICMPV6, payload: icmp });
}

/** True if the ICMPv6 checksum of an IPv6 packet (no extension headers) verifies. */
export function icmpv6ChecksumOk(packet: Buffer): boolean {
  const upper = Buffer.from(packet.subarray(40));
  const given = upper.readUInt16BE(2);
  upper.writeUInt16BE(0, 2);
  return ipv6UpperChecksum(packet.subarray(8, 24), packet.subarray(24, 40), NEXT_HEADER_ICMPV6, upper) === given;
}

/** A whole IPv4/UDP packet (for IPPROTO_RAW: the kernel fills the header checksum and id). UDP checksum 0:
 *  allowed for IPv4 (RFC 768). */
export function ipv4Udp(src: string, dst: string, srcPort: number, dstPort: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(28);
  header[0] = 0x45;
  header.writeUInt16BE(28 + payload.length, 2);
  header[6] = 0x40; // DF: the generator's packets are never fragmented on the way
  header[8] = 64;
  header[9] = 17;
  ipv4Bytes(src).copy(header, 12);
  ipv4Bytes(dst).copy(header, 16);
  header.writeUInt16BE(srcPort, 20);
  header.writeUInt16BE(dstPort, 22);
  header.writeUInt16BE(8 + payload.length, 24);
  return Buffer.concat([header, payload]);
}

/** The IPv4 header checksum of `header` (its checksum field taken as zero). */
function ipv4HeaderChecksum(header: Buffer): number {
  const copy = Buffer.from(header);
  copy.writeUInt16BE(0, 10);
  return foldChecksum(sumWords(copy));
}

/** A whole IPv4 packet with its header checksum right (what a kernel accepts from a TUN device). */
export function ipv4Packet(src: string, dst: string, protocol: number, payload: Buffer, ttl = 64): Buffer {
  const header = Buffer.alloc(20);
  header[0] = 0x45;
  header.writeUInt16BE(20 + payload.length, 2);
  header[8] = ttl;
  header[9] = protocol;
  ipv4Bytes(src).copy(header, 12);
  ipv4Bytes(dst).copy(header, 16);
  header.writeUInt16BE(ipv4HeaderChecksum(header), 10);
  return Buffer.concat([header, payload]);
}

/** An IPv4/UDP packet carrying `data` (UDP checksum 0: none, which IPv4 allows), header checksum right. */
export function ipv4UdpWith(src: string, dst: string, data: Uint8Array, ports = { src: 40000, dst: 9 }, ttl = 64) {
  const udp = Buffer.alloc(8 + data.length);
  udp.writeUInt16BE(ports.src, 0);
  udp.writeUInt16BE(ports.dst, 2);
  udp.writeUInt16BE(udp.length, 4);
  udp.set(data, 8);
  return ipv4Packet(src, dst, 17, udp, ttl);
}

/** An ICMP echo request (type 8) with both checksums right. */
export function icmpEchoRequest(src: string, dst: string, identifier = 0x1234, sequence = 1, data = 16): Buffer {
  const icmp = Buffer.alloc(8 + data);
  icmp[0] = 8;
  icmp.writeUInt16BE(identifier, 4);
  icmp.writeUInt16BE(sequence, 6);
  for (let i = 8; i < icmp.length; i++) icmp[i] = i;
  icmp.writeUInt16BE(foldChecksum(sumWords(icmp)), 2);
  return ipv4Packet(src, dst, 1, icmp);
}

/** True if an IPv4 packet's header checksum and (for ICMP) its ICMP checksum verify. */
export function ipv4ChecksumsOk(packet: Buffer): boolean {
  const ihl = (packet[0]! & 0x0f) * 4;
  if (ipv4HeaderChecksum(packet.subarray(0, ihl)) !== packet.readUInt16BE(10)) return false;
  return packet[9] !== 1 || foldChecksum(sumWords(packet.subarray(ihl))) === 0;
}

/** The UDP checksum over the IPv4 pseudo-header (RFC 768) of `udp` (header and data, its checksum field taken
 *  as zero); 0xffff for a sum of zero, since 0 means none. */
export function udpIpv4Checksum(src: string, dst: string, udp: Buffer): number {
  const copy = Buffer.from(udp);
  copy.writeUInt16BE(0, 6);
  const sum = sumWords(ipv4Bytes(src)) + sumWords(ipv4Bytes(dst)) + 17 + copy.length;
  return foldChecksum(sumWords(copy, sum)) || 0xffff;
}
