/** Reconnect backoff (gogoc's rule) and the keepalive's pace and miss counting, with a fake echo and a
 *  ManualClock (no sleeping). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelayMs } from '../../../src/client/backoff.js';
import { Keepalive } from '../../../src/client/keepalive.js';
import { ManualClock, sleep } from '../../../src/clock.js';

test('backoff: at once after a lost tunnel, retry_delay, doubling every 3 failures, capped', () => {
  const delays = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => backoffDelayMs(n, 30, 300) / 1000);
  assert.deepEqual(delays, [0, 30, 30, 30, 60, 60, 60, 120, 120, 120, 240]);
  assert.equal(backoffDelayMs(100, 30, 300), 300_000);
  assert.equal(backoffDelayMs(3, 0, 0), 0);
});

test('keepalive: one echo per interval, replies reset the count; N misses in a row declare the server dead, once', async () => {
  const clock = new ManualClock(0);
  const answers = [5, undefined, 7, undefined, undefined, undefined, 9];
  const sentAt: number[] = [];
  const rtts: number[] = [];
  const misses: number[] = [];
  let dead = 0;
  const k = new Keepalive({
    intervalMs: 30_000,
    timeoutMs: 5_000,
    misses: 3,
    clock,
    // an unanswered echo takes its whole timeout, as ping does
    probe: async (timeoutMs) => {
      sentAt.push(clock.now());
      const rtt = answers.shift();
      if (rtt === undefined) await sleep(clock, timeoutMs).done;
      return rtt;
    },
    onReply: (r) => rtts.push(r),
    onMiss: (m) => misses.push(m),
    onDead: () => dead++,
  });
  k.start();
  await clock.advanceAsync(29_999);
  assert.deepEqual(sentAt, [], 'the first echo goes one interval after start');
  await clock.advanceAsync(10 * 30_000);
  assert.deepEqual(sentAt, [30_000, 60_000, 90_000, 120_000, 150_000, 180_000], 'from echo to echo, timeouts included');
  assert.deepEqual(rtts, [5, 7]);
  assert.equal(k.lastReplyAtMs, 90_000);
  assert.deepEqual(misses, [1, 1, 2, 3]);
  assert.equal(dead, 1);
  assert.deepEqual(answers, [9], 'no echo after the server was declared dead');
  assert.equal(clock.pending, 0, 'nothing left armed');
});

test('keepalive: stop() ends the loop without declaring anything', async () => {
  const clock = new ManualClock(0);
  let probes = 0;
  const k = new Keepalive({
    intervalMs: 10_000,
    timeoutMs: 5_000,
    misses: 1,
    clock,
    probe: async () => {
      probes++;
      return 1;
    },
    onDead: () => assert.fail('not dead'),
  });
  k.start();
  await clock.advanceAsync(35_000);
  assert.equal(probes, 3);
  k.stop();
  k.stop();
  await clock.advanceAsync(100_000);
  assert.equal(probes, 3);
  assert.equal(clock.pending, 0, 'the wait was cancelled');
  assert.equal(k.lastRttMs, 1);
});
