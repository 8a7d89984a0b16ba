/** @module dataplane/memory: MemoryDataPlane, a model of the native packet path (native/src/engine/engine.cc) in
 *  TypeScript, over a real UDP socket and in-memory channels where the addon has a TUN device and a raw socket.
 *
 *    UDP socket --not IPv6--> onControl (control, as native)
 *               --IPv6, find (ip, port)--> classify --> tun | hairpin to another tunnel | echo reply in place
 *    proto41.write(from, packet) --find (ip)--> classify (the same)
 *    ipip.write(from6, packet) --find (ip6)--> classifyV4 (v4v6: the same rules on the inner IPv4 packet)
 *    tun.write(packet) --IPv6: longest prefix match | IPv4: a v4v6 client's /32--> encapsulate: UDP to ip:port
 *                      (v6udpv4) | proto41 out (v6v4) | ipip out (v4v6)
 *
 *  classify follows the addon rule for rule: malformed, unknown endpoint, inner source neither the tunnel's /128
 *  nor inside its delegated prefix (link-local counted apart), echo request to the tunnel's server address
 *  answered in place (hop limit 64, checksum redone), destination another tunnel: re-encapsulated with the hop
 *  limit decremented, unless it is 1 or less (then to the TUN, where the kernel would answer Time Exceeded);
 *  back into the same tunnel: dropped as no_route; anything else: written to the TUN. Counters per tunnel and
 *  drops by DropReason, as the addon keeps them; v4v6 tunnels (IPv4 in IPv6) by the same rules on the inner IPv4
 *  packet (source: the client's /32 only; ICMP echo to the server's inner IPv4 answered in place; TTL for the
 *  hop limit); the test contract (test/unit/dataplane/contract.ts) holds both
 *  to the same rules.
 *
 *  What it does not model: the kernel beyond the TUN (no forwarding, no ICMPv6 errors, no Time Exceeded), the
 *  outer header of protocol 41 and of v4v6 (the channels carry the outer address and the inner packet), the
 *  control queue bound (control_queue_full never counts: datagrams are handed over one at a time from the event
 *  loop), batching and threads. Packets cross JavaScript one at a time: fine for tests, not for load.
 *
 *  It serves tests (every broker test runs on it, without root) and `serve` when the addon cannot run
 *  (dataplane.driver 'memory', or 'auto' without root). There nothing listens on `tun` or `proto41`: packets for
 *  the internet go nowhere (counted as tun_write_packets) and none come from it, v6v4 tunnels carry nothing;
 *  what stays inside the broker still works as in the addon: keepalive echoes are answered and v6udpv4 clients
 *  reach each other. */

import dgram from 'node:dgram';
import { BrokerError } from '../errors.js';
import {
  EMPTY_DROPS,
  type ControlDatagram,
  type DataPlane,
  type DropReason,
  type Endpoint,
  type TunnelCounters,
  type TunnelId,
  type TunnelSpec,
} from './types.js';
import { ipv6PacketLength, isEchoRequest, isLinkLocal, makeEchoReply, mayUseSource, readIp6 } from './memory-packet.js';
import { MemoryTunnelTable, type Entry } from './memory-table.js';
import { decrementTtl4, ipv4PacketLength, isEchoRequest4, makeEchoReply4, readIp4 } from './memory-v4v6.js';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';

export interface MemoryDataPlaneOptions {
  listenAddress: string;
  port: number;
  clock?: Clock;
}

/** The model's diagnostics, named as the addon's counters of the same meaning (native-addon.ts NATIVE_COUNTER_NAMES). */
export interface MemoryPathCounters {
  control_delivered: number;
  echo_replies: number;
  hairpin_packets: number;
  tun_write_packets: number;
}

/** The TUN device's stand-in: the internet side of the data plane. */
export class TunChannel {
  private readonly listeners = new Set<(packet: Buffer) => void>();

  /** @internal */
  constructor(private readonly inject: (packet: Buffer) => void) {}

  /** A packet from the internet, as if the kernel had routed it into the TUN device: it is encapsulated to the
   *  tunnel its destination falls in (longest prefix), or counted as no_route. The caller keeps its buffer. */
  write(packet: Uint8Array): void {
    this.inject(Buffer.from(packet));
  }

  /** Packets the data plane writes to the TUN (decapsulated, toward the internet), one call per packet, in
   *  order; each listener gets the same fresh buffer. Without a listener they are gone, as packets the kernel
   *  cannot route. Returns the unsubscribe function. */
  onPacket(listener: (packet: Buffer) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** @internal */
  emit(packet: Buffer): void {
    for (const l of this.listeners) l(packet);
  }
}

/** A raw socket's stand-in, carrying the outer address beside the inner packet (the outer header itself is not
 *  modelled): protocol 41 for v6v4 tunnels (outer IPv4, inner IPv6), next header 4 for v4v6 (outer IPv6, inner
 *  IPv4). */
export class RawChannel {
  private readonly listeners = new Set<(to: string, packet: Buffer) => void>();

  /** @internal */
  constructor(private readonly inject: (from: string, packet: Buffer) => void) {}

  /** An inner packet arriving from outer address `from`. The caller keeps its buffer. */
  write(from: string, packet: Uint8Array): void {
    this.inject(from, Buffer.from(packet));
  }

  /** Packets the data plane encapsulates: `to` is the client's outer address (the outer destination). */
  onPacket(listener: (to: string, packet: Buffer) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** @internal */
  emit(to: string, packet: Buffer): void {
    for (const l of this.listeners) l(to, packet);
  }
}

export class MemoryDataPlane implements DataPlane {
  readonly kind = 'memory' as const;
  /** The internet side (the addon's TUN device). */
  readonly tun = new TunChannel((packet) => this.fromTun(packet));
  /** Protocol 41 (the addon's raw socket). */
  readonly proto41 = new RawChannel((from, packet) => this.fromProto41(from, packet));
  /** IPv4 in IPv6, next header 4 (the addon's raw IPv6 socket), for v4v6 tunnels. */
  readonly ipip = new RawChannel((from, packet) => this.classifyV4(packet, this.table.findIpip(from)));
  private socket: dgram.Socket | undefined;
  private handler: (batch: readonly ControlDatagram[]) => void = () => {};
  private readonly table = new MemoryTunnelTable();
  private readonly drops: Record<DropReason, number> = { ...EMPTY_DROPS };
  private readonly path: MemoryPathCounters = {
    control_delivered: 0,
    echo_replies: 0,
    hairpin_packets: 0,
    tun_write_packets: 0,
  };
  private readonly clock: Clock;
  private boundPort = 0;

  constructor(private readonly options: MemoryDataPlaneOptions) {
    this.clock = options.clock ?? systemClock;
  }

  get udpPort(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err) =>
        reject(
          new BrokerError(
            'DP_UNAVAILABLE',
            `cannot bind UDP ${this.options.listenAddress}:${this.options.port}: ${err.message}`,
            { cause: err },
          ),
        ),
      );
      socket.bind(this.options.port, this.options.listenAddress, () => resolve());
    });
    socket.on('error', () => {}); // ICMP errors from sendto surface here; a reply that cannot go is not fatal
    socket.on('message', (data, rinfo) => this.fromUdp(data, { address: rinfo.address, port: rinfo.port }));
    this.boundPort = socket.address().port;
    this.socket = socket;
  }

  // ----- receive paths (native ReceiveLoop: Ingress kUdp, kProto41, kTun) ----------------------------------------

  private fromUdp(data: Buffer, from: Endpoint): void {
    // docs/protocol.md §2.4: the high nibble of byte 0 tells control (0xF) from IPv6 data (6); anything that is
    // not IPv6 goes to the control plane too.
    if (data.length === 0) {
      this.drops.malformed++;
      return;
    }
    if (data[0]! >> 4 !== 6) {
      if (data.length < 8) {
        this.drops.control_too_short++;
        return;
      }
      this.path.control_delivered++;
      this.handler([{ from, data }]);
      return;
    }
    this.classify(data, this.table.findUdp(from.address, from.port));
  }

  private fromProto41(from: string, packet: Buffer): void {
    this.classify(packet, this.table.findProto41(from));
  }

  private fromTun(packet: Buffer): void {
    const v4 = packet.length > 0 && packet[0]! >> 4 === 4;
    const length = v4 ? ipv4PacketLength(packet) : ipv6PacketLength(packet);
    if (length === 0) {
      this.drops.malformed++;
      return;
    }
    const to = v4 ? this.table.route4(readIp4(packet, 16)) : this.table.route(readIp6(packet, 24));
    if (!to) {
      this.drops.no_route++;
      return;
    }
    this.toTunnel(to, packet.subarray(0, length));
  }

  /** native DataPlane::classify: a decapsulated packet from tunnel `from` (undefined: unknown endpoint). */
  private classify(data: Buffer, from: Entry | undefined): void {
    const length = ipv6PacketLength(data);
    if (length === 0) {
      this.drops.malformed++;
      return;
    }
    if (!from) {
      this.drops.unknown_endpoint++;
      return;
    }
    const packet = data.subarray(0, length); // trailing bytes beyond the payload length are ignored
    const source = readIp6(packet, 8);
    if (!mayUseSource(from, source)) {
      if (isLinkLocal(source)) this.drops.link_local_source++;
      else this.drops.spoofed_source++;
      return;
    }
    this.table.countRx(from, length, this.clock.now());

    const destination = readIp6(packet, 24);
    if (destination === from.serverIp6 && isEchoRequest(packet)) {
      makeEchoReply(packet); // the client's keepalive (docs/protocol.md §9.1)
      this.path.echo_replies++;
      this.toTunnel(from, packet);
      return;
    }
    const to = this.table.route(destination);
    if (!to) {
      this.toTun(packet);
      return;
    }
    if (to === from) {
      this.drops.no_route++; // never back into the tunnel it came from (docs/protocol.md §11)
      return;
    }
    if (packet[7]! <= 1) {
      this.toTun(packet); // the kernel would send Time Exceeded
      return;
    }
    packet[7] = packet[7]! - 1; // the router between the two tunnels
    this.path.hairpin_packets++;
    this.toTunnel(to, packet);
  }

  /** native forward_from_v4v6: an IPv4 packet from v4v6 tunnel `from` (undefined: unknown outer source). */
  private classifyV4(data: Buffer, from: Entry | undefined): void {
    const length = ipv4PacketLength(data);
    if (length === 0) return void this.drops.malformed++;
    if (!from?.v4) return void this.drops.unknown_endpoint++;
    const packet = data.subarray(0, length);
    if (readIp4(packet, 12) !== from.v4.clientIp4) return void this.drops.spoofed_source++;
    this.table.countRx(from, length, this.clock.now());
    const destination = readIp4(packet, 16);
    if (destination === from.v4.serverIp4 && isEchoRequest4(packet)) {
      makeEchoReply4(packet);
      this.path.echo_replies++;
      return this.toTunnel(from, packet);
    }
    const to = this.table.route4(destination);
    if (!to) return this.toTun(packet);
    if (to === from) return void this.drops.no_route++; // never back into the tunnel it came from
    if (packet[8]! <= 1) return this.toTun(packet); // the kernel would send Time Exceeded
    decrementTtl4(packet);
    this.path.hairpin_packets++;
    this.toTunnel(to, packet);
  }

  private toTunnel(t: Entry, packet: Buffer): void {
    this.table.countTx(t, packet.length);
    if (t.type === 'v6udpv4') this.socket?.send(packet, t.port, t.address);
    else if (t.type === 'v4v6') this.ipip.emit(t.address, Buffer.from(packet));
    else this.proto41.emit(t.address, Buffer.from(packet));
  }

  private toTun(packet: Buffer): void {
    this.path.tun_write_packets++;
    this.tun.emit(Buffer.from(packet));
  }

  // ----- the table (native TunnelTable: upsert, remove; last writer of a key wins) -------------------------------

  addTunnel(spec: TunnelSpec): void {
    try {
      this.table.upsert(spec);
    } catch (e) {
      throw new BrokerError('DP_FAILED', `cannot add tunnel ${spec.id}: ${(e as Error).message}`, { cause: e });
    }
  }

  removeTunnel(id: TunnelId): void {
    this.table.remove(id);
  }

  // ----- the rest of the contract ------------------------------------------------------------------------------

  readCounters(): TunnelCounters[] {
    return [...this.table.entries()].map((e) => e.counters());
  }

  readCountersOf(ids: readonly TunnelId[]): TunnelCounters[] {
    const out: TunnelCounters[] = [];
    for (const id of ids) {
      const e = this.table.get(id);
      if (e) out.push(e.counters());
    }
    return out;
  }

  readChanged(): TunnelCounters[] {
    return this.table.takeChanged();
  }

  readDrops(): Record<DropReason, number> {
    return { ...this.drops };
  }

  /** The model's diagnostics (echo replies, hairpinned packets, packets written to the TUN channel). */
  readPathCounters(): MemoryPathCounters {
    return { ...this.path };
  }

  onControl(handler: (batch: readonly ControlDatagram[]) => void): void {
    this.handler = handler;
  }

  sendControl(to: Endpoint, datagram: Uint8Array): void {
    this.socket?.send(datagram, to.port, to.address);
  }

  async close(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** For tests: the spec a tunnel id currently has. */
  tunnel(id: TunnelId): TunnelSpec | undefined {
    return this.table.get(id)?.spec();
  }
}
