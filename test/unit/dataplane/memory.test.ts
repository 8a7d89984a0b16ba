/** The DataPlane contract against MemoryDataPlane, on loopback, with the `tun` channel as the internet side; then
 *  what only the model has: protocol 41 over its in-memory channel, the TUN channel with nobody listening (the
 *  control-plane-only production role), the hop-limit edge of hairpinning, spec checks, the Clock. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import ipaddr from 'ipaddr.js';
import { ManualClock } from '../../../src/clock.js';
import { isBrokerError } from '../../../src/errors.js';
import { MemoryDataPlane } from '../../../src/dataplane/memory.js';
import type { DataPlane, TunnelId } from '../../../src/dataplane/types.js';
import { icmpv6ChecksumOk, icmpv6EchoRequest, ipv4UdpWith, ipv6Udp, ipv6UdpWith } from '../../helpers/packets.js';
import { V4V6, v4v6Contract, type Internet4, type IpipPeer } from './contract-v4v6.js';
import {
  INTERNET_ADDRESS,
  INTERNET_PORT,
  Peer,
  dataPlaneContract,
  eventually,
  normalIpv6,
  spec,
  type Internet,
} from './contract.js';

async function open(options: { clock?: ManualClock } = {}): Promise<MemoryDataPlane> {
  const dp = new MemoryDataPlane({ listenAddress: '127.0.0.1', port: 0, ...options });
  await dp.start();
  return dp;
}

/** The internet side over the tun channel: IPv6/UDP packets in and out, filtered to our address and port. */
function internetOver(dp: MemoryDataPlane): Internet {
  const received: { from: string; data: Buffer }[] = [];
  const me = normalIpv6(INTERNET_ADDRESS);
  const stop = dp.tun.onPacket((p) => {
    const dst = ipaddr.fromByteArray([...p.subarray(24, 40)]).toNormalizedString();
    if (p[6] !== 17 || dst !== me || p.readUInt16BE(42) !== INTERNET_PORT) return;
    received.push({ from: ipaddr.fromByteArray([...p.subarray(8, 24)]).toString(), data: p.subarray(48) });
  });
  return {
    received,
    async send(to, data, port = 9) {
      dp.tun.write(ipv6UdpWith(INTERNET_ADDRESS, to, data, { src: INTERNET_PORT, dst: port }));
    },
    close: stop,
  };
}

dataPlaneContract('memory', {
  address: '127.0.0.1',
  open: () => open(),
  internet: async (dp: DataPlane) => internetOver(dp as MemoryDataPlane),
  pathCounters: (dp) => (dp as MemoryDataPlane).readPathCounters(),
});

/** A v4v6 client over the ipip channel: what the data plane encapsulates to `address` is collected. */
function ipipPeerOver(dp: MemoryDataPlane, address: string): IpipPeer {
  const got: Buffer[] = [];
  const me = normalIpv6(address);
  const stop = dp.ipip.onPacket((to, p) => {
    if (normalIpv6(to) === me) got.push(p);
  });
  return { address, send: async (inner) => dp.ipip.write(address, inner), received: () => got, close: stop };
}

/** The IPv4 internet side over the tun channel: IPv4/UDP packets to V4V6.internet:internetPort collected. */
function internet4Over(dp: MemoryDataPlane): Internet4 {
  const received: { from: string; data: Buffer }[] = [];
  const stop = dp.tun.onPacket((p) => {
    if (p[0]! >> 4 !== 4 || p[9] !== 17 || p.readUInt16BE(22) !== V4V6.internetPort) return;
    if (ipaddr.fromByteArray([...p.subarray(16, 20)]).toString() !== V4V6.internet) return;
    received.push({ from: ipaddr.fromByteArray([...p.subarray(12, 16)]).toString(), data: p.subarray(28) });
  });
  return {
    received,
    async send(to, data, port = 9) {
      dp.tun.write(ipv4UdpWith(V4V6.internet, to, data, { src: V4V6.internetPort, dst: port }));
    },
    close: stop,
  };
}

v4v6Contract('memory', {
  open: () => open(),
  peer: async (dp, address) => ipipPeerOver(dp as MemoryDataPlane, address),
  internet: async (dp) => internet4Over(dp as MemoryDataPlane),
  pathCounters: (dp) => (dp as MemoryDataPlane).readPathCounters(),
});

describe('MemoryDataPlane: what only the model has', () => {
  let dp: MemoryDataPlane;
  let peer: Peer;
  const clock = new ManualClock(1_800_000_000_000);
  before(async () => {
    dp = await open({ clock });
    peer = await Peer.open('127.0.0.1');
  });
  after(async () => {
    peer.close();
    await dp.close();
  });

  it('v6v4 over the protocol-41 channel: source check, echo, decapsulation and encapsulation', () => {
    const v6v4 = spec(41, peer, {
      type: 'v6v4',
      client: { address: '192.0.2.41', port: 0 },
      delegated: { address: '2001:db8:f00:4100::', length: 56 },
    });
    dp.addTunnel(v6v4);
    const out: { to: string; packet: Buffer }[] = [];
    const toInternet: Buffer[] = [];
    const stopOut = dp.proto41.onPacket((to, packet) => out.push({ to, packet }));
    const stopTun = dp.tun.onPacket((p) => toInternet.push(p));
    try {
      const drops = dp.readDrops();
      dp.proto41.write('192.0.2.99', ipv6Udp('2001:db8:f00:29::2', INTERNET_ADDRESS, 60)); // no tunnel there
      dp.proto41.write('192.0.2.41', ipv6Udp('2001:db8:dead::2', INTERNET_ADDRESS, 60));
      assert.equal(dp.readDrops().unknown_endpoint, drops.unknown_endpoint + 1);
      assert.equal(dp.readDrops().spoofed_source, drops.spoofed_source + 1);

      const data = ipv6Udp('2001:db8:f00:4100::5', INTERNET_ADDRESS, 70);
      dp.proto41.write('192.0.2.41', data);
      assert.deepEqual(toInternet, [data], 'decapsulated to the TUN side, unchanged');
      assert.equal(dp.tunnel(41 as TunnelId)?.type, 'v6v4');

      const echo = icmpv6EchoRequest('2001:db8:f00:29::2', '2001:db8:f00:29::1');
      dp.proto41.write('192.0.2.41', echo);
      dp.tun.write(ipv6Udp(INTERNET_ADDRESS, '2001:db8:f00:29::2', 90));
      assert.deepEqual(
        out.map((o) => [o.to, o.packet[6], o.packet.length]),
        [
          ['192.0.2.41', 58, echo.length],
          ['192.0.2.41', 17, 90],
        ],
      );
      assert.ok(icmpv6ChecksumOk(out[0]!.packet));
      const c = dp.readCounters().find((x) => x.id === 41)!;
      assert.deepEqual([c.rxPackets, c.rxBytes, c.txPackets, c.txBytes], [2, 70 + echo.length, 2, echo.length + 90]);
      assert.equal(c.lastRxMs, clock.now(), 'stamped by the Clock');
    } finally {
      stopOut();
      stopTun();
      dp.removeTunnel(41 as TunnelId);
    }
  });

  it('v6udpv4 tunnels are keyed by ip:port for UDP, v6v4 tunnels by ip for protocol 41, never across', async () => {
    const other = await Peer.open('127.0.0.1');
    dp.addTunnel(spec(7, peer));
    dp.addTunnel(spec(8, peer, { type: 'v6v4', client: { address: '127.0.0.1', port: 0 } }));
    try {
      const drops = dp.readDrops();
      await other.send(ipv6Udp('2001:db8:f00:8::2', INTERNET_ADDRESS, 60), dp.udpPort);
      await eventually(() => dp.readDrops().unknown_endpoint === drops.unknown_endpoint + 1, 'v6v4 over UDP');
      dp.proto41.write('127.0.0.1', ipv6Udp('2001:db8:f00:7::2', INTERNET_ADDRESS, 60));
      assert.equal(dp.readDrops().spoofed_source, drops.spoofed_source + 1, "tunnel 7's address from 8's endpoint");
      dp.proto41.write('127.0.0.1', ipv6Udp('2001:db8:f00:8::2', INTERNET_ADDRESS, 60));
      assert.equal(dp.readCounters().find((x) => x.id === 8)!.rxPackets, 1);
      assert.equal(dp.readCounters().find((x) => x.id === 7)!.rxPackets, 0);
    } finally {
      other.close();
      dp.removeTunnel(7 as TunnelId);
      dp.removeTunnel(8 as TunnelId);
    }
  });

  it('with nobody on the TUN side (serve without the addon) packets for the internet are counted and gone', () => {
    dp.addTunnel(spec(9, peer, { type: 'v6v4', client: { address: '192.0.2.9', port: 0 } }));
    try {
      const before = dp.readPathCounters().tun_write_packets;
      dp.proto41.write('192.0.2.9', ipv6Udp('2001:db8:f00:9::2', INTERNET_ADDRESS, 60));
      assert.equal(dp.readPathCounters().tun_write_packets, before + 1);
      assert.equal(dp.readCounters().find((x) => x.id === 9)!.rxPackets, 1);
    } finally {
      dp.removeTunnel(9 as TunnelId);
    }
  });

  it('a hairpin packet whose hop limit would expire goes to the TUN side, unchanged', () => {
    dp.addTunnel(spec(10, peer, { type: 'v6v4', client: { address: '192.0.2.10', port: 0 } }));
    dp.addTunnel(spec(11, peer, { type: 'v6v4', client: { address: '192.0.2.11', port: 0 } }));
    const toInternet: Buffer[] = [];
    const out: string[] = [];
    const stopTun = dp.tun.onPacket((p) => toInternet.push(p));
    const stopOut = dp.proto41.onPacket((to) => out.push(to));
    try {
      const hairpins = dp.readPathCounters().hairpin_packets;
      const last = ipv6UdpWith('2001:db8:f00:a::2', '2001:db8:f00:b::2', Buffer.from('x'), undefined, 1);
      dp.proto41.write('192.0.2.10', last);
      dp.proto41.write('192.0.2.10', ipv6UdpWith('2001:db8:f00:a::2', '2001:db8:f00:b::2', Buffer.from('y')));
      assert.deepEqual(toInternet, [last], 'the kernel would answer Time Exceeded');
      assert.deepEqual(out, ['192.0.2.11']);
      assert.equal(dp.readPathCounters().hairpin_packets, hairpins + 1);
    } finally {
      stopTun();
      stopOut();
      dp.removeTunnel(10 as TunnelId);
      dp.removeTunnel(11 as TunnelId);
    }
  });

  it('refuses a spec the addon refuses, with DP_FAILED', () => {
    const bad = [
      spec(12, peer, { delegated: { address: '2001:db8:f00:4401::', length: 48 } }), // host bits set
      spec(12, peer, { clientIpv6: 'not-an-address' }),
      spec(12, peer, { client: { address: '192.0.2.1', port: 0 } }), // v6udpv4 needs a port
      spec(12, peer, { client: { address: '300.0.0.1', port: 1 } }),
    ];
    for (const s of bad)
      assert.throws(
        () => dp.addTunnel(s),
        (e: unknown) => isBrokerError(e) && e.code === 'DP_FAILED',
      );
    assert.equal(dp.tunnel(12 as TunnelId), undefined);
  });

  it('the last writer of an endpoint wins; removing the older tunnel leaves the newer one reachable', async () => {
    dp.addTunnel(spec(13, peer));
    dp.addTunnel(spec(14, peer)); // the same ip:port (the broker never asks for this)
    dp.removeTunnel(13 as TunnelId);
    try {
      await peer.send(ipv6Udp('2001:db8:f00:e::2', INTERNET_ADDRESS, 60), dp.udpPort);
      await eventually(() => dp.readCounters().find((x) => x.id === 14)?.rxPackets === 1, 'tunnel 14 keeps it');
    } finally {
      dp.removeTunnel(14 as TunnelId);
    }
  });
});
