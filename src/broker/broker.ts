/** @module broker/broker: assembles the broker's parts and gives the front ends one handle on them.
 *
 *    service.ts       answers a session's questions (credentials, offers, accept, delete, info)
 *    offer-policy.ts  the offer rules, pure
 *    tunnels.ts       the live tunnels: the only caller of the data plane, the only counter accountant
 *    expiry.ts        the periodic sweep: idle and lifetime ends, counters persisted
 *    audit-follow.ts  other processes' kills, disables and deletes reach the data plane
 *    tunnel-admin.ts  operators' views and kills; accounts.ts the account operations
 *
 *  The transports feed `handler` (transport/answer.ts), which asks the service and feeds its answers back into
 *  the session: nothing here touches a session or a socket. */

import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { enabledMechanisms } from '../config/schema.js';
import type { DataPlane } from '../dataplane/types.js';
import { ServerSession, type ServerSessionOptions } from '../protocol/server/session.js';
import type { TspVersion } from '../protocol/constants.js';
import type { EndReason, NodeRecord, Store, TunnelRecord } from '../store/types.js';
import { AnsweringHandler } from '../transport/answer.js';
import type { LiveTunnelControl } from './accounts.js';
import { AnonymousHoldings } from './anonymous.js';
import { AuditFollower } from './audit-follow.js';
import { Authenticator } from './authenticate.js';
import { TunnelBlocks } from './blocks.js';
import { Sweeper } from './expiry.js';
import type { Pools } from './pools.js';
import { ReverseDns } from './reverse-dns.js';
import { BrokerService } from './service.js';
import type { RedirectDecision } from '../protocol/redirect.js';
import { StaticTunnels } from './static-tunnels.js';
import { TunnelAdmin } from './tunnel-admin.js';
import { TunnelRegistry } from './tunnels.js';
import { newNonce } from './nonce.js';

export type { SessionOutcome } from './service.js';

export interface BrokerDeps {
  config: Config;
  store: Store;
  dataplane: DataPlane;
  clock: Clock;
  log: Logger;
  pools: Pools;
  /** Local IPv4 the kernel routes toward a peer (for offers when listening on 0.0.0.0). */
  localAddressToward: (peer: string) => Promise<string>;
  /** DIGEST nonce source; tests pin it. Default: 64 random bits in hex. */
  newNonce?: () => string;
  /** This broker is node `node` of several sharing the store (cluster/node.ts): it restores only its own
   *  tunnels (after adopting those that name no node and were offered from one of `nodeAddresses`) and ends
   *  an account's tunnels on other nodes. */
  node?: string;
  nodeAddresses?: readonly string[];
}

/** What the front ends read of this node's cluster (cluster/cluster.ts sets it). */
export interface ClusterView {
  readonly name: string;
  readonly draining: boolean;
  nodes(): (NodeRecord & { alive: boolean })[];
  messagesConnected(): boolean;
}

export class Broker implements LiveTunnelControl {
  readonly tunnels: TunnelRegistry;
  readonly service: BrokerService;
  /** What the transports feed. */
  readonly handler: AnsweringHandler;
  /** Accounts and anonymous sources an operator blocked when killing their tunnel (in memory, broker/blocks.ts). */
  readonly blocks: TunnelBlocks;
  readonly admin: TunnelAdmin;
  /** Static 6in4 tunnels (broker/static-tunnels.ts). */
  readonly statics: StaticTunnels;
  /** Reverse-DNS delegation of accounts' prefixes (config reverseDns; off when null). */
  readonly reverseDns: ReverseDns;
  /** Where new sessions go instead of an offer here (cluster/node.ts ClusterNode.redirect), once a cluster
   *  node runs. */
  redirectHook: ((returning: boolean, family: 4 | 6) => RedirectDecision | undefined) | undefined;
  /** This node's view of the cluster, once a cluster node runs (metrics, the web UI). */
  cluster: ClusterView | undefined;
  private readonly follower: AuditFollower;
  private readonly sweeper: Sweeper;
  private following: Promise<void> | undefined;
  private followAgain = false;
  /** Sweeps in flight (so close() can wait for them). */
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(private readonly deps: BrokerDeps) {
    const { config, store, clock, log } = deps;
    const anonymous = new AnonymousHoldings();
    this.reverseDns = new ReverseDns({ config: config.reverseDns, store, clock, log });
    this.blocks = new TunnelBlocks(clock);
    this.tunnels = new TunnelRegistry({
      dataplane: deps.dataplane,
      store,
      clock,
      log,
      anonymous,
      idle: config.tunnels,
      ...(deps.node !== undefined ? { node: deps.node } : {}),
    });
    this.service = new BrokerService({
      config,
      store,
      tunnels: this.tunnels,
      anonymous,
      blocks: this.blocks,
      auth: new Authenticator(store, config.auth, clock),
      pools: deps.pools,
      reverseDns: this.reverseDns,
      clock,
      log,
      localAddressToward: deps.localAddressToward,
      redirect: (returning, family) => this.redirectHook?.(returning, family),
    });
    const listenerFailed = (err: unknown, event: string | number | symbol) =>
      log.warn({ err, event: String(event) }, 'an event listener failed');
    this.tunnels.events.onListenerError = listenerFailed;
    this.service.events.onListenerError = listenerFailed;
    this.handler = new AnsweringHandler(this.service, clock);
    this.statics = new StaticTunnels({
      config,
      store,
      tunnels: this.tunnels,
      pools: deps.pools,
      blocks: this.blocks,
      clock,
      log,
      localAddressToward: deps.localAddressToward,
    });
    this.admin = new TunnelAdmin({
      store,
      tunnels: this.tunnels,
      blocks: this.blocks,
      clock,
      log,
      clustered: deps.node !== undefined,
    });
    this.follower = new AuditFollower(store, this.tunnels, (id) => this.statics.accountEnabled(id));
    this.sweeper = new Sweeper({ tunnels: this.tunnels, clock, config, also: () => this.followAudit() });
  }

  /** What CAPABILITY lists over IPv4: it depends on the configuration alone (a VERSION is answered without a
   *  session). */
  get capabilities(): Pick<ServerSessionOptions, 'tunnelTypes' | 'mechanisms'> {
    return this.capabilitiesFor(4);
  }

  /** What CAPABILITY lists to a client of this family: over IPv6 only v4v6 can be had, over IPv4 all but v4v6
   *  (offer-policy.ts chooseType), so a client never picks a type that its own connection rules out. */
  capabilitiesFor(family: 4 | 6): Pick<ServerSessionOptions, 'tunnelTypes' | 'mechanisms'> {
    const types = this.deps.config.tunnels.types.filter((t) => (t === 'v4v6') === (family === 6));
    return { tunnelTypes: types, mechanisms: enabledMechanisms(this.deps.config) };
  }

  /** Builds a server session with this configuration's capabilities for the client's address family. */
  newSession = (transport: 'udp' | 'tcp', nowMs: number, afterVersion?: TspVersion, family: 4 | 6 = 4) => {
    const cfg = this.deps.config;
    return new ServerSession({
      transport,
      ...this.capabilitiesFor(family),
      realm: cfg.auth.realm,
      quirk200: cfg.auth.digestMd5Quirk200,
      negotiationTimeoutMs: cfg.limits.negotiationTimeoutS * 1000,
      newNonce: this.deps.newNonce ?? newNonce,
      nowMs,
      ...(afterVersion ? { afterVersion } : {}),
    });
  };

  /** Puts the tunnels the store says are live back into the data plane (a restart, even kill -9, does not
   *  drop clients that keep sending), ends offers that were never accepted, and starts the sweep. */
  async start(): Promise<void> {
    if (this.deps.node !== undefined) {
      const adopted = await this.deps.store.adoptTunnels(this.deps.nodeAddresses ?? []);
      if (adopted)
        this.deps.log.info({ tunnels: adopted, node: this.deps.node }, 'adopted live tunnels that named no node');
    }
    const n = await this.tunnels.restore();
    if (n) this.deps.log.info({ tunnels: n }, 'restored live tunnels into the data plane');
    const s = await this.statics.restore();
    if (s) this.deps.log.info({ tunnels: s }, 'static tunnels made live again');
    await this.follower.start();
    this.sweeper.start((p) => this.track(p));
    this.reverseDns.start();
  }

  /** Stops the sweep and waits for work in flight. Live tunnels stay 'established' in the store, so the next
   *  start restores them. */
  async close(): Promise<void> {
    this.sweeper.stop();
    await this.handler.drain();
    await this.reverseDns.stop();
    await Promise.allSettled([...this.inflight]);
    await this.tunnels.persistCounters().catch(() => {});
  }

  /** Reads the audit trail now for other processes' kills, disables and deletes (a cluster message said there
   *  are some); the sweep also does, every few seconds. Runs one at a time: calls during a run join it and
   *  start one more run after it. */
  followAudit(): Promise<void> {
    if (this.following) {
      this.followAgain = true;
      return this.following;
    }
    const run = async () => {
      do {
        this.followAgain = false;
        await this.follower.follow();
      } while (this.followAgain);
    };
    const p = run()
      .catch((err: unknown) => this.deps.log.error({ err }, 'following the audit trail failed'))
      .finally(() => (this.following = undefined));
    this.following = p;
    this.track(p);
    return p;
  }

  /** One sweep now (tests; the timer runs it every few seconds). */
  sweep(): Promise<void> {
    return this.sweeper.sweep();
  }

  /** The ids of the live tunnels (no records built). */
  liveTunnelIds(): number[] {
    return this.tunnels.ids();
  }

  liveTunnels(): TunnelRecord[] {
    return this.tunnels.list();
  }

  killTunnel(id: number, actor: string, opts: { blockMinutes?: number } = {}): Promise<void> {
    return this.admin.kill(id, actor, opts);
  }

  async endAccountTunnels(accountId: number, reason: EndReason): Promise<number> {
    const ids = this.tunnels.ofAccount(accountId).map((t) => t.id);
    await this.tunnels.endAll(ids.map((id) => [id, reason]));
    return ids.length;
  }

  accountEnabled(accountId: number): Promise<void> {
    return this.statics.accountEnabled(accountId);
  }

  /** Withdraws the deleted account's reverse-DNS delegation now rather than at the next retry pass. */
  accountDeleted(): void {
    void this.reverseDns.reconcile().catch((err: unknown) => this.deps.log.error({ err }, 'reverse DNS pass failed'));
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch((err: unknown) => this.deps.log.error({ err }, 'sweep failed'));
    this.inflight.add(q);
    void q.finally(() => this.inflight.delete(q));
  }
}
