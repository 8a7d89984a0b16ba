/** admin/history: rates from samples and from stored buckets; a bucket without rows is a gap, not a zero. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RANGES, rangeOf, rangeRates, ratesFromSamples } from '../../../src/admin/history.js';
import type { TrafficMeter } from '../../../src/admin/traffic.js';
import type { Store, TrafficBucket } from '../../../src/store/types.js';

test('ratesFromSamples: bytes per second between samples; a counter that went down counts from zero', () => {
  assert.deepEqual(
    ratesFromSamples([
      { at: 0, rxBytes: 0, txBytes: 0 },
      { at: 5000, rxBytes: 5000, txBytes: 10_000 },
      { at: 10_000, rxBytes: 1000, txBytes: 10_000 },
    ]),
    [
      { at: 5000, rx: 1000, tx: 2000 },
      { at: 10_000, rx: 200, tx: 0 },
    ],
  );
});

test('rangeRates: one point per bucket over the range, null where nothing was stored', async () => {
  const now = 10 * 3600_000 + 30_000;
  const asked: number[][] = [];
  const rows: TrafficBucket[] = [
    { at: now - 30_000 - 2 * 60_000, rxBytes: 60_000, txBytes: 30_000, intervalMs: 60_000 },
    { at: now - 30_000, rxBytes: 3000, txBytes: 3000, intervalMs: 30_000 },
  ];
  const store = {
    trafficHistory: async (from: number, to: number, bucket: number) => {
      asked.push([from, to, bucket]);
      return rows;
    },
  } as unknown as Store;
  const r = await rangeRates(store, {} as TrafficMeter, now, '1h');
  assert.deepEqual(asked, [[now - 30_000 - 3600_000, now + 1, 60_000]], 'aligned to whole minutes');
  assert.equal(r.points.length, 61);
  const data = r.points.filter((p) => p.rx !== null);
  assert.deepEqual(data, [
    { at: now - 30_000 - 60_000, rx: 1000, tx: 500 },
    { at: now, rx: 100, tx: 100 },
  ]);
  assert.equal(r.points.filter((p) => p.rx === null && p.tx === null).length, 59, 'the rest are gaps');
  assert.equal(rangeOf('7d'), '7d');
  assert.equal(rangeOf('1y'), '10m', 'unknown ranges fall back to 10 minutes');
  assert.ok(
    Object.values(RANGES).every((x) => x.ms / x.bucketMs <= 170),
    'no range draws more than 170 points',
  );
});
