/** @module dataplane/memory: MemoryDataPlane, the in-memory stand-in for the native packet path.
 *  It owns a real UDP socket (node:dgram) so the control plane runs over real sockets, and keeps the tunnel
 *  table in memory. It moves no packets: an IPv6 datagram from a tunnel's endpoint is counted (so idle expiry
 *  and counters behave) and discarded. Used by tests, and by `serve` when the native data plane cannot start
 *  (dataplane.driver 'memory', or 'auto' without root), in which case the broker says so in its log. */

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
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';

export interface MemoryDataPlaneOptions {
  listenAddress: string;
  port: number;
  clock?: Clock;
}

interface Entry {
  spec: TunnelSpec;
  counters: TunnelCounters;
}

export class MemoryDataPlane implements DataPlane {
  readonly kind = 'memory' as const;
  private socket: dgram.Socket | undefined;
  private handler: (batch: readonly ControlDatagram[]) => void = () => {};
  private readonly tunnels = new Map<TunnelId, Entry>();
  private readonly byEndpoint = new Map<string, Entry>();
  private readonly drops: Record<DropReason, number> = { ...EMPTY_DROPS };
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
    socket.on('message', (data, rinfo) => this.receive(data, { address: rinfo.address, port: rinfo.port }));
    this.boundPort = socket.address().port;
    this.socket = socket;
  }

  private receive(data: Buffer, from: Endpoint): void {
    // The same split as the native receive loop (native/src/dataplane.cc): IPv6 (first nibble 6) is data;
    // anything else is control, handed over whole when it holds at least the TSP header.
    if (data.length === 0) {
      this.drops.malformed++;
      return;
    }
    if (data[0]! >> 4 !== 6) {
      if (data.length < 8) {
        this.drops.control_too_short++;
        return;
      }
      this.handler([{ from, data }]);
      return;
    }
    if (data.length < 40) {
      this.drops.malformed++;
      return;
    }
    const entry = this.byEndpoint.get(`${from.address}:${from.port}`);
    if (!entry) {
      this.drops.unknown_endpoint++;
      return;
    }
    entry.counters.rxPackets++;
    entry.counters.rxBytes += data.length;
    entry.counters.lastRxMs = this.clock.now();
  }

  addTunnel(spec: TunnelSpec): void {
    const old = this.tunnels.get(spec.id);
    if (old) this.byEndpoint.delete(endpointKey(old.spec));
    const entry: Entry = {
      spec: { ...spec, client: { ...spec.client } },
      counters: old?.counters ?? { id: spec.id, rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, lastRxMs: 0 },
    };
    this.tunnels.set(spec.id, entry);
    this.byEndpoint.set(endpointKey(spec), entry);
  }

  removeTunnel(id: TunnelId): void {
    const old = this.tunnels.get(id);
    if (!old) return;
    this.tunnels.delete(id);
    if (this.byEndpoint.get(endpointKey(old.spec)) === old) this.byEndpoint.delete(endpointKey(old.spec));
  }

  readCounters(): TunnelCounters[] {
    return [...this.tunnels.values()].map((e) => ({ ...e.counters }));
  }

  readDrops(): Record<DropReason, number> {
    return { ...this.drops };
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

/** v6v4 tunnels are keyed by address alone (port 0), v6udpv4 by address and port. */
function endpointKey(spec: TunnelSpec): string {
  return `${spec.client.address}:${spec.type === 'v6v4' ? 0 : spec.client.port}`;
}
