/** End to end, v4v6 (IPv4 inside IPv6, next header 4) through the native data plane and the client addon, in
 *  namespaces built here (no TSP at this layer: the test plays the control plane and adds the tunnel itself):
 *
 *    client 2001:db8:46::2/64 ── broker 2001:db8:46::1/64 (v4v6 source), tsp0 ← 192.0.2.0/24
 *    (IPv6 only on its link;     broker 203.0.113.1/24 ── inet 203.0.113.2/24 (IPv4 only)
 *     tun0 192.0.2.2/32 inside)
 *
 *  The client's IPv4 lives only inside the tunnel: its tun0 (the client addon, type v4v6, a raw IPv6 socket
 *  connected to the broker) carries IPv4, the broker decapsulates to its TUN and the kernel forwards to inet,
 *  which routes the pool back to the broker (no NAT44: that is the operator's). Needs root and /dev/net/tun. */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startClientTunnel, type ClientTunnel } from '../../src/dataplane/client-tunnel.js';
import { NativeDataPlane } from '../../src/dataplane/native.js';
import type { TunnelId } from '../../src/dataplane/types.js';
import { Topology, type Netns } from '../helpers/netns.js';
import { eventually } from '../unit/dataplane/contract.js';

const canRun = process.getuid?.() === 0 && existsSync('/dev/net/tun');
const BROKER_V6 = '2001:db8:46::1';
const CLIENT_V6 = '2001:db8:46::2';
const SERVER_V4 = '192.0.2.1';
const CLIENT_V4 = '192.0.2.2';
const SPOOFED_V4 = '192.0.2.66';
const INET_V4 = '203.0.113.2';

/** ping with a bounded count and wait; resolves with whether any reply came back. */
async function ping(ns: Netns, to: string, extra: string[] = []): Promise<boolean> {
  const r = await ns.exec('ping', ['-4', '-c', '3', '-i', '0.2', '-W', '2', ...extra, to], { timeoutMs: 15_000 });
  if (r.code !== 0 && process.env.TSP_TEST_DEBUG) console.error(`ping ${to} from ${ns.name}:`, r.stdout, r.stderr);
  return r.code === 0;
}

describe('v4v6 end to end: native data plane and client addon', { skip: canRun ? false : 'needs root' }, () => {
  let topo: Topology;
  let client: Netns;
  let inet: Netns;
  let dp: NativeDataPlane;
  let tunnel: ClientTunnel | undefined;

  before(async () => {
    topo = await Topology.create(); // cleaned up by after() below (and at process exit)
    client = await topo.namespace('v4v6-client');
    const broker = await topo.namespace('v4v6-broker');
    inet = await topo.namespace('v4v6-inet');
    await topo.link(client, [`${CLIENT_V6}/64`], broker, [`${BROKER_V6}/64`]);
    await topo.link(broker, ['203.0.113.1/24'], inet, [`${INET_V4}/24`]);
    await inet.ip('-4', 'route', 'add', '192.0.2.0/24', 'via', '203.0.113.1');

    dp = new NativeDataPlane({
      netns: broker.name,
      listenAddress: '0.0.0.0',
      port: 0,
      v4v6: { serverIpv6: BROKER_V6 },
      routes: ['192.0.2.0/24'],
    });
    await dp.start();
    dp.addTunnel({
      id: 1 as TunnelId,
      type: 'v4v6',
      client: { address: CLIENT_V6, port: 0 },
      serverIpv4: SERVER_V4,
      clientIpv4: CLIENT_V4,
    });

    tunnel = startClientTunnel({
      netns: client.name,
      tunName: 'tun0',
      type: 'v4v6',
      server: { address: BROKER_V6, port: 0 },
      localAddress: CLIENT_V6,
    });
    await client.ip('link', 'set', 'dev', 'tun0', 'mtu', '1280', 'up');
    await client.ip('-4', 'addr', 'add', `${CLIENT_V4}/32`, 'dev', 'tun0');
    await client.ip('-4', 'route', 'add', 'default', 'dev', 'tun0', 'src', CLIENT_V4);
    await client.ip('-4', 'addr', 'add', `${SPOOFED_V4}/32`, 'dev', 'lo');
  });

  after(async () => {
    tunnel?.close();
    await dp?.close();
    await topo?.cleanup();
  });

  const counters = () => dp.readCountersOf([1 as TunnelId])[0]!;

  it('the client has no IPv4 on its link: IPv4 reaches the internet host only through the tunnel, both ways', async () => {
    assert.doesNotMatch(await client.ip('-4', 'addr', 'show', 'dev', 'to-v4v6-broker'), /inet /);
    const before = counters();
    assert.equal(await ping(client, INET_V4), true, 'client -> internet');
    assert.equal(await ping(inet, CLIENT_V4), true, 'internet -> client');
    const after = counters();
    assert.ok(after.rxPackets >= before.rxPackets + 6, `rx ${before.rxPackets} -> ${after.rxPackets}`);
    assert.ok(after.txPackets >= before.txPackets + 6, `tx ${before.txPackets} -> ${after.txPackets}`);
    const c = tunnel!.readCounters();
    assert.ok(c.txPackets >= 6 && c.rxPackets >= 6, `client counters ${JSON.stringify(c)}`);
  });

  it("the server's inner IPv4 answers ping in place", async () => {
    const before = dp.readNativeCounters();
    assert.equal(await ping(client, SERVER_V4), true);
    const after = dp.readNativeCounters();
    assert.ok(after.echo_replies >= before.echo_replies + 3, 'answered by the data plane');
    assert.equal(after.tun_write_packets, before.tun_write_packets, 'nothing reached the broker kernel');
  });

  it('an inner IPv4 source other than the client /32 is dropped and counted', async () => {
    const spoofed = dp.readDrops().spoofed_source;
    const rx = counters().rxPackets;
    assert.equal(await ping(client, INET_V4, ['-I', SPOOFED_V4]), false, 'no reply to a spoofed source');
    await eventually(() => dp.readDrops().spoofed_source >= spoofed + 3, 'three spoofed_source drops');
    assert.equal(counters().rxPackets, rx, 'nothing accepted on the tunnel');
  });
});
