/** The DataPlane contract against NativeDataPlane, plus what only the real packet path does (source checks,
 *  echo in place, hairpin, encapsulation from the TUN, table updates under traffic, bounded control queue).
 *  The whole file runs inside a fresh network namespace: the process's main thread enters it, so the TUN,
 *  the sockets and the peers' sockets all live there. Needs root and /dev/net/tun; skipped otherwise. */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { isBrokerError } from '../../../src/errors.js';
import { NativeDataPlane, loadAddon, type NativeDataPlaneOptions } from '../../../src/dataplane/native.js';
import type { TunnelId } from '../../../src/dataplane/types.js';
import { Topology } from '../../helpers/netns.js';
import { icmpv6ChecksumOk, icmpv6EchoRequest, ipv6Udp } from '../../helpers/packets.js';
import { Peer, dataPlaneContract, eventually, spec } from './contract.js';

const canRun = process.getuid?.() === 0 && existsSync('/dev/net/tun');
const POOL = '2001:db8:f00::/48';

if (!canRun) {
  describe('NativeDataPlane', () => {
    it('needs root and /dev/net/tun', { skip: 'not root or no /dev/net/tun' }, () => {});
  });
} else {
  const topology = await Topology.create({ after });
  const ns = await topology.namespace('dp-unit');
  loadAddon().enterNetns(ns.name);

  const open = async (overrides: Partial<NativeDataPlaneOptions> = {}): Promise<NativeDataPlane> => {
    const dp = new NativeDataPlane({ listenAddress: '127.0.0.1', port: 0, routes: [POOL], ...overrides });
    await dp.start();
    return dp;
  };

  dataPlaneContract('native', { address: '127.0.0.1', open: () => open() });

  describe('NativeDataPlane packet path', () => {
    let dp: NativeDataPlane;
    let a: Peer;
    let b: Peer;
    before(async () => {
      dp = await open();
      a = await Peer.open('127.0.0.1');
      b = await Peer.open('127.0.0.1');
      dp.addTunnel(spec(1, a, { delegated: { address: '2001:db8:f00:4400::', length: 56 } }));
      dp.addTunnel(spec(2, b));
    });
    after(async () => {
      a.close();
      b.close();
      await dp.close();
    });

    it('sets up the host: TUN up with its MTU, the pool routed to it, forwarding on', () => {
      const link = execFileSync('ip', ['-j', 'link', 'show', 'dev', dp.tunName]).toString();
      assert.match(link, /"mtu":1280/);
      assert.match(link, /UP/);
      const routes = execFileSync('ip', ['-6', 'route', 'show', 'dev', dp.tunName]).toString();
      assert.match(routes, /2001:db8:f00::\/48/);
      assert.equal(execFileSync('sysctl', ['-n', 'net.ipv6.conf.all.forwarding']).toString().trim(), '1');
    });

    it('drops spoofed and link-local inner sources, each counted by reason', async () => {
      const before = dp.readDrops();
      await a.send(ipv6Udp('2001:db8:dead::1', '2001:db8:100::2', 80), dp.udpPort);
      await a.send(ipv6Udp('2001:db8:f00:2::2', '2001:db8:100::2', 80), dp.udpPort); // b's address, from a
      await a.send(ipv6Udp('fe80::1', 'ff02::2', 80), dp.udpPort);
      await eventually(
        () =>
          dp.readDrops().spoofed_source === before.spoofed_source + 2 &&
          dp.readDrops().link_local_source === before.link_local_source + 1,
        'drops by reason',
      );
    });

    it('accepts sources inside the delegated prefix', async () => {
      const rx = dp.readCounters().find((c) => c.id === 1)!.rxPackets;
      await a.send(ipv6Udp('2001:db8:f00:44ff:1::7', '2001:db8:100::2', 80), dp.udpPort);
      await eventually(() => dp.readCounters().find((c) => c.id === 1)!.rxPackets === rx + 1, 'accepted');
    });

    it('answers an echo request to the server address in place (the keepalive)', async () => {
      a.received.length = 0;
      const request = icmpv6EchoRequest('2001:db8:f00:1::2', '2001:db8:f00:1::1', 0x4242, 256);
      await a.send(request, dp.udpPort);
      // Other packets may reach `a` too (the kernel's ICMPv6 errors for earlier tests' packets): pick the reply.
      const isReply = (r: { data: Buffer }): boolean => r.data[6] === 58 && r.data[40] === 129;
      await eventually(() => a.received.some(isReply), 'echo reply');
      const received = a.received.find(isReply)!;
      const reply = received.data;
      assert.equal(received.port, dp.udpPort);
      assert.equal(reply[40], 129, 'ICMPv6 echo reply');
      assert.deepEqual(reply.subarray(8, 24), request.subarray(24, 40), 'source is the server address');
      assert.deepEqual(reply.subarray(24, 40), request.subarray(8, 24), 'destination is the client');
      assert.deepEqual(reply.subarray(44), request.subarray(44), 'identifier, sequence and data unchanged');
      assert.ok(icmpv6ChecksumOk(reply), 'checksum verifies');
      assert.equal(dp.readNativeCounters().echo_replies >= 1, true);
    });

    it('hairpins client to client without the TUN, hop limit decremented', async () => {
      b.received.length = 0;
      const packet = ipv6Udp('2001:db8:f00:1::2', '2001:db8:f00:2::2', 200);
      const tunWrites = dp.readNativeCounters().tun_write_packets;
      await a.send(packet, dp.udpPort);
      await eventually(() => b.received.length === 1, 'hairpinned packet');
      const got = b.received[0]!.data;
      assert.equal(got[7], packet[7]! - 1);
      assert.deepEqual(got.subarray(8), packet.subarray(8));
      assert.equal(dp.readNativeCounters().tun_write_packets, tunWrites);
      assert.equal(dp.readCounters().find((c) => c.id === 2)!.txPackets >= 1, true);
    });

    it('never routes a packet back into the tunnel it came from', async () => {
      const noRoute = dp.readDrops().no_route;
      await a.send(ipv6Udp('2001:db8:f00:1::2', '2001:db8:f00:4400::9', 80), dp.udpPort);
      await eventually(() => dp.readDrops().no_route === noRoute + 1, 'no_route');
    });

    it('encapsulates packets from the TUN to the tunnel by longest prefix, and counts no_route', async () => {
      a.received.length = 0;
      b.received.length = 0;
      const txBefore = dp.readCounters().find((c) => c.id === 1)!.txPackets;
      // The kernel routes the pool to the TUN; ping's echo requests are what the addon reads there.
      // Nobody answers these pings (the peer is a plain socket), so ping exits non-zero.
      await ns.exec('ping', ['-6', '-c', '2', '-i', '0.2', '-W', '1', '2001:db8:f00:4400::1']);
      const isEcho = (r: { data: Buffer }): boolean => r.data[6] === 58 && r.data[40] === 128;
      await eventually(() => a.received.filter(isEcho).length === 2, 'two encapsulated echoes');
      assert.equal(a.received.find(isEcho)!.port, dp.udpPort);
      assert.equal(b.received.length, 0);
      assert.equal(dp.readCounters().find((c) => c.id === 1)!.txPackets, txBefore + 2);
      const noRoute = dp.readDrops().no_route;
      await ns.exec('ping', ['-6', '-c', '1', '-W', '1', '2001:db8:f00:77::1']);
      await eventually(() => dp.readDrops().no_route >= noRoute + 1, 'no_route from the TUN');
    });

    it('keeps forwarding while the table changes under it', async () => {
      const rx = dp.readCounters().find((c) => c.id === 2)!.rxPackets;
      const packet = ipv6Udp('2001:db8:f00:2::2', '2001:db8:100::2', 100);
      const sends: Promise<void>[] = [];
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 50; i++) sends.push(b.send(packet, dp.udpPort));
        for (let i = 0; i < 250; i++) {
          const id = 1000 + round * 250 + i;
          dp.addTunnel({ ...spec(id, a), client: { address: '192.0.2.1', port: 1 + (id % 60000) } });
          if (i % 2 === 0) dp.removeTunnel(id as TunnelId);
        }
      }
      await Promise.all(sends);
      await eventually(() => dp.readCounters().find((c) => c.id === 2)!.rxPackets === rx + 1000, '1000 packets');
      assert.equal(dp.tunnelCount(), 2 + 2500);
    });

    it('hands anything that is not IPv6 to the control plane', async () => {
      const got: Buffer[] = [];
      dp.onControl((batch) => batch.forEach((d) => got.push(d.data)));
      await a.send(Buffer.from('45000014000000004011', 'hex'), dp.udpPort);
      await eventually(() => got.length === 1, 'non-IPv6 datagram as control');
      dp.onControl(() => {});
    });
  });

  describe('NativeDataPlane limits and failures', () => {
    it('caps the control queue while JavaScript is busy, counting what it drops', async () => {
      const dp = await open({ controlQueueCap: 4 });
      try {
        const got: number[] = [];
        dp.onControl((batch) => got.push(batch.length));
        // execFileSync blocks this thread, so nothing drains while the child sends 50 datagrams.
        const sender =
          `const s=require('dgram').createSocket('udp4');let n=0;const b=Buffer.alloc(16,0xf0);` +
          `(function f(){if(n++<50)s.send(b,${dp.udpPort},'127.0.0.1',f);else s.close()})()`;
        execFileSync(process.execPath, ['-e', sender]);
        execFileSync('sleep', ['0.2']);
        await eventually(() => got.reduce((x, y) => x + y, 0) === 4, 'the four queued datagrams');
        assert.equal(dp.readNativeCounters().control_queue_full, 46);
      } finally {
        await dp.close();
      }
    });

    it('fails with DP_UNAVAILABLE when the port is busy, and leaves nothing behind', async () => {
      const first = await open();
      try {
        const second = new NativeDataPlane({
          tunName: 'tsp-busy',
          listenAddress: '127.0.0.1',
          port: first.udpPort,
          routes: ['2001:db8:f01::/48'],
        });
        await assert.rejects(second.start(), (e: unknown) => {
          assert.ok(isBrokerError(e) && e.code === 'DP_UNAVAILABLE');
          assert.match(e.message, /busy/);
          return true;
        });
        assert.throws(() => execFileSync('ip', ['link', 'show', 'dev', 'tsp-busy'], { stdio: 'ignore' }));
      } finally {
        await first.close();
      }
    });

    it('undoes its host setup on close: device, routes and the forwarding sysctl', async () => {
      execFileSync('sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=0']);
      const dp = await open({ tunName: 'tsp-undo', tunnelAddresses: ['2001:db8:f00::1/64'] });
      assert.equal(execFileSync('sysctl', ['-n', 'net.ipv6.conf.all.forwarding']).toString().trim(), '1');
      await dp.close();
      assert.throws(() => execFileSync('ip', ['link', 'show', 'dev', 'tsp-undo'], { stdio: 'ignore' }));
      assert.doesNotMatch(execFileSync('ip', ['-6', 'route']).toString(), /2001:db8:f00::/);
      assert.equal(execFileSync('sysctl', ['-n', 'net.ipv6.conf.all.forwarding']).toString().trim(), '0');
    });

    it('loads 10,000 tunnels quickly and reads all their counters in one call', async () => {
      const dp = await open();
      try {
        const start = performance.now();
        for (let id = 1; id <= 10_000; id++) {
          dp.addTunnel({
            id: id as TunnelId,
            type: id % 2 ? 'v6udpv4' : 'v6v4',
            client: { address: `198.51.100.${id % 250}`, port: 1024 + id },
            serverIpv6: '2001:db8:f00::1',
            clientIpv6: `2001:db8:f00::${id.toString(16)}:2`,
            // one /56 each, from 2001:db8:100::/40
            delegated: {
              address: `2001:db8:${(0x100 + (id >> 8)).toString(16)}:${((id & 0xff) << 8).toString(16)}::`,
              length: 56,
            },
          });
        }
        const loadMs = performance.now() - start;
        assert.ok(loadMs < 2_000, `loading took ${loadMs} ms`);
        assert.equal(dp.readCounters().length, 10_000);
      } finally {
        await dp.close();
      }
    });
  });
}
