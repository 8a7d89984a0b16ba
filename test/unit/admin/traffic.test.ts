/** admin/traffic: totals only grow, even when tunnels (and their counters) disappear; history is bounded. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TrafficMeter,
  type TrafficSource,
  HISTORY_SAMPLES,
  TUNNEL_HISTORY_SAMPLES,
  RETENTION_ROWS,
} from '../../../src/admin/traffic.js';
import type { Store, TrafficSampleRow } from '../../../src/store/types.js';
import { ManualClock } from '../../../src/clock.js';
import type { TunnelCounters, TunnelId } from '../../../src/dataplane/types.js';

/** What the tunnel registry reports (broker/tunnels.ts traffic()): here, the sum of the listed counters. The
 *  registry's own carry-over at removal is tested in test/unit/broker/tunnels.test.ts. */
function fakeSource(): { dp: TrafficSource; counters: Map<number, TunnelCounters> } {
  const counters = new Map<number, TunnelCounters>();
  const dp: TrafficSource = {
    traffic: () => {
      const totals = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 };
      for (const c of counters.values()) {
        totals.rxPackets += c.rxPackets;
        totals.rxBytes += c.rxBytes;
        totals.txPackets += c.txPackets;
        totals.txBytes += c.txBytes;
      }
      return {
        totals,
        tunnels: [...counters.values()].map((c) => ({ id: c.id as number, rxBytes: c.rxBytes, txBytes: c.txBytes })),
      };
    },
  };
  return { dp, counters };
}

const c = (id: number, rxBytes: number, txBytes: number): TunnelCounters => ({
  id: id as TunnelId,
  rxPackets: rxBytes / 100,
  rxBytes,
  txPackets: txBytes / 100,
  txBytes,
  lastRxMs: 0,
});

test('the totals are what the registry reports', () => {
  const { dp, counters } = fakeSource();
  const m = new TrafficMeter(dp, new ManualClock());
  counters.set(1, c(1, 1000, 500));
  counters.set(2, c(2, 200, 0));
  assert.deepEqual(m.update(), { rxPackets: 12, rxBytes: 1200, txPackets: 5, txBytes: 500 });
  assert.equal(m.totals.rxBytes, 1200);
});

test('history keeps the last HISTORY_SAMPLES samples with the clock time', () => {
  const { dp, counters } = fakeSource();
  const clock = new ManualClock(1000);
  const m = new TrafficMeter(dp, clock);
  for (let i = 1; i <= HISTORY_SAMPLES + 10; i++) {
    counters.set(1, c(1, i * 100, 0));
    clock.advance(5000);
    m.sample();
  }
  const s = m.samples();
  assert.equal(s.length, HISTORY_SAMPLES);
  assert.equal(s[s.length - 1]!.rxBytes, (HISTORY_SAMPLES + 10) * 100);
  assert.equal(s[s.length - 1]!.at - s[0]!.at, (HISTORY_SAMPLES - 1) * 5000);
});

test('per-tunnel history: TUNNEL_HISTORY_SAMPLES per live tunnel, gone when the tunnel leaves; top talkers', () => {
  const { dp, counters } = fakeSource();
  const clock = new ManualClock(0);
  const m = new TrafficMeter(dp, clock);
  for (let i = 1; i <= TUNNEL_HISTORY_SAMPLES + 5; i++) {
    counters.set(1, c(1, i * 100, i * 10));
    counters.set(2, c(2, i * 1000, 0));
    counters.set(3, c(3, 7, 7)); // no traffic: not a talker
    clock.advance(5000);
    m.sample();
  }
  assert.equal(m.tunnelSamples(1).length, TUNNEL_HISTORY_SAMPLES);
  assert.equal(m.tunnelSamples(1).at(-1)?.rxBytes, (TUNNEL_HISTORY_SAMPLES + 5) * 100);
  assert.deepEqual(
    m.topTalkers(5).map((t) => [t.id, t.rxBytes, t.txBytes]),
    [
      [2, (TUNNEL_HISTORY_SAMPLES - 1) * 1000, 0],
      [1, (TUNNEL_HISTORY_SAMPLES - 1) * 100, (TUNNEL_HISTORY_SAMPLES - 1) * 10],
    ],
  );
  assert.equal(m.topTalkers(1).length, 1);
  counters.delete(2);
  clock.advance(5000);
  m.sample();
  assert.equal(m.tunnelSamples(2).length, 0, 'dropped with the tunnel');
  assert.deepEqual(
    m.topTalkers(5).map((t) => t.id),
    [1],
  );
});

test("with a store: one row per interval with that interval's traffic, the last partial one on stop; a failed write is retried", async () => {
  const { dp, counters } = fakeSource();
  const clock = new ManualClock(0);
  const rows: TrafficSampleRow[] = [];
  const prunes: number[] = [];
  let fail = false;
  const store = {
    addTrafficSample: async (r: TrafficSampleRow) => {
      if (fail) throw new Error('store down');
      rows.push(r);
    },
    pruneTrafficSamples: async (_before: number, keep: number) => {
      prunes.push(keep);
      return 0;
    },
  } as unknown as Store;
  const errors: unknown[] = [];
  const m = new TrafficMeter(dp, clock, { store, everyMs: 60_000, onError: (e) => errors.push(e) });
  for (let i = 1; i <= 12; i++) {
    counters.set(1, c(1, i * 100, i * 50));
    clock.advance(5000);
    m.sample();
  }
  await m.flush(); // let the write the 12th sample started finish
  assert.deepEqual(rows, [
    { at: 60_000, intervalMs: 60_000, rxBytes: 1200, txBytes: 600, rxPackets: 12, txPackets: 6 },
  ]);
  assert.deepEqual(prunes.slice(0, 1), [RETENTION_ROWS]);
  rows.length = 0;
  fail = true;
  counters.set(1, c(1, 1500, 600));
  clock.advance(60_000);
  m.sample();
  await m.flush();
  assert.equal(rows.length, 0);
  assert.ok(errors.length >= 1, 'the failure is reported');
  fail = false;
  counters.set(1, c(1, 1600, 600));
  clock.advance(10_000);
  await m.stop();
  assert.deepEqual(
    rows.map((r) => [r.at, r.intervalMs, r.rxBytes, r.txBytes]),
    [[130_000, 70_000, 400, 0]],
    'the failed interval is written with the next one',
  );
});

test('per-tunnel history keeps only where counters moved: an idle tunnel holds nothing, a move after a quiet spell has its rate', () => {
  const { dp, counters } = fakeSource();
  const clock = new ManualClock(0);
  const m = new TrafficMeter(dp, clock);
  for (let id = 1; id <= 1000; id++) counters.set(id, c(id, 0, 0));
  const step = () => {
    clock.advance(5000);
    m.sample();
  };
  for (let i = 0; i < 10; i++) step();
  counters.set(7, c(7, 500, 0));
  step(); // moved: 0 -> 500
  for (let i = 0; i < 50; i++) step(); // quiet
  const quietFrom = clock.now();
  counters.set(7, c(7, 1500, 0));
  step(); // moved again: 500 -> 1500 in one interval
  for (let id = 1; id <= 1000; id++) if (id !== 7) assert.deepEqual(m.tunnelSamples(id), [], `tunnel ${id} idle`);
  const s = m.tunnelSamples(7);
  assert.ok(s.length <= 4, `${s.length} points, not one per sample`);
  const [before, after] = s.slice(-2);
  assert.deepEqual([before!.at, before!.rxBytes], [quietFrom, 500], 'the point just before the move');
  assert.deepEqual([after!.at, after!.rxBytes], [quietFrom + 5000, 1500]);
  step(); // quiet again: the chart still reaches the latest sample
  assert.deepEqual(
    m
      .tunnelSamples(7)
      .slice(-1)
      .map((p) => [p.at, p.rxBytes]),
    [[clock.now(), 1500]],
  );
});
