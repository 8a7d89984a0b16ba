/** @module admin/history: the traffic chart's data for a chosen range, as rates (bytes per second).
 *  '10m' comes from the meter's memory (a sample every 5 s); the longer ranges come from the store's
 *  traffic_samples rows (admin/traffic.ts writes one every 30 s), summed per bucket in SQL so a range never
 *  reads more than its bucket count of rows back: 1 h in 1-minute buckets, 24 h in 10-minute buckets and
 *  7 d in 1-hour buckets. A bucket with no row (the broker was not running) is a gap, not a zero. */

import type { TrafficStore } from '../store/types.js';
import type { TrafficMeter, TrafficSample } from './traffic.js';

export const RANGES = {
  '10m': { label: '10 min', ms: 10 * 60_000, bucketMs: 5000, bucketLabel: '5 seconds' },
  '1h': { label: '1 h', ms: 3600_000, bucketMs: 60_000, bucketLabel: 'minute' },
  '24h': { label: '24 h', ms: 24 * 3600_000, bucketMs: 10 * 60_000, bucketLabel: '10 minutes' },
  '7d': { label: '7 d', ms: 7 * 24 * 3600_000, bucketMs: 3600_000, bucketLabel: 'hour' },
} as const;
export type RangeKey = keyof typeof RANGES;
export const RANGE_KEYS = Object.keys(RANGES) as RangeKey[];

export function rangeOf(s: unknown): RangeKey {
  return typeof s === 'string' && s in RANGES ? (s as RangeKey) : '10m';
}

/** Rates at the end of an interval; null: no data for it (a gap in the line). */
export interface RatePoint {
  at: number;
  rx: number | null;
  tx: number | null;
}

/** Rates between consecutive cumulative samples (the meter's, overall or of one tunnel). */
export function ratesFromSamples(samples: readonly TrafficSample[]): RatePoint[] {
  const out: RatePoint[] = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    const dt = Math.max(1, b.at - a.at) / 1000;
    // a counter below the previous one: the tunnel's entry was re-added; count from zero
    const grow = (now: number, before: number) => (now >= before ? now - before : now);
    out.push({ at: b.at, rx: grow(b.rxBytes, a.rxBytes) / dt, tx: grow(b.txBytes, a.txBytes) / dt });
  }
  return out;
}

export interface RangeRates {
  range: RangeKey;
  bucketMs: number;
  from: number;
  to: number;
  points: RatePoint[];
}

export async function rangeRates(
  store: TrafficStore,
  meter: TrafficMeter,
  now: number,
  range: RangeKey,
): Promise<RangeRates> {
  const r = RANGES[range];
  if (range === '10m') {
    // memory holds 10 minutes at most: the axis starts at the oldest sample (the broker may be younger)
    const samples = meter.samples();
    const from = Math.max(now - r.ms, samples[0]?.at ?? now - r.ms);
    return { range, bucketMs: r.bucketMs, from, to: now, points: ratesFromSamples(samples) };
  }
  const from = Math.floor((now - r.ms) / r.bucketMs) * r.bucketMs;
  const rows = await store.trafficHistory(from, now + 1, r.bucketMs);
  const byAt = new Map(rows.map((b) => [b.at, b]));
  const points: RatePoint[] = [];
  for (let at = from; at <= now; at += r.bucketMs) {
    const b = byAt.get(at);
    const s = b && b.intervalMs > 0 ? 1000 / b.intervalMs : null;
    points.push({
      at: Math.min(now, at + r.bucketMs),
      rx: b && s !== null ? b.rxBytes * s : null,
      tx: b && s !== null ? b.txBytes * s : null,
    });
  }
  return { range, bucketMs: r.bucketMs, from, to: now, points };
}

/** The meter's top talkers with their tunnel rows, which `live` gives for the ids it is asked about (the
 *  registry's listOf: a few rows, not every live tunnel's); tunnels that ended since the last sample are skipped. */
export function topTalkers<T extends { id: number }>(
  meter: TrafficMeter,
  live: (ids: number[]) => readonly T[],
  n: number,
): { tunnel: T; rxBytes: number; txBytes: number; spanMs: number }[] {
  const top = meter.topTalkers(n + 5);
  const byId = new Map(live(top.map((t) => t.id)).map((t) => [t.id, t]));
  return top
    .flatMap((t) => {
      const tunnel = byId.get(t.id);
      return tunnel ? [{ tunnel, rxBytes: t.rxBytes, txBytes: t.txBytes, spanMs: t.spanMs }] : [];
    })
    .slice(0, n);
}
