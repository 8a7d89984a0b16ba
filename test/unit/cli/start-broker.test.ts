/** cli/start-broker: how a configuration becomes the native data plane's options (the packet path itself is
 *  tested in test/e2e/broker-*.test.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config/schema.js';
import { nativeOptions } from '../../../src/cli/start-broker.js';

const pools = { link: '2001:db8:f00::/48', linkLeaseLen: 64, delegation: '2001:db8:f000::/40' };

test('defaults: both pools routed, no TUN address, io_uring writes, no busy-poll, no pinning', () => {
  const o = nativeOptions(parseConfig({}), pools);
  assert.deepEqual(o, {
    tunName: 'tsp0',
    mtu: 1280,
    listenAddress: '0.0.0.0',
    port: 3653,
    routes: ['2001:db8:f00::/48', '2001:db8:f000::/40'],
    spinMicros: 0,
    tunWrites: 'io_uring',
    controlQueueCap: 1024,
  });
  assert.equal(o.tunnelAddresses, undefined, 'per-account /64s: the addon answers each ::1 in place');
});

test('protocol 41 leaves from serverIpv4, else from a specific listen address, else the kernel picks', () => {
  assert.equal(nativeOptions(parseConfig({ serverIpv4: '192.0.2.1' }), pools).serverIpv4, '192.0.2.1');
  assert.equal(nativeOptions(parseConfig({ listen: { address: '192.0.2.9' } }), pools).serverIpv4, '192.0.2.9');
  assert.equal(
    nativeOptions(parseConfig({ listen: { address: '192.0.2.9' }, serverIpv4: '192.0.2.1' }), pools).serverIpv4,
    '192.0.2.1',
  );
  assert.equal(nativeOptions(parseConfig({}), pools).serverIpv4, undefined);
});

test('dataplane.* tuning reaches the addon', () => {
  const o = nativeOptions(
    parseConfig({
      dataplane: { tun: 'tsp9', mtu: 1400, cpu: 1, busyPollUs: 50, tunWrites: 'write', controlQueueCap: 64 },
    }),
    pools,
  );
  assert.equal(o.tunName, 'tsp9');
  assert.equal(o.mtu, 1400);
  assert.equal(o.cpu, 1);
  assert.equal(o.spinMicros, 50);
  assert.equal(o.tunWrites, 'write');
  assert.equal(o.controlQueueCap, 64);
});
