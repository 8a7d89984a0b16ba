/** @module admin/metrics: the Prometheus registry served at /metrics. One Registry per admin server (never the
 *  global one), so tests can run several. No per-tunnel or per-account labels: every label value is checked
 *  against a fixed set here (transport, mechanism, result, tunnel type, drop reason, pool) and anything else
 *  becomes `other`, so what a client writes on the wire (a mechanism name, say) can never add a series. Every
 *  family is pre-initialised at zero with its known label values, so a fresh broker already shows them all.
 *
 *    tsp_sessions_total{transport,mechanism,result}  counter  from the broker service's 'session' events
 *    tsp_auth_failures_total{mechanism}              counter  from 'authFailure' events
 *    tsp_tunnels_live{type}                          gauge    TunnelAdmin.liveByType() at scrape time
 *    tsp_control_sessions{state}                     gauge    sessions held by the transports (total, half_open)
 *    tsp_dataplane_packets_total{direction}          counter  TrafficMeter (rx = from clients, tx = to clients)
 *    tsp_dataplane_bytes_total{direction}            counter  TrafficMeter
 *    tsp_dataplane_drops_total{reason}               counter  TunnelRegistry.drops()
 *    tsp_pool_allocated_blocks{pool}                 gauge    Store.poolUsage(), cached POOL_CACHE_MS
 *    tsp_store_writes_total{kind}                    counter  Store.writeStats(): kind write | commit | provisional (SQLite)
 *    tsp_store_checkpoints_total{kind}               counter  Store.writeStats().checkpoints: pass | held | error | worker_failed
 *    tsp_store_wal_pages                             gauge    the SQLite WAL's length at the last commit
 *    tsp_reverse_dns_updates_total{result}           counter  RFC 2136 updates sent for reverse-DNS delegation: ok |
 *                                                             failed (Broker.reverseDns.updates)
 *    tsp_control_events_total{event}                 counter  what the TSP transports did besides running sessions:
 *                                                             session_crash, half_open_eviction, busy_refusal,
 *                                                             version_stateless, reply_unsent (SessionCounts.control)
 *    tsp_udp_replies_withheld_total{reason}          counter  UDP replies not sent: amplification budget or resend
 *                                                             limit ('replyWithheld' events)
 *    tsp_audit_suppressed_total                      counter  audit rows of unauthenticated events not written
 *                                                             (over the per-source budget, admin/audit-budget.ts)
 *    tsp_cluster_*                                   gauges   the cluster as this node sees it (admin/cluster-metrics.ts)
 *    tsp_routes_exported                             gauge    prefixes held as kernel routes for the routing daemon
 *                                                             (cluster/routes.ts; present only with routes.table)
 *    tsp_route_command_failures_total                counter  route commands (and ip runs) that failed, exporter
 *                                                             restarts included
 *    nodejs_eventloop_lag_seconds and the other prom-client default process metrics */

import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Broker, SessionOutcome } from '../broker/broker.js';
import { EMPTY_DROPS, type DropReason } from '../dataplane/types.js';
import { ERRORS } from '../errors.js';
import type { AllocationStore, PoolUsage, Store } from '../store/types.js';
import type { SessionCounts } from '../transport/session-host.js';
import type { Clock } from '../clock.js';
import { TUNNEL_TYPES } from '../tunnel-model.js';
import type { TrafficMeter } from './traffic.js';
import { registerClusterMetrics } from './cluster-metrics.js';

/** poolUsage() counts rows: cheap, but a scrape every second from several scrapers should not hit the store
 *  each time. The cache is also dropped whenever a tunnel is established or ends. */
export const POOL_CACHE_MS = 5000;
const POOLS = ['link', 'delegation', 'ipv4'] as const;

/** The value every label takes when what it was given is not in its fixed set. */
export const OTHER = 'other';
export const TRANSPORTS = ['udp', 'tcp'] as const;
/** 'none': the session ended before choosing one. A name a client invents becomes 'other'. */
export const MECHANISMS = ['ANONYMOUS', 'PLAIN', 'DIGEST-MD5', 'none'] as const;
/** Session results the broker reports, besides `error_<status>` for the TSP statuses in the error registry. */
export const RESULTS = ['established', 'auth_failed', 'timeout', 'closed', 'version_refused', 'redirected'] as const;
const ERROR_RESULTS = [
  ...new Set(Object.values(ERRORS).flatMap((e) => (e.tsp === null ? [] : [`error_${e.tsp}`]))),
].sort();
const DROP_REASONS = Object.keys(EMPTY_DROPS) as DropReason[];
const WITHHELD_REASONS = ['amplification', 'resends'] as const;

/** `value` when it is one of `allowed`, else OTHER. */
export function bounded(value: string | undefined | null, allowed: readonly string[]): string {
  return value !== undefined && value !== null && allowed.includes(value) ? value : OTHER;
}

/** Route export's counts (cluster/routes.ts RouteExporter.stats), read at scrape time. */
export interface RouteExportReading {
  readonly stats: { exported: number; failures: number };
}

export interface MetricsDeps {
  broker: Broker;
  store: AllocationStore & Pick<Store, 'writeStats'>;
  traffic: TrafficMeter;
  clock: Clock;
  sessionCounts?: () => SessionCounts;
  routeExport?: RouteExportReading;
}

export class AdminMetrics {
  readonly registry = new Registry();
  private detach: () => void;
  private poolCache: { at: number; usage: PoolUsage[] } | undefined;
  /** Incremented by the Authenticator for each audit row it did not write (admin/audit-budget.ts). */
  readonly auditSuppressed: Counter;

  constructor(private readonly deps: MetricsDeps) {
    const registers = [this.registry];
    const sessions = new Counter({
      name: 'tsp_sessions_total',
      help: 'TSP sessions that ended or established a tunnel, by transport, authentication mechanism and result',
      labelNames: ['transport', 'mechanism', 'result'],
      registers,
    });
    const mechanisms = [...MECHANISMS, OTHER];
    const results = [...RESULTS, ...ERROR_RESULTS];
    // the common outcomes at zero; error_<status> and 'other' series appear when they first happen
    for (const transport of TRANSPORTS)
      for (const mechanism of mechanisms)
        for (const result of RESULTS) sessions.inc({ transport, mechanism, result }, 0);
    const authFailures = new Counter({
      name: 'tsp_auth_failures_total',
      help: 'Failed TSP authentications by mechanism',
      labelNames: ['mechanism'],
      registers,
    });
    for (const mechanism of mechanisms) authFailures.inc({ mechanism }, 0);
    this.auditSuppressed = new Counter({
      name: 'tsp_audit_suppressed_total',
      help: 'Audit rows of unauthenticated events (failed or locked-out sign-ins) not written: over the per-source budget',
      registers,
    });
    // allocations change when a tunnel is set up or ends: the next scrape reads them again
    const onSession = (o: SessionOutcome) => {
      sessions.inc({
        transport: bounded(o.transport, TRANSPORTS),
        mechanism: bounded(o.mechanism, MECHANISMS),
        result: bounded(o.result, results),
      });
      if (o.result === 'established') this.poolCache = undefined;
    };
    const onTunnelEnded = () => (this.poolCache = undefined);
    const onAuthFailure = (e: { mechanism?: string }) =>
      authFailures.inc({ mechanism: bounded(e.mechanism, MECHANISMS) });
    const events = deps.broker.service.events;
    events.on('session', onSession);
    events.on('authFailure', onAuthFailure);
    deps.broker.tunnels.events.on('ended', onTunnelEnded);
    this.detach = () => {
      deps.broker.tunnels.events.off('ended', onTunnelEnded);
      events.off('session', onSession);
      events.off('authFailure', onAuthFailure);
    };

    registerClusterMetrics(this.registry, deps.broker);
    new Gauge({
      name: 'tsp_tunnels_live',
      help: 'Tunnels live in the data plane, by type',
      labelNames: ['type'],
      registers,
      collect() {
        const counts = deps.broker.admin.liveByType();
        for (const type of TUNNEL_TYPES) this.set({ type }, counts[type]);
      },
    });
    new Counter({
      name: 'tsp_control_events_total',
      help: 'What the TSP transports did besides running sessions: sessions closed because their processing failed, half-open sessions evicted to make room, connections refused busy, VERSION answered without a session, UDP replies not sent (the native data plane refused them while closing, or the broker was stopping)',
      labelNames: ['event'],
      registers,
      collect() {
        const c = deps.sessionCounts?.().control ?? {
          crashes: 0,
          evictions: 0,
          busy: 0,
          statelessVersion: 0,
          unsentReplies: 0,
        };
        this.reset();
        this.inc({ event: 'session_crash' }, c.crashes);
        this.inc({ event: 'half_open_eviction' }, c.evictions);
        this.inc({ event: 'busy_refusal' }, c.busy);
        this.inc({ event: 'version_stateless' }, c.statelessVersion);
        this.inc({ event: 'reply_unsent' }, c.unsentReplies);
      },
    });
    const withheld = new Counter({
      name: 'tsp_udp_replies_withheld_total',
      help: 'UDP replies not sent: over the anti-amplification budget (3x the bytes received before the peer proved it receives ours), or a cached reply resent too often',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of WITHHELD_REASONS) withheld.inc({ reason }, 0);
    const onWithheld = (e: { reason?: string }) => withheld.inc({ reason: bounded(e.reason, WITHHELD_REASONS) });
    events.on('replyWithheld', onWithheld);
    const detachSessions = this.detach;
    this.detach = () => {
      detachSessions();
      events.off('replyWithheld', onWithheld);
    };
    this.stateMetrics(registers);
    if (deps.routeExport) routeMetrics(deps.routeExport, registers);
    collectDefaultMetrics({ register: this.registry });
  }

  /** What is read at scrape time: sessions held, traffic, drops, pool usage. */
  private stateMetrics(registers: Registry[]): void {
    const deps = this.deps;
    new Gauge({
      name: 'tsp_control_sessions',
      help: 'TSP control sessions held by the transports (total, and half_open: not yet at an accepted tunnel)',
      labelNames: ['state'],
      registers,
      collect() {
        const c = deps.sessionCounts?.() ?? { total: 0, halfOpen: 0 };
        this.set({ state: 'total' }, c.total);
        this.set({ state: 'half_open' }, c.halfOpen);
      },
    });
    const traffic = deps.traffic;
    new Counter({
      name: 'tsp_dataplane_packets_total',
      help: 'Inner IPv6 packets carried by tunnels (rx: from clients, tx: to clients)',
      labelNames: ['direction'],
      registers,
      collect() {
        const t = traffic.update();
        this.reset();
        this.inc({ direction: 'rx' }, t.rxPackets);
        this.inc({ direction: 'tx' }, t.txPackets);
      },
    });
    new Counter({
      name: 'tsp_dataplane_bytes_total',
      help: 'Inner IPv6 bytes carried by tunnels (rx: from clients, tx: to clients)',
      labelNames: ['direction'],
      registers,
      collect() {
        const t = traffic.totals;
        this.reset();
        this.inc({ direction: 'rx' }, t.rxBytes);
        this.inc({ direction: 'tx' }, t.txBytes);
      },
    });
    new Counter({
      name: 'tsp_dataplane_drops_total',
      help: 'Packets the data plane dropped, by reason',
      labelNames: ['reason'],
      registers,
      collect() {
        const drops = deps.broker.tunnels.drops();
        this.reset();
        for (const reason of DROP_REASONS) this.inc({ reason }, 0);
        for (const [reason, n] of Object.entries(drops)) this.inc({ reason: bounded(reason, DROP_REASONS) }, n);
      },
    });
    const poolUsage = () => this.poolUsage();
    new Gauge({
      name: 'tsp_pool_allocated_blocks',
      help: 'Blocks allocated from each address pool (link: one per owner, a /64 or a /126 by pools.linkMode; delegation: router prefixes; ipv4: a /30 per v4v6 tunnel owner)',
      labelNames: ['pool'],
      registers,
      async collect() {
        const usage = await poolUsage();
        for (const pool of POOLS) this.set({ pool }, usage.find((u) => u.pool === pool)?.blocks ?? 0);
      },
    });
    new Counter({
      name: 'tsp_store_writes_total',
      help: 'Store write transactions, the database commits that carried them (SQLite groups the writes waiting at once into one commit and one fsync), and the writes acknowledged at their commit before the fsync (TSP offers; the accept that follows waits for it)',
      labelNames: ['kind'],
      registers,
      collect() {
        const w = deps.store.writeStats?.();
        this.reset();
        if (!w) return;
        this.inc({ kind: 'write' }, w.writes);
        this.inc({ kind: 'commit' }, w.commits);
        if (w.provisional !== undefined) this.inc({ kind: 'provisional' }, w.provisional);
      },
    });
    new Counter({
      name: 'tsp_store_checkpoints_total',
      help: "SQLite WAL checkpoints run on the store's worker thread (pass), those a write waited for because the WAL had grown long (held), those that failed with an error (error: the next pass tries again), and failures of that worker (worker_failed: the connection's own checkpoint then takes over)",
      labelNames: ['kind'],
      registers,
      collect() {
        const c = deps.store.writeStats?.()?.checkpoints;
        this.reset();
        this.inc({ kind: 'pass' }, c?.passes ?? 0);
        this.inc({ kind: 'held' }, c?.held ?? 0);
        this.inc({ kind: 'error' }, c?.errors ?? 0);
        this.inc({ kind: 'worker_failed' }, c?.failed ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tsp_store_wal_pages',
      help: "Length of the SQLite WAL's log in pages at the last commit (0 with none: PostgreSQL, in-memory); the -wal file itself keeps its largest size",
      registers,
      collect() {
        this.set(deps.store.writeStats?.()?.checkpoints?.walPages ?? 0);
      },
    });
    new Counter({
      name: 'tsp_reverse_dns_updates_total',
      help: 'Dynamic updates sent to the DNS server for reverse-DNS delegation, by outcome (failed ones are retried)',
      labelNames: ['result'],
      registers,
      collect() {
        const u = deps.broker.reverseDns.updates;
        this.reset();
        this.inc({ result: 'ok' }, u.ok);
        this.inc({ result: 'failed' }, u.failed);
      },
    });
  }

  /** Pool usage, from a cache at most POOL_CACHE_MS old. */
  async poolUsage(): Promise<PoolUsage[]> {
    const now = this.deps.clock.now();
    if (!this.poolCache || now - this.poolCache.at > POOL_CACHE_MS)
      this.poolCache = { at: now, usage: await this.deps.store.poolUsage() };
    return this.poolCache.usage;
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  close(): void {
    this.detach();
    this.registry.clear();
  }
}

/** Route export's gauge and counter, read from the exporter at scrape time. */
function routeMetrics(routes: RouteExportReading, registers: Registry[]): void {
  new Gauge({
    name: 'tsp_routes_exported',
    help: 'Prefixes of live tunnels held as kernel routes in routes.table for the routing daemon to announce',
    registers,
    collect() {
      this.set(routes.stats.exported);
    },
  });
  new Counter({
    name: 'tsp_route_command_failures_total',
    help: 'Route commands that failed (each logged, ten a minute at most), and runs of ip that could not do their work: a dead ip -batch child, a failed flush',
    registers,
    collect() {
      this.reset();
      this.inc(routes.stats.failures);
    },
  });
}
