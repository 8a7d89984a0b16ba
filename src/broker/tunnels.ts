/** @module broker/tunnels: the registry of live tunnels. It is the only caller of the DataPlane and the only counter
 *  accountant: it adds a tunnel to the data plane on accept (or restore), removes it on every end, and turns the
 *  data plane's per-entry counters into the totals the store and the front ends see. It reports what happened as
 *  typed events (`established`, `ended`); admin's traffic view reads `traffic()`.
 *
 *  Lifecycle of a tunnel (rows in the store, entries in the data plane):
 *    accept  -> replaced tunnels ended -> row 'established' (committed) -> data plane add
 *    end     -> final counters read -> data plane remove -> row 'ended' with reason and counters -> lease released
 *  Counters in the data plane start at zero with each entry (a restart resets them); the totals of a tunnel are
 *  what the store held when its entry was made plus what the entry counted.
 *
 *  The periodic work is O(changes), not O(tunnels) (docs/architecture.md, "Scale"): `takeChanges` asks the data
 *  plane which tunnels counted since it last asked (DataPlane.readChanged), moves their idle clocks on and keeps
 *  their counters for `persistCounters`; `endExpired` looks only at the tunnels whose deadline has come, in a heap
 *  keyed by a time at or before which each cannot be due (expiry.ts dueAtMs). A tunnel that kept sending is found
 *  not due when its turn comes and goes back under its new deadline: its lastRx moved only in memory, at no cost
 *  per packet and none per idle tunnel. Each live tunnel is one compact LiveTunnel (live-tunnel.ts); TunnelRecords
 *  are built when someone asks for them. */

import { BrokerError } from '../errors.js';
import type { DropReason, TunnelCounters, TunnelId } from '../dataplane/types.js';
import type { CounterUpdate, EndReason, LeaseReservation, TunnelRecord } from '../store/types.js';
import { endpointLabel, type TunnelType } from '../tunnel-model.js';
import { isPending } from './pending-offer.js';
import { Deadlines } from './deadlines.js';
import { Events } from './events.js';
import { dueAtMs, endReasonAt } from './expiry.js';
import {
  LiveTunnel,
  ZERO,
  add,
  endpointKeyOf,
  tunnelEndpointKey,
  parseEndpointKey,
  specOf,
  totalsOf,
  withTotals,
  type EndpointKey,
} from './live-tunnel.js';

const RESTORE_PAGE = 5000; // live tunnels read per store call at a restart (TunnelRegistryDeps.restorePage)

import type {
  CountersById,
  IdleRule,
  TrafficReading,
  TrafficTotals,
  TunnelEventMap,
  TunnelRegistryDeps,
  TunnelRegistryStore,
} from './tunnel-types.js';

export type { CountersById, IdleRule, TrafficReading, TrafficTotals, TunnelEventMap, TunnelRegistryStore };

export class TunnelRegistry {
  readonly events = new Events<TunnelEventMap>();
  private readonly live = new Map<number, LiveTunnel>();
  /** Indexes, so an accept, a delete or an account's end never scans every live tunnel. */
  private readonly byEndpoint = new Map<EndpointKey, LiveTunnel>();
  private readonly byAccount = new Map<number, LiveTunnel[]>();
  private readonly byType: Record<TunnelType, number> = { v6v4: 0, v6udpv4: 0, v4v6: 0 };
  /** Every live tunnel, by a time at or before which it cannot be due to end (endExpired). */
  private readonly deadlines = new Deadlines<LiveTunnel>();
  /** Counters the data plane reported moved (takeChanges) and the store does not have yet. */
  private readonly unwritten = new Map<LiveTunnel, TunnelCounters>();
  /** The data-plane counters of entries removed since the process started (traffic()). */
  private readonly carried: TrafficTotals = { ...ZERO };

  constructor(private readonly deps: TunnelRegistryDeps) {}

  get size(): number {
    return this.live.size;
  }

  /** Puts the tunnels the store says are live back into the data plane, and ends offers that were never
   *  accepted. Returns how many tunnels are live. */
  async restore(): Promise<number> {
    const now = this.deps.clock.now();
    // by pages, whose rows die young (all 100,000 rows at once took RSS past 500 MB for a few seconds)
    const limit = Math.max(1, Math.trunc(this.deps.restorePage ?? RESTORE_PAGE));
    for (let afterId = 0; ;) {
      const node = this.deps.node;
      const rows = await this.deps.store.liveTunnels({ afterId, limit, ...(node !== undefined ? { node } : {}) });
      for (const t of rows) await this.restoreOne(t, now);
      if (rows.length < limit || rows.length === 0) break;
      afterId = rows[rows.length - 1]!.id;
    }
    return this.live.size;
  }

  private async restoreOne(t: TunnelRecord, now: number): Promise<void> {
    if (t.state === 'offered') return this.endOffer(t, 'not_accepted');
    // The data plane starts from zero: the persisted counters become the base its counters add to.
    try {
      this.activate(t, now);
    } catch (err) {
      // One row the data plane refuses must not keep every other client down.
      this.deps.log.error({ err, tunnel: t.id }, 'cannot restore tunnel into the data plane: ending it');
      await this.endOffer(t, 'shutdown');
    }
  }

  /** Live tunnels with their current totals (every record built: for operators' views, not periodic work). */
  list(): TunnelRecord[] {
    const byId = this.readCounters();
    return [...this.live.values()].map((t) => withTotals(t, byId.get(t.id)));
  }

  /** Those of these ids that are live, with their current totals, in the order asked (one data-plane read). */
  listOf(ids: readonly number[]): TunnelRecord[] {
    const wanted = ids.filter((id) => this.live.has(id));
    const byId = this.countersOf(wanted);
    return wanted.map((id) => withTotals(this.live.get(id)!, byId.get(id)));
  }

  /** The records of the live tunnels that match (without counters; every record built). */
  find(pred: (t: TunnelRecord) => boolean): TunnelRecord[] {
    const out: TunnelRecord[] = [];
    for (const t of this.live.values()) {
      const r = t.record();
      if (pred(r)) out.push(r);
    }
    return out;
  }

  /** A live tunnel's record (without counters). */
  get(id: number): TunnelRecord | undefined {
    return this.live.get(id)?.record();
  }

  ids(): number[] {
    return [...this.live.keys()];
  }

  has(id: number): boolean {
    return this.live.has(id);
  }

  /** How many live tunnels there are of each type (kept as they come and go). */
  countByType(): Record<TunnelType, number> {
    return { ...this.byType };
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

  /** The live tunnel at a client endpoint (endpointKey), if any. */
  atEndpoint(key: string): TunnelRecord | undefined {
    return this.byEndpoint.get(parseEndpointKey(key))?.record();
  }

  /** An account's live tunnels. */
  ofAccount(accountId: number): TunnelRecord[] {
    return (this.byAccount.get(accountId) ?? []).map((t) => t.record());
  }

  /** The ids of the live tunnels of the account named `username` (scans accounts' tunnels only). */
  idsOfUsername(username: string): number[] {
    const ids: number[] = [];
    for (const mine of this.byAccount.values()) for (const t of mine) if (t.username === username) ids.push(t.id);
    return ids;
  }

  /** Makes an offered tunnel live: ends the live tunnels it replaces (the one at its client endpoint, and with
   *  `replaceAccount` every other tunnel of its account), commits their ends and its start in one transaction
   *  (before the caller acknowledges on the wire), then adds it to the data plane. */
  async establish(
    record: TunnelRecord,
    opts: { replaceAccount: boolean },
    reservation?: LeaseReservation,
  ): Promise<TunnelRecord> {
    const replaced = new Set<LiveTunnel>();
    const same = this.byEndpoint.get(tunnelEndpointKey(record));
    if (same) replaced.add(same);
    if (opts.replaceAccount && record.accountId !== null)
      for (const t of this.byAccount.get(record.accountId) ?? []) replaced.add(t);
    // a static tunnel is replaced only by its own account's static tunnel (broker/static-tunnels.ts)
    for (const t of replaced)
      if (t.isStatic && (record.transport !== 'static' || t.accountId !== record.accountId))
        throw new BrokerError('STATIC_TUNNEL_HOLDS', `static tunnel ${t.id} holds ${t.clientIpv4} or the account`);
    const at = this.deps.clock.now();
    const byId = replaced.size ? this.countersOf([...replaced].map((t) => t.id)) : undefined;
    const ends = [...replaced].map((t) => ({ record: t.record(), counters: totalsOf(t, byId?.get(t.id)) }));
    for (const t of replaced) this.forget(t, 'replaced', byId!);
    const elsewhere = this.deps.node !== undefined && opts.replaceAccount && record.accountId !== null;
    const moved = await this.deps.store.batch(async (tx) => {
      // first: it serialises this account's accepts across nodes (nodes.ts), so one of two at once ends the other
      const ended = elsewhere ? await tx.endTunnelsElsewhere(record.accountId!, at) : [];
      for (const e of ends) await this.persistEnd(tx, e.record, 'replaced', e.counters);
      // a pending offer's rows are written now, already established (pending-offer.ts)
      const row = isPending(record)
        ? await tx.createTunnel(record, record.createdAt, {
            established: at,
            ...(reservation ? { reservation } : {}),
          })
        : await tx.establishTunnel(record.id, at);
      return { ended, row };
    });
    const established: TunnelRecord = moved.row
      ? { ...moved.row, username: record.username }
      : { ...record, state: 'established', establishedAt: at };
    if (isPending(record)) this.deps.anonymous.release(record.id); // held again under its row's id (activate)
    for (const m of moved.ended)
      this.deps.log.info(
        { tunnel: m.id, node: m.node, replacedBy: established.id },
        "ended the account's tunnel on another node",
      );
    try {
      this.activate(established, at);
    } catch (err) {
      // committed established: end it here for any offer (endOffer knows a pending one by a stand-in id only)
      await this.deps.store.batch((tx) => this.persistEnd(tx, established, 'not_accepted')).catch(() => {});
      throw err;
    }
    this.events.emit('established', { record: established });
    return established;
  }

  /** Moves a live static tunnel to a new client IPv4 (its 6in4 endpoint): the store first, then the data plane
   *  entry (same id: its counters stay) and the endpoint index. The new endpoint is claimed in the index before
   *  the store write, so a concurrent move of another tunnel to it is refused (STATIC_TUNNEL_HOLDS). */
  async moveEndpoint(id: number, clientIpv4: string): Promise<void> {
    const t = this.live.get(id);
    if (!t || !t.isStatic) throw new BrokerError('STORE_NOT_FOUND', `no live static tunnel ${id}`);
    const to = endpointKeyOf(clientIpv4, 0);
    const from = t.endpoint;
    const holder = this.byEndpoint.get(to);
    if (holder && holder !== t) throw new BrokerError('STATIC_TUNNEL_HOLDS', `${clientIpv4} is another tunnel's`);
    this.byEndpoint.set(to, t);
    const release = () => void (to !== from && this.byEndpoint.get(to) === t && this.byEndpoint.delete(to));
    try {
      await this.deps.store.moveTunnelEndpoint(id, clientIpv4);
    } catch (err) {
      release();
      throw err;
    }
    if (this.live.get(id) !== t) return release(); // ended meanwhile
    if (to !== from && this.byEndpoint.get(from) === t) this.byEndpoint.delete(from);
    t.clientIpv4 = clientIpv4;
    this.byEndpoint.set(t.endpoint, t);
    this.deps.dataplane.addTunnel(specOf(t));
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
      const totals = totalsOf(t, counters.get(t.id));
      this.forget(t, reason, counters); // at once, so a second end of the same tunnel finds nothing to do
      return { record: t.record(), reason, totals };
    });
    await this.deps.store.batch(async (tx) => {
      for (const r of rows) await this.persistEnd(tx, r.record, r.reason, r.totals);
    });
  }

  /** Ends a tunnel row that never became live (an offer), in one transaction; a pending offer's lease goes back
   *  to memory, with nothing written. */
  async endOffer(t: TunnelRecord, reason: EndReason, reservation?: LeaseReservation): Promise<void> {
    this.deps.anonymous.release(t.id);
    if (isPending(t)) return reservation && this.deps.store.releaseReservation(reservation);
    await this.deps.store.batch((tx) => this.persistEnd(tx, t, reason));
  }

  /** Learns from the data plane which tunnels counted since the last call (DataPlane.readChanged): their idle
   *  clocks move on, and their counters wait for persistCounters. Costs nothing for an idle tunnel. */
  takeChanges(): void {
    for (const c of this.deps.dataplane.readChanged()) {
      const t = this.live.get(c.id);
      if (!t) continue; // ended since: its last counters went with its end
      if (c.lastRxMs > t.lastRxMs) t.lastRxMs = c.lastRxMs;
      this.unwritten.set(t, c);
    }
  }

  /** Ends the live tunnels that are due at `nowMs`, silent past their idle limit or past their lifetime
   *  (expiry.ts endReasonAt), as of the last takeChanges. Looks only at the tunnels whose deadline has come:
   *  one that moved meanwhile goes back under its later deadline. */
  async endExpired(nowMs: number): Promise<void> {
    const ends: [number, EndReason][] = [];
    for (let first = this.deadlines.first(); first && first.atMs < nowMs; first = this.deadlines.first()) {
      const t = first.item;
      const reason = endReasonAt(t, t.lastRxMs, nowMs, this.deps.idle);
      if (reason === null) this.deadlines.set(t, dueAtMs(t, t.lastRxMs, this.deps.idle));
      else {
        this.deadlines.delete(t);
        ends.push([t.id, reason]);
      }
    }
    await this.endAll(ends);
  }

  /** Writes the totals of the tunnels the data plane reported moved since their last write (takeChanges): a
   *  sweep over 100,000 idle tunnels writes nothing and reads nothing per tunnel. A failed write is retried
   *  with the next. */
  async persistCounters(): Promise<void> {
    this.takeChanges();
    if (this.unwritten.size === 0) return;
    const written = [...this.unwritten];
    await this.deps.store.updateCounters(written.map(([t, c]) => totalsOf(t, c)));
    // what was read again during the write stays for the next one
    for (const [t, c] of written) if (this.unwritten.get(t) === c) this.unwritten.delete(t);
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

  private activate(r: TunnelRecord, now: number): void {
    const mine = r.accountId === null ? undefined : this.byAccount.get(r.accountId);
    const t = new LiveTunnel(r, now, mine?.find((o) => o.username === r.username)?.username);
    this.deps.dataplane.addTunnel(specOf(t));
    this.deps.anonymous.hold(t); // a restored anonymous tunnel counts again
    this.live.set(t.id, t);
    this.byEndpoint.set(t.endpoint, t);
    this.byType[t.type]++;
    if (t.accountId !== null) {
      if (mine) mine.push(t);
      else this.byAccount.set(t.accountId, [t]);
    }
    // a static tunnel has no keepalive and no lifetime: it ends only when removed
    if (!t.isStatic) this.deadlines.set(t, dueAtMs(t, t.lastRxMs, this.deps.idle));
  }

  /** Takes a tunnel out of the data plane and the live set, and says so. No store writes. */
  private forget(t: LiveTunnel, reason: EndReason, counters: CountersById): void {
    const last = counters.get(t.id);
    this.deps.dataplane.removeTunnel(t.id as TunnelId);
    if (last) add(this.carried, last);
    this.live.delete(t.id);
    this.deadlines.delete(t);
    this.unwritten.delete(t);
    this.byType[t.type]--;
    const endpoint = t.endpoint;
    if (this.byEndpoint.get(endpoint) === t) this.byEndpoint.delete(endpoint);
    const mine = t.accountId === null ? undefined : this.byAccount.get(t.accountId);
    if (mine) {
      mine.splice(mine.indexOf(t), 1);
      if (mine.length === 0) this.byAccount.delete(t.accountId!);
    }
    this.deps.anonymous.release(t.id);
    this.deps.log.info(
      {
        tunnel: t.id,
        account: t.username,
        client: endpointLabel(t),
        reason,
      },
      'tunnel ended',
    );
    this.events.emit('ended', { record: t.record(), reason, counters: totalsOf(t, last) });
  }

  /** The store side of an end: final counters, state and reason, the anonymous lease released. Store calls
   *  only, and idempotent, so it may run inside a batch that retries. */
  private async persistEnd(tx: TunnelRegistryStore, t: TunnelRecord, why: EndReason, c?: CounterUpdate): Promise<void> {
    await tx.endTunnel(t.id, why, this.deps.clock.now(), c);
    if (t.leaseId) await tx.releaseLease(t.leaseId);
  }
}
