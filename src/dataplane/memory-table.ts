/** @module dataplane/memory-table: MemoryDataPlane's tunnel table, as native/src/engine/tables.h keeps it:
 *  entries by id, by client endpoint and by prefix (longest match), their counters, and which of them counted a
 *  packet since the last readChanged (the change log). Last writer of a key wins; a replace keeps the counters.
 *
 *  Compact, because `serve` on the model holds every live tunnel here (100,000 in bench:scale): one object per
 *  tunnel with its counters inline, endpoint keys as numbers rather than "address:port" strings, and the spec's
 *  strings shared with the caller, never copied. */

import type { Ipv6Prefix, TunnelCounters, TunnelId, TunnelSpec, TunnelType, V6TunnelSpec } from './types.js';
import { ipv4Number } from '../address.js';
import { mask, parseSpec, type ParsedAddresses } from './memory-packet.js';

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
    if (spec.type === 'v4v6') throw new Error('type v4v6 is not carried by this data plane');
    const parsed = parseSpec(spec);
    const entry = new Entry(
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
    (e.type === 'v6udpv4' ? this.byUdp : this.byProto41).set(e.endpoint, e);
    this.prefixes(128).set(hex(e.clientIp6), e);
    if (e.delegated) this.prefixes(e.delegated.length).set(hex(e.delegated.prefix), e);
    this.recomputeLengths();
  }

  private unindex(e: Entry): void {
    const eraseIfOwner = <K>(map: Map<K, Entry> | undefined, key: K) => {
      if (map?.get(key) === e) map.delete(key);
    };
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

/** A prefix map key (see byPrefix). */
function hex(a: bigint): string {
  return a.toString(16);
}
