/** @module dataplane/native: NativeDataPlane, the DataPlane over the C++ addon in native/ (docs/design.md,
 *  "The packet path"), and the addon's loader, shared with client-tunnel.ts (tspc's end of a tunnel).
 *
 *  start():  check /dev/net/tun --> addon opens TUN + UDP + raw-41 sockets --> setUpHost (link, addresses,
 *            routes, forwarding) --> addon starts its forwarding threads
 *  close():  threads stop, descriptors close (the TUN device and its routes vanish) --> the rest of the host
 *            setup undone (addresses, routes if still there, the forwarding sysctl back to its old value)
 *
 *  Packets never reach JavaScript: control datagrams arrive here in batches (one call per batch), counters are
 *  read in one call into a reused Float64Array (docs/style.md §6). Imports nothing from broker/, admin/, cli/.
 *
 *  The addon exports its counter layout (native/src/engine/counters.h); loadAddon() compares it with the
 *  names below and refuses an addon built from other sources, so the two sides cannot drift apart. */

import { createRequire } from 'node:module';
import { BrokerError } from '../errors.js';
import { clientPortFor } from '../tunnel-model.js';
import { checkHostPrerequisites, setUpHost, type HostSetup } from './host.js';
import {
  EMPTY_DROPS,
  type ControlDatagram,
  type DataPlane,
  type DropReason,
  type Endpoint,
  type TunnelCounters,
  type TunnelId,
  type TunnelSpec,
  type TunnelType,
} from './types.js';

/** Where node-gyp leaves the addon (the package's "install" script builds it). */
const ADDON_PATH = '../../native/build/Release/tspdp.node';

/** The addon's counters, in native/src/engine/counters.h `Counter` order. The first seven are the DropReasons. */
export const NATIVE_COUNTER_NAMES = [
  'unknown_endpoint',
  'spoofed_source',
  'link_local_source',
  'no_route',
  'malformed',
  'control_too_short',
  'control_queue_full',
  'control_delivered',
  'echo_replies',
  'hairpin_packets',
  'tun_write_packets',
  'tun_write_errors',
  'send_errors',
] as const;
export type NativeCounterName = (typeof NATIVE_COUNTER_NAMES)[number];
const DROP_REASONS = Object.keys(EMPTY_DROPS) as DropReason[];

/** The client tunnel's counters, in native/src/engine/counters.h `ClientCounter` order. sendErrors and
 *  controlQueueFull are the client's send_errors and control_queue_full. */
export const CLIENT_COUNTER_NAMES = [
  'txPackets',
  'txBytes',
  'rxPackets',
  'rxBytes',
  'dropped',
  'sendErrors',
  'controlQueueFull',
] as const;
export type ClientCounterName = (typeof CLIENT_COUNTER_NAMES)[number];

/** One tunnel's record in readCounters' output, in native/src/engine/counters.h `TunnelRecordField` order. */
export const TUNNEL_RECORD_FIELDS = ['id', 'rxPackets', 'rxBytes', 'txPackets', 'txBytes', 'lastRxMs'] as const;
const [ID, RX_PACKETS, RX_BYTES, TX_PACKETS, TX_BYTES, LAST_RX_MS] = [0, 1, 2, 3, 4, 5] as const;

// ----- the addon's raw surface (native/src/addon/) --------------------------------------------------------------

interface NativeTunnel {
  id: number;
  type: TunnelType;
  clientAddress: string;
  clientPort: number;
  serverIpv6: string;
  clientIpv6: string;
  delegatedAddress?: string;
  delegatedLength?: number;
}

interface DataPlaneHandle {
  start(): void;
  udpPort(): number;
  tunName(): string;
  addTunnel(tunnel: NativeTunnel): void;
  removeTunnel(id: number): boolean;
  tunnelCount(): number;
  /** Fills COUNTER_STRIDE values per tunnel while room lasts; returns the number of tunnels. */
  readCounters(out: Float64Array): number;
  readNativeCounters(out: Float64Array): number;
  sendControl(address: string, port: number, data: Uint8Array): boolean;
  close(): void;
}

export interface ClientTunnelHandle {
  start(): void;
  tunName(): string;
  localPort(): number;
  readCounters(out: Float64Array): number;
  sendControl(data: Uint8Array): boolean;
  close(): void;
}

export interface Addon {
  DataPlaneHandle: new (
    options: Record<string, unknown>,
    onControl: (batch: ControlDatagram[]) => void,
  ) => DataPlaneHandle;
  ClientTunnelHandle: new (
    options: Record<string, unknown>,
    onControl?: (batch: ControlDatagram[]) => void,
  ) => ClientTunnelHandle;
  /** The counter layout the addon was built with (checked by loadAddon against the names above). */
  COUNTER_NAMES: readonly string[];
  TUNNEL_RECORD_FIELDS: readonly string[];
  CLIENT_COUNTER_NAMES: readonly string[];
  COUNTER_STRIDE: number;
  NATIVE_COUNTER_COUNT: number;
  CLIENT_COUNTER_COUNT: number;
}

let addon: Addon | undefined;

/** Loads the addon once; DP_UNAVAILABLE if it was not built or its counter layout is not ours. */
export function loadAddon(): Addon {
  if (addon) return addon;
  let loaded: Addon;
  try {
    loaded = createRequire(import.meta.url)(ADDON_PATH) as Addon;
  } catch (cause) {
    throw new BrokerError(
      'DP_UNAVAILABLE',
      `the native data plane addon is not built (native/build/Release/tspdp.node): run npm install, which runs ` +
        `node-gyp (needs a C++17 compiler, make and python3)`,
      { cause },
    );
  }
  checkLayout(loaded);
  addon = loaded;
  return addon;
}

/** Refuses an addon whose counters are not the ones named here: reading them by position would put every
 *  figure under the wrong name. Exported for the test that feeds it a mismatched layout. */
export function checkLayout(lib: Pick<Addon, 'COUNTER_NAMES' | 'TUNNEL_RECORD_FIELDS' | 'CLIENT_COUNTER_NAMES'>): void {
  const expected: [string, readonly string[], readonly string[] | undefined][] = [
    ['counters (Counter)', NATIVE_COUNTER_NAMES, lib.COUNTER_NAMES],
    ['tunnel record (TunnelRecordField)', TUNNEL_RECORD_FIELDS, lib.TUNNEL_RECORD_FIELDS],
    ['client counters (ClientCounter)', CLIENT_COUNTER_NAMES, lib.CLIENT_COUNTER_NAMES],
  ];
  for (const [what, ours, theirs] of expected) {
    if (theirs !== undefined && theirs.length === ours.length && theirs.every((name, i) => name === ours[i])) continue;
    throw new BrokerError(
      'DP_UNAVAILABLE',
      `the native addon's ${what} layout does not match src/dataplane/native.ts: addon has ` +
        `[${theirs?.join(', ') ?? 'none'}], TypeScript expects [${ours.join(', ')}]. Rebuild the addon from this ` +
        `checkout (npm install, or node scripts/build-native.mjs), or update both sides together ` +
        `(native/src/engine/counters.h)`,
    );
  }
}

/** Turns the addon's errno errors into DP_UNAVAILABLE with a message that says what is missing. */
export function unavailable(
  e: unknown,
  options: { tunName: string; listenAddress: string; port: number },
): BrokerError {
  const err = e as NodeJS.ErrnoException;
  const where = `${options.listenAddress}:${options.port}`;
  const messages: Record<string, string> = {
    EPERM: `not permitted to create TUN device ${options.tunName} or raw sockets: run as root (or with CAP_NET_ADMIN and CAP_NET_RAW)`,
    EACCES: `not permitted to open ${where} or the TUN device: run as root (or with CAP_NET_ADMIN and CAP_NET_RAW)`,
    EADDRINUSE: `UDP port ${where} is busy: another process (another broker?) holds it`,
    EADDRNOTAVAIL: `cannot listen on ${where}: the address is not on this host`,
    EBUSY: `TUN device ${options.tunName} is in use by another process`,
    ENOENT: err.syscall === 'open' ? `missing: ${err.message}` : err.message,
  };
  const text = (err.code !== undefined ? messages[err.code] : undefined) ?? err.message;
  return new BrokerError('DP_UNAVAILABLE', `native data plane: ${text}`, { cause: e });
}

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
  /** Pool prefixes routed to the TUN ('2001:db8:f00::/48'). */
  routes: readonly string[];
  /** Server addresses put on the TUN ('2001:db8:f00::1/64'), so the host answers on them. */
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
    const stride = TUNNEL_RECORD_FIELDS.length;
    if (this.counters.length < stride * 64) this.counters = new Float64Array(stride * 64);
  }

  addTunnel(spec: TunnelSpec): void {
    const handle = this.live();
    try {
      handle.addTunnel({
        id: spec.id,
        type: spec.type,
        clientAddress: spec.client.address,
        clientPort: clientPortFor(spec.type, spec.client.port),
        serverIpv6: spec.serverIpv6,
        clientIpv6: spec.clientIpv6,
        ...(spec.delegated ? { delegatedAddress: spec.delegated.address, delegatedLength: spec.delegated.length } : {}),
      });
    } catch (e) {
      throw new BrokerError('DP_FAILED', `cannot add tunnel ${spec.id}: ${(e as Error).message}`, { cause: e });
    }
  }

  removeTunnel(id: TunnelId): void {
    this.live().removeTunnel(id);
  }

  readCounters(): TunnelCounters[] {
    return this.countersWhere(undefined);
  }

  /** The addon copies every record in one call (no per-id entry point); only the wanted ones become objects. */
  readCountersOf(ids: readonly TunnelId[]): TunnelCounters[] {
    return this.countersWhere(new Set(ids));
  }

  private countersWhere(wanted: ReadonlySet<TunnelId> | undefined): TunnelCounters[] {
    const handle = this.live();
    const stride = TUNNEL_RECORD_FIELDS.length;
    let n = handle.readCounters(this.counters);
    if (n * stride > this.counters.length) {
      // Grown by half again over the need, so a table that keeps growing is not re-read every time.
      this.counters = new Float64Array(Math.ceil(n * 1.5) * stride);
      n = handle.readCounters(this.counters);
    }
    const out: TunnelCounters[] = [];
    const c = this.counters;
    for (let i = 0, at = 0; i < n; i++, at += stride) {
      if (wanted && !wanted.has(c[at + ID] as TunnelId)) continue;
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
