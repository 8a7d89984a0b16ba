/** cluster/routes-of: which prefixes a tunnel is routed by, per link mode and tunnel type, and that the
 *  hand-rolled address arithmetic agrees with ipaddr.js (the broker's pools' own) on many addresses. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ipaddr from 'ipaddr.js';
import { routesOf, type RoutedTunnel } from '../../../src/cluster/routes-of.js';
import { normalisePrefix } from '../../../src/broker/pools.js';

const v6 = (clientIpv6: string, prefix: string | null = null, prefixLen: number | null = null): RoutedTunnel => ({
  type: 'v6udpv4',
  clientIpv4: '192.0.2.10',
  clientIpv6,
  prefix,
  prefixLen,
});

test('per-account-64: the /64 and the delegated prefix', () => {
  assert.deepEqual(routesOf(v6('2001:db8:0:1::2', '2001:db8:f000:100::', 56), 64), [
    '2001:db8:0:1::/64',
    '2001:db8:f000:100::/56',
  ]);
});

test('shared-64: the /126 around the client (server ::1 included), never the whole /64', () => {
  assert.deepEqual(routesOf(v6('2001:db8:0:1::6'), 126), ['2001:db8:0:1::4/126']);
  assert.deepEqual(routesOf(v6('2001:db8:0:1::2'), 126), ['2001:db8:0:1::/126']);
});

test('after a change of pools.linkMode a tunnel keeps the block its address shows', () => {
  // a /126-era client not at the start of its /64, under per-account-64: still its /126
  assert.deepEqual(routesOf(v6('2001:db8:0:1::a'), 64), ['2001:db8:0:1::8/126']);
});

test('v4v6: the /30 around the inner IPv4, and nothing of its outer IPv6', () => {
  const t: RoutedTunnel = {
    type: 'v4v6',
    clientIpv4: '203.0.113.10',
    clientIpv6: '2001:db8::2',
    prefix: null,
    prefixLen: null,
  };
  assert.deepEqual(routesOf(t, 64), ['203.0.113.8/30']);
});

test('the block arithmetic agrees with ipaddr.js', () => {
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let i = 0; i < 2000; i++) {
    const groups = Array.from({ length: 8 }, () => (next() % 4 === 0 ? 0 : next() % 0x10000));
    const address = ipaddr.fromByteArray(new ipaddr.IPv6(groups).toByteArray()).toString();
    const length = 48 + (next() % 17);
    const [, prefix] = routesOf(v6('2001:db8:0:1::2', address, length), 64);
    assert.equal(prefix, normalisePrefix(`${address}/${length}`), address);
    const [block] = routesOf(v6(address), 126);
    assert.equal(block, normalisePrefix(`${address}/126`), address);
  }
});
