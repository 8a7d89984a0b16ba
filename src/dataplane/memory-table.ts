/** @module dataplane/memory-table: MemoryDataPlane's tunnel table, as native/src/engine/tables.h keeps it:
 *  entries by id, by client endpoint and by prefix (longest match), v4v6 entries by outer IPv6 and inner IPv4
 *  /32, their counters, and which of them counted a
 *  packet since the last readChanged (the change log). Last writer of a key wins; a replace keeps the counters.
 *
 *  Compact, because `serve` on the model holds every live tunnel here (100,000 in bench:scale): one object per
 *  tunnel with its counters inline, endpoint keys as numbers rather than "address:port" strings, and the spec's
 *  strings shared with the caller, never copied. */

import type {
  Ipv6Prefix,
  TunnelCounters,
  TunnelId,
  TunnelSpec,
  TunnelType,
  V4v6TunnelSpec,
  V6TunnelSpec,
} from './types.js';
import { ipv4Number } from '../address.js';
import { mask, parseSpec, type ParsedAddresses } from './memory-packet.js';
import { ipv6Key, parseV4v6Spec, type ParsedV4v6 } from './memory-v4v6.js';

/** A v4v6 entry's own addresses: parsed, and as given (for spec()). */
export type V4v6Addresses = ParsedV4v6 & Pick<V4v6TunnelSpec, 'serverIpv4' | 'clientIpv4'>;

/** One tunnel: its spec (as given), its addresses parsed, its counters. */
export class Entry implements ParsedAddresses {
  rxPackets = 0;
  rxBytes = 0;
  txPackets = 0;
  txBytes = 0;
  lastRxMs = 0;

  constructor(
    readonly id: TunnelId,
    readonly type: TunnelType,
    readonly address: string,
    readonly port: number,
    /** The endpoint map key: the IPv4 address as a number, times 65536 plus the port for v6udpv4. */
    readonly endpoint: number,
    readonly serverIpv6: string,
    readonly clientIpv6: string,
    readonly delegatedText: Ipv6Prefix | undefined,
    readonly serverIp6: bigint,
    readonly clientIp6: bigint,
    readonly delegated: ParsedAddresses['delegated'],
    /** v4v6 only (its IPv6 fields are then empty and match nothing). */
    readonly v4?: V4v6Addresses,
  ) {}

  counters(): TunnelCounters {
    return {
      id: this.id,
      rxPackets: this.rxPackets,
      rxBytes: this.rxBytes,
      txPackets: this.txPackets,
      txBytes: this.txBytes,
      lastRxMs: this.lastRxMs,
    };
  }

  spec(): TunnelSpec {
    if (this.v4) {
      const { serverIpv4, clientIpv4 } = this.v4;
      return { id: this.id, type: 'v4v6', client: { address: this.address, port: 0 }, serverIpv4, clientIpv4 };
    }
    const spec: V6TunnelSpec = {
      id: this.id,
      type: this.type as V6TunnelSpec['type'],
      client: { address: this.address, port: this.port },
      serverIpv6: this.serverIpv6,
      clientIpv6: this.clientIpv6,
    };
    if (this.delegatedText) spec.delegated = { ...this.delegatedText };
    return spec;
  }
}

export class MemoryTunnelTable {
  private readonly byId = new Map<TunnelId, Entry>();
  private readonly byUdp = new Map<number, Entry>();
  private readonly byProto41 = new Map<number, Entry>();
  /** v4v6: the client's outer IPv6 (ipv6Key text), and its inner IPv4 /32 as a number. */
  private readonly byIpip = new Map<string, Entry>();
  private readonly byIp4 = new Map<number, Entry>();
  /** Prefix length -> masked prefix -> tunnel; `lengths` lists the lengths in use, longest first. */
  // Keyed by the address in hex, not the bigint: V8 hashes a BigInt by its low 64 bits, so /128s that differ
  // only above them (every ::2 of a /64 per tunnel) all collide and 100,000 of them took 40 s to index.
  private readonly byPrefix = new Map<number, Map<string, Entry>>();
  private lengths: number[] = [];
  /** Ids that counted a packet since the last takeChanged (native: the table's change log). */
  private readonly changed = new Set<TunnelId>();

  get size(): number {
    return this.byId.size;
  }

  /** Adds or replaces (the same id keeps its counters, and its place in the change log). Throws a plain Error
   *  naming what is wrong with the spec (native addon.cc AddTunnel's checks). */
  upsert(spec: TunnelSpec): void {
    const entry = spec.type === 'v4v6' ? v4v6Entry(spec) : v6Entry(spec);
    const old = this.byId.get(spec.id);
    if (old) {
      this.unindex(old);
      entry.rxPackets = old.rxPackets;
      entry.rxBytes = old.rxBytes;
      entry.txPackets = old.txPackets;
      entry.txBytes = old.txBytes;
      entry.lastRxMs = old.lastRxMs;
    }
    this.byId.set(spec.id, entry);
    this.index(entry);
  }

  remove(id: TunnelId): void {
    const old = this.byId.get(id);
    if (!old) return;
    this.byId.delete(id);
    this.changed.delete(id);
    this.unindex(old);
  }

  get(id: TunnelId): Entry | undefined {
    return this.byId.get(id);
  }

  entries(): IterableIterator<Entry> {
    return this.byId.values();
  }

  findUdp(address: string, port: number): Entry | undefined {
    const a = ipv4Number(address);
    return a === undefined ? undefined : this.byUdp.get(a * 65536 + port);
  }

  findProto41(address: string): Entry | undefined {
    const a = ipv4Number(address);
    return a === undefined ? undefined : this.byProto41.get(a);
  }

  /** The v4v6 tunnel whose client sends from this outer IPv6 address (native TunnelTable::find_ipip). */
  findIpip(address: string): Entry | undefined {
    const key = ipv6Key(address);
    return key === undefined ? undefined : this.byIpip.get(key);
  }

  /** The v4v6 tunnel owning this inner IPv4 /32 (native TunnelTable::route4). */
  route4(destination: number): Entry | undefined {
    return this.byIp4.get(destination);
  }

  /** Longest prefix match over the lengths in use, longest first (native TunnelTable::route). */
  route(destination: bigint): Entry | undefined {
    for (const length of this.lengths) {
      const hit = this.byPrefix.get(length)!.get(hex(mask(destination, length)));
      if (hit) return hit;
    }
    return undefined;
  }

  countRx(e: Entry, bytes: number, nowMs: number): void {
    e.rxPackets++;
    e.rxBytes += bytes;
    e.lastRxMs = nowMs;
    this.changed.add(e.id);
  }

  countTx(e: Entry, bytes: number): void {
    e.txPackets++;
    e.txBytes += bytes;
    this.changed.add(e.id);
  }

  /** The counters of the entries that counted since the last call, and the log emptied. */
  takeChanged(): TunnelCounters[] {
    const out: TunnelCounters[] = [];
    for (const id of this.changed) out.push(this.byId.get(id)!.counters());
    this.changed.clear();
    return out;
  }

  private index(e: Entry): void {
    if (e.v4) {
      this.byIpip.set(e.v4.endpoint, e);
      this.byIp4.set(e.v4.clientIp4, e);
      return;
    }
    (e.type === 'v6udpv4' ? this.byUdp : this.byProto41).set(e.endpoint, e);
    this.prefixes(128).set(hex(e.clientIp6), e);
    if (e.delegated) this.prefixes(e.delegated.length).set(hex(e.delegated.prefix), e);
    this.recomputeLengths();
  }

  private unindex(e: Entry): void {
    const eraseIfOwner = <K>(map: Map<K, Entry> | undefined, key: K) => {
      if (map?.get(key) === e) map.delete(key);
    };
    if (e.v4) {
      eraseIfOwner(this.byIpip, e.v4.endpoint);
      eraseIfOwner(this.byIp4, e.v4.clientIp4);
      return;
    }
    eraseIfOwner(e.type === 'v6udpv4' ? this.byUdp : this.byProto41, e.endpoint);
    eraseIfOwner(this.byPrefix.get(128), hex(e.clientIp6));
    if (e.delegated) eraseIfOwner(this.byPrefix.get(e.delegated.length), hex(e.delegated.prefix));
    this.recomputeLengths();
  }

  private prefixes(length: number): Map<string, Entry> {
    let map = this.byPrefix.get(length);
    if (!map) this.byPrefix.set(length, (map = new Map()));
    return map;
  }

  private recomputeLengths(): void {
    const lengths: number[] = [];
    for (const [length, m] of this.byPrefix) if (m.size > 0) lengths.push(length);
    this.lengths = lengths.sort((a, b) => b - a);
  }
}

function v6Entry(spec: V6TunnelSpec): Entry {
  const parsed = parseSpec(spec);
  return new Entry(
    spec.id,
    spec.type,
    spec.client.address,
    spec.client.port,
    spec.type === 'v6udpv4' ? parsed.clientIpv4 * 65536 + spec.client.port : parsed.clientIpv4,
    spec.serverIpv6,
    spec.clientIpv6,
    spec.delegated ? { address: spec.delegated.address, length: spec.delegated.length } : undefined,
    parsed.serverIp6,
    parsed.clientIp6,
    parsed.delegated,
  );
}

/** A v4v6 entry: no IPv6 inner addresses (-1n matches no address), keyed by its own maps (index). */
function v4v6Entry(spec: V4v6TunnelSpec): Entry {
  const parsed = parseV4v6Spec(spec);
  const v4 = { ...parsed, serverIpv4: spec.serverIpv4, clientIpv4: spec.clientIpv4 };
  return new Entry(spec.id, 'v4v6', spec.client.address, 0, 0, '', '', undefined, -1n, -1n, undefined, v4);
}

/** A prefix map key (see byPrefix). */
function hex(a: bigint): string {
  return a.toString(16);
}
