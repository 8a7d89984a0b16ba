/** The router advertisement tspc's builtin announcer sends (client/ra-packet.ts): the header and each option
 *  byte for byte (RFC 4861 §4.2, §4.6; RFC 8106 §5.1), the same options radvd 2.19 sends for the same
 *  configuration (a final RA captured from radvd on a veth: radvd-2.19 below), the ICMPv6 checksum against the
 *  one the kernel computed for that capture, out-of-range values refused, and the solicitation check. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildRouterAdvertisement,
  icmpv6Checksum,
  isValidRouterSolicitation,
  usableResolvers,
  type RouterAdvertisement,
} from '../../../src/client/ra-packet.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** radvd 2.19's final RA (router lifetime 0, DeprecatePrefix on) for 2001:db8:f000::/64 with AdvLinkMTU 1280 and
 *  RDNSS 2001:db8:100::53, from fe80::ff:fe00:1 (MAC 02:00:00:00:00:01) to ff02::1, as a raw ICMPv6 socket
 *  received it (checksum 0x6a36 filled in by the sending kernel). */
const RADVD_FINAL_RA =
  '86006a36400000000000000000000000030440c000001c200000000000000000' +
  '20010db8f00000000000000000000000190300000000000020010db801000000' +
  '000000000000005305010000000005000101020000000001';

/** Splits an RA's options into their hex texts, checking that the lengths tile the message exactly. */
function options(ra: Uint8Array): string[] {
  const out: string[] = [];
  for (let at = 16; at < ra.length;) {
    const bytes = ra[at + 1]! * 8;
    assert.ok(bytes > 0 && at + bytes <= ra.length, `option at ${at} fits`);
    out.push(hex(ra.subarray(at, at + bytes)));
    at += bytes;
  }
  return out;
}

const ANNOUNCE: RouterAdvertisement = {
  routerLifetimeS: 1800,
  prefix: { address: '2001:db8:f000:0:1234::', length: 64, validLifetimeS: 86400, preferredLifetimeS: 14400 },
  sourceMac: '02:00:00:00:00:01',
  mtu: 1280,
  dns: { servers: ['2001:db8:100::53'], lifetimeS: 1800 },
};

test('the header and every option, byte for byte', () => {
  const ra = buildRouterAdvertisement(ANNOUNCE);
  assert.equal(ra.length, 16 + 8 + 8 + 32 + 24);
  // type 134, code 0, checksum 0 (the kernel's), hop limit 64, no M/O flags, lifetime 1800, timers unspecified
  assert.equal(hex(ra.subarray(0, 16)), '86000000400007080000000000000000');
  assert.deepEqual(options(ra), [
    '0101020000000001', // source link-layer address, 1 unit
    '0501000000000500', // MTU 1280, 1 unit
    // prefix information, 4 units: /64, L and A, valid 86400, preferred 14400, reserved, host bits cleared
    '0304' + '40c0' + '00015180' + '00003840' + '00000000' + '20010db8f00000000000000000000000',
    // RDNSS, 3 units (1 + 2 per address), reserved, lifetime 1800, the resolver
    '1903' + '0000' + '00000708' + '20010db8010000000000000000000053',
  ]);
});

test('the same options radvd sends for the same configuration (its final RA), and the same checksum', () => {
  const captured = Buffer.from(RADVD_FINAL_RA, 'hex');
  const ours = buildRouterAdvertisement({
    routerLifetimeS: 0,
    prefix: { address: '2001:db8:f000::', length: 64, validLifetimeS: 7200, preferredLifetimeS: 0 },
    sourceMac: '02:00:00:00:00:01',
    mtu: 1280,
    dns: { servers: ['2001:db8:100::53'], lifetimeS: 0 },
  });
  assert.equal(hex(ours.subarray(4, 16)), hex(captured.subarray(4, 16)), 'header after the checksum');
  assert.deepEqual(options(ours).sort(), options(captured).sort(), 'options (radvd orders them differently)');
  assert.equal(icmpv6Checksum('fe80::ff:fe00:1', 'ff02::1', captured), 0x6a36);
  assert.notEqual(icmpv6Checksum('fe80::ff:fe00:2', 'ff02::1', captured), 0x6a36, 'the source is covered');
});

test('optional options are left out; more resolvers lengthen RDNSS', () => {
  const bare = buildRouterAdvertisement({ routerLifetimeS: 0, prefix: ANNOUNCE.prefix });
  assert.deepEqual(
    options(bare).map((o) => o.slice(0, 4)),
    ['0304'],
  );
  const empty = buildRouterAdvertisement({ ...ANNOUNCE, dns: { servers: [], lifetimeS: 1800 } });
  assert.ok(!options(empty).some((o) => o.startsWith('19')), 'no RDNSS without a resolver');
  const two = buildRouterAdvertisement({
    ...ANNOUNCE,
    dns: { servers: ['2001:db8::1', '2001:db8::2'], lifetimeS: 60 },
  });
  assert.equal(options(two).at(-1)!.slice(0, 4), '1905');
});

test('values that do not fit their fields are refused', () => {
  assert.throws(() => buildRouterAdvertisement({ ...ANNOUNCE, routerLifetimeS: 9001 }), /routerLifetimeS/);
  assert.throws(() => buildRouterAdvertisement({ ...ANNOUNCE, sourceMac: '02:00:00:00:00' }), /sourceMac/);
  assert.throws(
    () => buildRouterAdvertisement({ ...ANNOUNCE, prefix: { ...ANNOUNCE.prefix, preferredLifetimeS: 90000 } }),
    /preferred lifetime exceeds valid/,
  );
  assert.throws(
    () => buildRouterAdvertisement({ ...ANNOUNCE, dns: { servers: Array(4).fill('2001:db8::1'), lifetimeS: 1 } }),
    /at most 3/,
  );
});

test('router solicitations: hop limit 255, code 0, options that tile the message', () => {
  const rs = Buffer.from('8500000000000000' + '0101020000000002', 'hex');
  assert.equal(isValidRouterSolicitation(rs, 255, 'fe80::2'), true);
  assert.equal(isValidRouterSolicitation(rs.subarray(0, 8), 255, 'fe80::2'), true, 'no options');
  assert.equal(isValidRouterSolicitation(rs, 64, 'fe80::2'), false, 'forwarded: hop limit below 255');
  assert.equal(isValidRouterSolicitation(Buffer.from('8501000000000000', 'hex'), 255, 'fe80::2'), false, 'code');
  assert.equal(isValidRouterSolicitation(rs.subarray(0, 6), 255, 'fe80::2'), false, 'too short');
  assert.equal(isValidRouterSolicitation(Buffer.from('85000000000000000100', 'hex'), 255, 'fe80::2'), false);
  assert.equal(isValidRouterSolicitation(Buffer.from('8500000000000000010202', 'hex'), 255, 'fe80::2'), false);
  assert.equal(isValidRouterSolicitation(rs, 255, '::'), false, 'link-layer option from the unspecified address');
  assert.equal(
    isValidRouterSolicitation(Buffer.from('86000000400007080000000000000000', 'hex'), 255, 'fe80::2'),
    false,
  );
});

test('a resolver a LAN host cannot use is not announced', () => {
  assert.deepEqual(usableResolvers('2001:0db8:0100:0000:0000:0000:0000:0053'), ['2001:db8:100::53']);
  for (const bad of [undefined, '::', '::1', 'fe80::1', 'ff02::1', 'not an address'])
    assert.deepEqual(usableResolvers(bad), []);
});
