/** @module admin/traffic: process-lifetime traffic totals and a short history for the dashboard chart.
 *  The totals come from the tunnel registry (broker/tunnels.ts TrafficReading), the one counter accountant: it
 *  carries an ended tunnel's last counters over at its removal, so the totals only grow (what a Prometheus
 *  counter needs) and no traffic is lost between a read and a removal.
 *  Bounded in memory: HISTORY_SAMPLES samples in all, and per live tunnel only the points where its counters
 *  moved (and the one just before each move, so a rate after a quiet spell is right), at most
 *  TUNNEL_HISTORY_SAMPLES and none older than the window but the last, dropped as soon as the tunnel leaves the
 *  data plane: a tunnel that never moved holds nothing here, a quiet one a single point (100,000 idle tunnels
 *  held 120 samples each, over 500 MB).
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
/** Per live tunnel that moves all the time: 10 minutes at SAMPLE_EVERY_MS (about 3 KiB). */
export const TUNNEL_HISTORY_SAMPLES = 120;
/** How far back a tunnel's history reaches. */
const TUNNEL_WINDOW_MS = TUNNEL_HISTORY_SAMPLES * SAMPLE_EVERY_MS;
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
  private readonly history: TrafficSample[] = [];
  /** The tunnels that moved within the window: their change points, and the sample they were last read at. */
  private readonly perTunnel = new Map<number, { points: TrafficSample[]; seenAt: number }>();
  private lastReading: TrafficReading['tunnels'] = [];
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
    this.lastReading = r.tunnels;
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
    for (const c of this.lastReading) {
      const h = this.perTunnel.get(c.id);
      const last = h?.points[h.points.length - 1];
      if (h !== undefined) h.seenAt = at;
      if (last !== undefined && last.rxBytes === c.rxBytes && last.txBytes === c.txBytes) continue;
      // it moved (or is new with traffic): the point before the move, then this one. A data plane entry
      // starts at zero, so a tunnel new since the last sample starts from zero there.
      if (last === undefined && c.rxBytes === 0 && c.txBytes === 0) continue;
      const points = h?.points ?? [];
      if (!h) this.perTunnel.set(c.id, { points, seenAt: at });
      if (previousAt !== undefined && last?.at !== previousAt)
        points.push({ at: previousAt, rxBytes: last?.rxBytes ?? 0, txBytes: last?.txBytes ?? 0 });
      points.push({ at, rxBytes: c.rxBytes, txBytes: c.txBytes });
      if (points.length > TUNNEL_HISTORY_SAMPLES) points.splice(0, points.length - TUNNEL_HISTORY_SAMPLES);
    }
    for (const [id, h] of this.perTunnel) {
      if (h.seenAt !== at)
        this.perTunnel.delete(id); // gone from the data plane
      // points out of the window go; the last one stays as where the next move starts from
      else while (h.points.length > 1 && h.points[0]!.at < at - TUNNEL_WINDOW_MS) h.points.shift();
    }
    if (this.persist && at - this.persistedAt >= (this.persist.everyMs ?? PERSIST_EVERY_MS)) void this.flush();
  }

  /** Samples oldest first. */
  samples(): readonly TrafficSample[] {
    return this.history;
  }

  /** A live tunnel's samples (its own counters), oldest first, up to the latest sample (a quiet tunnel's last
   *  point is repeated there); empty when it did not move within the window or has left the data plane. */
  tunnelSamples(id: number): readonly TrafficSample[] {
    const points = this.perTunnel.get(id)?.points ?? [];
    const last = points[points.length - 1];
    const now = this.history[this.history.length - 1]?.at;
    return last !== undefined && now !== undefined && last.at < now ? [...points, { ...last, at: now }] : points;
  }

  /** The live tunnels that moved the most bytes over their in-memory history, most first. */
  topTalkers(n: number): TunnelTraffic[] {
    const out: TunnelTraffic[] = [];
    for (const [id, { points: h }] of this.perTunnel) {
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
