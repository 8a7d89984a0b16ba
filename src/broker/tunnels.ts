/** @module broker/tunnels: the registry of live tunnels. It is the only caller of the DataPlane and the only
 *  counter accountant: it adds a tunnel to the data plane on accept (or restore), removes it on every end,
 *  and turns the data plane's per-entry counters into the totals the store and the front ends see. It
 *  reports what happened as typed events (`established`, `ended`); admin's traffic view reads `traffic()`.
 *
 *  Lifecycle of a tunnel (rows in the store, entries in the data plane):
 *    accept  -> replaced tunnels ended -> row 'established' (committed) -> data plane add
 *    end     -> final counters read -> data plane remove -> row 'ended' with reason and counters -> lease released
 *  Counters in the data plane start at zero with each entry (a restart resets them); the totals of a tunnel are
 *  what the store held when its entry was made plus what the entry counted. */

import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { DataPlane, DropReason, TunnelCounters, TunnelId, TunnelSpec } from '../dataplane/types.js';
import type { CounterUpdate, EndReason, Store, TunnelRecord } from '../store/types.js';
import { clientPortFor, endpointKey, endpointLabel } from '../tunnel-model.js';
import type { AnonymousHoldings } from './anonymous.js';
import { Events } from './events.js';

/** The store calls the registry makes. */
export type TunnelRegistryStore = Pick<
  Store,
  'batch' | 'endTunnel' | 'establishTunnel' | 'updateCounters' | 'releaseLease' | 'liveTunnels'
>;

export interface TrafficTotals {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}

export interface TunnelEventMap {
  established: { record: TunnelRecord };
  /** `counters`: the tunnel's final totals, as stored with its end. */
  ended: { record: TunnelRecord; reason: EndReason; counters: CounterUpdate };
}

/** What traffic the data plane carried since this process started: only grows (an ended tunnel's last
 *  counters are carried over at its removal, so nothing is lost between a read and a removal). */
export interface TrafficReading {
  totals: TrafficTotals;
  /** Each live tunnel's own counters since its data-plane entry was made. */
  tunnels: { id: number; rxBytes: number; txBytes: number }[];
}

interface LiveTunnel {
  record: TunnelRecord;
  /** Idle time counts from here when the data plane has seen no packet yet (activation or restore). */
  activeSinceMs: number;
  /** Counters persisted before the current data-plane entry existed. */
  base: TrafficTotals;
  /** rx + tx packets at the last counter write: a sweep writes only tunnels that moved since. */
  persistedPackets: number;
}

export type CountersById = ReadonlyMap<number, TunnelCounters>;

const ZERO: TrafficTotals = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 };

export class TunnelRegistry {
  readonly events = new Events<TunnelEventMap>();
  private readonly live = new Map<number, LiveTunnel>();
  /** Indexes, so an accept, a delete or an account's end never scans every live tunnel. */
  private readonly byEndpoint = new Map<string, LiveTunnel>();
  private readonly byAccount = new Map<number, Set<LiveTunnel>>();
  /** The data-plane counters of entries removed since the process started (traffic()). */
  private readonly carried: TrafficTotals = { ...ZERO };

  constructor(
    private readonly deps: {
      dataplane: DataPlane;
      store: TunnelRegistryStore;
      clock: Clock;
      log: Logger;
      anonymous: AnonymousHoldings;
    },
  ) {}

  get size(): number {
    return this.live.size;
  }

  /** Puts the tunnels the store says are live back into the data plane, and ends offers that were never
   *  accepted. Returns how many tunnels are live. */
  async restore(): Promise<number> {
    const now = this.deps.clock.now();
    for (const t of await this.deps.store.liveTunnels()) {
      if (t.state === 'offered') {
        await this.endOffer(t, 'not_accepted');
        continue;
      }
      // The data plane starts from zero: the persisted counters become the base its counters add to.
      const base = { rxPackets: t.rxPackets, rxBytes: t.rxBytes, txPackets: t.txPackets, txBytes: t.txBytes };
      try {
        this.activate(t, now, base);
      } catch (err) {
        // One row the data plane refuses must not keep every other client down.
        this.deps.log.error({ err, tunnel: t.id }, 'cannot restore tunnel into the data plane: ending it');
        await this.endOffer(t, 'shutdown');
      }
    }
    return this.live.size;
  }

  /** Live tunnels with their current totals. */
  list(): TunnelRecord[] {
    const byId = this.readCounters();
    return [...this.live.values()].map((t) => {
      const { id: _id, ...totals } = totalsOf(t, byId.get(t.record.id));
      return { ...t.record, ...totals };
    });
  }

  /** The records of the live tunnels that match (without counters: cheap). */
  find(pred: (t: TunnelRecord) => boolean): TunnelRecord[] {
    return [...this.live.values()].map((t) => t.record).filter(pred);
  }

  has(id: number): boolean {
    return this.live.has(id);
  }

  /** The data plane's counters of some tunnels. */
  private countersOf(ids: number[]): CountersById {
    return new Map(this.deps.dataplane.readCountersOf(ids as TunnelId[]).map((c) => [c.id as number, c]));
  }

  /** The data plane's counters of every tunnel, read in one call. */
  readCounters(): CountersById {
    return new Map(this.deps.dataplane.readCounters().map((c) => [c.id as number, c]));
  }

  /** Packets the data plane dropped since it started, by reason (metrics). */
  drops(): Record<DropReason, number> {
    return this.deps.dataplane.readDrops();
  }

  /** Live tunnels with when they last received (or became live, if they never did), for the expiry rule. */
  activity(counters: CountersById): { record: TunnelRecord; lastRxMs: number }[] {
    return [...this.live.values()].map((t) => ({
      record: t.record,
      lastRxMs: Math.max(counters.get(t.record.id)?.lastRxMs ?? 0, t.activeSinceMs),
    }));
  }

  /** The live tunnel at a client endpoint (endpointKey), if any. */
  atEndpoint(key: string): TunnelRecord | undefined {
    return this.byEndpoint.get(key)?.record;
  }

  /** An account's live tunnels. */
  ofAccount(accountId: number): TunnelRecord[] {
    return [...(this.byAccount.get(accountId) ?? [])].map((t) => t.record);
  }

  /** Makes an offered tunnel live: ends the live tunnels it replaces (the one at its client endpoint, and with
   *  `replaceAccount` every other tunnel of its account), commits their ends and its start in one transaction
   *  (before the caller acknowledges on the wire), then adds it to the data plane. */
  async establish(record: TunnelRecord, opts: { replaceAccount: boolean }): Promise<TunnelRecord> {
    const replaced = new Set<LiveTunnel>();
    const same = this.byEndpoint.get(keyOf(record));
    if (same) replaced.add(same);
    if (opts.replaceAccount && record.accountId !== null)
      for (const t of this.byAccount.get(record.accountId) ?? []) replaced.add(t);
    const at = this.deps.clock.now();
    const byId = replaced.size ? this.countersOf([...replaced].map((t) => t.record.id)) : undefined;
    const ends = [...replaced].map((t) => ({ record: t.record, counters: totalsOf(t, byId?.get(t.record.id)) }));
    for (const t of replaced) this.forget(t, 'replaced', byId!);
    await this.deps.store.batch(async () => {
      for (const e of ends) await this.persistEnd(e.record, 'replaced', e.counters);
      await this.deps.store.establishTunnel(record.id, at);
    });
    const established: TunnelRecord = { ...record, state: 'established', establishedAt: at };
    this.activate(established, at, ZERO);
    this.events.emit('established', { record: established });
    return established;
  }

  /** Ends a live tunnel (no-op when it is not live). */
  end(id: number, reason: EndReason): Promise<void> {
    return this.endAll([[id, reason]]);
  }

  /** Ends every live tunnel that matches; returns how many. */
  async endWhere(pred: (t: TunnelRecord) => boolean, reason: EndReason): Promise<number> {
    const ids = this.find(pred).map((t) => t.id);
    await this.endAll(ids.map((id) => [id, reason]));
    return ids.length;
  }

  /** Ends these live tunnels (those not live are skipped). Their counters are read, and they leave the data
   *  plane, in one synchronous step, so no packet counted in between is lost and the process totals never go
   *  down; then their ends are stored in one transaction. */
  async endAll(ends: readonly (readonly [number, EndReason])[]): Promise<void> {
    const chosen = new Map<number, [LiveTunnel, EndReason]>();
    for (const [id, reason] of ends) {
      const t = this.live.get(id);
      if (t && !chosen.has(id)) chosen.set(id, [t, reason]);
    }
    if (chosen.size === 0) return;
    const counters = this.countersOf([...chosen.keys()]);
    const rows = [...chosen.values()].map(([t, reason]) => {
      const totals = totalsOf(t, counters.get(t.record.id));
      this.forget(t, reason, counters); // at once, so a second end of the same tunnel finds nothing to do
      return { record: t.record, reason, totals };
    });
    await this.deps.store.batch(async () => {
      for (const r of rows) await this.persistEnd(r.record, r.reason, r.totals);
    });
  }

  /** Ends a tunnel row that never became live (an offer), in one transaction. */
  async endOffer(t: TunnelRecord, reason: EndReason): Promise<void> {
    this.deps.anonymous.release(t.id);
    await this.deps.store.batch(() => this.persistEnd(t, reason));
  }

  /** Writes the totals of the tunnels whose packet counts moved since their last write: a sweep over 10,000
   *  idle tunnels writes nothing. */
  async persistCounters(byId: CountersById = this.readCounters()): Promise<void> {
    const updates: CounterUpdate[] = [];
    const written: [LiveTunnel, number][] = [];
    for (const t of this.live.values()) {
      const u = totalsOf(t, byId.get(t.record.id));
      const packets = u.rxPackets + u.txPackets;
      if (packets === t.persistedPackets) continue;
      updates.push(u);
      written.push([t, packets]);
    }
    if (updates.length === 0) return;
    await this.deps.store.updateCounters(updates);
    for (const [t, packets] of written) t.persistedPackets = packets;
  }

  /** Process-lifetime traffic: the live entries' counters plus those of every entry removed so far. */
  traffic(): TrafficReading {
    const totals = { ...this.carried };
    const tunnels: TrafficReading['tunnels'] = [];
    for (const c of this.deps.dataplane.readCounters()) {
      add(totals, c);
      tunnels.push({ id: c.id as number, rxBytes: c.rxBytes, txBytes: c.txBytes });
    }
    return { totals, tunnels };
  }

  private activate(t: TunnelRecord, now: number, base: TrafficTotals): void {
    this.deps.dataplane.addTunnel(specOf(t));
    this.deps.anonymous.hold(t); // a restored anonymous tunnel counts again
    const entry = { record: t, activeSinceMs: now, base, persistedPackets: base.rxPackets + base.txPackets };
    this.live.set(t.id, entry);
    this.byEndpoint.set(keyOf(t), entry);
    if (t.accountId !== null) {
      let set = this.byAccount.get(t.accountId);
      if (!set) this.byAccount.set(t.accountId, (set = new Set()));
      set.add(entry);
    }
  }

  /** Takes a tunnel out of the data plane and the live set, and says so. No store writes. */
  private forget(t: LiveTunnel, reason: EndReason, counters: CountersById): void {
    const last = counters.get(t.record.id);
    this.deps.dataplane.removeTunnel(t.record.id as TunnelId);
    if (last) add(this.carried, last);
    this.live.delete(t.record.id);
    if (this.byEndpoint.get(keyOf(t.record)) === t) this.byEndpoint.delete(keyOf(t.record));
    const mine = t.record.accountId === null ? undefined : this.byAccount.get(t.record.accountId);
    mine?.delete(t);
    if (mine?.size === 0) this.byAccount.delete(t.record.accountId!);
    this.deps.anonymous.release(t.record.id);
    const r = t.record;
    this.deps.log.info(
      {
        tunnel: r.id,
        account: r.username,
        client: endpointLabel(r.type, r.clientIpv4, r.clientPort),
        reason,
      },
      'tunnel ended',
    );
    this.events.emit('ended', { record: r, reason, counters: totalsOf(t, last) });
  }

  /** The store side of an end: final counters, state and reason, the anonymous lease released. Store calls
   *  only, and idempotent, so it may run inside a batch that retries. */
  private async persistEnd(t: TunnelRecord, reason: EndReason, counters?: CounterUpdate): Promise<void> {
    if (counters) await this.deps.store.updateCounters([counters]);
    await this.deps.store.endTunnel(t.id, reason, this.deps.clock.now());
    if (t.leaseId) await this.deps.store.releaseLease(t.leaseId);
  }
}

function keyOf(t: Pick<TunnelRecord, 'type' | 'clientIpv4' | 'clientPort'>): string {
  return endpointKey(t.type, t.clientIpv4, t.clientPort);
}

/** A tunnel's totals: what was stored before this data-plane entry plus what the data plane counted. */
function totalsOf(t: LiveTunnel, c: TunnelCounters | undefined): CounterUpdate {
  return {
    id: t.record.id,
    rxPackets: t.base.rxPackets + (c?.rxPackets ?? 0),
    rxBytes: t.base.rxBytes + (c?.rxBytes ?? 0),
    txPackets: t.base.txPackets + (c?.txPackets ?? 0),
    txBytes: t.base.txBytes + (c?.txBytes ?? 0),
    lastSeenAt: (c?.lastRxMs || t.record.lastSeenAt) ?? null,
  };
}

function add(into: TrafficTotals, c: TrafficTotals): void {
  into.rxPackets += c.rxPackets;
  into.rxBytes += c.rxBytes;
  into.txPackets += c.txPackets;
  into.txBytes += c.txBytes;
}

/** The data plane's view of a tunnel row. */
export function specOf(t: TunnelRecord): TunnelSpec {
  const spec: TunnelSpec = {
    id: t.id as TunnelId,
    type: t.type,
    client: { address: t.clientIpv4, port: clientPortFor(t.type, t.clientPort) },
    serverIpv6: t.serverIpv6,
    clientIpv6: t.clientIpv6,
  };
  if (t.prefix && t.prefixLen !== null) spec.delegated = { address: t.prefix, length: t.prefixLen };
  return spec;
}
