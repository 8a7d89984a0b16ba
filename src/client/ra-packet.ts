/** @module client/ra-packet: the ICMPv6 Router Advertisement tspc's own announcer sends on the LAN in router
 *  mode (client/ra-builtin.ts), and the check of a Router Solicitation it answers. Pure: bytes in, bytes out.
 *
 *    RFC 4861 §4.2   type 134, code 0, checksum, cur hop limit, flags, router lifetime, reachable, retrans
 *      §4.6.1        source link-layer address (type 1): the LAN interface's MAC, so hosts need no NS first
 *      §4.6.4        MTU (type 5): the tunnel's 1280, since everything beyond the LAN crosses the tunnel
 *      §4.6.2        prefix information (type 3): the /64, on-link and autonomous (SLAAC, RFC 4862)
 *    RFC 8106 §5.1   RDNSS (type 25): the resolver from the offer
 *
 *  The checksum is left zero: the kernel fills it in on a raw ICMPv6 socket (RFC 3542 §3.1), since it
 *  covers the pseudo-header with the source address the kernel picks. icmpv6Checksum() exists for tests and
 *  for readers of captured packets. */

import ipaddr from 'ipaddr.js';

export const ICMPV6_ROUTER_SOLICITATION = 133;
export const ICMPV6_ROUTER_ADVERTISEMENT = 134;
const OPTION_SOURCE_LINK_LAYER = 1;
const OPTION_PREFIX_INFORMATION = 3;
const OPTION_MTU = 5;
const OPTION_RDNSS = 25;
/** Prefix information flags (RFC 4861 §4.6.2): L (on-link) and A (autonomous address configuration). */
const PREFIX_ON_LINK = 0x80;
const PREFIX_AUTONOMOUS = 0x40;
/** The hop limit hosts should use, as radvd's AdvCurHopLimit default. */
const CUR_HOP_LIMIT = 64;
/** RFC 8106 §5.1: at most this many addresses fit the option's length byte sensibly; we send one or two. */
export const MAX_RDNSS_ADDRESSES = 3;

export interface RouterAdvertisement {
  /** Seconds hosts may use us as a default router; 0 in the final RA (RFC 4861 §6.2.5). At most 9000. */
  routerLifetimeS: number;
  /** The /64 announced for SLAAC. */
  prefix: { address: string; length: number; validLifetimeS: number; preferredLifetimeS: number };
  /** The LAN interface's MAC as `aa:bb:cc:dd:ee:ff`; left out when unknown. */
  sourceMac?: string;
  /** Link MTU to announce; left out when undefined. */
  mtu?: number;
  /** RDNSS: resolvers and their lifetime (0 withdraws them). Left out when empty. */
  dns?: { servers: string[]; lifetimeS: number };
}

/** The RA's bytes, checksum zero (the kernel computes it). Throws on values that do not fit their fields. */
export function buildRouterAdvertisement(ra: RouterAdvertisement): Uint8Array {
  const parts: Uint8Array[] = [];
  const header = new Uint8Array(16);
  const h = new DataView(header.buffer);
  h.setUint8(0, ICMPV6_ROUTER_ADVERTISEMENT);
  h.setUint8(4, CUR_HOP_LIMIT);
  h.setUint8(5, 0); // M, O, H, Prf: addresses by SLAAC, resolvers by RDNSS, medium preference
  h.setUint16(6, fieldValue('routerLifetimeS', ra.routerLifetimeS, 9000));
  parts.push(header); // reachable time and retrans timer stay 0: unspecified, hosts keep their own
  if (ra.sourceMac !== undefined) parts.push(sourceLinkLayerOption(ra.sourceMac));
  if (ra.mtu !== undefined) {
    const o = option(OPTION_MTU, 8);
    new DataView(o.buffer).setUint32(4, fieldValue('mtu', ra.mtu, 0xffffffff));
    parts.push(o);
  }
  parts.push(prefixOption(ra.prefix));
  if (ra.dns && ra.dns.servers.length > 0) parts.push(rdnssOption(ra.dns.servers, ra.dns.lifetimeS));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function option(type: number, bytes: number): Uint8Array {
  const o = new Uint8Array(bytes);
  o[0] = type;
  o[1] = bytes / 8; // option lengths count 8-octet units (RFC 4861 §4.6)
  return o;
}

function fieldValue(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`${name} ${value} is not 0..${max}`);
  return value;
}

function sourceLinkLayerOption(mac: string): Uint8Array {
  const m = /^([0-9a-f]{2})(?::([0-9a-f]{2})){5}$/i.exec(mac);
  if (!m) throw new RangeError(`sourceMac "${mac}" is not a MAC address`);
  const o = option(OPTION_SOURCE_LINK_LAYER, 8);
  mac.split(':').forEach((byte, i) => (o[2 + i] = parseInt(byte, 16)));
  return o;
}

function prefixOption(p: RouterAdvertisement['prefix']): Uint8Array {
  const o = option(OPTION_PREFIX_INFORMATION, 32);
  const v = new DataView(o.buffer);
  v.setUint8(2, fieldValue('prefix.length', p.length, 128));
  v.setUint8(3, PREFIX_ON_LINK | PREFIX_AUTONOMOUS);
  v.setUint32(4, fieldValue('prefix.validLifetimeS', p.validLifetimeS, 0xffffffff));
  v.setUint32(8, fieldValue('prefix.preferredLifetimeS', p.preferredLifetimeS, 0xffffffff));
  if (p.preferredLifetimeS > p.validLifetimeS) throw new RangeError('prefix: preferred lifetime exceeds valid');
  // bytes 12..15 reserved; the prefix with the bits beyond its length cleared (§4.6.2: receivers ignore them)
  const bytes = ipaddr.IPv6.parse(p.address).toByteArray();
  for (let bit = p.length; bit < 128; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  o.set(bytes, 16);
  return o;
}

function rdnssOption(servers: string[], lifetimeS: number): Uint8Array {
  if (servers.length > MAX_RDNSS_ADDRESSES) throw new RangeError(`at most ${MAX_RDNSS_ADDRESSES} RDNSS addresses`);
  const o = option(OPTION_RDNSS, 8 + 16 * servers.length); // length 1 + 2 per address (RFC 8106 §5.1)
  new DataView(o.buffer).setUint32(4, fieldValue('dns.lifetimeS', lifetimeS, 0xffffffff));
  servers.forEach((s, i) => o.set(ipaddr.IPv6.parse(s).toByteArray(), 8 + 16 * i));
  return o;
}

/** Whether a received ICMPv6 message is a Router Solicitation we should answer (RFC 4861 §6.1.1): type 133,
 *  code 0, at least 8 bytes, hop limit 255 (so it was not forwarded), options each with a non-zero length
 *  that fits. A solicitation from the unspecified address must carry no source link-layer option. */
export function isValidRouterSolicitation(message: Uint8Array, hopLimit: number, source: string): boolean {
  if (hopLimit !== 255 || message.length < 8) return false;
  if (message[0] !== ICMPV6_ROUTER_SOLICITATION || message[1] !== 0) return false;
  const unspecified = ipaddr.IPv6.isValid(source) && ipaddr.IPv6.parse(source).range() === 'unspecified';
  for (let at = 8; at < message.length;) {
    if (at + 2 > message.length) return false;
    const units = message[at + 1]!;
    if (units === 0 || at + units * 8 > message.length) return false;
    if (unspecified && message[at] === OPTION_SOURCE_LINK_LAYER) return false;
    at += units * 8;
  }
  return true;
}

/** The ICMPv6 checksum (RFC 4443 §2.3) over the pseudo-header (RFC 8200 §8.1) and the message, with the
 *  message's own checksum field taken as zero. */
export function icmpv6Checksum(source: string, destination: string, message: Uint8Array): number {
  const pseudo = new Uint8Array(40 + message.length + (message.length % 2));
  pseudo.set(ipaddr.IPv6.parse(source).toByteArray(), 0);
  pseudo.set(ipaddr.IPv6.parse(destination).toByteArray(), 16);
  new DataView(pseudo.buffer).setUint32(32, message.length);
  pseudo[39] = 58; // next header: ICMPv6
  pseudo.set(message, 40);
  pseudo[42] = 0;
  pseudo[43] = 0;
  let sum = 0;
  for (let i = 0; i < pseudo.length; i += 2) sum += (pseudo[i]! << 8) | pseudo[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

// ----- what tspc announces, with either announcer (radvd's configuration carries the same values) -------------

/** RFC 4861 §6.2.1 defaults, as radvd's: unsolicited RAs every MIN..MAX seconds, at random. */
export const MAX_RTR_ADV_INTERVAL_S = 600;
export const MIN_RTR_ADV_INTERVAL_S = 200;
/** 3 x MaxRtrAdvInterval (§6.2.1's default AdvDefaultLifetime). */
export const ROUTER_LIFETIME_S = 3 * MAX_RTR_ADV_INTERVAL_S;
/** radvd's AdvValidLifetime and AdvPreferredLifetime defaults (one day, four hours). */
export const PREFIX_VALID_LIFETIME_S = 86_400;
export const PREFIX_PREFERRED_LIFETIME_S = 14_400;
/** RFC 8106 §5.1: at least 3 x MaxRtrAdvInterval, so one lost RA does not drop the resolver. */
export const RDNSS_LIFETIME_S = 3 * MAX_RTR_ADV_INTERVAL_S;

/** What is announced on the LAN: the /64, the resolvers, the link MTU. */
export interface Announcement {
  lanInterface: string;
  /** The /64's network address (host bits zero). */
  prefix64: string;
  /** The offer's resolver, when it is one a LAN host can use (see usableResolvers). */
  dnsServers: string[];
  mtu: number;
}

/** The offer's resolver, unless it is an address a LAN host cannot use as one (unspecified, loopback,
 *  link-local: that would be the broker's link, multicast). */
export function usableResolvers(dnsServer: string | undefined): string[] {
  if (dnsServer === undefined || !ipaddr.IPv6.isValid(dnsServer)) return [];
  const range = ipaddr.IPv6.parse(dnsServer).range();
  return ['unspecified', 'loopback', 'linkLocal', 'multicast'].includes(range)
    ? []
    : [ipaddr.IPv6.parse(dnsServer).toString()];
}
