/** @module broker/static-tunnels: static 6in4 tunnels. An account may have one: a v6v4 (protocol 41) tunnel
 *  that needs no TSP client (any router's built-in 6in4 works), to an IPv4 endpoint set in the web UI or the
 *  API and kept current by dyndns2 updates (admin/nic-update.ts). Every change is audited (`static.*`).
 *
 *  Its settings are a `static_tunnels` row (host name, endpoint, whether the delegated prefix goes with it,
 *  the update key's hash); while it has an endpoint and its account is enabled, a `tunnels` row with transport
 *  'static' carries it in the data plane like any live tunnel, so the registry restores it at a start, counts
 *  its traffic and lists it. It never ends by silence or lifetime (the registry keeps no deadline for it); it
 *  ends when it is removed, when its account is disabled or deleted, or when an operator kills it (it comes
 *  back at the next endpoint change, account enable or broker start; after a kill and block, not before the
 *  block ends: STATIC_TUNNEL_BLOCKED).
 *
 *  It owns the account's addresses: the account's link block (a /64, or a /126 in pools.linkMode shared-64;
 *  server ::1, client ::2, as a TSP tunnel would get) and, with delegatePrefix, the account's delegated prefix. Activating it ends the account's TSP tunnels
 *  (reason 'replaced'); while it is live, a TSP session of the account, or a v6v4 request from its endpoint,
 *  is refused with 301 (STATIC_TUNNEL_HOLDS, broker/service.ts). An endpoint that another account's tunnel
 *  uses for protocol 41 is refused: the data plane tells v6v4 tunnels apart by the client IPv4 alone. */

import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { BrokerError, isBrokerError } from '../errors.js';
import type { Account, StaticTunnel, Store, TunnelRecord } from '../store/types.js';
import { endpointKey } from '../tunnel-model.js';
import type { TunnelBlocks } from './blocks.js';
import { allowedTypes, serverIpv4From, sessionSourceRefusal } from './offer-policy.js';
import { checkHostname, endpointRefusal, hashUpdateKey, isStatic, UPDATE_KEY_PREFIX } from './static-tunnel-rules.js';
import { WindowCounter } from './rate-limit.js';
import { linkAddresses, type Pools } from './pools.js';
import type { TunnelRegistry } from './tunnels.js';

/** What the web UI and the API show of a static tunnel (never the key's hash). */
export interface StaticTunnelView {
  hostname: string;
  username: string;
  endpoint: string | null;
  delegatePrefix: boolean;
  hasUpdateKey: boolean;
  createdAt: number;
  updatedAt: number;
  /** The live tunnel carrying it (addresses and counters), or null while it has no endpoint or is not live. */
  tunnel: TunnelRecord | null;
}

export interface StaticTunnelDeps {
  config: Config;
  store: Store;
  tunnels: TunnelRegistry;
  pools: Pools;
  /** An operator's kill-and-block holds a static tunnel too (refuseIfBlocked). */
  blocks: TunnelBlocks;
  clock: Clock;
  log: Logger;
  localAddressToward: (peer: string) => Promise<string>;
}

export class StaticTunnels {
  /** The tail of each account's queue of changes (serial). */
  private readonly queues = new Map<number, Promise<void>>();
  /** staticTunnels.changesPerHour, per tunnel: its account holder's changes (dyndns2, /me) share it. */
  private readonly changes: WindowCounter;

  /** Several nodes share the store: no static tunnel is made live (docs/cluster.md, "Limits"). */
  private readonly clustered: boolean;

  constructor(private readonly deps: StaticTunnelDeps) {
    this.clustered = deps.config.store.driver === 'postgres';
    this.changes = new WindowCounter(deps.clock, deps.config.staticTunnels.changesPerHour, 3600_000);
  }

  /** Counts one change of the account holder's (an endpoint change or a new update key) against
   *  staticTunnels.changesPerHour; API_RATE_LIMITED beyond it (logged once per tunnel and hour). */
  private countChange(st: StaticTunnel, via: string): void {
    const key = `tunnel:${st.id}`;
    if (this.changes.take(key)) return;
    if (this.changes.refusedNow(key) === 1)
      this.deps.log.warn(
        { account: st.username, via, limit: 'staticTunnels.changesPerHour' },
        'static tunnel changes refused',
      );
    throw new BrokerError(
      'API_RATE_LIMITED',
      `more than ${this.deps.config.staticTunnels.changesPerHour} changes of this static tunnel in an hour (staticTunnels.changesPerHour)`,
    );
  }

  private audit(actor: string, action: string, target: string, detail: Record<string, unknown>): Promise<void> {
    return this.deps.store.addAudit({ at: this.deps.clock.now(), actor, action, target, detail });
  }

  /** The account's live static tunnel, if any. */
  liveOf(accountId: number): TunnelRecord | undefined {
    return this.deps.tunnels.ofAccount(accountId).find(isStatic);
  }

  view(st: StaticTunnel): StaticTunnelView {
    const live = this.liveOf(st.accountId);
    const { updateKeyHash, id: _id, accountId: _a, ...rest } = st;
    return {
      ...rest,
      hasUpdateKey: updateKeyHash !== null,
      tunnel: live ? (this.deps.tunnels.listOf([live.id])[0] ?? live) : null,
    };
  }

  of(accountId: number): Promise<StaticTunnel | undefined> {
    return this.deps.store.staticTunnelOf(accountId);
  }

  /** The account's static tunnel, or STORE_NOT_FOUND (404). */
  async require(account: Account): Promise<StaticTunnel> {
    const st = await this.of(account.id);
    if (!st) throw new BrokerError('STORE_NOT_FOUND', `${account.username} has no static tunnel`);
    return st;
  }

  /** Creates the account's static tunnel (at most one: STORE_CONFLICT), live at once when an endpoint is
   *  given and the account is enabled. The host name defaults to the username in lower case. */
  async create(
    actor: string,
    account: Account,
    p: { hostname?: string; endpoint?: string | null; delegatePrefix?: boolean },
  ): Promise<StaticTunnel> {
    this.refuseOnCluster();
    if (!allowedTypes(this.deps.config.tunnels.types, account.limits).includes('v6v4'))
      throw new BrokerError(
        'TSP_UNSUPPORTED_TUNNEL',
        'v6v4 (protocol 41) is not offered to this account (tunnels.types or its limits)',
      );
    const hostname = checkHostname(p.hostname ?? account.username);
    const endpoint = p.endpoint ?? null;
    if (endpoint !== null) this.checkEndpoint(account.id, endpoint);
    if (endpoint !== null && !account.disabled) this.refuseIfBlocked(account.id, account.username);
    if (await this.of(account.id)) throw new BrokerError('STORE_CONFLICT', `${account.username} has a static tunnel`);
    if (await this.deps.store.findStaticTunnel(hostname))
      throw new BrokerError('STORE_CONFLICT', `the host name ${hostname} is taken`);
    const st = await this.deps.store.createStaticTunnel(
      { accountId: account.id, hostname, endpoint, delegatePrefix: p.delegatePrefix ?? false },
      this.deps.clock.now(),
    );
    await this.audit(actor, 'static.create', account.username, {
      hostname,
      endpoint,
      delegatePrefix: st.delegatePrefix,
    });
    if (endpoint !== null && !account.disabled) await this.serial(account.id, () => this.activate(st));
    return st;
  }

  /** Why `address` cannot be an endpoint (endpointRefusal), or that it is the broker's own: protocol 41 to
   *  itself (its serverIpv4, a listen address, an address of one of its interfaces). Null when it can be. */
  refusal(address: string): string | null {
    const why = endpointRefusal(address);
    if (why !== null) return why;
    const c = this.deps.config;
    const own = new Set([c.serverIpv4, c.listen.address, c.admin.address, c.selfService.address]);
    for (const list of Object.values(os.networkInterfaces()))
      for (const i of list ?? []) if (i.family === 'IPv4') own.add(i.address);
    if (own.has(address)) return `${address} is the broker's own address`;
    // inside the v4v6 pool: protocol 41 into one of the broker's own tunnels, the loop sessions are refused for
    return sessionSourceRefusal(address, { ipv6: [], ipv4: c.pools.ipv4 });
  }

  /** Refuses an endpoint that is no public unicast IPv4 or is the broker's own (API_BAD_REQUEST) or that another account's tunnel
   *  uses for protocol 41 (STATIC_TUNNEL_HOLDS). */
  checkEndpoint(accountId: number, endpoint: string): void {
    const why = this.refusal(endpoint);
    if (why !== null) throw new BrokerError('API_BAD_REQUEST', `endpoint: ${why}`);
    const holder = this.deps.tunnels.atEndpoint(endpointKey('v6v4', endpoint, 0));
    if (holder && holder.accountId !== accountId)
      throw new BrokerError('STATIC_TUNNEL_HOLDS', `${endpoint} is the protocol-41 endpoint of another tunnel`);
  }

  /** Points the tunnel at `endpoint`: 'nochg' when it is there already (and live), else the store, then the
   *  data plane (the live entry moves, keeping its counters; or it becomes live), and 'good'. When the data
   *  plane refuses, the stored endpoint goes back to what it was. Audited (`static.endpoint`, with `via`:
   *  'api', 'ui' or 'nic'). `counted`: the account holder's change, counted against changesPerHour (not an
   *  operator's; a 'nochg' is no change). One change of an account's tunnel at a time (serial): `st` may be stale, the
   *  settings are read again inside. */
  async setEndpoint(
    actor: string,
    st: StaticTunnel,
    endpoint: string,
    via: string,
    opts: { counted?: boolean } = {},
  ): Promise<'good' | 'nochg'> {
    this.checkEndpoint(st.accountId, endpoint);
    return this.serial(st.accountId, async () => {
      const cur = await this.of(st.accountId);
      if (!cur || cur.id !== st.id) throw new BrokerError('STORE_NOT_FOUND', `${st.username} has no static tunnel`);
      this.checkEndpoint(cur.accountId, endpoint);
      const live = this.liveOf(cur.accountId);
      const account = await this.deps.store.getAccount(cur.accountId);
      const enabled = account !== undefined && !account.disabled;
      if (cur.endpoint === endpoint && (live?.clientIpv4 === endpoint || !enabled)) return 'nochg';
      // nothing written while a block holds: the router's client tries again later, and gets through after it
      if (enabled && !live) this.refuseIfBlocked(cur.accountId, cur.username);
      if (opts.counted && cur.endpoint !== endpoint) this.countChange(cur, via);
      const { store, clock } = this.deps;
      if (cur.endpoint !== endpoint) await store.updateStaticTunnel(cur.id, { endpoint }, clock.now());
      try {
        // the same endpoint but not live (an operator killed it): the update makes it live again
        if (live) await this.deps.tunnels.moveEndpoint(live.id, endpoint);
        else if (enabled) await this.activate({ ...cur, endpoint });
      } catch (err) {
        if (cur.endpoint !== endpoint)
          await store.updateStaticTunnel(cur.id, { endpoint: cur.endpoint }, clock.now()).catch(() => {});
        throw err;
      }
      if (cur.endpoint !== endpoint)
        await this.audit(actor, 'static.endpoint', cur.username, {
          hostname: cur.hostname,
          from: cur.endpoint,
          to: endpoint,
          via,
        });
      this.deps.log.info(
        { account: cur.username, hostname: cur.hostname, from: cur.endpoint, to: endpoint, via },
        'static tunnel endpoint set',
      );
      return 'good';
    });
  }

  /** Runs `fn` after every earlier operation on the account's static tunnel has settled, so that two changes
   *  never interleave between the store and the data plane. The map holds only accounts with work queued. */
  private serial<T>(accountId: number, fn: () => Promise<T>): Promise<T> {
    const run = (this.queues.get(accountId) ?? Promise.resolve()).then(fn);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.queues.set(accountId, tail);
    void tail.then(() => {
      if (this.queues.get(accountId) === tail) this.queues.delete(accountId);
    });
    return run;
  }

  /** A new update key, shown once: the store keeps its SHA-256 only; the old key stops working. */
  async newUpdateKey(actor: string, st: StaticTunnel, opts: { counted?: boolean } = {}): Promise<string> {
    if (opts.counted) this.countChange(st, 'key');
    const key = `${UPDATE_KEY_PREFIX}${randomBytes(24).toString('base64url')}`;
    await this.deps.store.updateStaticTunnel(st.id, { updateKeyHash: hashUpdateKey(key) }, this.deps.clock.now());
    await this.audit(actor, 'static.key', st.username, { hostname: st.hostname });
    return key;
  }

  /** Ends the live tunnel (reason 'deleted') and deletes the settings; the account keeps its addresses. */
  remove(actor: string, st: StaticTunnel): Promise<void> {
    return this.serial(st.accountId, async () => {
      const live = this.liveOf(st.accountId);
      if (live) await this.deps.tunnels.end(live.id, 'deleted');
      await this.deps.store.deleteStaticTunnel(st.id);
      await this.audit(actor, 'static.delete', st.username, { hostname: st.hostname });
    });
  }

  /** At a start, after the registry restored the live rows: every static tunnel that should be live and is
   *  not (killed, or its account enabled again by another process) becomes live, and one live at another
   *  address than its settings say moves there. One that cannot is logged and skipped. Returns how many it
   *  made live or moved. */
  async restore(): Promise<number> {
    let n = 0;
    const active = await this.deps.store.activeStaticTunnels();
    if (this.clustered) {
      if (active.length)
        this.deps.log.warn(
          { tunnels: active.length },
          'static 6in4 tunnels are not carried by the nodes of a cluster: run them on a single-node broker',
        );
      return 0;
    }
    for (const st of active) {
      const live = this.liveOf(st.accountId);
      if (live?.clientIpv4 === st.endpoint) continue;
      try {
        // live at another address: a stop between the two writes of an endpoint change; the settings win
        if (live) await this.deps.tunnels.moveEndpoint(live.id, st.endpoint!);
        else await this.activate(st);
        n++;
      } catch (err) {
        this.deps.log.error({ err, account: st.username, hostname: st.hostname }, 'cannot restore static tunnel');
      }
    }
    return n;
  }

  /** The account was enabled: its static tunnel comes back if it has an endpoint (not while an operator's
   *  block holds: then at the first update after it). */
  accountEnabled(accountId: number): Promise<void> {
    if (this.clustered) return Promise.resolve();
    return this.serial(accountId, async () => {
      const st = await this.of(accountId);
      if (!st?.endpoint || this.liveOf(accountId)) return;
      if (this.deps.blocks.blockedUntil({ accountId }) !== null) {
        this.deps.log.info({ account: st.username }, 'static tunnel not restored: the account is blocked');
        return;
      }
      await this.activate(st);
    });
  }

  private refuseOnCluster(): void {
    if (this.clustered)
      throw new BrokerError(
        'STATIC_TUNNEL_CLUSTER',
        'static 6in4 tunnels are carried by single-node brokers only (this broker is a node of a cluster)',
      );
  }

  /** STATIC_TUNNEL_BLOCKED while an operator's kill-and-block holds the account (broker/blocks.ts). */
  private refuseIfBlocked(accountId: number, username: string): void {
    const until = this.deps.blocks.blockedUntil({ accountId });
    if (until === null) return;
    const left = Math.ceil((until - this.deps.clock.now()) / 1000);
    throw new BrokerError(
      'STATIC_TUNNEL_BLOCKED',
      `${username} is blocked by an operator for ${left} more seconds: the static tunnel stays down until then`,
    );
  }

  /** Makes the tunnel live at st.endpoint: the account's link block (and delegated prefix) and an 'offered'
   *  row in one transaction, then the registry's establish, which ends the account's other tunnels. */
  private async activate(st: StaticTunnel): Promise<TunnelRecord> {
    this.refuseOnCluster();
    const endpoint = st.endpoint!;
    this.checkEndpoint(st.accountId, endpoint);
    this.refuseIfBlocked(st.accountId, st.username);
    const { store, pools, config } = this.deps;
    const owner = { accountId: st.accountId };
    const serverIpv4 = serverIpv4From(config, undefined) ?? (await this.deps.localAddressToward(endpoint));
    const prefixLen = st.delegatePrefix ? await this.delegatedLength(st.accountId) : undefined;
    const record = await store.batch(async (tx) => {
      const link = await tx.allocate({
        pool: 'link',
        poolPrefix: pools.link,
        prefixLen: pools.linkLeaseLen,
        owner,
      });
      const delegated =
        prefixLen === undefined
          ? undefined
          : await tx.allocate({ pool: 'delegation', poolPrefix: pools.delegation, prefixLen, owner });
      return tx.createTunnel(
        {
          accountId: st.accountId,
          leaseId: null,
          type: 'v6v4',
          transport: 'static',
          clientIpv4: endpoint,
          clientPort: 0,
          serverIpv4,
          ...linkAddresses(link.prefix),
          prefix: delegated?.prefix ?? null,
          prefixLen: delegated?.prefixLen ?? null,
          keepaliveInterval: 0,
          lifetimeS: 0,
        },
        this.deps.clock.now(),
      );
    });
    try {
      return await this.deps.tunnels.establish({ ...record, username: st.username }, { replaceAccount: true });
    } catch (err) {
      await this.deps.tunnels.endOffer(record, 'not_accepted').catch(() => {});
      throw isBrokerError(err) ? err : new BrokerError('INTERNAL', 'static tunnel activation failed', { cause: err });
    }
  }

  /** The length of the account's delegated prefix: the one it holds, else the configured default within its
   *  limits. */
  private async delegatedLength(accountId: number): Promise<number> {
    const held = await this.deps.store.findAllocation(accountId, 'delegation');
    if (held) return held.prefixLen;
    const account = await this.deps.store.getAccount(accountId);
    const b = this.deps.config.pools.prefixLen;
    const min = Math.max(b.min, account?.limits.minPrefixLen ?? 0);
    const max = Math.min(b.max, account?.limits.maxPrefixLen ?? 128);
    return Math.min(max, Math.max(min, b.default));
  }
}
