/** @module ipv6-text: IPv6 text to 16 bytes and back, for the paths every TSP session takes (a lease's
 *  addresses, the offer's expanded prefix, the store's canonical text). ipaddr.js does the same through regular
 *  expressions and an object per address, which was about 4 % of the broker's CPU in a reconnect storm; these
 *  scan the text once. The output is the text ipaddr.js gives (tested against it, test/unit/ipv6-text.test.ts):
 *  RFC 5952, lower case, the longest run of two or more zero groups (the first of equal runs) as `::`, and an
 *  IPv4-mapped address in hex groups, never dotted.
 *
 *  The parser takes RFC 4291 text: up to eight groups of one to four hex digits, one `::` standing for at least
 *  one zero group, and a dotted-quad IPv4 address as the last 32 bits. It refuses what ipaddr.js also refuses,
 *  and is stricter in two places: a zone (`fe80::1%eth0`) and a dotted part with a leading zero (`::01.2.3.4`) are
 *  refused. It reads one form differently: `::1.2.3.4` is `::102:304` here, as RFC 4291 says, where ipaddr.js
 *  makes it `::ffff:102:304`; no address the broker handles is written so. Pure. */

import { ipv4Number } from './address.js';

/** parseIpv6's scratch space (it runs to its end synchronously): two typed arrays fewer a call. */
const WORDS = new Uint16Array(8);
const TAIL = new Uint16Array(8);

/** The 16 bytes of an IPv6 address text, or undefined when it is not one (see the module comment). */
export function parseIpv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const words = WORDS.fill(0);
  const gap = text.indexOf('::');
  if (gap !== -1 && text.indexOf('::', gap + 1) !== -1) return undefined;
  let count: number;
  if (gap === -1) {
    count = parseGroups(text, words, 0, true);
    if (count !== 8) return undefined;
  } else {
    const head = gap === 0 ? 0 : parseGroups(text.slice(0, gap), words, 0, false);
    if (head < 0) return undefined;
    const tailText = text.slice(gap + 2);
    const tail = TAIL;
    const tailCount = tailText === '' ? 0 : parseGroups(tailText, tail, 0, true);
    if (tailCount < 0 || head + tailCount > 7) return undefined;
    for (let k = 0; k < tailCount; k++) words[8 - tailCount + k] = tail[k]!;
    count = 8;
  }
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    bytes[2 * i] = words[i]! >> 8;
    bytes[2 * i + 1] = words[i]! & 0xff;
  }
  return bytes;
}

/** Parses `a:b:c` (no `::`) into words from `at`; the last part may be a dotted quad (two words) when
 *  `dottedLast`. Returns how many words it wrote, or -1. */
function parseGroups(text: string, words: Uint16Array, at: number, dottedLast: boolean): number {
  let n = at;
  let start = 0;
  for (;;) {
    const colon = text.indexOf(':', start);
    const end = colon === -1 ? text.length : colon;
    if (colon === -1 && dottedLast && text.indexOf('.', start) !== -1) {
      const v4 = ipv4Number(text.slice(start));
      if (v4 === undefined || n > 6) return -1;
      words[n++] = v4 >>> 16;
      words[n++] = v4 & 0xffff;
      return n;
    }
    const word = hexGroup(text, start, end);
    if (word < 0 || n > 7) return -1;
    words[n++] = word;
    if (colon === -1) return n;
    start = colon + 1;
  }
}

/** One to four hex digits from start to end, or -1. */
function hexGroup(text: string, start: number, end: number): number {
  if (end <= start || end - start > 4) return -1;
  let v = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/** RFC 5952 text of 16 bytes (see the module comment). */
export function formatIpv6(bytes: ArrayLike<number>): string {
  const words: number[] = new Array<number>(8);
  for (let i = 0; i < 8; i++) words[i] = (bytes[2 * i]! << 8) | bytes[2 * i + 1]!;
  // the longest run of zero words, two or more long (the first of equal runs)
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [bestAt, bestLen] = [i, j - i];
    i = j;
  }
  if (bestAt === -1) return words.map((w) => w.toString(16)).join(':');
  const head = words.slice(0, bestAt).map((w) => w.toString(16));
  const tail = words.slice(bestAt + bestLen).map((w) => w.toString(16));
  return `${head.join(':')}::${tail.join(':')}`;
}

/** Eight groups of four lower-case hex digits, or undefined when `text` is not an IPv6 address. */
export function expandedIpv6(text: string): string | undefined {
  const bytes = parseIpv6(text);
  if (bytes === undefined) return undefined;
  let out = '';
  for (let i = 0; i < 16; i += 2) {
    if (i) out += ':';
    out += ((bytes[i]! << 8) | bytes[i + 1]!).toString(16).padStart(4, '0');
  }
  return out;
}
