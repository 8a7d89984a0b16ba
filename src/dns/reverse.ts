/** @module dns/reverse: which ip6.arpa names a delegated prefix's reverse zone lives at, and which name servers
 *  a user may delegate it to. Pure.
 *
 *  ip6.arpa delegates on nibble (4-bit) boundaries: a /48 or /56 is one zone, a /50 is the four /52 zones it
 *  covers (at most 8, for a length of 4k+1). Name servers are host names only (no addresses: we never publish
 *  glue), and never inside a reverse tree, so no one can make our zone carry records for names they choose. */

import ipaddr from 'ipaddr.js';

/** The prefix's nibbles, most significant first, as lower-case hex digits. */
function nibbles(prefix: string): string[] {
  return ipaddr.IPv6.parse(prefix)
    .toByteArray()
    .flatMap((b) => [(b >> 4).toString(16), (b & 0xf).toString(16)]);
}

/** The ip6.arpa names (no trailing dot) that together hold the reverse zone of `prefix/len`. */
export function reverseZoneNames(prefix: string, len: number): string[] {
  if (!Number.isInteger(len) || len < 4 || len > 124) throw new Error(`cannot delegate the reverse zone of a /${len}`);
  const cut = Math.ceil(len / 4);
  const base = nibbles(prefix).slice(0, cut);
  const spare = cut * 4 - len; // low bits of the last nibble the prefix leaves free
  const names: string[] = [];
  for (let i = 0; i < 1 << spare; i++) {
    const n = [...base];
    n[cut - 1] = (parseInt(n[cut - 1]!, 16) | i).toString(16);
    names.push(`${n.reverse().join('.')}.ip6.arpa`);
  }
  return names;
}

/** Lower-cased, without a trailing dot. */
export function canonicalName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

/** Whether `name` is `zone` or below it. */
export function isWithin(name: string, zone: string): boolean {
  const n = canonicalName(name);
  const z = canonicalName(zone);
  return n === z || n.endsWith(`.${z}`);
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Name servers as a user gave them, checked: host names of two labels or more, letters, digits and hyphens,
 *  at most `max` of them (duplicates removed), none under ip6.arpa or in-addr.arpa. Returns them canonical, or
 *  throws an Error whose message says what is wrong (it goes back to an API caller and into the broker's log). */
export function checkNameServers(given: readonly string[], max: number): string[] {
  const out: string[] = [];
  for (const raw of given) {
    const shown = JSON.stringify(raw.slice(0, 80));
    const name = canonicalName(raw);
    if (name.length === 0 || name.length > 253) throw new Error(`name server ${shown} is not a host name`);
    const labels = name.split('.');
    if (labels.length < 2 || !labels.every((l) => LABEL.test(l)))
      throw new Error(`name server ${shown} is not a fully qualified host name`);
    if (/^\d+$/.test(labels[labels.length - 1]!)) throw new Error(`name server ${shown} is an address, not a name`);
    if (isWithin(name, 'ip6.arpa') || isWithin(name, 'in-addr.arpa'))
      throw new Error(`name server ${shown} lies inside a reverse tree`);
    if (!out.includes(name)) out.push(name);
  }
  if (out.length > max) throw new Error(`${out.length} name servers given, at most ${max} allowed`);
  return out;
}
