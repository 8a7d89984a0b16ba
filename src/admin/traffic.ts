/** @module admin/traffic: process-lifetime traffic totals and a short history for the dashboard chart.
 *  The totals come from the tunnel registry (broker/tunnels.ts TrafficReading), the one counter accountant: it
 *  carries an ended tunnel's last counters over at its removal, so the totals only grow (what a Prometheus
 *  counter needs) and no traffic is lost between a read and a removal.
 *  Bounded in memory: one entry per live tunnel, HISTORY_SAMPLES samples in all, and TUNNEL_HISTORY_SAMPLES
 *  per live tunnel (dropped as soon as the tunnel leaves the data plane).
 *  With a store, the traffic of every PERSIST_EVERY_MS is also written as one row of traffic_samples (and the
 *  last partial interval on stop), so the dashboard's longer ranges survive a restart; the table is pruned to
 *  RETENTION_MS and RETENTION_ROWS at each write. */

import type { Clock, Timer } from '../clock.js';
import type { TrafficReading } from '../broker/tunnels.js';
import type { TrafficStore } from '../store/types.js';

/** How often the history is sampled: fine enough for a live chart, cheap (one readCounters call). */
export const SAMPLE_EVERY_MS = 5000;
/** 10 minutes of history at SAMPLE_EVERY_MS. */
export const HISTORY_SAMPLES = 120;
/** Per live tunnel: 10 minutes at SAMPLE_EVERY_MS (about 3 KiB a tunnel). */
export const TUNNEL_HISTORY_SAMPLES = 120;
/** Two stored rows a minute, so every minute of the 1-hour range has one even when sampling drifts. */
export const PERSIST_EVERY_MS = 30_000;
/** Stored rows older than this are deleted... */
export const RETENTION_MS = 8 * 24 * 3600_000;
/** ...and never more than this many are kept (8 days of rows, twice over for a second node or drift). */
export const RETENTION_ROWS = 8 * 2880 * 2;

import type { TrafficTotals } from '../broker/tunnels.js';

/** Where the meter reads traffic from (the broker's TunnelRegistry). */
export interface TrafficSource {
  traffic(): TrafficReading;
}

export interface TrafficSample {
  at: number;
  rxBytes: number;
  txBytes: number;
}

/** A live tunnel's traffic over its in-memory history (the top talkers). */
export interface TunnelTraffic {
  id: number;
  rxBytes: number;
  txBytes: number;
  spanMs: number;
}

export interface PersistOptions {
  store: TrafficStore;
  everyMs?: number;
  /** A failed write (the store is down): the interval's traffic is kept and written with the next one. */
  onError?: (err: unknown) => void;
}

export class TrafficMeter {
  readonly totals: TrafficTotals = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 };
  /** Each live tunnel's own byte counters at the last read. */
  private readonly lastSeen = new Map<number, { rxBytes: number; txBytes: number }>();
  private readonly history: TrafficSample[] = [];
  private readonly perTunnel = new Map<number, TrafficSample[]>();
  private timer: Timer | undefined;
  /** Totals when the last row was written, and when. */
  private persisted: TrafficTotals = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 };
  private persistedAt: number;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly source: TrafficSource,
    private readonly clock: Clock,
    private readonly persist?: PersistOptions,
  ) {
    this.persistedAt = clock.now();
  }

  /** Reads the registry's process-lifetime totals and each live tunnel's counters. */
  update(): TrafficTotals {
    const r = this.source.traffic();
    Object.assign(this.totals, r.totals);
    this.lastSeen.clear();
    for (const t of r.tunnels) this.lastSeen.set(t.id, { rxBytes: t.rxBytes, txBytes: t.txBytes });
    return this.totals;
  }

  /** Updates the totals and appends a history sample, overall and per live tunnel; writes a stored row when
   *  PERSIST_EVERY_MS has passed. */
  sample(): void {
    this.update();
    const at = this.clock.now();
    const previousAt = this.history[this.history.length - 1]?.at;
    this.history.push({ at, rxBytes: this.totals.rxBytes, txBytes: this.totals.txBytes });
    if (this.history.length > HISTORY_SAMPLES) this.history.splice(0, this.history.length - HISTORY_SAMPLES);
    for (const id of this.perTunnel.keys()) if (!this.lastSeen.has(id)) this.perTunnel.delete(id);
    for (const [id, c] of this.lastSeen) {
      let h = this.perTunnel.get(id);
      // a data plane entry starts at zero: a tunnel new since the last sample gets that as its first point
      if (!h)
        this.perTunnel.set(id, (h = previousAt === undefined ? [] : [{ at: previousAt, rxBytes: 0, txBytes: 0 }]));
      h.push({ at, rxBytes: c.rxBytes, txBytes: c.txBytes });
      if (h.length > TUNNEL_HISTORY_SAMPLES) h.splice(0, h.length - TUNNEL_HISTORY_SAMPLES);
    }
    if (this.persist && at - this.persistedAt >= (this.persist.everyMs ?? PERSIST_EVERY_MS)) void this.flush();
  }

  /** Samples oldest first. */
  samples(): readonly TrafficSample[] {
    return this.history;
  }

  /** A live tunnel's samples (its own counters), oldest first; empty once it has left the data plane. */
  tunnelSamples(id: number): readonly TrafficSample[] {
    return this.perTunnel.get(id) ?? [];
  }

  /** The live tunnels that moved the most bytes over their in-memory history, most first. */
  topTalkers(n: number): TunnelTraffic[] {
    const out: TunnelTraffic[] = [];
    for (const [id, h] of this.perTunnel) {
      const first = h[0];
      const last = h[h.length - 1];
      if (!first || !last || h.length < 2) continue;
      // counters only grow while the entry lives; a smaller one means it was re-added: count from zero
      const grow = (a: number, b: number) => (b >= a ? b - a : b);
      out.push({
        id,
        rxBytes: grow(first.rxBytes, last.rxBytes),
        txBytes: grow(first.txBytes, last.txBytes),
        spanMs: last.at - first.at,
      });
    }
    return out
      .filter((t) => t.rxBytes + t.txBytes > 0)
      .sort((a, b) => b.rxBytes + b.txBytes - (a.rxBytes + a.txBytes) || a.id - b.id)
      .slice(0, n);
  }

  /** Writes the traffic since the last stored row as one row (none when nothing moved), then prunes. */
  flush(): Promise<void> {
    const p = this.persist;
    if (!p) return Promise.resolve();
    this.writing = this.writing.then(async () => {
      const at = this.clock.now();
      if (at <= this.persistedAt) return; // just written
      const t = { ...this.totals };
      const d = {
        rxBytes: t.rxBytes - this.persisted.rxBytes,
        txBytes: t.txBytes - this.persisted.txBytes,
        rxPackets: t.rxPackets - this.persisted.rxPackets,
        txPackets: t.txPackets - this.persisted.txPackets,
      };
      const intervalMs = at - this.persistedAt;
      try {
        // a quiet interval is written too (zeros): it tells the chart the broker was up, not down
        await p.store.addTrafficSample({ at, intervalMs, ...d });
        this.persisted = t;
        this.persistedAt = at;
        await p.store.pruneTrafficSamples(at - RETENTION_MS, RETENTION_ROWS);
      } catch (err) {
        p.onError?.(err);
      }
    });
    return this.writing;
  }

  start(everyMs = SAMPLE_EVERY_MS): void {
    this.sample();
    this.timer = this.clock.setInterval(() => this.sample(), everyMs, { unref: true });
  }

  /** Stops sampling and writes the last partial interval. */
  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    if (this.persist) {
      this.update();
      await this.flush();
    }
  }
}
