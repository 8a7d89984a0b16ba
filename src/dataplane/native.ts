/** @module dataplane/native: NativeDataPlane, the DataPlane over the C++ addon in native/ (docs/design.md,
 *  "The packet path"), and the addon's client end, startClientTunnel, for our tspc and the e2e tests.
 *
 *  start():  check /dev/net/tun --> addon opens TUN + UDP + raw-41 sockets --> setUpHost (link, addresses,
 *            routes, forwarding) --> addon starts its forwarding threads
 *  close():  threads stop, descriptors close (the TUN device and its routes vanish) --> the rest of the host
 *            setup undone (addresses, routes if still there, the forwarding sysctl back to its old value)
 *
 *  Packets never reach JavaScript: control datagrams arrive here in batches (one call per batch), counters are
 *  read in one call into a reused Float64Array (docs/style.md §6). Imports nothing from broker/, admin/, cli/. */

import { createRequire } from 'node:module';
import { BrokerError } from '../errors.js';
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

/** The addon's counters, in native/src/common.h `Counter` order. The first seven are the DropReasons. */
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

/** The client tunnel's counters, in native/src/client.h `ClientCounter` order. */
export const CLIENT_COUNTER_NAMES = ['txPackets', 'txBytes', 'rxPackets', 'rxBytes', 'dropped'] as const;
export type ClientCounterName = (typeof CLIENT_COUNTER_NAMES)[number];

// ----- the addon's raw surface (native/src/addon.cc) ------------------------------------------------------------

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

interface ClientTunnelHandle {
  start(): void;
  tunName(): string;
  localPort(): number;
  readCounters(out: Float64Array): number;
  sendControl(data: Uint8Array): boolean;
  close(): void;
}

export interface GeneratorOptions {
  netns?: string;
  /** 4: whole IPv4 packets; 6: whole IPv6 packets (headers included, sent on an IPPROTO_RAW socket). */
  family: 4 | 6;
  packets: readonly Uint8Array[];
  seconds: number;
  cpu?: number;
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
  /** Sends the packets round robin for `seconds` from a pinned native thread (bench/dataplane.ts). */
  runGenerator(options: GeneratorOptions): Promise<{ sent: number; errors: number; seconds: number }>;
  /** Moves the calling thread into a named network namespace for good (tests that run inside one). */
  enterNetns(name: string): void;
  COUNTER_STRIDE: number;
  NATIVE_COUNTER_COUNT: number;
  CLIENT_COUNTER_COUNT: number;
}

let addon: Addon | undefined;

/** Loads the addon once; DP_UNAVAILABLE if it was not built. */
export function loadAddon(): Addon {
  if (addon) return addon;
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
    return addon;
  } catch (cause) {
    throw new BrokerError(
      'DP_UNAVAILABLE',
      `the native data plane addon is not built (native/build/Release/tspdp.node): run npm install, which runs ` +
        `node-gyp (needs a C++17 compiler, make and python3)`,
      { cause },
    );
  }
}

/** Turns the addon's errno errors into DP_UNAVAILABLE with a message that says what is missing. */
function unavailable(e: unknown, options: { tunName: string; listenAddress: string; port: number }): BrokerError {
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
    if (this.counters.length < lib.COUNTER_STRIDE * 64) this.counters = new Float64Array(lib.COUNTER_STRIDE * 64);
  }

  addTunnel(spec: TunnelSpec): void {
    const handle = this.live();
    try {
      handle.addTunnel({
        id: spec.id,
        type: spec.type,
        clientAddress: spec.client.address,
        clientPort: spec.type === 'v6v4' ? 0 : spec.client.port,
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
    const handle = this.live();
    const stride = loadAddon().COUNTER_STRIDE;
    let n = handle.readCounters(this.counters);
    if (n * stride > this.counters.length) {
      // Grown by half again over the need, so a table that keeps growing is not re-read every time.
      this.counters = new Float64Array(Math.ceil(n * 1.5) * stride);
      n = handle.readCounters(this.counters);
    }
    const out: TunnelCounters[] = new Array<TunnelCounters>(n);
    const c = this.counters;
    for (let i = 0, at = 0; i < n; i++, at += stride) {
      out[i] = {
        id: c[at] as TunnelId,
        rxPackets: c[at + 1]!,
        rxBytes: c[at + 2]!,
        txPackets: c[at + 3]!,
        txBytes: c[at + 4]!,
        lastRxMs: c[at + 5]!,
      };
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

// ----- the client end ------------------------------------------------------------------------------------------

export interface ClientTunnelOptions {
  /** Create the TUN and socket inside this named network namespace. */
  netns?: string;
  tunName: string;
  type: TunnelType;
  /** The broker: IPv4 address, and the TSP port for v6udpv4. */
  server: Endpoint;
  /** Local IPv4 to bind (default: any). */
  localAddress?: string;
  /** Local UDP port for v6udpv4: the one the TSP session used, so the NAT binding is reused. 0: ephemeral. */
  localPort?: number;
  cpu?: number;
}

export interface ClientTunnel {
  /** The TUN device's actual name. */
  readonly tunName: string;
  /** The UDP port the tunnel sends from (v6udpv4); 0 for v6v4. */
  readonly localPort: number;
  readCounters(): Record<ClientCounterName, number>;
  /** A control datagram to the broker over the tunnel's UDP flow (v6udpv4). False if refused. */
  sendControl(datagram: Uint8Array): boolean;
  /** Stops the threads and closes the TUN (the device disappears) and the socket. Idempotent. */
  close(): void;
}

/** Opens the client end of a tunnel: a TUN device moving IPv6 packets to and from the broker over UDP
 *  (v6udpv4) or protocol 41 (v6v4), in the addon's own threads. The caller configures the TUN's addresses and
 *  routes (`ip`), then traffic flows. Control datagrams (first nibble 0xF) from the broker go to `onControl`
 *  in batches. Rejects with DP_UNAVAILABLE saying what is missing. */
export function startClientTunnel(
  options: ClientTunnelOptions,
  onControl?: (batch: readonly ControlDatagram[]) => void,
): ClientTunnel {
  const lib = loadAddon();
  let handle: ClientTunnelHandle;
  try {
    handle = new lib.ClientTunnelHandle(
      {
        netns: options.netns,
        tunName: options.tunName,
        type: options.type,
        serverAddress: options.server.address,
        serverPort: options.server.port,
        localAddress: options.localAddress,
        localPort: options.localPort,
        cpu: options.cpu,
      },
      onControl,
    );
    handle.start();
  } catch (e) {
    throw unavailable(e, {
      tunName: options.tunName,
      listenAddress: options.localAddress ?? '0.0.0.0',
      port: options.localPort ?? 0,
    });
  }
  const counters = new Float64Array(CLIENT_COUNTER_NAMES.length);
  let closed = false;
  const tunName = handle.tunName();
  const localPort = handle.localPort();
  return {
    tunName,
    localPort,
    readCounters() {
      if (!closed) handle.readCounters(counters);
      const out = {} as Record<ClientCounterName, number>;
      CLIENT_COUNTER_NAMES.forEach((name, i) => (out[name] = counters[i]!));
      return out;
    },
    sendControl: (datagram) => !closed && handle.sendControl(datagram),
    close() {
      if (closed) return;
      closed = true;
      handle.readCounters(counters); // keep the final figures readable after close
      handle.close();
    },
  };
}
