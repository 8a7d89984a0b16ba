/** What an IPv6 source counts as in the broker's per-source bounds: its /64 (a host picks any address in it),
 *  and its /48 where IPv4 is counted by /24. Anonymous quotas and kill-and-block, as an operator relies on them
 *  against a client that hops between addresses of its /64. Documentation ranges only. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AnonymousHoldings } from '../../../src/broker/anonymous.js';
import { TunnelBlocks } from '../../../src/broker/blocks.js';
import { ManualClock } from '../../../src/clock.js';

const v4v6 = (id: number, clientIpv6: string) =>
  ({ id, accountId: null, type: 'v4v6', clientIpv4: `198.51.100.${id}`, clientIpv6 }) as const;

test('anonymous tunnels from one /64 count as one source, and from one /48 as one network', () => {
  const held = new AnonymousHoldings();
  held.hold(v4v6(1, '2001:db8:1:2::10'));
  held.hold(v4v6(2, '2001:db8:1:2:aaaa::99'));
  held.hold(v4v6(3, '2001:db8:1:3::10'));
  assert.deepEqual(held.held('2001:db8:1:2:ffff::1', 'v4v6'), { bySource: 2, byPrefix24: 3, total: 3 });
  assert.deepEqual(held.held('2001:db8:1:3::77', 'v4v6'), { bySource: 1, byPrefix24: 3, total: 3 });
  assert.deepEqual(held.held('2001:db8:2::1', 'v4v6'), { bySource: 0, byPrefix24: 0, total: 3 });
  held.release(2);
  assert.equal(held.held('2001:db8:1:2::10', 'v4v6').bySource, 1, 'the release finds the same source');
  // a v4v6 tunnel's source is its IPv6 endpoint, never its inner IPv4
  assert.equal(held.held('198.51.100.1', 'v6v4').bySource, 0);
});

test("each pool's anonymous share counts the tunnels holding that pool: v4v6 the IPv4 pool, the others the link pool", () => {
  const held = new AnonymousHoldings();
  held.hold(v4v6(1, '2001:db8:1:2::10'));
  held.hold({ id: 2, accountId: null, type: 'v6udpv4', clientIpv4: '192.0.2.7', clientIpv6: '2001:db8:f00::2' });
  held.hold({ id: 3, accountId: null, type: 'v6v4', clientIpv4: '192.0.2.8', clientIpv6: '2001:db8:f01::2' });
  assert.equal(held.held('2001:db8:9::1', 'v4v6').total, 1);
  assert.equal(held.held('192.0.2.9', 'v6udpv4').total, 2);
  held.release(1);
  assert.equal(held.held('2001:db8:9::1', 'v4v6').total, 0);
  assert.equal(held.held('192.0.2.9', 'v6v4').total, 2);
});

test('a kill-and-block of an anonymous IPv6 source blocks its whole /64, nothing beyond', () => {
  const clock = new ManualClock(1_000_000);
  const blocks = new TunnelBlocks(clock);
  blocks.block({ source: '2001:db8:1:2::10' }, 5);
  assert.notEqual(blocks.blockedUntil({ source: '2001:db8:1:2:dead:beef::1' }), null, 'another address of the /64');
  assert.equal(blocks.blockedUntil({ source: '2001:db8:1:3::10' }), null, 'the next /64 is someone else');
  assert.equal(blocks.blockedUntil({ source: '198.51.100.10' }), null);
});
