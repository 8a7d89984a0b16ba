/** @module dataplane/memory: MemoryDataPlane, a model of the native packet path (native/src/engine/engine.cc) in
 *  TypeScript, over a real UDP socket and in-memory channels where the addon has a TUN device and a raw socket.
 *
 *    UDP socket --not IPv6--> onControl (control, as native)
 *               --IPv6, find (ip, port)--> classify --> tun | hairpin to another tunnel | echo reply in place
 *    proto41.write(from, packet) --find (ip)--> classify (the same)
 *    tun.write(packet) --longest prefix match--> encapsulate: UDP to ip:port (v6udpv4) | proto41 out (v6v4)
 *
 *  classify follows the addon rule for rule: malformed, unknown endpoint, inner source neither the tunnel's /128
 *  nor inside its delegated prefix (link-local counted apart), echo request to the tunnel's server address
 *  answered in place (hop limit 64, checksum redone), destination another tunnel: re-encapsulated with the hop
 *  limit decremented, unless it is 1 or less (then to the TUN, where the kernel would answer Time Exceeded);
 *  back into the same tunnel: dropped as no_route; anything else: written to the TUN. Counters per tunnel and
 *  drops by DropReason, as the addon keeps them; the test contract (test/unit/dataplane/contract.ts) holds both
 *  to the same rules.
 *
 *  What it does not model: the kernel beyond the TUN (no forwarding, no ICMPv6 errors, no Time Exceeded), the
 *  outer IPv4 header of protocol 41 (the channel carries the outer source address and the inner packet), the
 *  control queue bound (control_queue_full never counts: datagrams are handed over one at a time from the event
 *  loop), batching and threads. Packets cross JavaScript one at a time: fine for tests, not for load.
 *
 *  It serves tests (every broker test runs on it, without root) and `serve` when the addon cannot run
 *  (dataplane.driver 'memory', or 'auto' without root). There nothing listens on `tun` or `proto41`: packets for
 *  the internet go nowhere (counted as tun_write_packets) and none come from it, v6v4 tunnels carry nothing;
 *  what stays inside the broker still works as in the addon: keepalive echoes are answered and v6udpv4 clients
 *  reach each other. */

import dgram from 'node:dgram';
import ipaddr from 'ipaddr.js';
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
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';

export interface MemoryDataPlaneOptions {
  listenAddress: string;
  port: number;
  clock?: Clock;
}

/** The model's diagnostics, named as the addon's counters of the same meaning (native.ts NATIVE_COUNTER_NAMES). */
export interface MemoryPathCounters {
  control_delivered: number;
  echo_replies: number;
  hairpin_packets: number;
  tun_write_packets: number;
}

// Specification constants (RFC 8200, RFC 4443), as in native/src/engine/packet.h.
const IPV6_HEADER_BYTES = 40;
const NEXT_HEADER_ICMPV6 = 58;
const ICMPV6_ECHO_REQUEST = 128;
const ICMPV6_ECHO_REPLY = 129;
const REPLY_HOP_LIMIT = 64;
const ALL_ONES = (1n << 128n) - 1n;

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

/** The raw protocol-41 socket's stand-in (v6v4 tunnels), carrying the outer IPv4 address beside the inner
 *  IPv6 packet: the outer header itself is not modelled. */
export class Proto41Channel {
  private readonly listeners = new Set<(to: string, packet: Buffer) => void>();

  /** @internal */
  constructor(private readonly inject: (from: string, packet: Buffer) => void) {}

  /** An IPv6 packet arriving in an IPv4 protocol-41 datagram from `from`. The caller keeps its buffer. */
  write(from: string, packet: Uint8Array): void {
    this.inject(from, Buffer.from(packet));
  }

  /** Packets the data plane encapsulates for v6v4 tunnels: `to` is the client's IPv4 (the outer destination). */
  onPacket(listener: (to: string, packet: Buffer) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** @internal */
  emit(to: string, packet: Buffer): void {
    for (const l of this.listeners) l(to, packet);
  }
}

interface Entry {
  spec: TunnelSpec;
  counters: TunnelCounters;
  serverIp6: bigint;
  clientIp6: bigint;
  delegated?: { prefix: bigint; length: number };
}

export class MemoryDataPlane implements DataPlane {
  readonly kind = 'memory' as const;
  /** The internet side (the addon's TUN device). */
  readonly tun = new TunChannel((packet) => this.fromTun(packet));
  /** Protocol 41 (the addon's raw socket). */
  readonly proto41 = new Proto41Channel((from, packet) => this.fromProto41(from, packet));
  private socket: dgram.Socket | undefined;
  private handler: (batch: readonly ControlDatagram[]) => void = () => {};
  private readonly tunnels = new Map<TunnelId, Entry>();
  private readonly byUdp = new Map<string, Entry>();
  private readonly byProto41 = new Map<string, Entry>();
  /** Prefix length -> masked prefix -> tunnel; `lengths` lists the lengths in use, longest first. */
  private readonly byPrefix = new Map<number, Map<bigint, Entry>>();
  private lengths: number[] = [];
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
    this.classify(data, this.byUdp.get(`${from.address}:${from.port}`));
  }

  private fromProto41(from: string, packet: Buffer): void {
    this.classify(packet, this.byProto41.get(from));
  }

  private fromTun(packet: Buffer): void {
    const length = ipv6PacketLength(packet);
    if (length === 0) {
      this.drops.malformed++;
      return;
    }
    const to = this.route(readIp6(packet, 24));
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
    from.counters.rxPackets++;
    from.counters.rxBytes += length;
    from.counters.lastRxMs = this.clock.now();

    const destination = readIp6(packet, 24);
    if (destination === from.serverIp6 && isEchoRequest(packet)) {
      makeEchoReply(packet); // the client's keepalive (docs/protocol.md §9.1)
      this.path.echo_replies++;
      this.toTunnel(from, packet);
      return;
    }
    const to = this.route(destination);
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

  private toTunnel(t: Entry, packet: Buffer): void {
    t.counters.txPackets++;
    t.counters.txBytes += packet.length;
    if (t.spec.type === 'v6udpv4') this.socket?.send(packet, t.spec.client.port, t.spec.client.address);
    else this.proto41.emit(t.spec.client.address, Buffer.from(packet));
  }

  private toTun(packet: Buffer): void {
    this.path.tun_write_packets++;
    this.tun.emit(Buffer.from(packet));
  }

  /** Longest prefix match over the lengths in use, longest first (native TunnelTable::route). */
  private route(destination: bigint): Entry | undefined {
    for (const length of this.lengths) {
      const hit = this.byPrefix.get(length)!.get(mask(destination, length));
      if (hit) return hit;
    }
    return undefined;
  }

  // ----- the table (native TunnelTable: upsert, remove; last writer of a key wins) -------------------------------

  addTunnel(spec: TunnelSpec): void {
    let parsed: Omit<Entry, 'spec' | 'counters'>;
    try {
      parsed = parseSpec(spec);
    } catch (e) {
      throw new BrokerError('DP_FAILED', `cannot add tunnel ${spec.id}: ${(e as Error).message}`, { cause: e });
    }
    const old = this.tunnels.get(spec.id);
    if (old) this.unindex(old);
    const entry: Entry = {
      spec: { ...spec, client: { ...spec.client }, ...(spec.delegated ? { delegated: { ...spec.delegated } } : {}) },
      counters: old?.counters ?? { id: spec.id, rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, lastRxMs: 0 },
      ...parsed,
    };
    this.tunnels.set(spec.id, entry);
    this.index(entry);
  }

  removeTunnel(id: TunnelId): void {
    const old = this.tunnels.get(id);
    if (!old) return;
    this.tunnels.delete(id);
    this.unindex(old);
  }

  private index(e: Entry): void {
    if (e.spec.type === 'v6udpv4') this.byUdp.set(udpKey(e.spec), e);
    else this.byProto41.set(e.spec.client.address, e);
    this.prefixes(128).set(e.clientIp6, e);
    if (e.delegated) this.prefixes(e.delegated.length).set(e.delegated.prefix, e);
    this.recomputeLengths();
  }

  private unindex(e: Entry): void {
    const eraseIfOwner = <K>(map: Map<K, Entry> | undefined, key: K) => {
      if (map?.get(key) === e) map.delete(key);
    };
    if (e.spec.type === 'v6udpv4') eraseIfOwner(this.byUdp, udpKey(e.spec));
    else eraseIfOwner(this.byProto41, e.spec.client.address);
    eraseIfOwner(this.byPrefix.get(128), e.clientIp6);
    if (e.delegated) eraseIfOwner(this.byPrefix.get(e.delegated.length), e.delegated.prefix);
    this.recomputeLengths();
  }

  private prefixes(length: number): Map<bigint, Entry> {
    let map = this.byPrefix.get(length);
    if (!map) this.byPrefix.set(length, (map = new Map()));
    return map;
  }

  private recomputeLengths(): void {
    this.lengths = [...this.byPrefix.entries()]
      .filter(([, m]) => m.size > 0)
      .map(([length]) => length)
      .sort((a, b) => b - a);
  }

  // ----- the rest of the contract ------------------------------------------------------------------------------

  readCounters(): TunnelCounters[] {
    return [...this.tunnels.values()].map((e) => ({ ...e.counters }));
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
    return this.tunnels.get(id)?.spec;
  }
}

// ----- packets and addresses (native/src/engine/packet.h) --------------------------------------------------------

/** Length of the IPv6 packet in `p` if well formed (version 6, header present, payload length fits), else 0. */
function ipv6PacketLength(p: Buffer): number {
  if (p.length < IPV6_HEADER_BYTES || p[0]! >> 4 !== 6) return 0;
  const total = IPV6_HEADER_BYTES + p.readUInt16BE(4);
  return total <= p.length ? total : 0;
}

function readIp6(p: Buffer, at: number): bigint {
  return (p.readBigUInt64BE(at) << 64n) | p.readBigUInt64BE(at + 8);
}

function mask(a: bigint, length: number): bigint {
  return length <= 0 ? 0n : a & (ALL_ONES ^ ((1n << BigInt(128 - length)) - 1n));
}

/** fe80::/10 */
function isLinkLocal(a: bigint): boolean {
  return a >> 118n === 0xfe80n >> 6n;
}

function mayUseSource(t: Entry, source: bigint): boolean {
  return (
    source === t.clientIp6 || (t.delegated !== undefined && mask(source, t.delegated.length) === t.delegated.prefix)
  );
}

/** An ICMPv6 echo request directly after the IPv6 header (what gogoc sends, docs/protocol.md §9.1). */
function isEchoRequest(p: Buffer): boolean {
  return (
    p[6] === NEXT_HEADER_ICMPV6 &&
    p.length >= IPV6_HEADER_BYTES + 8 &&
    p[IPV6_HEADER_BYTES] === ICMPV6_ECHO_REQUEST &&
    p[IPV6_HEADER_BYTES + 1] === 0
  );
}

/** In place: addresses swapped, fresh hop limit, type 129, checksum recomputed; identifier, sequence and data
 *  stay (RFC 4443 §4.2). */
function makeEchoReply(p: Buffer): void {
  const source = Buffer.from(p.subarray(8, 24));
  p.copy(p, 8, 24, 40);
  source.copy(p, 24);
  p[7] = REPLY_HOP_LIMIT;
  p[IPV6_HEADER_BYTES] = ICMPV6_ECHO_REPLY;
  p.writeUInt16BE(icmpv6Checksum(p), IPV6_HEADER_BYTES + 2);
}

/** The ICMPv6 checksum of a whole packet (no extension headers), with the checksum field taken as zero. */
function icmpv6Checksum(p: Buffer): number {
  const message = p.length - IPV6_HEADER_BYTES;
  let sum = sumWords(p, 8, 40, 0); // source and destination
  sum += Math.floor(message / 0x10000) + (message & 0xffff) + NEXT_HEADER_ICMPV6;
  sum = sumWords(p, IPV6_HEADER_BYTES, IPV6_HEADER_BYTES + 2, sum); // type, code
  sum = sumWords(p, IPV6_HEADER_BYTES + 4, p.length, sum); // skip the checksum
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

function sumWords(p: Buffer, from: number, to: number, sum: number): number {
  let i = from;
  for (; i + 1 < to; i += 2) sum += (p[i]! << 8) | p[i + 1]!;
  if (i < to) sum += p[i]! << 8;
  return sum;
}

// ----- specs (native addon.cc AddTunnel: the same checks) --------------------------------------------------------

function parseSpec(spec: TunnelSpec): Omit<Entry, 'spec' | 'counters'> {
  if (spec.type !== 'v6udpv4' && spec.type !== 'v6v4') throw new Error(`type must be v6v4 or v6udpv4: ${spec.type}`);
  if (!ipaddr.IPv4.isValidFourPartDecimal(spec.client.address))
    throw new Error(`clientAddress: not an IPv4 address: ${spec.client.address}`);
  if (
    spec.type === 'v6udpv4' &&
    !(Number.isInteger(spec.client.port) && spec.client.port >= 1 && spec.client.port <= 65535)
  )
    throw new Error('clientPort out of range');
  const parsed: Omit<Entry, 'spec' | 'counters'> = {
    serverIp6: parseIp6(spec.serverIpv6, 'serverIpv6'),
    clientIp6: parseIp6(spec.clientIpv6, 'clientIpv6'),
  };
  if (spec.delegated) {
    const { address, length } = spec.delegated;
    if (!(Number.isInteger(length) && length >= 1 && length <= 128)) throw new Error('delegatedLength out of range');
    const prefix = parseIp6(address, 'delegatedAddress');
    if (mask(prefix, length) !== prefix) throw new Error(`delegated prefix has host bits set: ${address}`);
    parsed.delegated = { prefix, length };
  }
  return parsed;
}

function parseIp6(text: string, what: string): bigint {
  if (!ipaddr.IPv6.isValid(text) || text.includes('%')) throw new Error(`${what}: not an IPv6 address: ${text}`);
  return ipaddr.IPv6.parse(text)
    .toByteArray()
    .reduce((a, b) => (a << 8n) | BigInt(b), 0n);
}

/** v6udpv4 tunnels are keyed by the client's address and port. */
function udpKey(spec: TunnelSpec): string {
  return `${spec.client.address}:${spec.client.port}`;
}
