/** Prefix arithmetic used by allocation: parsing, canonical text, ancestors, overlap. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BrokerError } from '../../../src/errors.js';
import {
  ancestorsOf,
  canonicalAddress,
  formatAddress,
  formatPrefix,
  fromHex,
  overlaps,
  parsePrefix,
  toHex,
  truncate,
} from '../../../src/store/prefix.js';

describe('store/prefix', () => {
  it('parses, canonicalises and round-trips prefixes', () => {
    const p = parsePrefix('2001:0DB8:0F01:0000::/56');
    assert.equal(p.len, 56);
    assert.equal(p.start, 0x20010db80f0100000000000000000000n);
    assert.equal(formatPrefix(p), '2001:db8:f01::/56');
    assert.equal(formatAddress(0n), '::');
    assert.equal(formatAddress((1n << 128n) - 1n), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    assert.equal(canonicalAddress('FD00:0:0:0:0:0:0:1'), 'fd00::1');
    assert.equal(toHex(p.start), '20010db80f0100000000000000000000');
    assert.equal(fromHex(toHex(p.start)), p.start);
  });

  it('refuses host bits, IPv4 and garbage with CFG_INVALID', () => {
    for (const bad of ['fd00::1/64', '10.0.0.0/8', 'nonsense', 'fd00::/129']) {
      assert.throws(
        () => parsePrefix(bad),
        (e: unknown) => e instanceof BrokerError && e.code === 'CFG_INVALID',
        bad,
      );
    }
    assert.throws(() => canonicalAddress('1.2.3.4'), BrokerError);
  });

  it('lists ancestors shortest first, down to the pool', () => {
    const block = parsePrefix('fd00:0:0:ab00::/56');
    const anc = ancestorsOf(block.start, 56, 52).map(formatPrefix);
    assert.deepEqual(anc, ['fd00:0:0:a000::/52', 'fd00:0:0:a800::/53', 'fd00:0:0:a800::/54', 'fd00:0:0:aa00::/55']);
    assert.deepEqual(ancestorsOf(block.start, 56, 56), []);
    assert.equal(truncate(parsePrefix('fd00::ffff/128').start, 112), parsePrefix('fd00::/112').start);
  });

  it('tells overlapping prefixes apart from disjoint ones', () => {
    assert.ok(overlaps(parsePrefix('fd00::/48'), parsePrefix('fd00:0:0:ff00::/56')));
    assert.ok(overlaps(parsePrefix('fd00:0:0:ff00::/56'), parsePrefix('fd00::/48')));
    assert.ok(!overlaps(parsePrefix('fd00::/48'), parsePrefix('fd00:1::/48')));
    assert.ok(!overlaps(parsePrefix('fd00::/64'), parsePrefix('fd00:0:0:1::/64')));
  });
});
