/** @module test/unit/dataplane/contract: the DataPlane contract (src/dataplane/types.ts), one suite run against
 *  every implementation (STYLE.md §5): MemoryDataPlane (memory.test.ts) and NativeDataPlane in a namespace of
 *  its own (native.test.ts). Peers are UDP sockets on `address`; nothing here knows which implementation runs. */

import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, it } from 'node:test';
import type { ControlDatagram, DataPlane, TunnelId, TunnelSpec } from '../../../src/dataplane/types.js';
import { ipv6Udp } from '../../helpers/packets.js';

export interface ContractHarness {
  /** IPv4 address the data plane listens on and peers send from (loopback). */
  address: string;
  /** A started data plane on `address`, port 0. The suite closes it. */
  open(): Promise<DataPlane>;
}

/** A UDP socket standing in for a client. */
export class Peer {
  readonly received: { data: Buffer; port: number }[] = [];
  private constructor(
    readonly socket: dgram.Socket,
    readonly address: string,
    readonly port: number,
  ) {
    socket.on('message', (data, rinfo) => this.received.push({ data, port: rinfo.port }));
  }

  static async open(address: string): Promise<Peer> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, address, () => resolve());
    });
    return new Peer(socket, address, socket.address().port);
  }

  send(data: Uint8Array, port: number): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.send(data, port, this.address, (e) => (e ? reject(e) : resolve())),
    );
  }

  close(): void {
    this.socket.close();
  }
}

/** Polls `probe` every 10 ms until it returns true; bounded so a broken implementation fails, not hangs. */
export async function eventually(probe: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function spec(id: number, peer: Peer, overrides: Partial<TunnelSpec> = {}): TunnelSpec {
  return {
    id: id as TunnelId,
    type: 'v6udpv4',
    client: { address: peer.address, port: peer.port },
    serverIpv6: `2001:db8:f00:${id.toString(16)}::1`,
    clientIpv6: `2001:db8:f00:${id.toString(16)}::2`,
    ...overrides,
  };
}

/** A control datagram: the TSP UDP header starts with nibble 0xF (tsp-protocol.md §2.2). */
function control(text: string): Buffer {
  const header = Buffer.from([0xf0, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]);
  return Buffer.concat([header, Buffer.from(text)]);
}

export function dataPlaneContract(name: string, harness: ContractHarness): void {
  describe(`DataPlane contract: ${name}`, () => {
    async function withPlane(body: (dp: DataPlane, peer: Peer) => Promise<void>): Promise<void> {
      const dp = await harness.open();
      const peer = await Peer.open(harness.address);
      try {
        await body(dp, peer);
      } finally {
        peer.close();
        await dp.close();
      }
    }

    it('reports the bound UDP port after start', () =>
      withPlane(async (dp) => {
        assert.ok(dp.udpPort > 0 && dp.udpPort < 65536, `udpPort ${dp.udpPort}`);
      }));

    it('hands control datagrams to onControl and replies from the TSP port', () =>
      withPlane(async (dp, peer) => {
        const batches: ControlDatagram[][] = [];
        dp.onControl((batch) => batches.push([...batch]));
        const request = control('VERSION=2.0.0\r\n');
        await peer.send(request, dp.udpPort);
        await eventually(() => batches.flat().length === 1, 'one control datagram');
        const got = batches.flat()[0]!;
        assert.deepEqual(got.from, { address: peer.address, port: peer.port });
        assert.deepEqual(Buffer.from(got.data), request);
        if (got.localAddress !== undefined) assert.equal(got.localAddress, harness.address);

        dp.sendControl(got.from, control('CAPABILITY TUNNEL=V6UDPV4\r\n'));
        await eventually(() => peer.received.length === 1, 'the reply');
        assert.equal(peer.received[0]!.port, dp.udpPort, 'reply comes from the TSP port');
        assert.match(peer.received[0]!.data.subarray(8).toString(), /^CAPABILITY/);
      }));

    it('delivers a burst of control datagrams, in order, without losing any', () =>
      withPlane(async (dp, peer) => {
        const got: ControlDatagram[] = [];
        dp.onControl((batch) => got.push(...batch));
        for (let i = 0; i < 50; i++) await peer.send(control(`line ${i}\r\n`), dp.udpPort);
        await eventually(() => got.length === 50, '50 control datagrams');
        assert.deepEqual(
          got.map((d) => Buffer.from(d.data).subarray(8).toString()),
          Array.from({ length: 50 }, (_, i) => `line ${i}\r\n`),
        );
      }));

    it('drops control datagrams under 8 bytes and counts them', () =>
      withPlane(async (dp, peer) => {
        const got: ControlDatagram[] = [];
        dp.onControl((batch) => got.push(...batch));
        await peer.send(Buffer.from([0xf0, 0, 0, 1]), dp.udpPort);
        await eventually(() => dp.readDrops().control_too_short === 1, 'control_too_short');
        assert.equal(got.length, 0);
      }));

    it('hands a datagram that is neither 0xF nor IPv6 to onControl; under 8 bytes it is counted instead', () =>
      withPlane(async (dp, peer) => {
        const got: ControlDatagram[] = [];
        dp.onControl((batch) => got.push(...batch));
        // An IPv4 header's first bytes: not TSP, not IPv6. The control plane decides (it ignores it).
        const odd = Buffer.from('45000014000000004011', 'hex');
        await peer.send(odd, dp.udpPort);
        await eventually(() => got.length === 1, 'the odd datagram as control');
        assert.deepEqual(Buffer.from(got[0]!.data), odd);
        await peer.send(Buffer.from([0x45, 0, 0]), dp.udpPort);
        await eventually(() => dp.readDrops().control_too_short === 1, 'control_too_short');
        assert.equal(got.length, 1);
        assert.equal(dp.readDrops().malformed, 0);
      }));

    it('counts IPv6 data from an unknown endpoint as dropped', () =>
      withPlane(async (dp, peer) => {
        await peer.send(ipv6Udp('2001:db8:f00:1::2', '2001:db8:100::2', 100), dp.udpPort);
        await eventually(() => dp.readDrops().unknown_endpoint === 1, 'unknown_endpoint');
        assert.deepEqual(dp.readCounters(), []);
      }));

    it('counts accepted data per tunnel with the time it arrived', () =>
      withPlane(async (dp, peer) => {
        const before = Date.now();
        dp.addTunnel(spec(1, peer));
        const packet = ipv6Udp('2001:db8:f00:1::2', '2001:db8:100::2', 100);
        await peer.send(packet, dp.udpPort);
        await peer.send(packet, dp.udpPort);
        await eventually(() => dp.readCounters()[0]?.rxPackets === 2, 'two packets counted');
        const [c] = dp.readCounters();
        assert.equal(c!.id, 1);
        assert.equal(c!.rxBytes, 2 * packet.length);
        // The native clock is coarse (a few ms): allow for it.
        assert.ok(c!.lastRxMs >= before - 20 && c!.lastRxMs <= Date.now() + 20, `lastRxMs ${c!.lastRxMs}`);
        assert.equal(dp.readDrops().unknown_endpoint, 0);
      }));

    it('addTunnel is idempotent: the same id gets new addresses and keeps its counters', () =>
      withPlane(async (dp, peer) => {
        dp.addTunnel(spec(1, peer));
        await peer.send(ipv6Udp('2001:db8:f00:1::2', '2001:db8:100::2', 80), dp.udpPort);
        await eventually(() => dp.readCounters()[0]?.rxPackets === 1, 'first packet counted');
        dp.addTunnel(spec(1, peer, { serverIpv6: '2001:db8:f00:99::1', clientIpv6: '2001:db8:f00:99::2' }));
        dp.addTunnel(spec(1, peer, { serverIpv6: '2001:db8:f00:99::1', clientIpv6: '2001:db8:f00:99::2' }));
        assert.equal(dp.readCounters().length, 1);
        assert.equal(dp.readCounters()[0]!.rxPackets, 1, 'counters survive the replace');
        await peer.send(ipv6Udp('2001:db8:f00:99::2', '2001:db8:100::2', 80), dp.udpPort);
        await eventually(() => dp.readCounters()[0]?.rxPackets === 2, 'second packet counted');
      }));

    it('addTunnel moves a tunnel to a new endpoint; the old one becomes unknown', () =>
      withPlane(async (dp, peer) => {
        const moved = await Peer.open(harness.address);
        try {
          dp.addTunnel(spec(1, peer));
          dp.addTunnel(spec(1, moved));
          const packet = ipv6Udp('2001:db8:f00:1::2', '2001:db8:100::2', 80);
          await moved.send(packet, dp.udpPort);
          await eventually(() => dp.readCounters()[0]?.rxPackets === 1, 'packet from the new endpoint');
          await peer.send(packet, dp.udpPort);
          await eventually(() => dp.readDrops().unknown_endpoint === 1, 'old endpoint unknown');
        } finally {
          moved.close();
        }
      }));

    it('removeTunnel drops the tunnel and its endpoint; unknown ids are ignored', () =>
      withPlane(async (dp, peer) => {
        dp.addTunnel(spec(1, peer));
        dp.addTunnel(spec(2, peer, { client: { address: peer.address, port: 9 } }));
        dp.removeTunnel(1 as TunnelId);
        dp.removeTunnel(1 as TunnelId);
        dp.removeTunnel(12345 as TunnelId);
        assert.deepEqual(
          dp.readCounters().map((c) => c.id),
          [2],
        );
        await peer.send(ipv6Udp('2001:db8:f00:1::2', '2001:db8:100::2', 80), dp.udpPort);
        await eventually(() => dp.readDrops().unknown_endpoint === 1, 'removed endpoint is unknown');
      }));

    it('close is idempotent', async () => {
      const dp = await harness.open();
      await dp.close();
      await dp.close();
    });
  });
}
