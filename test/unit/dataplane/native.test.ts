/** The DataPlane contract against NativeDataPlane (the internet side: an IPv6 UDP socket on an address of the
 *  namespace's loopback, which the kernel reaches through the TUN), plus what only the real packet path does
 *  (host setup, table updates under traffic, the bounded control queue, start and close failures).
 *  The whole file runs inside a fresh network namespace: the process's main thread enters it, so the TUN,
 *  the sockets and the peers' sockets all live there. Needs root and /dev/net/tun; skipped otherwise. */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { isBrokerError } from '../../../src/errors.js';
import { NativeDataPlane, type NativeDataPlaneOptions } from '../../../src/dataplane/native.js';
import { loadBenchAddon } from '../../helpers/native-bench.js';
import type { TunnelId } from '../../../src/dataplane/types.js';
import { Topology } from '../../helpers/netns.js';
import { ipv6Udp } from '../../helpers/packets.js';
import { Peer, dataPlaneContract, eventually, spec } from './contract.js';
import { V4V6, v4v6Contract, v4v6Spec } from './contract-v4v6.js';
import { internetOnLoopback } from './internet.js';

const canRun = process.getuid?.() === 0 && existsSync('/dev/net/tun');
const POOL = '2001:db8:f00::/48';

if (!canRun) {
  describe('NativeDataPlane', () => {
    it('needs root and /dev/net/tun', { skip: 'not root or no /dev/net/tun' }, () => {});
  });
} else {
  const topology = await Topology.create({ after });
  const ns = await topology.namespace('dp-unit');
  loadBenchAddon().enterNetns(ns.name);

  const open = async (overrides: Partial<NativeDataPlaneOptions> = {}): Promise<NativeDataPlane> => {
    const dp = new NativeDataPlane({ listenAddress: '127.0.0.1', port: 0, routes: [POOL], ...overrides });
    await dp.start();
    return dp;
  };

  // The internet host lives on this namespace's loopback: what the addon writes to the TUN reaches it through
  // the kernel, and what it sends to a pool address is routed into the TUN.
  const internet = await internetOnLoopback(ns);

  dataPlaneContract('native', {
    address: '127.0.0.1',
    open: () => open(),
    internet,
    pathCounters: (dp) => (dp as NativeDataPlane).readNativeCounters(),
  });

  // v4v6: the broker's and the clients' outer IPv6 addresses and the IPv4 internet host live on this loopback
  // too. Each client is a raw next-header-4 socket bound to its address and connected to the broker's, so it
  // reads only what the data plane sends it; the data plane's own socket is bound to V4V6.serverIpv6.
  for (const a of [V4V6.serverIpv6, V4V6.clientA, V4V6.clientB, V4V6.stranger])
    await ns.ip('-6', 'addr', 'add', `${a}/128`, 'dev', 'lo', 'nodad');
  await ns.ip('-4', 'addr', 'add', `${V4V6.internet}/32`, 'dev', 'lo');
  const bench = loadBenchAddon();
  v4v6Contract('native', {
    open: () => open({ v4v6: { serverIpv6: V4V6.serverIpv6 }, routes: [POOL, V4V6.pool] }),
    async peer(_dp, address) {
      const fd = bench.ipipOpen(address, V4V6.serverIpv6);
      const got: Buffer[] = [];
      return {
        address,
        send: async (inner) => bench.ipipSend(fd, V4V6.serverIpv6, inner),
        received() {
          for (let p = bench.ipipReceive(fd); p !== null; p = bench.ipipReceive(fd)) got.push(p);
          return got;
        },
        close: () => bench.ipipClose(fd),
      };
    },
    async internet() {
      const socket = dgram.createSocket('udp4');
      const received: { from: string; data: Buffer }[] = [];
      socket.on('message', (data, rinfo) => received.push({ from: rinfo.address, data }));
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(V4V6.internetPort, V4V6.internet, () => resolve());
      });
      return {
        received,
        send: (to, data, port = 9) =>
          new Promise((resolve, reject) => socket.send(data, port, to, (e) => (e ? reject(e) : resolve()))),
        close: () => socket.close(),
      };
    },
    pathCounters: (dp) => (dp as NativeDataPlane).readNativeCounters(),
  });

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

    it('fails with DP_UNAVAILABLE naming a v4v6 source address that is not on this host', async () => {
      const dp = new NativeDataPlane({
        tunName: 'tsp-v4src',
        listenAddress: '127.0.0.1',
        port: 0,
        routes: [],
        v4v6: { serverIpv6: '2001:db8:46::99' },
      });
      await assert.rejects(dp.start(), (e: unknown) => {
        assert.ok(isBrokerError(e) && e.code === 'DP_UNAVAILABLE');
        assert.match(e.message, /next-header-4 socket to 2001:db8:46::99.*must be one of this host's/);
        return true;
      });
      assert.throws(() => execFileSync('ip', ['link', 'show', 'dev', 'tsp-v4src'], { stdio: 'ignore' }));
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

    it('refuses v4v6 tunnels unless opened with v4v6; with an IPv4 pool, switches IPv4 forwarding and undoes it', async () => {
      const plain = await open();
      try {
        assert.throws(
          () => plain.addTunnel(v4v6Spec(1, V4V6.clientA, V4V6.innerA)),
          (e: unknown) => isBrokerError(e) && e.code === 'DP_FAILED' && /v4v6 option/.test(e.message),
        );
      } finally {
        await plain.close();
      }
      execFileSync('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=0']);
      const dp = await open({ tunName: 'tsp-v4', v4v6: {}, routes: [POOL, V4V6.pool], tunnelAddresses: ['192.0.2.1'] });
      try {
        assert.equal(execFileSync('sysctl', ['-n', 'net.ipv4.ip_forward']).toString().trim(), '1');
        assert.match(execFileSync('ip', ['-4', 'route', 'show', 'dev', 'tsp-v4']).toString(), /192\.0\.2\.0\/24/);
        assert.match(execFileSync('ip', ['-4', 'addr', 'show', 'dev', 'tsp-v4']).toString(), /192\.0\.2\.1\/32/);
      } finally {
        await dp.close();
      }
      assert.equal(execFileSync('sysctl', ['-n', 'net.ipv4.ip_forward']).toString().trim(), '0');
      assert.doesNotMatch(execFileSync('ip', ['-4', 'route']).toString(), /192\.0\.2\.0/);
    });

    it('loads 10,000 tunnels and reads all their counters in one call', async () => {
      const dp = await open();
      try {
        // how fast loading is, bench:dataplane prints (a timed assertion fails on a loaded machine)
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
        assert.equal(dp.readCounters().length, 10_000);
      } finally {
        await dp.close();
      }
    });
  });
}
