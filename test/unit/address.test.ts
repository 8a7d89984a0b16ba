/** address: the /24 a source is counted in, and IPv4 text as the number maps are keyed by (exactly what
 *  inet_pton takes: four decimal parts of 0 to 255, no leading zeros). Documentation ranges only. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv4Number, prefix24 } from '../../src/address.js';

test('prefix24: the first three octets of IPv4, anything else as it is', () => {
  assert.equal(prefix24('198.51.100.7'), '198.51.100');
  assert.equal(prefix24('2001:db8::1'), '2001:db8::1');
});

test('ipv4Number: dotted quads as numbers; anything else undefined', () => {
  assert.equal(ipv4Number('192.0.2.1'), 0xc0000201);
  assert.equal(ipv4Number('0.0.0.0'), 0);
  assert.equal(ipv4Number('255.255.255.255'), 0xffffffff);
  assert.equal(ipv4Number('203.0.113.0'), 0xcb007100);
  for (const bad of ['256.0.0.1', '01.2.3.4', '192.0.2', '192.0.2.1.5', '192..2.1', '', 'a.b.c.d', '192.0.2.1 ', '::1'])
    assert.equal(ipv4Number(bad), undefined, bad);
});
