/** src/ipv6-text.ts against ipaddr.js, the library it stands in for on the session path: the same bytes for
 *  every text both accept (but `::a.b.c.d`, which ipaddr.js alone reads as `::ffff:a.b.c.d`), the same canonical
 *  text for every 16 bytes, and never an address ipaddr.js refuses.
 *  Random cases come from a seeded generator, so a failure names a case that can be run again. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import ipaddr from 'ipaddr.js';
import { expandedIpv6, formatIpv6, parseIpv6 } from '../../src/ipv6-text.js';

const canonicalIpv6 = (text: string) => {
  const bytes = parseIpv6(text);
  return bytes && formatIpv6(bytes);
};

/** xorshift32: the same sequence for the same seed. */
function rng(seed: number): () => number {
  let x = seed || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** 16 bytes with many zero groups (runs of zeros are where canonical text goes wrong). */
function randomBytes(r: () => number): number[] {
  const bytes: number[] = [];
  for (let g = 0; g < 8; g++) {
    const kind = r();
    const word = kind < 0.45 ? 0 : kind < 0.6 ? Math.floor(r() * 16) : Math.floor(r() * 65536);
    bytes.push(word >> 8, word & 0xff);
  }
  return bytes;
}

/** Other spellings of the same address: full, zero-padded, upper case, `::` anywhere valid, a dotted tail. */
function spellings(bytes: number[], r: () => number): string[] {
  const words = Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  const hex = words.map((w) => w.toString(16));
  const out = [
    hex.join(':'),
    words
      .map((w) => w.toString(16).padStart(4, '0'))
      .join(':')
      .toUpperCase(),
  ];
  const zeroRuns: [number, number][] = [];
  for (let i = 0; i < 8; i++) for (let j = i; j < 8 && words[j] === 0; j++) zeroRuns.push([i, j + 1]); // every run of zeros, any length
  if (zeroRuns.length) {
    const [a, b] = zeroRuns[Math.floor(r() * zeroRuns.length)]!;
    out.push(`${hex.slice(0, a).join(':')}::${hex.slice(b).join(':')}`);
  }
  out.push(`${hex.slice(0, 6).join(':')}:${bytes.slice(12).join('.')}`);
  return out;
}

const reference = (text: string): number[] | undefined =>
  ipaddr.IPv6.isValid(text) ? ipaddr.IPv6.parse(text).toByteArray() : undefined;

describe('ipv6-text', () => {
  it('formats 20,000 random addresses as ipaddr.js does (RFC 5952)', () => {
    const r = rng(5952);
    for (let n = 0; n < 20_000; n++) {
      const bytes = randomBytes(r);
      assert.equal(formatIpv6(bytes), ipaddr.fromByteArray(bytes).toString(), `bytes ${bytes.join(',')}`);
    }
  });

  it('parses every spelling of 5,000 random addresses to the bytes ipaddr.js gives', () => {
    const r = rng(4291);
    for (let n = 0; n < 5_000; n++) {
      for (const text of spellings(randomBytes(r), r)) {
        assert.deepEqual([...(parseIpv6(text) ?? [])], reference(text), text);
        assert.equal(canonicalIpv6(text), ipaddr.IPv6.parse(text).toString(), text);
        assert.equal(
          expandedIpv6(text),
          ipaddr.IPv6.parse(text)
            .toNormalizedString()
            .replace(/\b[0-9a-f]{1,3}\b/g, (g) => g.padStart(4, '0')),
          text,
        );
      }
    }
  });

  it('known forms', () => {
    const cases: [string, string][] = [
      ['::', '::'],
      ['::1', '::1'],
      ['1::', '1::'],
      ['2001:DB8::A', '2001:db8::a'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
      ['1::2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
      ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
      ['::ffff:192.0.2.1', '::ffff:c000:201'],
      // RFC 4291's IPv4-compatible form, where ipaddr.js alone adds ffff (it gives ::ffff:c000:201)
      ['::192.0.2.1', '::c000:201'],
      ['0000:0000:0000:0000:0000:0000:0000:0001', '::1'],
    ];
    for (const [text, canonical] of cases) assert.equal(canonicalIpv6(text), canonical, text);
    assert.equal(expandedIpv6('2001:db8::1'), '2001:0db8:0000:0000:0000:0000:0000:0001');
  });

  it('refuses what is not an address, and never accepts what ipaddr.js refuses', () => {
    const bad = [
      '',
      ':',
      ':::',
      '1:2:3:4:5:6:7:8:9',
      '1::2::3',
      '12345::',
      ':1::',
      '1::2:',
      '1:2:3:4:5:6:7',
      '1:2:3:4::5:6:7:8',
      '::1.2.3',
      '::1.2.3.4.5',
      '::256.1.1.1',
      '::01.2.3.4',
      '1.2.3.4::',
      '1:2:3:4:5:6:7:1.2.3.4',
      'fe80::1%eth0',
      'g::1',
      ' ::1',
      '::1 ',
      '192.0.2.1',
      '1:2:3:4:5:6:7:8::',
    ];
    for (const text of bad) assert.equal(parseIpv6(text), undefined, text);
    // seeded mutations of valid texts: whatever we accept, ipaddr.js accepts as the same bytes
    const r = rng(41);
    const alphabet = '0123456789abcdefABCDEF:.%g ';
    for (let n = 0; n < 20_000; n++) {
      const base = spellings(randomBytes(r), r)[Math.floor(r() * 3)]!;
      const chars = [...base];
      const at = Math.floor(r() * (chars.length + 1));
      const op = r();
      if (op < 0.33) chars.splice(at, 1);
      else if (op < 0.66) chars.splice(at, 0, alphabet[Math.floor(r() * alphabet.length)]!);
      else chars[Math.min(at, chars.length - 1)] = alphabet[Math.floor(r() * alphabet.length)]!;
      const text = chars.join('');
      const ours = parseIpv6(text);
      if (ours !== undefined && !/^::\d+\.\d+\.\d+\.\d+$/.test(text))
        assert.deepEqual([...ours], reference(text), text);
    }
  });
});
