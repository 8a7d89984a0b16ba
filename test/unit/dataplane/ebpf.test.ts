/** The DataPlane contract against EbpfDataPlane (dataplane.driver "ebpf": the TC programs in front of the addon),
 *  in a fresh network namespace as native.test.ts runs it, plus what only the fast path does: traffic carried
 *  by the programs (their counters move, the addon's do not), tunnels changed under traffic, the filters gone
 *  after close and a crashed broker's taken over at start. Mutated packets through the programs: fast-path.test.ts.
 *  Needs root, /dev/net/tun, the loader (tsp_ebpf.node) and the programs (fastpath.bpf.o): `npm install` builds
 *  both where clang and libbpf-dev are installed (CI installs them); skipped, saying which is missing, otherwise. */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { EbpfDataPlane, type EbpfDataPlaneOptions } from '../../../src/dataplane/ebpf.js';
import { ebpfUnavailable } from '../../../src/dataplane/ebpf-addon.js';
import type { TunnelId } from '../../../src/dataplane/types.js';
import { loadBenchAddon } from '../../helpers/native-bench.js';
import { Topology } from '../../helpers/netns.js';
import { ipv6UdpWith } from '../../helpers/packets.js';
import { INTERNET_ADDRESS, INTERNET_PORT, Peer, dataPlaneContract, eventually, spec } from './contract.js';
import { internetOnLoopback } from './internet.js';

const skip =
  process.getuid?.() !== 0 || !existsSync('/dev/net/tun') ? 'not root or no /dev/net/tun' : ebpfUnavailable();
const POOL = '2001:db8:f00::/48';

/** tc's view of our filters: the decap program on `dev` ingress, the encap program on egress. */
function filters(dev: string, direction: 'ingress' | 'egress'): string {
  try {
    return execFileSync('tc', ['filter', 'show', 'dev', dev, direction]).toString();
  } catch {
    return ''; // no clsact qdisc (or no device): no filter
  }
}

if (skip !== undefined) {
  describe('EbpfDataPlane', () => {
    // CI installs clang and libbpf-dev and runs as root (.ci/run): there, a missing fast path is a failure.
    if (process.env.CI === 'true') it('runs in CI', () => assert.fail(`the eBPF fast path cannot run: ${skip}`));
    else it('needs root, /dev/net/tun, the eBPF loader and programs', { skip }, () => {});
  });
} else {
  const topology = await Topology.create({ after });
  const ns = await topology.namespace('dp-ebpf');
  loadBenchAddon().enterNetns(ns.name);

  const open = async (overrides: Partial<EbpfDataPlaneOptions> = {}): Promise<EbpfDataPlane> => {
    const dp = new EbpfDataPlane({ listenAddress: '127.0.0.1', port: 0, routes: [POOL], ...overrides });
    await dp.start();
    return dp;
  };
  const internet = await internetOnLoopback(ns);

  dataPlaneContract('ebpf', {
    address: '127.0.0.1',
    open: () => open(),
    internet,
    pathCounters: (dp) => (dp as EbpfDataPlane).readNativeCounters(),
  });

  describe('EbpfDataPlane fast path', () => {
    let dp: EbpfDataPlane;
    let a: Peer;
    before(async () => {
      dp = await open();
      a = await Peer.open('127.0.0.1');
    });
    after(async () => {
      a.close();
      await dp.close();
    });

    it('attaches decap to the uplink holding the listen address and encap to the TUN', () => {
      assert.deepEqual(dp.uplinks, ['lo']);
      assert.match(filters('lo', 'ingress'), /tsp_decap/);
      assert.match(filters(dp.tunName, 'egress'), /tsp_encap/);
    });

    it('carries a tunnel both ways in the kernel: the programs count it, the addon never sees it', async () => {
      dp.addTunnel(spec(1, a, { delegated: { address: '2001:db8:f00:4400::', length: 56 } }));
      const net = await internet();
      try {
        const before = dp.readFastPathStats();
        const ports = { src: 4242, dst: INTERNET_PORT };
        for (let i = 0; i < 20; i++)
          await a.send(ipv6UdpWith('2001:db8:f00:1::2', INTERNET_ADDRESS, Buffer.from(`up ${i}`), ports), dp.udpPort);
        await eventually(() => net.received.length === 20, '20 datagrams on the internet side');
        for (let i = 0; i < 20; i++) await net.send('2001:db8:f00:4400::9', Buffer.from(`down ${i}`));
        await eventually(() => a.received.length === 20, '20 encapsulated datagrams at the client');
        const after = dp.readFastPathStats();
        assert.equal(after.decap_packets - before.decap_packets, 20);
        assert.equal(after.encap_packets - before.encap_packets, 20);
        const [slow] = dp.slow.readCountersOf([1 as TunnelId]);
        assert.deepEqual([slow!.rxPackets, slow!.txPackets], [0, 0], 'nothing through the addon');
        const [both] = dp.readCountersOf([1 as TunnelId]);
        assert.deepEqual([both!.rxPackets, both!.txPackets], [20, 20], 'the broker sees the fast path');
        assert.ok(both!.lastRxMs > Date.now() - 60_000 && both!.lastRxMs <= Date.now() + 20, `${both!.lastRxMs}`);
        for (const r of a.received) assert.equal(r.port, dp.udpPort, 'from the TSP port');
      } finally {
        net.close();
      }
    });

    it('moves and removes tunnels in the maps: the old endpoint is handed to the addon, which drops it', async () => {
      const moved = await Peer.open('127.0.0.1');
      try {
        dp.addTunnel(spec(2, a, { client: { address: '127.0.0.1', port: 9 } }));
        dp.addTunnel(spec(2, moved));
        assert.equal(dp.fastTunnelCount(), 2);
        const drops = dp.readDrops().unknown_endpoint;
        const packet = ipv6UdpWith('2001:db8:f00:2::2', INTERNET_ADDRESS, Buffer.from('x'), { src: 1, dst: 2 });
        const before = dp.readFastPathStats();
        await moved.send(packet, dp.udpPort);
        await eventually(() => dp.readFastPathStats().decap_packets === before.decap_packets + 1, 'decap');
        dp.removeTunnel(2 as TunnelId);
        assert.equal(dp.fastTunnelCount(), 1);
        await moved.send(packet, dp.udpPort);
        await eventually(() => dp.readDrops().unknown_endpoint === drops + 1, 'unknown_endpoint in the addon');
        assert.equal(dp.readFastPathStats().slow_decap, before.slow_decap + 1);
      } finally {
        moved.close();
      }
    });

    it("forgets a re-added tunnel's old /128: traffic to it is the addon's no_route, not the client's", async () => {
      const c = await Peer.open('127.0.0.1');
      const quiet = await Peer.open('127.0.0.1'); // tunnel 4's client, which never sends
      const net = await internet();
      try {
        dp.addTunnel(spec(3, c));
        dp.addTunnel(spec(4, quiet));
        const ports = { src: 4242, dst: INTERNET_PORT };
        await c.send(ipv6UdpWith('2001:db8:f00:3::2', INTERNET_ADDRESS, Buffer.from('learn'), ports), dp.udpPort);
        await eventually(() => net.received.length === 1, 'the upstream datagram (the way back learned)');
        await net.send('2001:db8:f00:3::2', Buffer.from('to the old address, before'));
        await eventually(() => c.received.length === 1, 'encapsulated to the client');
        dp.addTunnel(spec(3, c, { clientIpv6: '2001:db8:f00:33::2' }));
        const noRoute = dp.readDrops().no_route;
        const encapped = dp.readFastPathStats().encap_packets;
        await net.send('2001:db8:f00:3::2', Buffer.from('to the old address, after'));
        // The kernel's own packets on the TUN (MLD reports, for a second or so after start) are no_route too, so
        // no_route moving cannot say this one was handled. A packet to tunnel 4 follows it into the addon's TUN
        // reader (its client has sent nothing, so the programs leave it to the addon) and goes out after it.
        await net.send('2001:db8:f00:4::2', Buffer.from('mark'));
        await eventually(() => quiet.received.length === 1, 'the mark, encapsulated by the addon');
        assert.ok(dp.readDrops().no_route >= noRoute + 1, 'no_route in the addon');
        assert.equal(dp.readFastPathStats().encap_packets, encapped, 'the programs carried neither');
        assert.equal(c.received.length, 1, 'nothing more to the client');
        await net.send('2001:db8:f00:33::2', Buffer.from('to the new address'));
        await eventually(() => c.received.length === 2, 'the new address encapsulated to the client');
        assert.equal(c.received[1]!.data.subarray(48).toString(), 'to the new address');
      } finally {
        dp.removeTunnel(3 as TunnelId);
        dp.removeTunnel(4 as TunnelId);
        net.close();
        quiet.close();
        c.close();
      }
    });
  });

  describe('EbpfDataPlane filters', () => {
    it('removes its filters and the qdisc it made on close', async () => {
      const dp = await open({ tunName: 'tsp-ebpf-close' });
      assert.match(filters('lo', 'ingress'), /tsp_decap/);
      await dp.close();
      assert.doesNotMatch(filters('lo', 'ingress'), /tsp_decap/);
      assert.doesNotMatch(execFileSync('tc', ['qdisc', 'show', 'dev', 'lo']).toString(), /clsact/);
    });

    it("takes over a crashed broker's filter at start and removes it with its own", async () => {
      // What kill -9 leaves: our filter on the uplink (the TUN went with the process). Played here by closing
      // the addon's side only and never the loader's (test/e2e/broker-ebpf.test.ts kills a real `serve`).
      const leftover = await open({ tunName: 'tsp-ebpf-crash' });
      await leftover.slow.close();
      assert.match(filters('lo', 'ingress'), /tsp_decap/);
      const dp = await open();
      try {
        assert.equal(filters('lo', 'ingress').match(/handle 0x7473/g)?.length, 1, 'one filter: ours');
      } finally {
        await dp.close();
      }
      assert.doesNotMatch(filters('lo', 'ingress'), /tsp_decap/);
      assert.doesNotMatch(execFileSync('tc', ['qdisc', 'show', 'dev', 'lo']).toString(), /clsact/);
    });
  });
}
