/** @module broker/reverse-dns: delegates router-mode prefixes' ip6.arpa zones to the name servers an account
 *  names (in its TSP request's `<router><dns_server>`, or through the API and the /me page), by TSIG-signed
 *  RFC 2136 updates to the operator's authoritative server (config `reverseDns`, docs/reverse-dns.md).
 *
 *  The store keeps one row per account: the servers wanted, the names published and the servers they may point
 *  to. A sync compares them with the account's current prefix and sends one update, which the server applies
 *  whole or not at all: at the names of the account's prefix, every NS record goes and ours are written; at
 *  names it no longer holds, only our own records go (the block may already belong to someone else).
 *
 *  Crash-safe by writing the intent first: before an update the row is marked pending with the union of what
 *  was and what will be published, so a crash at any point leaves a row the next pass finishes. Syncs of one
 *  row run one at a time in this process; a wish changed meanwhile (another request, another node) keeps the
 *  row pending (store markReverseDelegation). `reconcile` retries pending rows every RETRY_MS and withdraws the
 *  names of deleted accounts (their rows outlive them with account NULL), so a deletion by the CLI, or during a
 *  DNS outage, is still cleaned up. */

import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { ReverseDnsConfig } from '../config/reverse-dns.js';
import { checkNameServers, isWithin, reverseZoneNames } from '../dns/reverse.js';
import { DnsUpdateError, sendUpdate, type NsChange, type UpdateServer } from '../dns/update.js';
import { BrokerError } from '../errors.js';
import type { ReverseDelegation, Store } from '../store/types.js';
import { ChangeCounter, Gate } from './reverse-dns-limits.js';

/** How often failed updates and deleted accounts' delegations are retried. */
export const RETRY_MS = 30_000;
/** Rows one reconcile pass takes on: with UPDATES_AT_ONCE, what bounds our update traffic to the DNS server. */
const RECONCILE_BATCH = 100;
/** Updates in flight at once, whatever asks for them. */
const UPDATES_AT_ONCE = 4;
/** The row's error while its update is on its way (the intent written first). */
const IN_FLIGHT = 'update in progress';

export type ReverseDnsStorePart = Pick<
  Store,
  | 'getReverseDelegation'
  | 'getReverseDelegationById'
  | 'setReverseServers'
  | 'markReverseDelegation'
  | 'pendingReverseDelegations'
  | 'deleteReverseDelegation'
  | 'findAllocation'
>;

export interface ReverseDnsDeps {
  config: ReverseDnsConfig | null;
  store: ReverseDnsStorePart;
  clock: Clock;
  log: Logger;
}

/** What an account's delegation looks like, for the API and the /me page. */
export interface ReverseDnsStatus {
  servers: string[];
  /** The ip6.arpa names delegated to them at the DNS server. */
  published: string[];
  /** The last update's failure, or that an update is still to happen. */
  error: string | null;
}

const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const union = (a: readonly string[], b: readonly string[]) => [...new Set([...a, ...b])];

export class ReverseDns {
  private readonly chains = new Map<number, Promise<unknown>>();
  private readonly changes: ChangeCounter | undefined;
  private readonly gate = new Gate(UPDATES_AT_ONCE);
  private timer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | undefined;
  /** A pass was asked for while one ran: run another after it (it read its rows before the ask). */
  private again = false;
  private readonly server: UpdateServer | undefined;
  /** Updates sent, by outcome (tsp_reverse_dns_updates_total). */
  readonly updates = { ok: 0, failed: 0 };

  constructor(private readonly deps: ReverseDnsDeps) {
    const c = deps.config;
    if (!c) return;
    this.server = {
      address: c.server,
      port: c.port,
      zone: c.zone,
      key: { name: c.tsig.name, algorithm: c.tsig.algorithm, secret: Buffer.from(c.tsig.secret, 'base64') },
      timeoutMs: c.timeoutMs,
    };
    this.changes = new ChangeCounter(deps.clock, c.changesPerHour);
  }

  get enabled(): boolean {
    return this.server !== undefined;
  }

  /** The name servers a router-mode request names (`<router><dns_server>`), checked: DNS_DELEGATION (509) when
   *  they are not acceptable. undefined when it names none, for an anonymous session (which gets 522 anyway),
   *  and when this broker has no reverseDns: the protocol lets a server ignore them. */
  wishOf(given: string[] | undefined, accountId: number | null): string[] | undefined {
    if (!given?.length || accountId === null) return undefined;
    if (!this.server) {
      this.deps.log.debug({ account: accountId }, 'reverse DNS asked for but not configured');
      return undefined;
    }
    return this.check(given);
  }

  /** Name servers a user gave, canonical; BrokerError DNS_DELEGATION saying what is wrong with them. */
  check(servers: readonly string[]): string[] {
    try {
      return checkNameServers(servers, this.deps.config?.maxNameServers ?? 0);
    } catch (err) {
      throw new BrokerError('DNS_DELEGATION', (err as Error).message);
    }
  }

  /** After an account's router-mode offer: records the servers the request named (already checked) and brings
   *  DNS in line with the account's prefix. Throws DNS_DELEGATION (509) only when this request changed the
   *  servers and they could not be published: a router that sends the same names on every connect still gets
   *  its tunnel during a DNS outage, and the retry is left to the reconcile pass. */
  async afterOffer(accountId: number, asked: string[] | undefined): Promise<void> {
    if (!this.server) return;
    const { store, clock } = this.deps;
    let row = await store.getReverseDelegation(accountId);
    const changed = asked !== undefined && (!row || !same(row.servers, asked));
    if (changed) {
      if (!this.changes!.take(accountId))
        throw new BrokerError('DNS_DELEGATION', 'too many reverse DNS changes for this account; try again later');
      row = await store.setReverseServers(accountId, asked, clock.now());
    }
    if (!row) return;
    const alloc = await store.findAllocation(accountId, 'delegation');
    if (row.error === null && same(row.published, this.wanted(row, alloc))) return;
    if (!changed && row.error !== null && clock.now() - row.updatedAt < RETRY_MS) return;
    try {
      await this.sync(row.id);
    } catch (err) {
      if (changed) throw err;
    }
  }

  /** The API's and /me's setter: stores the servers (an empty list withdraws the delegation) and updates DNS
   *  if the account holds a prefix. The servers stay stored when the update fails (DNS_DELEGATION): it is
   *  retried every RETRY_MS. */
  async setServers(accountId: number, servers: readonly string[]): Promise<ReverseDnsStatus> {
    if (!this.server) throw new BrokerError('DNS_DELEGATION_OFF', 'this broker has no reverseDns configuration');
    let checked: string[];
    try {
      checked = checkNameServers(servers, this.deps.config!.maxNameServers);
    } catch (err) {
      throw new BrokerError('API_BAD_REQUEST', (err as Error).message);
    }
    if (!this.changes!.take(accountId))
      throw new BrokerError('API_RATE_LIMITED', 'too many reverse DNS changes for this account; try again later');
    const row = await this.deps.store.setReverseServers(accountId, checked, this.deps.clock.now());
    await this.sync(row.id);
    return this.status(accountId);
  }

  async status(accountId: number): Promise<ReverseDnsStatus> {
    const row = await this.deps.store.getReverseDelegation(accountId);
    return row
      ? { servers: row.servers, published: row.published, error: row.error }
      : { servers: [], published: [], error: null };
  }

  /** Brings DNS in line with row `id` (one sync at a time per row): a live account's prefix, or for a deleted
   *  account, nothing (and the row goes). */
  sync(id: number): Promise<void> {
    const prev = this.chains.get(id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.syncNow(id));
    this.chains.set(id, next);
    void next
      .finally(() => {
        if (this.chains.get(id) === next) this.chains.delete(id);
      })
      .catch(() => undefined);
    return next;
  }

  private wanted(row: ReverseDelegation, alloc: { prefix: string; prefixLen: number } | undefined): string[] {
    return alloc && row.servers.length > 0 ? reverseZoneNames(alloc.prefix, alloc.prefixLen) : [];
  }

  private async syncNow(id: number): Promise<void> {
    const { store } = this.deps;
    const row = await store.getReverseDelegationById(id);
    if (!row) return;
    if (row.accountId === null) {
      await this.publish(row, [], { deletedAccount: true });
      await store.deleteReverseDelegation(row.id);
      return;
    }
    const wanted = this.wanted(row, await store.findAllocation(row.accountId, 'delegation'));
    await this.publish(row, wanted, { account: row.accountId });
  }

  /** One update: our records go from the names no longer wanted, the wanted names get the row's servers. The
   *  intent is written first; the outcome after. Throws DNS_DELEGATION on failure. */
  private async publish(row: ReverseDelegation, wanted: string[], who: object): Promise<void> {
    const { store, clock, log } = this.deps;
    const zone = this.server!.zone;
    const outside = row.published.filter((n) => !isWithin(n, zone));
    if (outside.length)
      log.warn({ ...who, names: outside, zone }, 'reverse DNS: published names outside the zone dropped');
    const published = row.published.filter((n) => isWithin(n, zone));
    const ttl = this.deps.config!.ttl;
    const changes: NsChange[] = [
      ...published
        .filter((n) => !wanted.includes(n))
        .map((name) => ({ name, clear: false, remove: row.publishedServers, add: [], ttl })),
      ...wanted.map((name) => ({ name, clear: true, remove: [], add: row.servers, ttl })),
    ];
    const outcome = (p: string[], ps: string[], error: string | null) =>
      store.markReverseDelegation(
        row.id,
        { published: p, publishedServers: ps, error, servers: row.servers },
        clock.now(),
      );
    const serversAfter = wanted.length ? row.servers : [];
    if (changes.length === 0) return outcome(wanted, serversAfter, null);
    const maybe = { p: union(published, wanted), ps: union(row.publishedServers, row.servers) };
    await outcome(maybe.p, maybe.ps, IN_FLIGHT);
    try {
      await this.gate.run(() => sendUpdate(this.server!, changes, Math.floor(clock.now() / 1000)));
    } catch (err) {
      this.updates.failed++;
      const reason = err instanceof DnsUpdateError ? err.reason : String(err);
      await outcome(maybe.p, maybe.ps, reason);
      log.warn({ ...who, names: wanted, servers: row.servers, reason }, 'reverse DNS update failed');
      throw new BrokerError('DNS_DELEGATION', `reverse DNS update failed: ${reason}`, { cause: err });
    }
    this.updates.ok++;
    await outcome(wanted, serversAfter, null);
    log.info(
      { ...who, names: wanted, servers: row.servers, withdrawn: changes.length - wanted.length },
      wanted.length ? 'reverse DNS delegated' : 'reverse DNS delegation withdrawn',
    );
  }

  /** Retries pending rows and withdraws deleted accounts' delegations; one pass at a time, and one more after
   *  it when asked for while it runs. */
  reconcile(): Promise<void> {
    if (this.reconciling) {
      this.again = true;
      return this.reconciling;
    }
    const passes = async () => {
      do {
        this.again = false;
        await this.reconcileOnce();
      } while (this.again);
    };
    this.reconciling = passes().finally(() => (this.reconciling = undefined));
    return this.reconciling;
  }

  private async reconcileOnce(): Promise<void> {
    if (!this.server) return;
    for (const row of await this.deps.store.pendingReverseDelegations(RECONCILE_BATCH))
      await this.sync(row.id).catch(() => undefined); // logged by publish; tried again next pass
  }

  /** Reconciles now, then every RETRY_MS until stop(). */
  start(): void {
    if (!this.server || this.timer) return;
    const tick = () => void this.reconcile().catch((err) => this.deps.log.error({ err }, 'reverse DNS pass failed'));
    tick();
    this.timer = setInterval(tick, RETRY_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.reconciling;
    await Promise.allSettled([...this.chains.values()]);
  }
}
