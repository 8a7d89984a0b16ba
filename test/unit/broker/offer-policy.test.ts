/** broker/offer-policy: every offer rule as a table, without a broker, a store or a socket. The same rules are
 *  exercised end to end (status codes on the wire) in broker.test.ts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  allowedTypes,
  anonymousRefusal,
  chooseType,
  delegatedLength,
  idleLimitMs,
  keepaliveFor,
  offerFor,
  serverIpv4From,
  sessionSourceRefusal,
} from '../../../src/broker/offer-policy.js';
import { isBrokerError } from '../../../src/errors.js';
import type { TunnelRequest } from '../../../src/protocol/xml.js';
import type { TunnelRecord } from '../../../src/store/types.js';

/** The error code a call throws, or its value. */
function outcome<T>(f: () => T): T | string {
  try {
    return f();
  } catch (err) {
    if (isBrokerError(err)) return err.code;
    throw err;
  }
}

const SEEN = '192.0.2.10';
const OTHER = '198.51.100.7';

test('tunnel type choice (docs/protocol.md §8.1), by request, transport, NAT and what is allowed', () => {
  const both = ['v6v4', 'v6udpv4'] as const;
  const rows: [
    TunnelRequest['type'],
    'udp' | 'tcp',
    string | undefined,
    readonly ('v6v4' | 'v6udpv4')[],
    'refuse' | 'offer',
    string,
  ][] = [
    ['v6udpv4', 'udp', OTHER, both, 'refuse', 'v6udpv4'],
    ['v6udpv4', 'tcp', SEEN, both, 'refuse', 'TSP_UNSUPPORTED_TUNNEL'],
    ['v6udpv4', 'udp', SEEN, ['v6v4'], 'refuse', 'TSP_UNSUPPORTED_TUNNEL'],
    ['v6anyv4', 'udp', SEEN, both, 'refuse', 'v6v4'],
    ['v6anyv4', 'udp', OTHER, both, 'refuse', 'v6udpv4'],
    ['v6anyv4', 'udp', undefined, both, 'refuse', 'v6udpv4'],
    ['v6anyv4', 'tcp', SEEN, both, 'refuse', 'v6v4'],
    ['v6anyv4', 'tcp', OTHER, both, 'refuse', 'TSP_UNSUPPORTED_TUNNEL'],
    ['v6anyv4', 'udp', SEEN, ['v6udpv4'], 'refuse', 'v6udpv4'],
    ['v6anyv4', 'tcp', SEEN, ['v6udpv4'], 'refuse', 'TSP_UNSUPPORTED_TUNNEL'],
    ['v6v4', 'tcp', SEEN, both, 'refuse', 'v6v4'],
    ['v6v4', 'tcp', OTHER, both, 'refuse', 'TSP_UNSUPPORTED_TUNNEL'],
    ['v6v4', 'tcp', OTHER, both, 'offer', 'v6v4'],
    ['v6v4', 'udp', SEEN, ['v6udpv4'], 'refuse', 'TSP_UNSUPPORTED_TUNNEL'],
    ['v4v6', 'udp', SEEN, both, 'refuse', 'TSP_UNSUPPORTED_TUNNEL'],
  ];
  for (const [type, transport, clientIpv4, allowed, behindNat, want] of rows) {
    const req = { type, ...(clientIpv4 ? { clientIpv4 } : {}) } as TunnelRequest;
    assert.equal(
      outcome(() => chooseType(req, transport, SEEN, allowed, behindNat)),
      want,
      `${type} over ${transport}, client says ${clientIpv4 ?? 'nothing'}, allowed ${allowed.join('+')}, v6v4BehindNat ${behindNat}`,
    );
  }
  assert.equal(
    outcome(() =>
      chooseType({ type: 'v6v4', clientIpv4: SEEN, proxy: true } as TunnelRequest, 'tcp', SEEN, both, 'refuse'),
    ),
    'TSP_UNSUPPORTED_TUNNEL',
    'proxy tunnels are never offered',
  );
});

test('v4v6 only over IPv6, and over IPv6 only v4v6', () => {
  const all = ['v6v4', 'v6udpv4', 'v4v6'] as const;
  const SEEN6 = '2001:db8:c::10';
  const rows: [TunnelRequest['type'], 'udp' | 'tcp', string, readonly (typeof all)[number][], string][] = [
    ['v4v6', 'udp', SEEN6, all, 'v4v6'],
    ['v4v6', 'tcp', SEEN6, all, 'v4v6'],
    ['v4v6', 'udp', SEEN6, ['v6v4', 'v6udpv4'], 'TSP_UNSUPPORTED_TUNNEL'],
    ['v4v6', 'udp', SEEN, all, 'TSP_UNSUPPORTED_TUNNEL'],
    ['v6udpv4', 'udp', SEEN6, all, 'TSP_UNSUPPORTED_TUNNEL'],
    ['v6anyv4', 'tcp', SEEN6, all, 'TSP_UNSUPPORTED_TUNNEL'],
    ['v6v4', 'tcp', SEEN6, all, 'TSP_UNSUPPORTED_TUNNEL'],
  ];
  for (const [type, transport, seen, allowed, want] of rows)
    assert.equal(
      outcome(() => chooseType({ type } as TunnelRequest, transport, seen, allowed, 'offer')),
      want,
      `${type} over ${transport} from ${seen}, allowed ${allowed.join('+')}`,
    );
});

test('allowed types: the configuration narrowed by the account', () => {
  assert.deepEqual(allowedTypes(['v6v4', 'v6udpv4'], {}), ['v6v4', 'v6udpv4']);
  assert.deepEqual(allowedTypes(['v6v4', 'v6udpv4'], { tunnelTypes: [] }), ['v6v4', 'v6udpv4']);
  assert.deepEqual(allowedTypes(['v6v4', 'v6udpv4'], { tunnelTypes: ['v6udpv4'] }), ['v6udpv4']);
  assert.deepEqual(allowedTypes(['v6v4'], { tunnelTypes: ['v6udpv4'] }), []);
});

test('delegated prefix length: host mode none; router mode within the configured and the account bounds', () => {
  const bounds = { min: 48, max: 64, default: 56 };
  const router = (prefixLength?: number) =>
    ({ type: 'v6v4', router: prefixLength === undefined ? {} : { prefixLength } }) as TunnelRequest;
  const rows: [TunnelRequest, boolean, object, number | undefined | string][] = [
    [{ type: 'v6v4' } as TunnelRequest, false, {}, undefined],
    [router(56), false, {}, 56],
    [router(48), false, {}, 48],
    [router(64), false, {}, 64],
    [router(47), false, {}, 'TSP_PREFIX_LENGTH_UNSUPPORTED'],
    [router(65), false, {}, 'TSP_PREFIX_LENGTH_UNSUPPORTED'],
    [router(), false, {}, 'TSP_PREFIX_LENGTH_MISSING'],
    [router(56), true, {}, 'TSP_PREFIX_FOR_ANONYMOUS'],
    [router(), true, {}, 'TSP_PREFIX_FOR_ANONYMOUS'],
    [router(52), false, { minPrefixLen: 56 }, 'TSP_PREFIX_LENGTH_UNSUPPORTED'],
    [router(60), false, { maxPrefixLen: 56 }, 'TSP_PREFIX_LENGTH_UNSUPPORTED'],
    [router(56), false, { minPrefixLen: 56, maxPrefixLen: 56 }, 56],
  ];
  for (const [req, anonymous, limits, want] of rows)
    assert.equal(
      outcome(() => delegatedLength(req, anonymous, bounds, limits)),
      want,
      `${JSON.stringify(req.router)} anonymous=${anonymous} ${JSON.stringify(limits)}`,
    );
});

test('keepalive: the wish, or the default, clamped to min..max', () => {
  const k = { default: 30, min: 10, max: 60 };
  for (const [wish, want] of [
    [undefined, 30],
    [0, 30],
    [-5, 30],
    [5, 10],
    [45, 45],
    [600, 60],
  ] as const)
    assert.equal(
      keepaliveFor({ type: 'v6v4', ...(wish !== undefined ? { keepaliveInterval: wish } : {}) } as TunnelRequest, k),
      want,
      `${wish}`,
    );
});

test('server IPv4: configured, else the listen address, else the local address reached, else ask the kernel', () => {
  const any = { address: '0.0.0.0' } as never;
  assert.equal(
    serverIpv4From({ serverIpv4: '203.0.113.1', listen: { address: '192.0.2.1' } as never }, '192.0.2.2'),
    '203.0.113.1',
  );
  assert.equal(
    serverIpv4From({ serverIpv4: null, listen: { address: '192.0.2.1' } as never } as never, '192.0.2.2'),
    '192.0.2.1',
  );
  assert.equal(serverIpv4From({ serverIpv4: null, listen: any } as never, '192.0.2.2'), '192.0.2.2');
  assert.equal(serverIpv4From({ serverIpv4: null, listen: any } as never, '0.0.0.0'), undefined);
  assert.equal(serverIpv4From({ serverIpv4: null, listen: any } as never, undefined), undefined);
});

test('idle limit: idleIntervals keepalives, at least idleMinS; anonymous capped at anonymousIdleMaxS', () => {
  const cfg = { idleIntervals: 3, idleMinS: 60, anonymousIdleMaxS: 120 };
  for (const [interval, accountId, wantS] of [
    [10, 1, 60],
    [30, 1, 90],
    [100, 1, 300],
    [10, null, 60],
    [100, null, 120],
  ] as const)
    assert.equal(
      idleLimitMs({ keepaliveInterval: interval, accountId }, cfg),
      wantS * 1000,
      `${interval} ${accountId}`,
    );
});

test('anonymous quota: per source, per /24, and the share of the link pool kept from accounts', () => {
  const limits = { anonymousPerSource: 2, anonymousPerPrefix24: 3 };
  const held = (bySource: number, byPrefix24: number, total: number) => ({ bySource, byPrefix24, total });
  const pool = (length: number, leaseLength: number) => ({ name: 'link pool', length, leaseLength });
  assert.equal(anonymousRefusal(held(1, 2, 10), limits, pool(48, 64), 0.25), null);
  assert.match(anonymousRefusal(held(2, 2, 10), limits, pool(48, 64), 0.25) ?? '', /anonymousPerSource/);
  assert.match(anonymousRefusal(held(0, 3, 10), limits, pool(48, 64), 0.25) ?? '', /anonymousPerPrefix24/);
  // a /60 link pool holds 16 /64s; 25 % kept for accounts leaves 12 for anonymous tunnels
  assert.equal(anonymousRefusal(held(0, 0, 11), limits, pool(60, 64), 0.25), null);
  assert.match(anonymousRefusal(held(0, 0, 12), limits, pool(60, 64), 0.25) ?? '', /12 of 16/);
  // shared-64: a /120 link pool holds 64 /126s, 48 of them for anonymous tunnels
  assert.equal(anonymousRefusal(held(0, 0, 47), limits, pool(120, 126), 0.25), null);
  assert.match(anonymousRefusal(held(0, 0, 48), limits, pool(120, 126), 0.25) ?? '', /48 of 64/);
});

test('the offer names the tunnel row, the resolver configured or the server address, and the prefix when delegated', () => {
  const t = {
    type: 'v6udpv4',
    lifetimeS: 604800,
    serverIpv4: '192.0.2.1',
    serverIpv6: '2001:0db8:0000:0001:0000:0000:0000:0001',
    clientIpv4: '198.51.100.7',
    clientIpv6: '2001:0db8:0000:0001:0000:0000:0000:0002',
    keepaliveInterval: 30,
    prefix: null,
    prefixLen: null,
  } as unknown as TunnelRecord;
  const o = offerFor(t, undefined);
  assert.equal(o.dnsServer, t.serverIpv6);
  assert.deepEqual(o.keepalive, { interval: 30, address: t.serverIpv6 });
  assert.equal(o.prefix, undefined);
  const r = offerFor({ ...t, prefix: '2001:0db8:f000:0000:0000:0000:0000:0000', prefixLen: 56 }, '2001:db8::53');
  assert.deepEqual(r.prefix, { address: '2001:0db8:f000:0000:0000:0000:0000:0000', length: 56 });
  assert.equal(r.dnsServer, '2001:db8::53');
});

test("a session's source may not be inside the broker's own pools, nor an unroutable IPv6 address", () => {
  const pools = { ipv6: ['2001:db8:f00::/48', '2001:db8:f000::/40'], ipv4: '198.51.100.0/24' };
  const refused: [string, RegExp][] = [
    ['2001:db8:f00:1::2', /inside the broker's own pool 2001:db8:f00::\/48/], // through a v6 tunnel's link
    ['2001:db8:f000:4400::1', /inside the broker's own pool 2001:db8:f000::\/40/], // through a delegated prefix
    ['198.51.100.2', /inside the broker's own pool 198\.51\.100\.0\/24/], // through a v4v6 tunnel
    ['fe80::1%eth0', /not a routable IPv6 address/],
    ['fe80::1', /linkLocal/],
    ['ff02::1', /multicast/],
    ['::ffff:192.0.2.1', /ipv4Mapped/],
  ];
  for (const [source, why] of refused) assert.match(sessionSourceRefusal(source, pools) ?? '', why, source);
  for (const source of ['2001:db8:c6::2', '192.0.2.10', '::1', '127.0.0.1'])
    assert.equal(sessionSourceRefusal(source, pools), null, source);
  assert.equal(sessionSourceRefusal('198.51.100.2', { ...pools, ipv4: null }), null, 'no v4v6 pool, no IPv4 check');
});
