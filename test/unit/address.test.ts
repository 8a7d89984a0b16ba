/** address: the /24 a source is counted in, and IPv4 text as the number maps are keyed by (exactly what
 *  inet_pton takes: four decimal parts of 0 to 255, no leading zeros). Documentation ranges only. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv4Number, prefix24, sourceKey } from '../../src/address.js';

test('prefix24: the first three octets of IPv4, the /48 of IPv6, anything else as it is', () => {
  assert.equal(prefix24('198.51.100.7'), '198.51.100');
  assert.equal(prefix24('2001:db8:1:2::1'), '2001:db8:1::/48');
  assert.equal(prefix24('2001:db8:1:ffff:1::9'), '2001:db8:1::/48', 'one site, however it numbers its hosts');
  assert.equal(prefix24('not-an-address'), 'not-an-address');
});

test('sourceKey: an IPv4 address itself, an IPv6 address its /64 (a host picks any address in it)', () => {
  assert.equal(sourceKey('198.51.100.7'), '198.51.100.7');
  assert.equal(sourceKey('2001:db8:1:2::1'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
  assert.notEqual(sourceKey('2001:db8:1:3::1'), sourceKey('2001:db8:1:2::1'));
});

test('ipv4Number: dotted quads as numbers; anything else undefined', () => {
  assert.equal(ipv4Number('192.0.2.1'), 0xc0000201);
  assert.equal(ipv4Number('0.0.0.0'), 0);
  assert.equal(ipv4Number('255.255.255.255'), 0xffffffff);
  assert.equal(ipv4Number('203.0.113.0'), 0xcb007100);
  for (const bad of ['256.0.0.1', '01.2.3.4', '192.0.2', '192.0.2.1.5', '192..2.1', '', 'a.b.c.d', '192.0.2.1 ', '::1'])
    assert.equal(ipv4Number(bad), undefined, bad);
});
