/** @module admin/metrics: the Prometheus registry served at /metrics. One Registry per admin server (never the
 *  global one), so tests can run several. No per-tunnel or per-account labels: label values come from small
 *  fixed sets (transport, mechanism, result, tunnel type, drop reason, pool), keeping cardinality bounded.
 *
 *    tsp_sessions_total{transport,mechanism,result}  counter  from Broker 'session' events
 *    tsp_auth_failures_total{mechanism}              counter  from Broker 'authFailure' events
 *    tsp_tunnels_live{type}                          gauge    Broker.liveTunnels() at scrape time
 *    tsp_control_sessions{state}                     gauge    sessions held by the transports (total, half_open)
 *    tsp_dataplane_packets_total{direction}          counter  TrafficMeter (rx = from clients, tx = to clients)
 *    tsp_dataplane_bytes_total{direction}            counter  TrafficMeter
 *    tsp_dataplane_drops_total{reason}               counter  DataPlane.readDrops()
 *    tsp_pool_allocated_blocks{pool}                 gauge    Store.poolUsage(), cached POOL_CACHE_MS
 *    nodejs_eventloop_lag_seconds and the other prom-client default process metrics */

import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Broker, SessionOutcome } from '../broker/broker.js';
import type { DataPlane, DropReason } from '../dataplane/types.js';
import type { PoolUsage, Store } from '../store/types.js';
import type { SessionCounts } from '../transport/session-host.js';
import type { Clock } from '../clock.js';
import type { TrafficMeter } from './traffic.js';

/** poolUsage() counts rows: cheap, but a scrape every second from several scrapers should not hit the store
 *  each time. The cache is also dropped whenever a tunnel is established or ends. */
export const POOL_CACHE_MS = 5000;
const TUNNEL_TYPES = ['v6v4', 'v6udpv4'] as const;

export interface MetricsDeps {
  broker: Broker;
  dataplane: DataPlane;
  store: Store;
  traffic: TrafficMeter;
  clock: Clock;
  sessionCounts?: () => SessionCounts;
}

export class AdminMetrics {
  readonly registry = new Registry();
  private readonly detach: () => void;
  private poolCache: { at: number; usage: PoolUsage[] } | undefined;

  constructor(private readonly deps: MetricsDeps) {
    const registers = [this.registry];
    const sessions = new Counter({
      name: 'tsp_sessions_total',
      help: 'TSP sessions that ended or established a tunnel, by transport, authentication mechanism and result',
      labelNames: ['transport', 'mechanism', 'result'],
      registers,
    });
    const authFailures = new Counter({
      name: 'tsp_auth_failures_total',
      help: 'Failed TSP authentications by mechanism',
      labelNames: ['mechanism'],
      registers,
    });
    // allocations change when a tunnel is set up or ends: the next scrape reads them again
    const onSession = (o: SessionOutcome) => {
      sessions.inc({ transport: o.transport, mechanism: o.mechanism, result: o.result });
      if (o.result === 'established') this.poolCache = undefined;
    };
    const onTunnelEnded = () => (this.poolCache = undefined);
    const onAuthFailure = (e: { mechanism?: string }) => authFailures.inc({ mechanism: e.mechanism ?? 'unknown' });
    deps.broker.on('session', onSession);
    deps.broker.on('authFailure', onAuthFailure);
    deps.broker.on('tunnelEnded', onTunnelEnded);
    this.detach = () => {
      deps.broker.off('tunnelEnded', onTunnelEnded);
      deps.broker.off('session', onSession);
      deps.broker.off('authFailure', onAuthFailure);
    };

    new Gauge({
      name: 'tsp_tunnels_live',
      help: 'Tunnels live in the data plane, by type',
      labelNames: ['type'],
      registers,
      collect() {
        const counts = new Map<string, number>(TUNNEL_TYPES.map((t) => [t, 0]));
        for (const t of deps.broker.liveTunnels()) counts.set(t.type, (counts.get(t.type) ?? 0) + 1);
        for (const [type, n] of counts) this.set({ type }, n);
      },
    });
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
        const drops = deps.dataplane.readDrops();
        this.reset();
        for (const reason of Object.keys(drops) as DropReason[]) this.inc({ reason }, drops[reason]);
      },
    });
    const poolUsage = () => this.poolUsage();
    new Gauge({
      name: 'tsp_pool_allocated_blocks',
      help: 'Blocks allocated from each address pool (link: one /64 per owner; delegation: router prefixes)',
      labelNames: ['pool'],
      registers,
      async collect() {
        const usage = await poolUsage();
        for (const pool of ['link', 'delegation'] as const)
          this.set({ pool }, usage.find((u) => u.pool === pool)?.blocks ?? 0);
      },
    });
    collectDefaultMetrics({ register: this.registry });
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
