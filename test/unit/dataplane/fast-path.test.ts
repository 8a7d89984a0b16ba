/** Mutated packets through the eBPF fast path (EbpfDataPlane, in a namespace of its own): whatever a client sends,
 *  each datagram is decapsulated by the programs, dropped and counted by them, or handed untouched to the addon
 *  (which decides and counts as it does without them), and nothing reaches a place the tunnel's rules do not
 *  allow. Inner packets are mutated from a seeded generator (the seed is in the test name, so a failure
 *  replays); outer IPv4 oddities (options, fragments) are sent whole on a raw socket by tsp_bench's generator.
 *  Needs what ebpf.test.ts needs; skipped (failing in CI) the same way. */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import ipaddr from 'ipaddr.js';
import { EbpfDataPlane } from '../../../src/dataplane/ebpf.js';
import { ebpfUnavailable } from '../../../src/dataplane/ebpf-addon.js';
import type { ControlDatagram, TunnelId } from '../../../src/dataplane/types.js';
import { loadBenchAddon } from '../../helpers/native-bench.js';
import { Topology } from '../../helpers/netns.js';
import { mutate, random } from '../../helpers/mutants.js';
import { ipv4Bytes, ipv6Bytes, ipv6Packet, ipv6UdpWith } from '../../helpers/packets.js';
import { INTERNET_ADDRESS, INTERNET_PORT, Peer, eventually, normalIpv6, spec, type Internet } from './contract.js';
import { internetOnLoopback } from './internet.js';

const skip =
  process.getuid?.() !== 0 || !existsSync('/dev/net/tun') ? 'not root or no /dev/net/tun' : ebpfUnavailable();
const SEED = 0x7f5a11;
const MUTANTS = 400;
const DELEGATED = { address: '2001:db8:f00:4400::', length: 56 };

/** Tunnel 1's allowed inner sources: its /128 and its delegated /56. */
function allowedForTunnel1(address: Buffer): boolean {
  const a = ipaddr.fromByteArray([...address]) as ipaddr.IPv6;
  return (
    a.toNormalizedString() === normalIpv6('2001:db8:f00:1::2') ||
    a.match(ipaddr.IPv6.parse(DELEGATED.address), DELEGATED.length)
  );
}

const MUTATION_ADDRESSES = {
  sources: ['2001:db8:f00:2::2', 'fe80::1', '2001:db8:f00:4500::1', '2001:db8:f00:44ff::1', '2001:db8:f00:1::2'],
  destinations: [
    INTERNET_ADDRESS,
    '2001:db8:f00:2::2',
    '2001:db8:f00:1::1',
    '2001:db8:f00:1::2',
    '2001:db8:f00:4400::9',
    '2001:db8:f00:77::1',
  ],
};

if (skip !== undefined) {
  describe('eBPF fast path under mutated packets', () => {
    if (process.env.CI === 'true') it('runs in CI', () => assert.fail(`the eBPF fast path cannot run: ${skip}`));
    else it('needs root, /dev/net/tun, the eBPF loader and programs', { skip }, () => {});
  });
} else {
  const topology = await Topology.create({ after });
  const ns = await topology.namespace('dp-fuzz');
  const bench = loadBenchAddon();
  bench.enterNetns(ns.name);
  const openInternet = await internetOnLoopback(ns);

  describe('eBPF fast path under mutated packets', () => {
    let dp: EbpfDataPlane;
    let a: Peer;
    let b: Peer;
    let net: Internet;
    const control: ControlDatagram[] = [];
    before(async () => {
      dp = new EbpfDataPlane({ listenAddress: '127.0.0.1', port: 0, routes: ['2001:db8:f00::/48'] });
      await dp.start();
      dp.onControl((batch) => control.push(...batch));
      a = await Peer.open('127.0.0.1');
      b = await Peer.open('127.0.0.1');
      net = await openInternet();
      dp.addTunnel(spec(1, a, { delegated: DELEGATED }));
      dp.addTunnel(spec(2, b));
      // v6v4 from this host's own address: protocol 41 from 127.0.0.1 is tunnel 3's
      dp.addTunnel({ ...spec(3, a), type: 'v6v4', client: { address: '127.0.0.1', port: 0 } });
    });
    after(async () => {
      net.close();
      a.close();
      b.close();
      await dp.close();
    });

    /** Every datagram so far is accounted for: the programs' verdicts plus the control plane's share. */
    const accounted = (): number => {
      const s = dp.readFastPathStats();
      const drops = dp.readNativeCounters();
      return (
        s.decap_packets +
        s.spoofed_source +
        s.link_local_source +
        s.slow_decap +
        control.length +
        drops.control_too_short
      );
    };

    /** A valid packet through the fast path, waited for at the internet side: what was sent before it is done. */
    async function marker(text: string): Promise<void> {
      const ports = { src: 1, dst: INTERNET_PORT };
      await a.send(ipv6UdpWith('2001:db8:f00:1::2', INTERNET_ADDRESS, Buffer.from(text), ports), dp.udpPort);
      await eventually(() => net.received.some((r) => r.data.toString() === text), text);
    }

    it(`accounts for every mutated inner packet and forwards none wrongly (seed ${SEED.toString(16)})`, async () => {
      const next = random(SEED);
      const ports = { src: 4242, dst: INTERNET_PORT };
      const bases = [
        ipv6UdpWith('2001:db8:f00:1::2', INTERNET_ADDRESS, Buffer.from('base one'), ports),
        ipv6UdpWith('2001:db8:f00:4400::9', '2001:db8:f00:2::2', Buffer.from('base hairpin'), ports),
      ];
      const start = accounted();
      const sent = Array.from({ length: MUTANTS }, (_, i) =>
        mutate(bases[i % bases.length]!, next, MUTATION_ADDRESSES),
      );
      for (const p of sent) await a.send(p, dp.udpPort);
      await eventually(() => accounted() - start === MUTANTS, `${MUTANTS} datagrams accounted for`, 10_000);
      await marker('after the mutants');

      const stats = dp.readFastPathStats();
      assert.ok(stats.decap_packets > 0 && stats.slow_decap > 0 && stats.spoofed_source > 0, JSON.stringify(stats));
      // The internet side got only packets from tunnel 1's own sources, each one that was sent.
      const payloads = new Set(
        sent
          .filter((p) => p.length >= 48 && allowedForTunnel1(p.subarray(8, 24)))
          .map((p) => p.subarray(48).toString('hex')),
      );
      for (const r of net.received) {
        assert.ok(allowedForTunnel1(ipv6Bytes(r.from)), `internet got a packet from ${r.from}`);
        if (r.data.toString() !== 'after the mutants')
          assert.ok(payloads.has(r.data.toString('hex')), 'a sent payload');
      }
      // Tunnel 2's client got only hairpins from tunnel 1's sources to its own address.
      for (const r of b.received) {
        assert.ok(allowedForTunnel1(r.data.subarray(8, 24)), 'a hairpin from an allowed source');
        assert.equal(
          normalIpv6(ipaddr.fromByteArray([...r.data.subarray(24, 40)]).toString()),
          normalIpv6('2001:db8:f00:2::2'),
        );
      }
      // Tunnel 1's client got nothing addressed elsewhere (echo replies, the kernel's errors to its sources).
      for (const r of a.received.filter((x) => x.data[0]! >> 4 === 6))
        assert.ok(allowedForTunnel1(r.data.subarray(24, 40)), "to tunnel 1 only what is tunnel 1's");
    });

    it('leaves neighbour discovery, multicast, link-local and extension headers to the addon, off the uplink', async () => {
      // Decapsulated packets enter the kernel on the uplink: a Neighbor Advertisement there would rewrite its
      // neighbour cache. These must reach the addon (which writes them to the TUN, a link of their own).
      const own = '2001:db8:f00:1::2';
      const icmp = (type: number, dst: string) =>
        ipv6Packet({
          src: own,
          dst,
          nextHeader: 58,
          hopLimit: 255,
          payload: Buffer.from([type, 0, 0, 0, 0xa0, 0, 0, 0]),
        });
      const data = Buffer.from('not for the uplink');
      const packets = [
        icmp(136, 'ff02::1'), // unsolicited Neighbor Advertisement
        icmp(135, INTERNET_ADDRESS), // Neighbor Solicitation to a unicast address
        icmp(143, 'ff02::16'), // MLDv2 report
        ipv6UdpWith(own, 'ff0e::1', data),
        ipv6UdpWith(own, 'fe80::1', data),
        ipv6Packet({ src: own, dst: INTERNET_ADDRESS, nextHeader: 43, payload: Buffer.alloc(16) }), // routing header
      ];
      const before = dp.readFastPathStats();
      for (const p of packets) await a.send(p, dp.udpPort);
      await eventually(
        () => dp.readFastPathStats().slow_decap === before.slow_decap + packets.length,
        'all handed to the addon',
      );
      assert.equal(dp.readFastPathStats().decap_packets, before.decap_packets, 'none decapsulated onto the uplink');
      // An echo request is ICMPv6 too, and the programs carry it.
      await a.send(
        ipv6Packet({
          src: own,
          dst: INTERNET_ADDRESS,
          nextHeader: 58,
          payload: Buffer.from([128, 0, 0, 0, 0, 1, 0, 1]),
        }),
        dp.udpPort,
      );
      await eventually(() => dp.readFastPathStats().decap_packets === before.decap_packets + 1, 'the echo request');
    });

    it('hands IPv4 options and fragments to the addon (a lonely one goes nowhere); drops spoofed protocol 41', async () => {
      const inner = (text: string, source = '2001:db8:f00:1::2') =>
        ipv6UdpWith(source, INTERNET_ADDRESS, Buffer.from(text), { src: 7, dst: INTERNET_PORT });
      const udp = (payload: Buffer, port: number) => {
        const h = Buffer.alloc(8);
        h.writeUInt16BE(a.port, 0);
        h.writeUInt16BE(port, 2);
        h.writeUInt16BE(8 + payload.length, 4);
        return Buffer.concat([h, payload]);
      };
      const ipv4 = (
        protocol: number,
        body: Buffer,
        extra: { options?: Buffer; fragment?: number; id?: number } = {},
      ) => {
        const options = extra.options ?? Buffer.alloc(0);
        const h = Buffer.alloc(20 + options.length);
        h[0] = 0x40 | ((20 + options.length) / 4);
        h.writeUInt16BE(h.length + body.length, 2);
        h.writeUInt16BE(extra.id ?? 0x4242, 4);
        h.writeUInt16BE(extra.fragment ?? 0, 6);
        h[8] = 64;
        h[9] = protocol;
        ipv4Bytes('127.0.0.1').copy(h, 12);
        ipv4Bytes('127.0.0.1').copy(h, 16);
        options.copy(h, 20);
        return Buffer.concat([h, body]);
      };
      const withOptions = ipv4(17, udp(inner('with options'), dp.udpPort), { options: Buffer.from([1, 1, 1, 0]) });
      const whole = udp(inner('in fragments'), dp.udpPort);
      const fragments = [
        ipv4(17, whole.subarray(0, 48), { fragment: 0x2000 }), // MF, offset 0
        ipv4(17, whole.subarray(48), { fragment: 48 / 8 }),
      ];
      // A first fragment whose lengths add up as if it were whole: the rest never comes, so it must not either.
      const lonely = ipv4(17, udp(inner('lonely fragment'), dp.udpPort), { fragment: 0x2000, id: 0x4343 });
      const spoofed41 = ipv4(41, inner('spoofed 41', '2001:db8:f00:2::2'));
      const before = dp.readFastPathStats();
      // The generator repeats its list for a few microseconds: every packet goes at least once.
      await bench.runGenerator({ family: 4, packets: [withOptions, ...fragments, lonely, spoofed41], seconds: 1e-6 });
      await eventually(() => net.received.some((r) => r.data.toString() === 'with options'), 'the optioned one');
      await eventually(() => net.received.some((r) => r.data.toString() === 'in fragments'), 'the reassembled one');
      await marker('after the raw packets');
      const after = dp.readFastPathStats();
      assert.equal(after.decap_packets, before.decap_packets + 1, 'only the marker went through the programs');
      assert.ok(after.slow_decap >= before.slow_decap + 3, 'options and the fragments to the addon');
      assert.ok(after.spoofed_source > before.spoofed_source, 'spoofed protocol 41 dropped in the kernel');
      assert.ok(!net.received.some((r) => r.data.toString() === 'spoofed 41'));
      assert.ok(!net.received.some((r) => r.data.toString() === 'lonely fragment'));
      assert.ok(dp.readCountersOf([1 as TunnelId])[0]!.rxPackets > 0);
    });
  });
}
