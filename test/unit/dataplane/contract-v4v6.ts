/** @module test/unit/dataplane/contract-v4v6: the DataPlane contract for v4v6 tunnels (IPv4 inside IPv6, next
 *  header 4), run against both implementations like contract.ts: MemoryDataPlane over its `ipip` and `tun`
 *  channels (memory.test.ts), NativeDataPlane with raw IPv6 next-header-4 sockets standing in for the clients
 *  and an IPv4 UDP socket beyond its TUN (native.test.ts). The rules are the IPv6 ones on the inner IPv4
 *  packet: outer source -> tunnel, inner source only the client's /32, ICMP echo to the server's inner IPv4
 *  answered in place, the TUN for the rest; from the TUN, an IPv4 destination goes to the tunnel owning it. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import ipaddr from 'ipaddr.js';
import type { DataPlane, TunnelId, V4v6TunnelSpec } from '../../../src/dataplane/types.js';
import { icmpEchoRequest, ipv4ChecksumsOk, ipv4UdpWith } from '../../helpers/packets.js';
import { eventually, type PathCounters } from './contract.js';

/** The broker's outer IPv6 address (the v4v6 source), the clients' outer addresses, and the inner IPv4 plan. */
export const V4V6 = {
  serverIpv6: '2001:db8:46::1',
  clientA: '2001:db8:46::a',
  clientB: '2001:db8:46::b',
  stranger: '2001:db8:46::c',
  pool: '192.0.2.0/24',
  serverIpv4: '192.0.2.1',
  innerA: '192.0.2.2',
  innerB: '192.0.2.3',
  /** An IPv4 host beyond the TUN, and its UDP port. */
  internet: '203.0.113.2',
  internetPort: 9999,
} as const;

/** A v4v6 client's outer end: sends inner IPv4 packets in IPv6 to the data plane, collects what comes back. */
export interface IpipPeer {
  readonly address: string;
  send(inner: Buffer): Promise<void>;
  /** Inner IPv4 packets received from the data plane, in order. */
  received(): Buffer[];
  close(): void;
}

/** The IPv4 internet side: a UDP socket at V4V6.internet:internetPort beyond the TUN. */
export interface Internet4 {
  send(to: string, data: Buffer, port?: number): Promise<void>;
  readonly received: { from: string; data: Buffer }[];
  close(): void;
}

export interface V4v6Harness {
  /** A started data plane carrying v4v6 (source V4V6.serverIpv6, pool routed). The suite closes it. */
  open(): Promise<DataPlane>;
  peer(dp: DataPlane, address: string): Promise<IpipPeer>;
  internet(dp: DataPlane): Promise<Internet4>;
  pathCounters(dp: DataPlane): PathCounters;
}

export function v4v6Spec(id: number, client: string, clientIpv4: string): V4v6TunnelSpec {
  return {
    id: id as TunnelId,
    type: 'v4v6',
    client: { address: client, port: 0 },
    serverIpv4: V4V6.serverIpv4,
    clientIpv4,
  };
}

const ip4 = (p: Buffer, at: number) => ipaddr.fromByteArray([...p.subarray(at, at + 4)]).toString();
const udpData = (p: Buffer) => p.subarray((p[0]! & 0x0f) * 4 + 8).toString();
/** An ICMP echo reply (protocol 1, type 0) among what a client received. */
const isEchoReply4 = (p: Buffer): boolean => p[9] === 1 && p[20] === 0;

export function v4v6Contract(name: string, harness: V4v6Harness): void {
  describe(`DataPlane contract, v4v6: ${name}`, () => {
    async function lab(
      body: (dp: DataPlane, a: IpipPeer, b: IpipPeer, net: Internet4) => Promise<void>,
    ): Promise<void> {
      const dp = await harness.open();
      const opened: { close(): void }[] = [];
      try {
        const a = await harness.peer(dp, V4V6.clientA);
        opened.push(a);
        const b = await harness.peer(dp, V4V6.clientB);
        opened.push(b);
        const net = await harness.internet(dp);
        opened.push(net);
        dp.addTunnel(v4v6Spec(1, V4V6.clientA, V4V6.innerA));
        dp.addTunnel(v4v6Spec(2, V4V6.clientB, V4V6.innerB));
        await body(dp, a, b, net);
      } finally {
        for (const o of opened) o.close();
        await dp.close();
      }
    }
    const counters = (dp: DataPlane, id: number) => dp.readCountersOf([id as TunnelId])[0]!;
    const toNet = (src: string, text: string, ttl = 64) =>
      ipv4UdpWith(src, V4V6.internet, Buffer.from(text), { src: 4242, dst: V4V6.internetPort }, ttl);

    it('decapsulates the inner IPv4 toward the internet, counting rx and the TUN write', () =>
      lab(async (dp, a, _b, net) => {
        const before = harness.pathCounters(dp).tun_write_packets;
        const started = Date.now();
        const packet = toNet(V4V6.innerA, 'hello over v4v6');
        await a.send(packet);
        await eventually(() => net.received.length === 1, 'the datagram on the internet side');
        assert.deepEqual(
          net.received.map((r) => [r.from, r.data.toString()]),
          [[V4V6.innerA, 'hello over v4v6']],
        );
        const c = counters(dp, 1);
        assert.deepEqual([c.rxPackets, c.rxBytes, c.txPackets], [1, packet.length, 0]);
        // the wall-clock time of arrival: the native clock is coarse, and this is no timing test
        assert.ok(c.lastRxMs >= started - 1000 && c.lastRxMs <= Date.now() + 1000, `lastRxMs ${c.lastRxMs}`);
        assert.equal(harness.pathCounters(dp).tun_write_packets, before + 1);
      }));

    it('encapsulates IPv4 from the internet to the tunnel owning the destination /32, counting tx', () =>
      lab(async (dp, a, b, net) => {
        await net.send(V4V6.innerA, Buffer.from('to a'));
        await net.send(V4V6.innerB, Buffer.from('to b'));
        await eventually(() => a.received().length === 1 && b.received().length === 1, 'one packet each');
        const [pa] = a.received();
        const [pb] = b.received();
        assert.deepEqual([ip4(pa!, 12), ip4(pa!, 16), udpData(pa!)], [V4V6.internet, V4V6.innerA, 'to a']);
        assert.deepEqual([ip4(pb!, 12), ip4(pb!, 16), udpData(pb!)], [V4V6.internet, V4V6.innerB, 'to b']);
        assert.deepEqual([counters(dp, 1).txPackets, counters(dp, 1).txBytes], [1, pa!.length]);
        assert.deepEqual([counters(dp, 2).txPackets, counters(dp, 2).rxPackets], [1, 0]);
        const noRoute = dp.readDrops().no_route;
        await net.send('192.0.2.77', Buffer.from('nobody'));
        await eventually(() => dp.readDrops().no_route >= noRoute + 1, 'no_route for an address of no tunnel');
      }));

    it("answers an ICMP echo request to the server's inner IPv4 in place", () =>
      lab(async (dp, a) => {
        const before = harness.pathCounters(dp);
        const request = icmpEchoRequest(V4V6.innerA, V4V6.serverIpv4, 0x4646, 7, 32);
        await a.send(request);
        await eventually(() => a.received().some(isEchoReply4), 'the echo reply');
        const reply = a.received().find(isEchoReply4)!;
        assert.equal(reply.length, request.length);
        assert.deepEqual([ip4(reply, 12), ip4(reply, 16), reply[8]], [V4V6.serverIpv4, V4V6.innerA, 64]);
        assert.deepEqual(reply.subarray(24), request.subarray(24), 'identifier, sequence and data unchanged');
        assert.ok(ipv4ChecksumsOk(reply), 'IPv4 and ICMP checksums verify');
        assert.deepEqual([counters(dp, 1).rxPackets, counters(dp, 1).txPackets], [1, 1]);
        const after = harness.pathCounters(dp);
        assert.equal(after.echo_replies, before.echo_replies + 1);
        assert.equal(after.tun_write_packets, before.tun_write_packets, 'nothing written to the TUN');
      }));

    it('drops an inner source other than the client /32 as spoofed, counting nothing on the tunnel', () =>
      lab(async (dp, a, _b, net) => {
        await a.send(toNet(V4V6.innerB, 'as b')); // another tunnel's address
        await a.send(toNet('198.51.100.7', 'as anyone'));
        await a.send(toNet(V4V6.serverIpv4, 'as the server'));
        await eventually(() => dp.readDrops().spoofed_source === 3, 'three spoofed sources');
        await a.send(toNet(V4V6.innerA, 'legit'));
        await eventually(() => net.received.length === 1, 'the legitimate one');
        assert.equal(net.received[0]!.data.toString(), 'legit');
        assert.deepEqual([counters(dp, 1).rxPackets, counters(dp, 2).rxPackets], [1, 0]);
      }));

    it('drops packets from an outer IPv6 source with no tunnel as unknown_endpoint', () =>
      lab(async (dp, _a, _b, net) => {
        const stranger = await harness.peer(dp, V4V6.stranger);
        try {
          await stranger.send(toNet(V4V6.innerA, 'not from a'));
          await eventually(() => dp.readDrops().unknown_endpoint === 1, 'unknown_endpoint');
          assert.equal(counters(dp, 1).rxPackets, 0);
          assert.equal(net.received.length, 0);
        } finally {
          stranger.close();
        }
      }));

    it('drops malformed inner packets: short, not IPv4, IHL under 5, total length beyond the datagram', () =>
      lab(async (dp, a) => {
        const good = toNet(V4V6.innerA, 'x');
        const notV4 = Buffer.from(good);
        notV4[0] = 0x65;
        const shortIhl = Buffer.from(good);
        shortIhl[0] = 0x44;
        const lying = Buffer.from(good);
        lying.writeUInt16BE(good.length + 1, 2);
        for (const p of [good.subarray(0, 12), notV4, shortIhl, lying]) await a.send(p);
        await eventually(() => dp.readDrops().malformed === 4, 'four malformed');
        assert.equal(counters(dp, 1).rxPackets, 0);
      }));

    it('hairpins to another v4v6 client with the TTL decremented; never back into the same tunnel', () =>
      lab(async (dp, a, b, net) => {
        const before = harness.pathCounters(dp);
        const packet = ipv4UdpWith(V4V6.innerA, V4V6.innerB, Buffer.from('hi b'), { src: 1, dst: 2 }, 30);
        await a.send(packet);
        await eventually(() => b.received().length === 1, 'the hairpinned packet');
        const got = b.received()[0]!;
        assert.equal(got[8], 29);
        assert.ok(ipv4ChecksumsOk(got), 'header checksum updated');
        assert.deepEqual(got.subarray(12), packet.subarray(12));
        assert.equal(harness.pathCounters(dp).hairpin_packets, before.hairpin_packets + 1);
        const noRoute = dp.readDrops().no_route;
        const txBefore = counters(dp, 1).txPackets;
        await a.send(ipv4UdpWith(V4V6.innerA, V4V6.innerA, Buffer.from('me'), { src: 1, dst: 2 }));
        // An echo request behind it on the same socket: its reply says the first packet has been decided (one
        // thread takes a tunnel's datagrams in order). Waiting on no_route alone could end on the kernel's own
        // packets into a fresh TUN, which count there too.
        await a.send(icmpEchoRequest(V4V6.innerA, V4V6.serverIpv4, 0x4747, 8, 16));
        await eventually(() => a.received().some(isEchoReply4), 'the echo reply behind it');
        assert.ok(dp.readDrops().no_route >= noRoute + 1, 'back into its own tunnel: no_route');
        assert.equal(counters(dp, 1).txPackets, txBefore + 1, 'only the echo reply went back to a');
        assert.equal(a.received().filter((p) => !isEchoReply4(p)).length, 0, 'nothing else reached a');
        assert.equal(net.received.length, 0);
      }));

    it('removeTunnel stops traffic both ways; readChanged reports who moved', () =>
      lab(async (dp, a, b, net) => {
        dp.readChanged();
        await a.send(toNet(V4V6.innerA, 'a'));
        await net.send(V4V6.innerB, Buffer.from('to b'));
        await eventually(() => net.received.length === 1 && b.received().length === 1, 'both directions');
        const moved = new Map<number, { rxPackets: number; txPackets: number }>();
        await eventually(() => {
          for (const c of dp.readChanged()) moved.set(c.id, c);
          return moved.get(1)?.rxPackets === 1 && moved.get(2)?.txPackets === 1;
        }, 'both tunnels reported');
        dp.removeTunnel(1 as TunnelId);
        const drops = dp.readDrops();
        await a.send(toNet(V4V6.innerA, 'after removal'));
        await net.send(V4V6.innerA, Buffer.from('to removed a'));
        await eventually(() => dp.readDrops().unknown_endpoint === drops.unknown_endpoint + 1, 'a is unknown');
        await eventually(() => dp.readDrops().no_route >= drops.no_route + 1, 'its /32 has no route');
        assert.equal(a.received().length, 0);
        assert.equal(net.received.length, 1);
        assert.deepEqual(
          dp.readCounters().map((c) => c.id),
          [2],
        );
      }));

    it('refuses a v4v6 spec with bad addresses, saying which', () =>
      lab(async (dp) => {
        assert.throws(() => dp.addTunnel(v4v6Spec(3, '192.0.2.9', '192.0.2.4')), /clientAddress/);
        assert.throws(() => dp.addTunnel(v4v6Spec(3, V4V6.stranger, '2001:db8::4')), /clientIpv4/);
        assert.throws(
          () => dp.addTunnel({ ...v4v6Spec(3, V4V6.stranger, '192.0.2.4'), serverIpv4: 'x' }),
          /serverIpv4/,
        );
        assert.equal(dp.readCounters().length, 2);
      }));
  });
}
