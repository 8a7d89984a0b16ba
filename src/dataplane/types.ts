/** @module dataplane/types: the packet path as the broker sees it (docs/style.md §4).
 *  Implemented by the native addon (NativeDataPlane, src/dataplane/native.ts) and by MemoryDataPlane
 *  (src/dataplane/memory.ts), a model of the same rules over a real UDP socket, with in-memory channels for the
 *  TUN side, protocol 41 and IPv4-in-IPv6; one contract suite (test/unit/dataplane/contract.ts) runs against both. */

import type { TunnelType } from '../tunnel-model.js';

export type TunnelId = number & { readonly __brand: 'TunnelId' };

/** Defined in tunnel-model.ts (every layer shares it); re-exported for the data plane's users. */
export type { TunnelType };

/** A transport endpoint: IPv4 for v6v4 and v6udpv4 tunnels (and TSP over IPv4), IPv6 for v4v6 tunnels (and TSP
 *  over IPv6). `port` is 0 for v6v4 and v4v6 tunnels (no port in protocol 41 or 4). */
export interface Endpoint {
  address: string;
  port: number;
}

export interface Ipv6Prefix {
  /** Canonical IPv6 text (any valid form; implementations normalise). Host bits must be zero. */
  address: string;
  length: number;
}

interface TunnelSpecBase {
  id: TunnelId;
  /** Where encapsulated packets go, and the only source decapsulated packets are accepted from. */
  client: Endpoint;
}

/** IPv6 inside IPv4: v6v4 (protocol 41) or v6udpv4 (UDP on the TSP flow). `client` is an IPv4 endpoint. */
export interface V6TunnelSpec extends TunnelSpecBase {
  type: 'v6v4' | 'v6udpv4';
  /** The server's inner address on this tunnel: ICMPv6 echo requests to it are answered in place. */
  serverIpv6: string;
  /** The client's inner address (routed to the tunnel as a /128). */
  clientIpv6: string;
  /** A delegated prefix routed to the tunnel (router mode), if any. */
  delegated?: Ipv6Prefix;
}

/** IPv4 inside IPv6 (next header 4): `client.address` is the client's IPv6 address, port 0. Packets to it are
 *  sent from the data plane's IPv6 source address (NativeDataPlaneOptions.v4v6.serverIpv6). */
export interface V4v6TunnelSpec extends TunnelSpecBase {
  type: 'v4v6';
  /** The server's inner IPv4 on this tunnel: ICMP echo requests to it are answered in place. */
  serverIpv4: string;
  /** The client's inner IPv4 (routed to the tunnel as a /32, and the only inner source it may use). */
  clientIpv4: string;
}

export type TunnelSpec = V6TunnelSpec | V4v6TunnelSpec;

export interface TunnelCounters {
  id: TunnelId;
  /** Packets and bytes (the inner packet: IPv6, or IPv4 for v4v6) received from the client and accepted. */
  rxPackets: number;
  rxBytes: number;
  /** Packets and bytes (the inner packet) sent to the client. */
  txPackets: number;
  txBytes: number;
  /** Unix ms of the last packet accepted from the client; 0 if none since the tunnel was added. */
  lastRxMs: number;
}

/** Why packets were dropped; counters only ever grow. */
export type DropReason =
  | 'unknown_endpoint' // data from an (IPv4, port), an IPv4 or (v4v6) an IPv6 address with no tunnel
  | 'spoofed_source' // inner source outside what the tunnel may use
  | 'link_local_source' // router solicitations and the like, dropped quietly
  | 'no_route' // packet from TUN matched no tunnel
  | 'malformed' // too short, wrong version, bad length
  | 'control_too_short' // a datagram that is not IPv6 (so control) under the 8-byte TSP header
  | 'control_queue_full'; // control datagrams arriving faster than the control plane takes them

export interface ControlDatagram {
  from: Endpoint;
  /** The local IPv4 address the datagram arrived on, when the implementation knows it (IP_PKTINFO). */
  localAddress?: string;
  /** Owned by the receiver: implementations hand over a fresh copy. */
  data: Buffer;
}

export interface DataPlane {
  /** 'memory' for the stand-in, 'native' for the addon, 'ebpf' for the TC programs in front of it (ebpf.ts).
   *  Shown in logs and /metrics. */
  readonly kind: 'memory' | 'native' | 'ebpf';
  /** Binds the UDP socket (and for native: TUN, raw sockets, host setup). Rejects with DP_UNAVAILABLE saying
   *  what is missing (root, /dev/net/tun, a busy port). */
  start(): Promise<void>;
  /** The UDP port actually bound (useful with port 0 in tests). Valid after start(). */
  readonly udpPort: number;
  /** Idempotent: an existing id gets the new endpoint and addresses without losing its counters. */
  addTunnel(spec: TunnelSpec): void;
  /** Removes the tunnel and its endpoint key, so a reused NAT port inherits nothing. Unknown ids are ignored. */
  removeTunnel(id: TunnelId): void;
  /** Counters of every tunnel, read in one call. */
  readCounters(): TunnelCounters[];
  /** Counters of these tunnels only (unknown ids are left out), read in one call: ending one tunnel among
   *  100,000 must not build 100,000 records. */
  readCountersOf(ids: readonly TunnelId[]): TunnelCounters[];
  /** Counters of the tunnels that counted a packet (either direction) since the previous readChanged(), each
   *  once, read in one call: a periodic reader learns what moved without a record per idle tunnel (100,000
   *  idle tunnels cost nothing). Each call takes the changes it returns. A tunnel that counts a packet is in the
   *  result of a later call; on occasion it is reported once more without having moved again (a packet counted
   *  while it was being read): callers treat a report as "may have moved". Tunnels added since are reported
   *  only once they count; removed ones are not reported, nor is a removed id added again until it counts
   *  under its new entry. readCounters and readCountersOf leave the changes alone. */
  readChanged(): TunnelCounters[];
  /** Drop counters by reason since start. */
  readDrops(): Record<DropReason, number>;
  /** Control datagrams arrive here in batches, from the event loop: every datagram on the UDP socket that is
   *  not an IPv6 packet (first nibble 0xF for TSP, but also anything else: the control plane decides) and is
   *  at least the 8-byte TSP header long. */
  onControl(handler: (batch: readonly ControlDatagram[]) => void): void;
  /** Sends one control reply from the TSP port, so the client's NAT binding is reused. */
  sendControl(to: Endpoint, datagram: Uint8Array): void;
  /** Stops the threads, closes sockets, undoes host setup. Idempotent. */
  close(): Promise<void>;
}

export const EMPTY_DROPS: Readonly<Record<DropReason, number>> = {
  unknown_endpoint: 0,
  spoofed_source: 0,
  link_local_source: 0,
  no_route: 0,
  malformed: 0,
  control_too_short: 0,
  control_queue_full: 0,
};
