/** @module dataplane/native-addon: the C++ addon's raw surface (native/src/addon/) and its loader, shared by
 *  NativeDataPlane (native.ts) and client-tunnel.ts (tspc's end of a tunnel).
 *
 *  The addon exports its counter layout (native/src/engine/counters.h); loadAddon() compares it with the
 *  names below and refuses an addon built from other sources, so the two sides cannot drift apart. */

import { createRequire } from 'node:module';
import { BrokerError } from '../errors.js';
import type { ControlDatagram, TunnelType } from './types.js';

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

// ----- the addon's raw surface (native/src/addon/) --------------------------------------------------------------

type NativeTunnel =
  | {
      id: number;
      type: Exclude<TunnelType, 'v4v6'>;
      clientAddress: string;
      clientPort: number;
      serverIpv6: string;
      clientIpv6: string;
      delegatedAddress?: string;
      delegatedLength?: number;
    }
  /** Only on a data plane opened with `v4v6: true`; clientAddress is the client's IPv6 (outer) address. */
  | { id: number; type: 'v4v6'; clientAddress: string; serverIpv4: string; clientIpv4: string };

export interface DataPlaneHandle {
  start(): void;
  udpPort(): number;
  tunName(): string;
  addTunnel(tunnel: NativeTunnel): void;
  removeTunnel(id: number): boolean;
  tunnelCount(): number;
  /** Fills COUNTER_STRIDE values per tunnel while room lasts; returns the number of tunnels. */
  readCounters(out: Float64Array): number;
  /** The records of these ids (unknown ones left out; `out` has room for each); returns how many. */
  readCountersOf(ids: Float64Array, out: Float64Array): number;
  /** The records of the tunnels that counted since the last call, while room lasts; returns how many (all of
   *  `out`: call again, more may wait). */
  readChanged(out: Float64Array): number;
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

/** A raw ICMPv6 socket on one interface (native/src/io/icmp6.h); src/client/ra-socket.ts wraps it. */
export interface Icmp6Handle {
  /** Sends `data` (ICMPv6, checksum left to the kernel) from `source` ('' lets the kernel pick). Throws with the
   *  errno's code (EADDRNOTAVAIL, ENETDOWN...). */
  send(destination: string, source: string, data: Uint8Array): void;
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
  Icmp6Handle: new (
    options: { interface: string; acceptTypes: number[]; joinGroup: string },
    onMessage: (source: string, hopLimit: number, data: Buffer) => void,
  ) => Icmp6Handle;
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
    // A raw socket's source (serverIpv4, v4v6.serverIpv6) that is not on this host names itself in the message.
    EADDRNOTAVAIL: /^raw /.test(err.message)
      ? `${err.message}: the source address must be one of this host's`
      : `cannot listen on ${where}: the address is not on this host`,
    EBUSY: `TUN device ${options.tunName} is in use by another process`,
    ENOENT: err.syscall === 'open' ? `missing: ${err.message}` : err.message,
  };
  const text = (err.code !== undefined ? messages[err.code] : undefined) ?? err.message;
  return new BrokerError('DP_UNAVAILABLE', `native data plane: ${text}`, { cause: e });
}
