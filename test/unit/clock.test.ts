/** ManualClock fires its timers as tests move it: in order, once per interval period, never after cancel, and
 *  those armed inside a callback too. systemClock's timers are Node's. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, sleep, systemClock } from '../../src/clock.js';

test('timers fire in due order, equal times in arming order, each seeing its due time as now()', () => {
  const clock = new ManualClock(1000);
  const fired: string[] = [];
  const at = (name: string) => () => fired.push(`${name}@${clock.now()}`);
  clock.setTimeout(at('c'), 30);
  clock.setTimeout(at('a'), 10);
  clock.setTimeout(at('b1'), 20);
  clock.setTimeout(at('b2'), 20);
  clock.setTimeout(at('late'), 100);
  clock.advance(5);
  assert.deepEqual(fired, [], 'nothing due yet');
  assert.equal(clock.now(), 1005);
  clock.advance(25);
  assert.deepEqual(fired, ['a@1010', 'b1@1020', 'b2@1020', 'c@1030']);
  assert.equal(clock.now(), 1030);
  assert.equal(clock.pending, 1);
  assert.equal(clock.nextAt(), 1100);
  clock.advanceTo(1050);
  assert.equal(fired.length, 4);
  clock.advanceTo(1000);
  assert.equal(clock.now(), 1050, 'never backwards');
});

test('a cancelled timer never fires; cancel is idempotent and harmless after firing', () => {
  const clock = new ManualClock(0);
  const fired: number[] = [];
  const one = clock.setTimeout(() => fired.push(1), 10);
  const two = clock.setTimeout(() => fired.push(2), 20);
  one.cancel();
  one.cancel();
  clock.advance(50);
  assert.deepEqual(fired, [2]);
  two.cancel();
  assert.equal(clock.pending, 0);
});

test('a timer armed inside a callback fires in the same advance when it falls due by its end', () => {
  const clock = new ManualClock(0);
  const fired: string[] = [];
  clock.setTimeout(() => {
    fired.push(`first@${clock.now()}`);
    clock.setTimeout(() => fired.push(`rearmed@${clock.now()}`), 15);
    clock.setTimeout(() => fired.push(`zero@${clock.now()}`), 0);
    clock.setTimeout(() => fired.push(`beyond@${clock.now()}`), 100);
  }, 10);
  clock.advance(30);
  assert.deepEqual(fired, ['first@10', 'zero@10', 'rearmed@25']);
  clock.advance(100);
  assert.deepEqual(fired.at(-1), 'beyond@110');
});

test('an interval fires once per period passed, and can cancel itself from its callback', () => {
  const clock = new ManualClock(0);
  const ticks: number[] = [];
  const t = clock.setInterval(() => {
    ticks.push(clock.now());
    if (ticks.length === 4) t.cancel();
  }, 25);
  clock.advance(60);
  assert.deepEqual(ticks, [25, 50]);
  clock.advance(1000);
  assert.deepEqual(ticks, [25, 50, 75, 100]);
  assert.equal(clock.pending, 0);
});

test('runAll fires everything, chains included, and refuses to spin forever on an interval', () => {
  const clock = new ManualClock(0);
  let n = 0;
  const chain = () => {
    if (++n < 5) clock.setTimeout(chain, 1000);
  };
  clock.setTimeout(chain, 1000);
  clock.runAll();
  assert.equal(n, 5);
  assert.equal(clock.now(), 5000);
  clock.setInterval(() => {}, 1);
  assert.throws(() => clock.runAll(100), /still 1 timer/);
});

test('a callback that throws stops the advance at its due time; later timers still fire on the next move', () => {
  const clock = new ManualClock(0);
  const fired: number[] = [];
  clock.setTimeout(() => {
    throw new Error('boom');
  }, 10);
  clock.setTimeout(() => fired.push(clock.now()), 20);
  assert.throws(() => clock.advance(30), /boom/);
  assert.equal(clock.now(), 10);
  clock.advance(20);
  assert.deepEqual(fired, [20]);
});

test('advanceAsync lets continuations arm the next timer; sleep() resolves when due or woken', async () => {
  const clock = new ManualClock(0);
  const steps: number[] = [];
  void (async () => {
    for (let i = 0; i < 3; i++) {
      await sleep(clock, 100).done;
      steps.push(clock.now());
    }
  })();
  await clock.advanceAsync(250);
  assert.deepEqual(steps, [100, 200]);
  await clock.advanceAsync(50);
  assert.deepEqual(steps, [100, 200, 300]);

  const s = sleep(clock, 1_000_000);
  s.wake();
  s.wake();
  await s.done;
  assert.equal(clock.pending, 0, 'waking cancels the timer');
});

test('systemClock: Node timers, cancellable, unref on request', async () => {
  const fired: string[] = [];
  systemClock.setTimeout(() => fired.push('cancelled'), 1).cancel();
  // an unref'd timer alone does not keep the process alive: hold the loop open while waiting for it, or the
  // runner may see the event loop empty before it fires (and cancel the test)
  const keepAlive = setTimeout(() => {}, 5000);
  await new Promise<void>((resolve) => systemClock.setTimeout(resolve, 1, { unref: true }));
  clearTimeout(keepAlive);
  let ticks = 0;
  await new Promise<void>((resolve) => {
    const t = systemClock.setInterval(() => {
      if (++ticks === 2) {
        t.cancel();
        resolve();
      }
    }, 1);
  });
  assert.deepEqual(fired, []);
  assert.equal(ticks, 2);
});
