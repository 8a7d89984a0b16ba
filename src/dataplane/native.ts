/** @module dataplane/native: NativeDataPlane, the DataPlane over the C++ addon in native/ (docs/design.md,
 *  "The packet path"); the addon's raw surface and loader are native-addon.ts.
 *
 *  start():  check /dev/net/tun --> addon opens TUN + UDP + raw-41 sockets (+ the raw IPv6 next-header-4 socket
 *            with `v4v6`) --> setUpHost (link, addresses, routes, forwarding) --> addon starts its threads
 *  close():  threads stop, descriptors close (the TUN device and its routes vanish) --> the rest of the host
 *            setup undone (addresses, routes if still there, the forwarding sysctl back to its old value)
 *
 *  Packets never reach JavaScript: control datagrams arrive here in batches (one call per batch), counters are
 *  read in one call into a reused Float64Array (docs/style.md §6). Imports nothing from broker/, admin/, cli/. */

import { BrokerError } from '../errors.js';
import { clientPortFor } from '../tunnel-model.js';
import { checkHostPrerequisites, setUpHost, type HostSetup } from './host.js';
import {
  NATIVE_COUNTER_NAMES,
  TUNNEL_RECORD_FIELDS,
  loadAddon,
  unavailable,
  type DataPlaneHandle,
  type NativeCounterName,
} from './native-addon.js';
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

const DROP_REASONS = Object.keys(EMPTY_DROPS) as DropReason[];
const [ID, RX_PACKETS, RX_BYTES, TX_PACKETS, TX_BYTES, LAST_RX_MS] = [0, 1, 2, 3, 4, 5] as const;
const STRIDE = TUNNEL_RECORD_FIELDS.length;

// ----- NativeDataPlane -----------------------------------------------------------------------------------------

export interface NativeDataPlaneOptions {
  /** TUN device name (default 'tsp0'); a pattern like 'tsp%d' lets the kernel pick. */
  tunName?: string;
  /** TUN MTU (default 1280, the tunnel MTU clients use: docs/protocol.md §2.8). */
  mtu?: number;
  /** IPv4 address the TSP port is bound on ('0.0.0.0': all). */
  listenAddress: string;
  /** The TSP port (3653); 0 picks a free one (tests). */
  port: number;
  /** Source address of protocol-41 packets (the offer's server IPv4); the kernel's choice if absent. */
  serverIpv4?: string;
  /** Carry v4v6 tunnels (IPv4 in IPv6, next header 4): present, the addon opens a raw IPv6 socket for next
   *  header 4 (docs/architecture.md). `serverIpv6`: its bound address, the source of every packet to a v4v6
   *  client and the only destination it receives on (the offer's server IPv6); absent, the kernel picks the
   *  source and every local address receives. */
  v4v6?: { serverIpv6?: string };
  /** Pool prefixes routed to the TUN: IPv6 ('2001:db8:f00::/48') and, for v4v6 tunnels, the IPv4 pool
   *  ('192.0.2.0/24'; IPv4 forwarding is then switched on, see host.ts). */
  routes: readonly string[];
  /** Server addresses put on the TUN ('2001:db8:f00::1/64', or IPv4 '192.0.2.1/32'), so the host answers on them. */
  tunnelAddresses?: readonly string[];
  /** Open everything inside this named network namespace (tests run several brokers on one host). */
  netns?: string;
  /** Pin the forwarding threads to this CPU. */
  cpu?: number;
  /** Busy-poll this many microseconds after a receive finds nothing, before sleeping (default 0). Spares the
   *  sending side a cross-CPU wakeup per batch under load; costs CPU when traffic is sparse, so only for a
   *  core given to the data plane. */
  spinMicros?: number;
  /** How decapsulated batches reach the TUN: one io_uring submission per batch (default; falls back by itself
   *  where io_uring is unavailable) or one write() per packet. */
  tunWrites?: 'io_uring' | 'write';
  /** Control datagrams queued for JavaScript at most; beyond, dropped and counted (control_queue_full). */
  controlQueueCap?: number;
}

export class NativeDataPlane implements DataPlane {
  readonly kind = 'native' as const;
  private handle: DataPlaneHandle | undefined;
  private host: HostSetup | undefined;
  private handler: (batch: readonly ControlDatagram[]) => void = () => {};
  private counters = new Float64Array(0);
  private readonly nativeCounters: Float64Array;
  private boundPort = 0;
  private deviceName = '';
  private closing: Promise<void> | undefined;

  constructor(private readonly options: NativeDataPlaneOptions) {
    this.nativeCounters = new Float64Array(NATIVE_COUNTER_NAMES.length);
  }

  get udpPort(): number {
    return this.boundPort;
  }

  /** The TUN device's actual name. Valid after start(). */
  get tunName(): string {
    return this.deviceName;
  }

  async start(): Promise<void> {
    if (this.handle) throw new BrokerError('DP_FAILED', 'native data plane already started');
    await checkHostPrerequisites();
    const lib = loadAddon();
    const tunName = this.options.tunName ?? 'tsp0';
    let handle: DataPlaneHandle;
    try {
      handle = new lib.DataPlaneHandle(
        {
          netns: this.options.netns,
          tunName,
          listenAddress: this.options.listenAddress,
          port: this.options.port,
          serverIpv4: this.options.serverIpv4,
          v4v6: this.options.v4v6 !== undefined,
          serverIpv6: this.options.v4v6?.serverIpv6,
          cpu: this.options.cpu,
          spinMicros: this.options.spinMicros,
          tunUring: this.options.tunWrites !== 'write',
          controlQueueCap: this.options.controlQueueCap,
        },
        (batch) => this.handler(batch),
      );
    } catch (e) {
      throw unavailable(e, { tunName, listenAddress: this.options.listenAddress, port: this.options.port });
    }
    try {
      this.deviceName = handle.tunName();
      this.host = await setUpHost({
        netns: this.options.netns,
        tunName: this.deviceName,
        mtu: this.options.mtu ?? 1280,
        routes: this.options.routes,
        addresses: this.options.tunnelAddresses ?? [],
      });
      handle.start();
    } catch (e) {
      handle.close();
      throw e;
    }
    this.boundPort = handle.udpPort();
    this.handle = handle;
    if (this.counters.length < STRIDE * 64) this.counters = new Float64Array(STRIDE * 64);
  }

  addTunnel(spec: TunnelSpec): void {
    const handle = this.live();
    try {
      handle.addTunnel(
        spec.type === 'v4v6'
          ? {
              id: spec.id,
              type: spec.type,
              clientAddress: spec.client.address,
              serverIpv4: spec.serverIpv4,
              clientIpv4: spec.clientIpv4,
            }
          : {
              id: spec.id,
              type: spec.type,
              clientAddress: spec.client.address,
              clientPort: clientPortFor(spec.type, spec.client.port),
              serverIpv6: spec.serverIpv6,
              clientIpv6: spec.clientIpv6,
              ...(spec.delegated
                ? { delegatedAddress: spec.delegated.address, delegatedLength: spec.delegated.length }
                : {}),
            },
      );
    } catch (e) {
      throw new BrokerError('DP_FAILED', `cannot add tunnel ${spec.id}: ${(e as Error).message}`, { cause: e });
    }
  }

  removeTunnel(id: TunnelId): void {
    this.live().removeTunnel(id);
  }

  readCounters(): TunnelCounters[] {
    const handle = this.live();
    let n = handle.readCounters(this.counters);
    if (n * STRIDE > this.counters.length) {
      this.grow(n);
      n = handle.readCounters(this.counters);
    }
    return this.records(n, []);
  }

  /** One call into the addon, which looks each id up: ending one tunnel among 100,000 copies one record. */
  readCountersOf(ids: readonly TunnelId[]): TunnelCounters[] {
    if (ids.length === 0) return [];
    if (ids.length * STRIDE > this.counters.length) this.grow(ids.length);
    return this.records(this.live().readCountersOf(Float64Array.from(ids), this.counters), []);
  }

  /** The addon keeps a log of the tunnels that counted (native/src/engine/tables.h): an idle table costs one
   *  call that returns 0. */
  readChanged(): TunnelCounters[] {
    const handle = this.live();
    const out: TunnelCounters[] = [];
    for (;;) {
      const n = handle.readChanged(this.counters);
      this.records(n, out);
      if (n * STRIDE < this.counters.length) return out;
      this.grow(n * 2); // it filled the array: more are waiting
    }
  }

  /** Grown by half again over the need, so a table that keeps growing is not re-read every time. */
  private grow(records: number): void {
    this.counters = new Float64Array(Math.ceil(records * 1.5) * STRIDE);
  }

  /** The first `n` records in the counters array, appended to `out`. */
  private records(n: number, out: TunnelCounters[]): TunnelCounters[] {
    const c = this.counters;
    for (let i = 0, at = 0; i < n; i++, at += STRIDE) {
      out.push({
        id: c[at + ID] as TunnelId,
        rxPackets: c[at + RX_PACKETS]!,
        rxBytes: c[at + RX_BYTES]!,
        txPackets: c[at + TX_PACKETS]!,
        txBytes: c[at + TX_BYTES]!,
        lastRxMs: c[at + LAST_RX_MS]!,
      });
    }
    return out;
  }

  readDrops(): Record<DropReason, number> {
    const all = this.readNativeCounters();
    const drops = {} as Record<DropReason, number>;
    for (const name of DROP_REASONS) drops[name] = all[name];
    return drops;
  }

  /** Every addon counter: the drop reasons plus diagnostics (echo_replies, hairpin_packets, ...). */
  readNativeCounters(): Record<NativeCounterName, number> {
    this.live().readNativeCounters(this.nativeCounters);
    const out = {} as Record<NativeCounterName, number>;
    NATIVE_COUNTER_NAMES.forEach((name, i) => (out[name] = this.nativeCounters[i]!));
    return out;
  }

  /** Number of tunnels in the addon's table. */
  tunnelCount(): number {
    return this.live().tunnelCount();
  }

  onControl(handler: (batch: readonly ControlDatagram[]) => void): void {
    this.handler = handler;
  }

  sendControl(to: Endpoint, datagram: Uint8Array): void {
    // A reply the kernel refuses (no route, full buffer) is counted as send_errors: the client retransmits.
    try {
      this.live().sendControl(to.address, to.port, datagram);
    } catch (e) {
      throw new BrokerError('DP_FAILED', `cannot send control datagram to ${to.address}:${to.port}`, { cause: e });
    }
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    // Threads stop first, so no packet is written into a half-torn-down host; closing the TUN takes its routes.
    handle?.close();
    await this.host?.undo();
    this.host = undefined;
  }

  private live(): DataPlaneHandle {
    if (!this.handle) throw new BrokerError('DP_FAILED', 'native data plane is not running');
    return this.handle;
  }
}
