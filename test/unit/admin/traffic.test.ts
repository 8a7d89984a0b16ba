/** admin/traffic: totals only grow, even when tunnels (and their counters) disappear; history is bounded. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TrafficMeter, HISTORY_SAMPLES } from '../../../src/admin/traffic.js';
import { ManualClock } from '../../../src/clock.js';
import type { DataPlane, TunnelCounters, TunnelId } from '../../../src/dataplane/types.js';

function fakeDataPlane(): { dp: DataPlane; counters: Map<number, TunnelCounters> } {
  const counters = new Map<number, TunnelCounters>();
  const dp = { readCounters: () => [...counters.values()].map((c) => ({ ...c })) } as unknown as DataPlane;
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

test('totals add per-tunnel growth and never go down when a tunnel is removed or re-added', () => {
  const { dp, counters } = fakeDataPlane();
  const m = new TrafficMeter(dp, new ManualClock());
  counters.set(1, c(1, 1000, 500));
  counters.set(2, c(2, 200, 0));
  assert.deepEqual(m.update(), { rxPackets: 12, rxBytes: 1200, txPackets: 5, txBytes: 500 });
  counters.set(1, c(1, 1500, 700));
  counters.delete(2); // tunnel 2 ended: its counters vanish
  assert.deepEqual(m.update(), { rxPackets: 17, rxBytes: 1700, txPackets: 7, txBytes: 700 });
  counters.set(2, c(2, 100, 100)); // a new entry under a known id starts from zero
  assert.deepEqual(m.update(), { rxPackets: 18, rxBytes: 1800, txPackets: 8, txBytes: 800 });
  m.update();
  assert.equal(m.totals.rxBytes, 1800, 'no change, no growth');
});

test('history keeps the last HISTORY_SAMPLES samples with the clock time', () => {
  const { dp, counters } = fakeDataPlane();
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
