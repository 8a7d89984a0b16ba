/** Reconnect backoff (gogoc's rule) and the keepalive miss counting, with a fake echo. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelayMs } from '../../../src/client/backoff.js';
import { Keepalive } from '../../../src/client/keepalive.js';

test('backoff: at once after a lost tunnel, retry_delay, doubling every 3 failures, capped', () => {
  const delays = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => backoffDelayMs(n, 30, 300) / 1000);
  assert.deepEqual(delays, [0, 30, 30, 30, 60, 60, 60, 120, 120, 120, 240]);
  assert.equal(backoffDelayMs(100, 30, 300), 300_000);
  assert.equal(backoffDelayMs(3, 0, 0), 0);
});

test('keepalive: replies reset the count; N misses in a row declare the server dead, once', async () => {
  const answers = [5, undefined, 7, undefined, undefined, undefined, 9];
  const rtts: number[] = [];
  const misses: number[] = [];
  let dead = 0;
  const done = new Promise<void>((resolve) => {
    const k = new Keepalive({
      intervalMs: 5,
      timeoutMs: 1,
      misses: 3,
      probe: async () => answers.shift(),
      onReply: (r) => rtts.push(r),
      onMiss: (m) => misses.push(m),
      onDead: () => {
        dead++;
        resolve();
      },
    });
    k.start();
  });
  await done;
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(rtts, [5, 7]);
  assert.deepEqual(misses, [1, 1, 2, 3]);
  assert.equal(dead, 1);
  assert.deepEqual(answers, [9], 'no echo after the server was declared dead');
});

test('keepalive: stop() ends the loop without declaring anything', async () => {
  let probes = 0;
  const k = new Keepalive({
    intervalMs: 5,
    timeoutMs: 1,
    misses: 1,
    probe: async () => {
      probes++;
      return 1;
    },
    onDead: () => assert.fail('not dead'),
  });
  k.start();
  await new Promise((r) => setTimeout(r, 40));
  k.stop();
  const seen = probes;
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(seen >= 2 && probes === seen, `probes ${seen} then ${probes}`);
  assert.equal(k.lastRttMs, 1);
});
