/** @module admin/traffic: process-lifetime traffic totals and a short history for the dashboard chart.
 *  The data plane's per-tunnel counters vanish when a tunnel is removed, so their sum can go down; this meter
 *  adds up per-tunnel increases between reads instead, which only grow (what a Prometheus counter needs).
 *  Traffic a tunnel carried after the last read and before its removal is missed: at most SAMPLE_EVERY_MS worth.
 *  Bounded: one entry per live tunnel, HISTORY_SAMPLES samples. */

import type { DataPlane } from '../dataplane/types.js';
import type { Clock } from '../clock.js';

/** How often the history is sampled: fine enough for a live chart, cheap (one readCounters call). */
export const SAMPLE_EVERY_MS = 5000;
/** 10 minutes of history at SAMPLE_EVERY_MS. */
export const HISTORY_SAMPLES = 120;

export interface TrafficTotals {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}

export interface TrafficSample {
  at: number;
  rxBytes: number;
  txBytes: number;
}

export class TrafficMeter {
  readonly totals: TrafficTotals = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 };
  private readonly lastSeen = new Map<number, TrafficTotals>();
  private readonly history: TrafficSample[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dataplane: DataPlane,
    private readonly clock: Clock,
  ) {}

  /** Reads the data plane's counters and adds what grew since the last read to the totals. */
  update(): TrafficTotals {
    const seen = new Set<number>();
    for (const c of this.dataplane.readCounters()) {
      const id = c.id as number;
      seen.add(id);
      const prev = this.lastSeen.get(id) ?? { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 };
      // a counter below what we saw means the entry was re-added (restart of that tunnel): count from zero
      const grow = (now: number, before: number) => (now >= before ? now - before : now);
      this.totals.rxPackets += grow(c.rxPackets, prev.rxPackets);
      this.totals.rxBytes += grow(c.rxBytes, prev.rxBytes);
      this.totals.txPackets += grow(c.txPackets, prev.txPackets);
      this.totals.txBytes += grow(c.txBytes, prev.txBytes);
      this.lastSeen.set(id, { rxPackets: c.rxPackets, rxBytes: c.rxBytes, txPackets: c.txPackets, txBytes: c.txBytes });
    }
    for (const id of this.lastSeen.keys()) if (!seen.has(id)) this.lastSeen.delete(id);
    return this.totals;
  }

  /** Updates the totals and appends a history sample. */
  sample(): void {
    this.update();
    this.history.push({ at: this.clock.now(), rxBytes: this.totals.rxBytes, txBytes: this.totals.txBytes });
    if (this.history.length > HISTORY_SAMPLES) this.history.splice(0, this.history.length - HISTORY_SAMPLES);
  }

  /** Samples oldest first. */
  samples(): readonly TrafficSample[] {
    return this.history;
  }

  start(everyMs = SAMPLE_EVERY_MS): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
