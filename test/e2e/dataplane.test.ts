/** End to end through the native data plane and through the eBPF fast path in front of it (driver ebpf: the
 *  same tests, plus the programs' counters, so the traffic is known to have gone through them), in namespaces
 *  built here (no TSP at this layer: the test plays the
 *  control plane, learning each client's endpoint from its first control datagram, as the broker does):
 *
 *    clientA 192.0.2.2/28  ──┐                                    ┌── inet 2001:db8:100::2/64
 *                            nat (masquerade to 203.0.113.2) ── broker 203.0.113.1, tsp0 ← 2001:db8:f00::/48
 *    clientB 192.0.2.18/28 ──┘                                    │
 *    clientC 198.51.100.2/24 ─────────────────────────────────────┘ (v6v4, no NAT)
 *
 *  Tunnels: A and B v6udpv4 behind the same NAT address, both bound to local port 40000 (the NAT must tell
 *  them apart by port); A has the delegated prefix 2001:db8:f00:4400::/56; C is v6v4 (protocol 41).
 *  Needs root and /dev/net/tun (and for ebpf the loader and programs: CI builds them); skipped otherwise. */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startClientTunnel, type ClientTunnel } from '../../src/dataplane/client-tunnel.js';
import { EbpfDataPlane } from '../../src/dataplane/ebpf.js';
import { ebpfUnavailable } from '../../src/dataplane/ebpf-addon.js';
import { NativeDataPlane } from '../../src/dataplane/native.js';
import type { ControlDatagram, Endpoint, TunnelId, TunnelSpec } from '../../src/dataplane/types.js';
import { Topology, type Netns } from '../helpers/netns.js';
import { ipv6Udp } from '../helpers/packets.js';
import { eventually } from '../unit/dataplane/contract.js';

const canRun = process.getuid?.() === 0 && existsSync('/dev/net/tun');
const BROKER_V4 = '203.0.113.1';
const TSP_PORT = 3653;
const INET_HOST = '2001:db8:100::2';
const CLIENT_LOCAL_PORT = 40000;

interface Client {
  ns: Netns;
  tunnel: ClientTunnel;
  spec: TunnelSpec;
  replies: ControlDatagram[];
}

/** ping6 with a bounded count and wait; resolves with whether any reply came back. */
async function ping(ns: Netns, to: string, extra: string[] = []): Promise<boolean> {
  const r = await ns.exec('ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', ...extra, to], { timeoutMs: 15_000 });
  if (r.code !== 0 && process.env.TSP_TEST_DEBUG) console.error(`ping ${to} from ${ns.name}:`, r.stdout, r.stderr);
  return r.code === 0;
}

function controlDatagram(text: string): Buffer {
  return Buffer.concat([Buffer.from([0xf0, 0, 0, 1, 0, 0, 0, 0]), Buffer.from(text)]);
}

/** The ebpf driver's programs' counters (decap_packets, encap_packets); zero for native. */
function fastStats(dp: NativeDataPlane | EbpfDataPlane): { decap: number; encap: number } {
  if (!(dp instanceof EbpfDataPlane)) return { decap: 0, encap: 0 };
  const stats = dp.readFastPathStats();
  return { decap: stats.decap_packets, encap: stats.encap_packets };
}

const ebpfSkip = ebpfUnavailable();
endToEnd('native', canRun ? false : 'needs root and /dev/net/tun');
// CI installs what the fast path needs (.ci/run): there it runs, and fails if it cannot.
endToEnd('ebpf', !canRun ? 'needs root and /dev/net/tun' : process.env.CI === 'true' ? false : (ebpfSkip ?? false));

function endToEnd(driver: 'native' | 'ebpf', skip: string | false): void {
  describe(`${driver} data plane end to end`, { skip }, () => {
    let topo: Topology;
    let broker: Netns;
    let inet: Netns;
    let dp: NativeDataPlane | EbpfDataPlane;
    const clients: Record<'a' | 'b' | 'c', Client> = {} as Record<'a' | 'b' | 'c', Client>;
    const endpoints = new Map<string, Endpoint>(); // control text -> source endpoint the broker saw

    before(async () => {
      topo = await Topology.create(); // cleaned up by the suite's after() below (and at process exit)
      const [clientA, clientB, clientC, nat] = [
        await topo.namespace('client-a'),
        await topo.namespace('client-b'),
        await topo.namespace('client-c'),
        await topo.namespace('nat'),
      ];
      broker = await topo.namespace('broker');
      inet = await topo.namespace('inet');

      await topo.link(clientA, ['192.0.2.2/28'], nat, ['192.0.2.1/28']);
      await topo.link(clientB, ['192.0.2.18/28'], nat, ['192.0.2.17/28']);
      await topo.link(nat, ['203.0.113.2/24'], broker, [`${BROKER_V4}/24`]);
      await topo.link(clientC, ['198.51.100.2/24'], broker, ['198.51.100.1/24']);
      await topo.link(broker, ['2001:db8:100::1/64'], inet, [`${INET_HOST}/64`]);
      await clientA.ip('route', 'add', 'default', 'via', '192.0.2.1');
      await clientB.ip('route', 'add', 'default', 'via', '192.0.2.17');
      await clientC.ip('route', 'add', '203.0.113.0/24', 'via', '198.51.100.1');
      await inet.ip('-6', 'route', 'add', 'default', 'via', '2001:db8:100::1');
      await nat.sysctl('net.ipv4.ip_forward', 1);
      await nat.nft(
        'table ip nat {\n' +
          '  chain postrouting { type nat hook postrouting priority 100; oifname "to-broker" masquerade; }\n' +
          '}\n',
      );

      const options = {
        netns: broker.name,
        listenAddress: BROKER_V4,
        port: TSP_PORT,
        serverIpv4: BROKER_V4,
        routes: ['2001:db8:f00::/48'],
      };
      dp = driver === 'ebpf' ? new EbpfDataPlane(options) : new NativeDataPlane(options);
      await dp.start();
      // The test's control plane: remember who said what, and answer, as the broker's TSP session would.
      dp.onControl((batch) => {
        for (const d of batch) {
          endpoints.set(Buffer.from(d.data).subarray(8).toString(), d.from);
          dp.sendControl(d.from, controlDatagram('200 Success\r\n'));
        }
      });

      const open = async (key: 'a' | 'b' | 'c', ns: Netns, id: number, type: 'v6udpv4' | 'v6v4'): Promise<void> => {
        const replies: ControlDatagram[] = [];
        const tunnel = startClientTunnel(
          {
            netns: ns.name,
            tunName: 'tun0',
            type,
            server: { address: BROKER_V4, port: TSP_PORT },
            ...(type === 'v6udpv4' ? { localPort: CLIENT_LOCAL_PORT } : {}),
          },
          (batch) => replies.push(...batch),
        );
        const prefix = `2001:db8:f00:${id}`;
        await ns.ip('link', 'set', 'dev', 'tun0', 'mtu', '1280', 'up');
        await ns.ip('-6', 'addr', 'add', `${prefix}::2/64`, 'dev', 'tun0', 'nodad');
        await ns.ip('-6', 'route', 'add', 'default', 'dev', 'tun0');
        let client: Endpoint = { address: '198.51.100.2', port: 0 };
        if (type === 'v6udpv4') {
          // Learn the NAT-mapped endpoint from the client's first control datagram (docs/protocol.md §8.5).
          const hello = `hello from ${key}`;
          for (let i = 0; i < 20 && !endpoints.has(hello); i++) {
            tunnel.sendControl(controlDatagram(hello));
            await new Promise((r) => setTimeout(r, 100));
          }
          client = endpoints.get(hello)!;
          assert.ok(client, `control datagram from client ${key} reached the broker`);
          await eventually(() => replies.length > 0, `control reply to client ${key}`);
        }
        const spec: TunnelSpec = {
          id: id as TunnelId,
          type,
          client,
          serverIpv6: `${prefix}::1`,
          clientIpv6: `${prefix}::2`,
          ...(key === 'a' ? { delegated: { address: '2001:db8:f00:4400::', length: 56 } } : {}),
        };
        dp.addTunnel(spec);
        clients[key] = { ns, tunnel, spec, replies };
      };
      await open('a', clientA, 1, 'v6udpv4');
      await open('b', clientB, 2, 'v6udpv4');
      await open('c', clientC, 3, 'v6v4');
      await clientA.ip('-6', 'addr', 'add', '2001:db8:f00:4400::1/128', 'dev', 'lo');
    });

    after(async () => {
      for (const c of Object.values(clients)) c.tunnel.close();
      await dp?.close();
      await topo?.cleanup();
    });

    const counters = (id: number) => dp.readCounters().find((c) => c.id === id)!;

    /** With ebpf, `body`'s traffic went through the programs: each direction counted at least `n` packets
     *  (`down` toward the clients, when it differs). */
    async function throughFastPath(n: number, body: () => Promise<void>, down = n): Promise<void> {
      const before = fastStats(dp);
      await body();
      if (driver !== 'ebpf') return;
      const after = fastStats(dp);
      assert.ok(after.decap - before.decap >= n, `decap_packets moved by ${after.decap - before.decap}`);
      assert.ok(after.encap - before.encap >= down, `encap_packets moved by ${after.encap - before.encap}`);
    }

    it('v6udpv4 through the NAT: ping6 both ways', () =>
      throughFastPath(6, async () => {
        assert.equal(await ping(clients.a.ns, INET_HOST), true, 'client -> internet');
        assert.equal(await ping(inet, '2001:db8:f00:1::2'), true, 'internet -> client');
        assert.equal(clients.a.spec.client.address, '203.0.113.2', 'the broker sees the NAT address');
      }));

    it('v6v4 without NAT: ping6 both ways over protocol 41', () =>
      throughFastPath(6, async () => {
        assert.equal(await ping(clients.c.ns, INET_HOST), true, 'client -> internet');
        assert.equal(await ping(inet, '2001:db8:f00:3::2'), true, 'internet -> client');
        assert.ok(counters(3).rxPackets > 0 && counters(3).txPackets > 0);
      }));

    it('router mode: an address inside the delegated prefix is reachable, and may be used as source', async () => {
      assert.equal(await ping(inet, '2001:db8:f00:4400::1'), true, 'internet -> delegated prefix');
      assert.equal(await ping(clients.a.ns, INET_HOST, ['-I', '2001:db8:f00:4400::1']), true, 'sourced from it');
    });

    it('two clients behind the same NAT address each get their own traffic', async () => {
      const [a, b] = [clients.a.spec.client, clients.b.spec.client];
      assert.equal(a.address, b.address);
      assert.notEqual(a.port, b.port, 'the NAT told them apart by port');
      const before = { a: counters(1).txPackets, b: counters(2).txPackets };
      const rxB = clients.b.tunnel.readCounters().rxPackets;
      assert.equal(await ping(inet, '2001:db8:f00:2::2'), true);
      assert.equal(counters(1).txPackets, before.a, 'nothing for B went to A');
      assert.ok(counters(2).txPackets >= before.b + 3);
      assert.ok(clients.b.tunnel.readCounters().rxPackets >= rxB + 3, 'B received them');
    });

    it('hairpin: client to client without a round trip through the TUN', async () => {
      const tunBefore = await broker.stats(dp.tunName);
      const hairpinBefore = dp.readNativeCounters().hairpin_packets;
      assert.equal(await ping(clients.a.ns, '2001:db8:f00:2::2'), true, 'A -> B behind the same NAT');
      assert.equal(await ping(clients.c.ns, '2001:db8:f00:1::2'), true, 'C (v6v4) -> A (v6udpv4)');
      assert.equal((await broker.stats(dp.tunName)).rxPackets, tunBefore.rxPackets, 'nothing written to tsp0');
      assert.ok(dp.readNativeCounters().hairpin_packets >= hairpinBefore + 12);
    });

    it("answers echo requests to the server's tunnel address in place (keepalives)", async () => {
      const tunBefore = await broker.stats(dp.tunName);
      const echoes = dp.readNativeCounters().echo_replies;
      assert.equal(await ping(clients.a.ns, '2001:db8:f00:1::1'), true, 'v6udpv4 keepalive');
      assert.equal(await ping(clients.c.ns, '2001:db8:f00:3::1'), true, 'v6v4 keepalive');
      assert.equal((await broker.stats(dp.tunName)).rxPackets, tunBefore.rxPackets, 'the host never saw them');
      assert.ok(dp.readNativeCounters().echo_replies >= echoes + 6);
      assert.ok(counters(1).lastRxMs > Date.now() - 10_000, 'keepalives refresh last-received time');
    });

    it('drops a spoofed inner source and counts it by reason', async () => {
      await clients.a.ns.ip('-6', 'addr', 'add', '2001:db8:dead::1/128', 'dev', 'lo');
      const spoofed = dp.readDrops().spoofed_source;
      assert.equal(await ping(clients.a.ns, INET_HOST, ['-I', '2001:db8:dead::1']), false);
      assert.ok(dp.readDrops().spoofed_source >= spoofed + 3, `spoofed_source ${dp.readDrops().spoofed_source}`);
    });

    it('drops data from an unknown endpoint', async () => {
      const unknown = dp.readDrops().unknown_endpoint;
      const packet = ipv6Udp('2001:db8:f00:3::2', INET_HOST, 100).toString('hex');
      // Client C's address, but over UDP from a port no tunnel has: C's tunnel is v6v4.
      await clients.c.ns.run(process.execPath, [
        '-e',
        `const s=require('dgram').createSocket('udp4');` +
          `s.send(Buffer.from('${packet}','hex'),${TSP_PORT},'${BROKER_V4}',()=>s.close())`,
      ]);
      await eventually(() => dp.readDrops().unknown_endpoint === unknown + 1, 'unknown_endpoint');
    });

    it('carries TCP through the tunnel: 4 MB each way arrive intact', () =>
      throughFastPath(
        100,
        async () => {
          const server = inet.spawn(process.execPath, [
            '-e',
            `const net=require('net');` +
              `const srv=net.createServer((s)=>s.pipe(s)).listen(5001,'${INET_HOST}',()=>console.log('listening'));`,
          ]);
          await server.waitFor('listening');
          const client = await clients.a.ns.exec(
            process.execPath,
            [
              '-e',
              `const net=require('net'),crypto=require('crypto');` +
                `const data=crypto.randomBytes(4<<20);const want=crypto.createHash('sha256').update(data).digest('hex');` +
                `const h=crypto.createHash('sha256');let n=0;` +
                `const s=net.connect(5001,'${INET_HOST}',()=>{s.write(data);});` +
                `s.on('data',(d)=>{h.update(d);n+=d.length;if(n>=data.length){s.end();` +
                `const got=h.digest('hex');console.log(got===want?'OK '+got:'MISMATCH');process.exit(got===want?0:1);}});` +
                `s.on('error',(e)=>{console.log('ERR '+e.message);process.exit(2);});` +
                `setTimeout(()=>{console.log('TIMEOUT '+n);process.exit(3);},40000);`,
            ],
            { timeoutMs: 60_000 },
          );
          await server.kill();
          assert.match(client.stdout, /^OK [0-9a-f]{64}/, `client said: ${client.stdout} ${client.stderr}`);
          assert.ok(counters(1).rxBytes > 4 << 20 && counters(1).txBytes > 4 << 20);
        },
        // The internet host's TCP comes over a veth with its checksum unfinished (CHECKSUM_PARTIAL): the encap
        // program leaves such packets to the addon, whose TUN read finishes them (docs/architecture.md).
        0,
      ));
  });
}
