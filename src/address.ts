/** @module address: small facts about peer addresses that several layers key limits by. Imports only
 *  ipaddr.js. */

import ipaddr from 'ipaddr.js';

/** The network a source belongs to, the unit the half-open eviction, the anonymous quotas and the failure
 *  limiter count sources in: an IPv4 address's /24 (its first three octets), an IPv6 address's /48 (what one
 *  site is given). Anything else is its own network. */
export function prefix24(address: string): string {
  if (address.includes(':')) return ipv6Network(address, 48);
  const dot = address.lastIndexOf('.');
  return dot > 0 ? address.slice(0, dot) : address;
}

/** What counts as one source for per-source limits: an IPv4 address itself, an IPv6 address's /64 (a host
 *  picks any address in its /64 at will, so a limit per IPv6 address would bound nothing). */
export function sourceKey(address: string): string {
  return address.includes(':') ? ipv6Network(address, 64) : address;
}

function ipv6Network(address: string, length: number): string {
  if (!ipaddr.IPv6.isValid(address)) return address;
  const bytes = ipaddr.IPv6.parse(address).toByteArray();
  bytes.fill(0, length / 8);
  return `${ipaddr.fromByteArray(bytes).toString()}/${length}`;
}

/** A dotted-quad IPv4 address as a number (0 to 2^32 - 1), or undefined when it is not exactly one (four
 *  decimal parts of 0 to 255, no leading zeros, as inet_pton takes them). Maps with one entry per tunnel key
 *  by this, not by the text: a small integer or one heap number instead of a string per entry. */
export function ipv4Number(text: string): number | undefined {
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return undefined;
      n = n * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && !(digits === 1 && part === 0)) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return undefined;
    } else return undefined;
  }
  return dots === 3 && digits > 0 ? n * 256 + part : undefined;
}
