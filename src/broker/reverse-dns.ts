/** @module broker/reverse-dns: delegates router-mode prefixes' ip6.arpa zones to the name servers an account
 *  names (in its TSP request's `<router><dns_server>`, or through the API and the /me page), by TSIG-signed
 *  RFC 2136 updates to the operator's authoritative server (config `reverseDns`, docs/reverse-dns.md).
 *
 *  The store keeps, per account, the servers wanted and the names published (store ReverseDnsStore). A sync
 *  compares them with the account's current delegated prefix and sends one update that withdraws what is no
 *  longer wanted and (re)writes the NS sets that are; the server applies an update whole or not at all. Syncs
 *  of one account run one at a time. A failed update leaves the row marked, and `reconcile` retries it every
 *  RETRY_MS; it also withdraws the names of deleted accounts (their rows outlive them with account NULL), so a
 *  deletion by the CLI, or during a DNS outage, is still cleaned up. */

import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { ReverseDnsConfig } from '../config/reverse-dns.js';
import { checkNameServers, reverseZoneNames } from '../dns/reverse.js';
import { DnsUpdateError, sendUpdate, type NsChange, type UpdateServer } from '../dns/update.js';
import { BrokerError } from '../errors.js';
import type { ReverseDelegation, Store } from '../store/types.js';

/** How often failed updates and deleted accounts' delegations are retried. */
export const RETRY_MS = 30_000;
/** Rows one reconcile pass takes on. */
const RECONCILE_BATCH = 100;
/** The window of `reverseDns.changesPerHour`, and how many accounts' counts are kept at once. */
const CHANGE_WINDOW_MS = 3_600_000;
const MAX_COUNTED = 100_000;

export type ReverseDnsStorePart = Pick<
  Store,
  | 'getReverseDelegation'
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
  /** The last update's failure, or that the first update is still to happen. */
  error: string | null;
}

const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

export class ReverseDns {
  private readonly chains = new Map<number, Promise<unknown>>();
  /** Changes of wish per account in the current window (oldest window first: Map keeps insertion order). */
  private readonly changes = new Map<number, { since: number; n: number }>();
  private timer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | undefined;
  private readonly server: UpdateServer | undefined;

  constructor(private readonly deps: ReverseDnsDeps) {
    const c = deps.config;
    if (c)
      this.server = {
        address: c.server,
        port: c.port,
        zone: c.zone,
        key: { name: c.tsig.name, algorithm: c.tsig.algorithm, secret: Buffer.from(c.tsig.secret, 'base64') },
        timeoutMs: c.timeoutMs,
      };
  }

  get enabled(): boolean {
    return this.server !== undefined;
  }

  /** Name servers a user gave, canonical; BrokerError DNS_DELEGATION saying what is wrong with them. */
  check(servers: readonly string[]): string[] {
    try {
      return checkNameServers(servers, this.deps.config?.maxNameServers ?? 0);
    } catch (err) {
      throw new BrokerError('DNS_DELEGATION', (err as Error).message);
    }
  }

  /** After an account's router-mode offer: records the servers the request named (already checked), and brings
   *  DNS in line with the account's prefix. Throws DNS_DELEGATION when servers were asked for in this request
   *  and could not be published; a retry of an earlier wish only logs. */
  async afterOffer(accountId: number, asked: string[] | undefined): Promise<void> {
    if (!this.server) return;
    const { store, clock } = this.deps;
    let row = await store.getReverseDelegation(accountId);
    if (asked && (!row || !same(row.servers, asked))) {
      if (!this.countChange(accountId))
        throw new BrokerError('DNS_DELEGATION', 'too many reverse DNS changes for this account; try again later');
      row = await store.setReverseServers(accountId, asked, clock.now());
    }
    if (!row) return;
    const alloc = await store.findAllocation(accountId, 'delegation');
    if (row.error === null && same(row.published, this.wanted(row, alloc))) return;
    try {
      await this.syncAccount(accountId);
    } catch (err) {
      if (asked) throw err;
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
    if (!this.countChange(accountId))
      throw new BrokerError('API_RATE_LIMITED', 'too many reverse DNS changes for this account; try again later');
    await this.deps.store.setReverseServers(accountId, checked, this.deps.clock.now());
    return this.syncAccount(accountId);
  }

  /** Counts one change of an account's wish; false when it is over reverseDns.changesPerHour (each change is
   *  an update at the operator's DNS server, so no account may make them without bound). */
  private countChange(accountId: number): boolean {
    const now = this.deps.clock.now();
    let c = this.changes.get(accountId);
    if (!c || now - c.since >= CHANGE_WINDOW_MS) {
      this.changes.delete(accountId);
      c = { since: now, n: 0 };
      this.changes.set(accountId, c);
      if (this.changes.size > MAX_COUNTED) this.changes.delete(this.changes.keys().next().value!);
    }
    if (c.n >= this.deps.config!.changesPerHour) return false;
    c.n++;
    return true;
  }

  async status(accountId: number): Promise<ReverseDnsStatus> {
    const row = await this.deps.store.getReverseDelegation(accountId);
    return row ? statusOf(row) : { servers: [], published: [], error: null };
  }

  /** Sends the update that makes DNS match the account's row and prefix (one at a time per account). */
  syncAccount(accountId: number): Promise<ReverseDnsStatus> {
    const prev = this.chains.get(accountId) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.syncNow(accountId));
    this.chains.set(accountId, next);
    void next
      .finally(() => {
        if (this.chains.get(accountId) === next) this.chains.delete(accountId);
      })
      .catch(() => undefined);
    return next;
  }

  private wanted(row: ReverseDelegation, alloc: { prefix: string; prefixLen: number } | undefined): string[] {
    return alloc && row.servers.length > 0 ? reverseZoneNames(alloc.prefix, alloc.prefixLen) : [];
  }

  private async syncNow(accountId: number): Promise<ReverseDnsStatus> {
    const { store } = this.deps;
    const row = await store.getReverseDelegation(accountId);
    if (!row) return { servers: [], published: [], error: null };
    const wanted = this.wanted(row, await store.findAllocation(accountId, 'delegation'));
    await this.publish(row, wanted, { account: accountId });
    return statusOf((await store.getReverseDelegation(accountId)) ?? row);
  }

  /** One update: withdraw the row's published names that are not wanted, write the wanted ones. Marks the row
   *  with the outcome; throws DNS_DELEGATION on failure. */
  private async publish(row: ReverseDelegation, wanted: string[], who: object): Promise<void> {
    const { store, clock, log } = this.deps;
    const ttl = this.deps.config!.ttl;
    const changes: NsChange[] = [
      ...row.published.filter((n) => !wanted.includes(n)).map((name) => ({ name, servers: [], ttl })),
      ...wanted.map((name) => ({ name, servers: row.servers, ttl })),
    ];
    try {
      if (changes.length > 0) await sendUpdate(this.server!, changes, Math.floor(clock.now() / 1000));
    } catch (err) {
      const reason = err instanceof DnsUpdateError ? err.reason : String(err);
      const keep = [...new Set([...row.published, ...wanted])];
      await store.markReverseDelegation(row.id, keep, reason, clock.now());
      log.warn({ ...who, names: wanted, servers: row.servers, reason }, 'reverse DNS update failed');
      throw new BrokerError('DNS_DELEGATION', `reverse DNS update failed: ${reason}`, { cause: err });
    }
    await store.markReverseDelegation(row.id, wanted, null, clock.now());
    if (changes.length > 0)
      log.info(
        { ...who, names: wanted, servers: row.servers, withdrawn: changes.length - wanted.length },
        wanted.length ? 'reverse DNS delegated' : 'reverse DNS delegation withdrawn',
      );
  }

  /** Retries failed updates and withdraws deleted accounts' delegations; one pass at a time. */
  reconcile(): Promise<void> {
    this.reconciling ??= this.reconcileOnce().finally(() => (this.reconciling = undefined));
    return this.reconciling;
  }

  private async reconcileOnce(): Promise<void> {
    if (!this.server) return;
    const { store } = this.deps;
    for (const row of await store.pendingReverseDelegations(RECONCILE_BATCH)) {
      try {
        if (row.accountId !== null) await this.syncAccount(row.accountId);
        else {
          await this.publish(row, [], { deletedAccount: true });
          await store.deleteReverseDelegation(row.id);
        }
      } catch {
        // logged by publish; tried again next pass
      }
    }
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

function statusOf(row: ReverseDelegation): ReverseDnsStatus {
  return { servers: row.servers, published: row.published, error: row.error };
}
