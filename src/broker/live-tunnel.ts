/** @module broker/live-tunnel: how the registry holds one live tunnel (broker/tunnels.ts). A broker holds
 *  100,000 of them, so the form is compact: one object of a fixed shape per tunnel, with the row's fields the
 *  registry and its callers need to rebuild the TunnelRecord on demand (`record()`), nothing else. Strings
 *  shared by many tunnels (type, transport, state, the server's IPv4, an account's username) are one string,
 *  not a copy per row; counters start from one shared zero; endpoint keys are numbers. The strings unique to a
 *  tunnel (its addresses, its lease) are the ones the data plane's spec points at too, and they are copies of
 *  the row's (`own`): see there. */

import { ipv4Number } from '../address.js';
import type { TunnelRecord, TunnelTransport } from '../store/types.js';
import { clientPortFor, endpointAddress, type TunnelType } from '../tunnel-model.js';
import type { HeapItem } from './deadlines.js';
import type { TunnelCounters, TunnelId, TunnelSpec, V6TunnelSpec } from '../dataplane/types.js';
import type { CounterUpdate } from '../store/types.js';
import type { TrafficTotals } from './tunnels.js';

export const ZERO: Readonly<TrafficTotals> = Object.freeze({ rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 });

/** A key for the endpoint index: "ipv4:port" (tunnel-model.ts endpointKey) as one number when the address is
 *  a dotted quad (always, for a peer of an IPv4 socket), else the text itself. */
export type EndpointKey = number | string;

export function endpointKeyOf(address: string, port: number): EndpointKey {
  const a = ipv4Number(address);
  return a === undefined ? `${address}:${port}` : a * 65536 + port;
}

/** A tunnel's key in the endpoint index: its client endpoint (tunnel-model.ts endpointAddress) and port. */
export function tunnelEndpointKey(
  t: Pick<TunnelRecord, 'type' | 'clientIpv4' | 'clientIpv6' | 'clientPort'>,
): EndpointKey {
  return endpointKeyOf(endpointAddress(t), clientPortFor(t.type, t.clientPort));
}

/** An endpointKey string ("ipv4:port") as the index keys it. */
export function parseEndpointKey(key: string): EndpointKey {
  const colon = key.lastIndexOf(':');
  const port = Number(key.slice(colon + 1));
  return colon > 0 && Number.isInteger(port) ? endpointKeyOf(key.slice(0, colon), port) : key;
}

/** At most this many distinct server IPv4 addresses share one string each: they are the broker's own
 *  addresses, a handful; a store with more keeps the rest as they come. */
const MAX_SHARED_SERVER_ADDRESSES = 256;
const serverAddresses = new Map<string, string>();

function shared(address: string): string {
  const known = serverAddresses.get(address);
  if (known !== undefined) return known;
  if (serverAddresses.size < MAX_SHARED_SERVER_ADDRESSES) serverAddresses.set(address, address);
  return address;
}

/** `s` in a string of its own. A restore reads every live row at once and each row is garbage as soon as its
 *  tunnel is live; a string still shared with a row would pin the memory page the row sits on (V8 frees whole
 *  pages), and 100,000 rows' pages would stay resident for four small strings each. Copied, the rows' pages
 *  are wholly garbage and go back to the system at the next full collection (cli/start-broker.ts). */
function own(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

export class LiveTunnel implements HeapItem {
  heapIndex = -1;
  /** Idle time counts from here: the last packet the data plane received from the client (as the registry
   *  last read it), or when the tunnel became live in this process if none came since. */
  lastRxMs: number;
  readonly id: number;
  readonly accountId: number | null;
  readonly username: string | null;
  readonly leaseId: string | null;
  readonly type: TunnelType;
  readonly transport: TunnelTransport;
  /** Only a static tunnel's moves (TunnelRegistry.moveEndpoint), which re-index it. */
  clientIpv4: string;
  readonly clientPort: number;
  readonly serverIpv4: string;
  readonly serverIpv6: string;
  readonly clientIpv6: string;
  readonly prefix: string | null;
  readonly prefixLen: number | null;
  readonly keepaliveInterval: number;
  readonly lifetimeS: number;
  readonly createdAt: number;
  readonly establishedAt: number | null;
  readonly lastSeenAt: number | null;
  /** Counters persisted before the current data-plane entry existed: what its counters add to. */
  readonly base: Readonly<TrafficTotals>;

  /** `username`: an equal string already held (another tunnel of the account) to share, if there is one. */
  constructor(r: TunnelRecord, activeSinceMs: number, username: string | null | undefined) {
    this.lastRxMs = activeSinceMs;
    this.id = r.id;
    this.accountId = r.accountId;
    this.username = username !== undefined ? username : r.username === null ? null : own(r.username);
    this.leaseId = r.leaseId === null ? null : own(r.leaseId);
    this.type = r.type === 'v6v4' ? 'v6v4' : r.type === 'v4v6' ? 'v4v6' : 'v6udpv4';
    this.transport = r.transport === 'tcp' ? 'tcp' : r.transport === 'static' ? 'static' : 'udp';
    this.clientIpv4 = own(r.clientIpv4);
    this.clientPort = r.clientPort;
    // the broker's outer address is one among a few, the inner ones are the tunnel's own (v4v6: the reverse)
    const v4v6 = this.type === 'v4v6';
    this.serverIpv4 = v4v6 ? own(r.serverIpv4) : shared(r.serverIpv4);
    this.serverIpv6 = v4v6 ? shared(r.serverIpv6) : own(r.serverIpv6);
    this.clientIpv6 = own(r.clientIpv6);
    this.prefix = r.prefix === null ? null : own(r.prefix);
    this.prefixLen = r.prefixLen;
    this.keepaliveInterval = r.keepaliveInterval;
    this.lifetimeS = r.lifetimeS;
    this.createdAt = r.createdAt;
    this.establishedAt = r.establishedAt;
    this.lastSeenAt = r.lastSeenAt;
    this.base =
      r.rxPackets || r.rxBytes || r.txPackets || r.txBytes
        ? { rxPackets: r.rxPackets, rxBytes: r.rxBytes, txPackets: r.txPackets, txBytes: r.txBytes }
        : ZERO;
  }

  /** A static 6in4 tunnel: it never ends by silence or lifetime (broker/static-tunnels.ts). */
  get isStatic(): boolean {
    return this.transport === 'static';
  }

  /** Its key in the endpoint index (the data plane tells tunnels apart by it alone). */
  get endpoint(): EndpointKey {
    return tunnelEndpointKey(this);
  }

  /** The row as it was when the tunnel became live (its counters: the stored ones, `base`), in the store's
   *  field order. */
  record(): TunnelRecord {
    return {
      id: this.id,
      accountId: this.accountId,
      username: this.username,
      leaseId: this.leaseId,
      type: this.type,
      transport: this.transport,
      clientIpv4: this.clientIpv4,
      clientPort: this.clientPort,
      serverIpv4: this.serverIpv4,
      serverIpv6: this.serverIpv6,
      clientIpv6: this.clientIpv6,
      prefix: this.prefix,
      prefixLen: this.prefixLen,
      keepaliveInterval: this.keepaliveInterval,
      lifetimeS: this.lifetimeS,
      state: 'established',
      createdAt: this.createdAt,
      establishedAt: this.establishedAt,
      endedAt: null,
      endReason: null,
      lastSeenAt: this.lastSeenAt,
      ...this.base,
    };
  }
}

/** A tunnel's totals: what was stored before this data-plane entry plus what the data plane counted. */
export function totalsOf(t: LiveTunnel, c: TunnelCounters | undefined): CounterUpdate {
  return {
    id: t.id,
    rxPackets: t.base.rxPackets + (c?.rxPackets ?? 0),
    rxBytes: t.base.rxBytes + (c?.rxBytes ?? 0),
    txPackets: t.base.txPackets + (c?.txPackets ?? 0),
    txBytes: t.base.txBytes + (c?.txBytes ?? 0),
    lastSeenAt: (c?.lastRxMs || t.lastSeenAt) ?? null,
  };
}

/** Its record with its current totals. */
export function withTotals(t: LiveTunnel, c: TunnelCounters | undefined): TunnelRecord {
  const { id: _id, ...totals } = totalsOf(t, c);
  return { ...t.record(), ...totals };
}

export function add(into: TrafficTotals, c: TrafficTotals): void {
  into.rxPackets += c.rxPackets;
  into.rxBytes += c.rxBytes;
  into.txPackets += c.txPackets;
  into.txBytes += c.txBytes;
}

/** The data plane's view of a tunnel row. A v4v6 row's IPv6 addresses are its endpoints and its IPv4 ones the
 *  addresses inside (tunnel-model.ts). */
export function specOf(
  t: Pick<
    TunnelRecord,
    'id' | 'type' | 'clientIpv4' | 'clientPort' | 'serverIpv4' | 'serverIpv6' | 'clientIpv6' | 'prefix' | 'prefixLen'
  >,
): TunnelSpec {
  const id = t.id as TunnelId;
  if (t.type === 'v4v6')
    return {
      id,
      type: 'v4v6',
      client: { address: t.clientIpv6, port: 0 },
      serverIpv4: t.serverIpv4,
      clientIpv4: t.clientIpv4,
    };
  const spec: V6TunnelSpec = {
    id,
    type: t.type,
    client: { address: t.clientIpv4, port: clientPortFor(t.type, t.clientPort) },
    serverIpv6: t.serverIpv6,
    clientIpv6: t.clientIpv6,
  };
  if (t.prefix && t.prefixLen !== null) spec.delegated = { address: t.prefix, length: t.prefixLen };
  return spec;
}
