/** @module cluster/node: this broker as one node of several sharing a PostgreSQL store (docs/cluster.md).
 *
 *  It registers the node's row at start and heartbeats every cluster.heartbeatS (its live tunnel count), and
 *  each heartbeat reads the other nodes' rows: that is all it knows of them, a few rows every few seconds,
 *  whatever the number of tunnels. From them it decides, for a new session, whether to offer here or to
 *  redirect (TSP 1200) to live, less-loaded nodes:
 *    - draining (tsp-broker node drain): every new session goes elsewhere; with no live node to send it to,
 *      it is refused with 530 (busy), since a drained node must not take new tunnels;
 *    - over cluster.capacity: new sessions go to a node with room, fewest tunnels for its capacity first; a
 *      client whose account already has a tunnel here is not moved (its new tunnel replaces the old one), and
 *      with no node with room the session is served here (capacity is a balance, not a hard limit).
 *  A node is alive while its last heartbeat is within cluster.deadAfterS. Nodes' clocks are assumed to agree
 *  to well within that (NTP). */

import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import type { Clock, Timer } from '../clock.js';
import type { ClusterConfig } from '../config/cluster.js';
import { BrokerError } from '../errors.js';
import type { BrokerAddress, RedirectDecision } from '../protocol/redirect.js';
import type { NodeRecord, Store } from '../store/types.js';
import { nodeAlive } from '../store/node-types.js';

export type ClusterNodeStore = Pick<Store, 'nodeId' | 'registerNode' | 'heartbeatNode' | 'listNodes' | 'leaveNode'>;

export interface ClusterNodeDeps {
  store: ClusterNodeStore;
  config: ClusterConfig;
  /** The addresses this node's clients reach it on (what other nodes' redirects list), or null. */
  addresses: { ipv4: string | null; ipv6: string | null };
  /** This node's live tunnels now. */
  liveTunnels: () => number;
  clock: Clock;
  log: Logger;
}

/** A node's load as a redirect compares it: its tunnels for its capacity (tunnels alone without one). */
function load(n: NodeRecord): number {
  return n.capacity ? n.tunnels / n.capacity : n.tunnels;
}

export class ClusterNode {
  private self: NodeRecord | undefined;
  private others: NodeRecord[] = [];
  private timer: Timer | undefined;
  private beating: Promise<void> | undefined;
  private again = false;
  /** This process's claim on the node name (store/node-types.ts registerNode). */
  private readonly instance = randomUUID();

  constructor(private readonly deps: ClusterNodeDeps) {}

  private register(): Promise<NodeRecord> {
    const { store, config, addresses, clock } = this.deps;
    const now = clock.now();
    return store.registerNode({ ...addresses, capacity: config.capacity }, now, {
      instance: this.instance,
      aliveSince: now - config.deadAfterS * 1000,
    });
  }

  get name(): string {
    return this.deps.store.nodeId;
  }

  get draining(): boolean {
    return this.self?.draining ?? false;
  }

  /** Registers the node and reads the others; then heartbeats until stop(). */
  async start(): Promise<void> {
    const { config, addresses, clock } = this.deps;
    this.self = await this.register();
    await this.refresh();
    this.deps.log.info(
      { node: this.name, ...addresses, draining: this.self.draining, nodes: this.others.length + 1 },
      'cluster node registered',
    );
    if (this.self.draining) this.deps.log.warn({ node: this.name }, 'this node is draining: new sessions go elsewhere');
    this.timer = clock.setInterval(() => void this.beat(), config.heartbeatS * 1000, { unref: true });
  }

  /** Stops heartbeating; with `leave`, marks the row stopped (other nodes stop redirecting here at once). */
  async stop(leave = false): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    await this.beating;
    if (leave)
      await this.deps.store
        .leaveNode(this.instance)
        .catch((err: unknown) => this.deps.log.warn({ err }, 'could not mark this node stopped'));
  }

  /** One heartbeat now (the timer's; also when another node tells us our row changed). Never rejects: a
   *  failed heartbeat is logged and the next one tries again. Calls that come while one runs coalesce. */
  beat(): Promise<void> {
    if (this.beating) {
      this.again = true;
      return this.beating;
    }
    this.beating = (async () => {
      do {
        this.again = false;
        try {
          await this.beatOnce();
        } catch (err) {
          this.deps.log.error({ err, node: this.name }, 'cluster heartbeat failed');
        }
      } while (this.again);
    })().finally(() => (this.beating = undefined));
    return this.beating;
  }

  /** Every node's row as of the last heartbeat, this one's included, with whether it is alive now. */
  nodes(): (NodeRecord & { alive: boolean })[] {
    const now = this.deps.clock.now();
    return [...(this.self ? [this.self] : []), ...this.others]
      .map((n) => ({ ...n, alive: this.alive(n, now) }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Where a new session goes instead of an offer here, if anywhere (see the module comment). */
  redirect(returning: boolean, family: 4 | 6 = 4): RedirectDecision | undefined {
    if (!this.self) return undefined;
    const draining = this.self.draining;
    const cap = this.deps.config.capacity;
    if (!draining && (returning || cap === null || this.deps.liveTunnels() < cap)) return undefined;
    const brokers = this.targets(family);
    if (brokers.length > 0) return { redirect: brokers };
    if (draining)
      return { error: new BrokerError('TSP_BUSY', `node ${this.name} is draining and no other node is available`) };
    return undefined;
  }

  /** Live, undrained nodes with room, least loaded first, as broker addresses of the client's family (its
   *  connection's: a client over IPv4 cannot use an IPv6 entry), at most cluster.redirectMax. */
  private targets(family: 4 | 6): BrokerAddress[] {
    const now = this.deps.clock.now();
    const out: BrokerAddress[] = [];
    const candidates = this.others
      .filter((n) => this.alive(n, now) && !n.draining && (n.capacity === null || n.tunnels < n.capacity))
      .sort((a, b) => load(a) - load(b) || a.name.localeCompare(b.name));
    const own = new Set([this.self?.ipv4, this.self?.ipv6]);
    for (const n of candidates) {
      if (own.has(n.ipv4 ?? undefined) || own.has(n.ipv6 ?? undefined)) continue; // a shared address: ourselves
      if (family === 4 && n.ipv4) out.push({ type: 'ipv4', address: n.ipv4 });
      if (family === 6 && n.ipv6) out.push({ type: 'ipv6', address: n.ipv6 });
    }
    return out.slice(0, this.deps.config.redirectMax);
  }

  private alive(n: NodeRecord, now: number): boolean {
    return nodeAlive(n, this.deps.config.deadAfterS, now);
  }

  private async beatOnce(): Promise<void> {
    const { store, clock, log } = this.deps;
    const was = this.self;
    let row = await store.heartbeatNode(this.deps.liveTunnels(), clock.now(), this.instance);
    if (!row) {
      log.warn({ node: this.name }, "this node's row was gone or taken (forgotten by an operator?): registering again");
      row = await this.register();
    }
    this.self = row;
    if (was && was.draining !== row.draining)
      log.warn(
        { node: this.name },
        row.draining ? 'this node is draining: new sessions go elsewhere' : 'this node takes new sessions again',
      );
    await this.refresh();
  }

  /** Reads the other nodes' rows and logs those that died or came back since the last read. */
  private async refresh(): Promise<void> {
    const now = this.deps.clock.now();
    const before = new Map(this.others.map((n) => [n.name, this.alive(n, now)]));
    this.others = (await this.deps.store.listNodes()).filter((n) => n.name !== this.name);
    for (const n of this.others) {
      const alive = this.alive(n, now);
      const was = before.get(n.name);
      if (was !== undefined && was !== alive)
        this.deps.log[alive ? 'info' : 'warn'](
          { node: n.name },
          alive ? 'cluster node is back' : 'cluster node is silent: dead',
        );
    }
  }
}
