/** transport/session-host HalfOpenTable: the eviction draw never comes back empty-handed while there is
 *  another half-open session to evict (a small table once kept a third session over its limit, 1 time in 27). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HalfOpenTable, type HostedSession } from '../../../src/transport/session-host.js';

function entry(address: string, startedMs: number): HostedSession {
  return {
    ended: false,
    halfOpenIndex: -1,
    peer: { address, port: 3653 },
    startedMs,
    session: { isHalfOpen: true },
  } as unknown as HostedSession;
}

test('a draw never picks the session being made room for, whatever the random source returns', () => {
  const t = new HalfOpenTable<HostedSession>();
  const a = entry('192.0.2.1', 1);
  const b = entry('192.0.2.2', 2);
  const spare = entry('192.0.2.3', 3);
  for (const e of [spare, a, b]) t.sync(e);
  assert.equal(t.size, 3);
  // a random source stuck on the spare's own slot (0)
  for (let n = 0; n < 3; n++) {
    const victim = t.pickVictim(spare, 3, () => spare.halfOpenIndex);
    assert.ok(victim && victim !== spare, `draw ${n}: a victim other than the new session`);
  }
  // and every possible draw lands on one of the others
  const seen = new Set<HostedSession>();
  for (let r = 0; r < 2; r++) seen.add(t.pickVictim(spare, 1, () => r)!);
  assert.deepEqual(new Set([a, b]), seen);
});

test('the victim is the one whose /24 holds the most, the oldest among equals', () => {
  const t = new HalfOpenTable<HostedSession>();
  const lone = entry('198.51.100.9', 1);
  const crowdOld = entry('203.0.113.1', 2);
  const crowdNew = entry('203.0.113.2', 3);
  const spare = entry('192.0.2.3', 4);
  for (const e of [lone, crowdOld, crowdNew, spare]) t.sync(e);
  let i = 0;
  const order = [0, 1, 2];
  assert.equal(
    t.pickVictim(spare, 3, () => order[i++ % 3]!),
    crowdOld,
  );
});

test('an IPv6 flood from one /48 outweighs a lone IPv4 client in the draw, and is counted per /64 per source', () => {
  const t = new HalfOpenTable<HostedSession>();
  const lone = entry('198.51.100.9', 1);
  const flood = [1, 2, 3].map((n) => entry(`2001:db8:1:${n}::${n}`, 1 + n));
  const spare = entry('192.0.2.3', 10);
  for (const e of [lone, ...flood, spare]) t.sync(e);
  // every draw sees both the lone client and a flood session: the flood's network is the busier one
  for (let start = 0; start < 4; start++) {
    let i = start;
    const victim = t.pickVictim(spare, 4, () => i++ % 4);
    assert.ok(victim && flood.includes(victim), `draw from ${start}: a flood session, not the IPv4 client`);
  }
  assert.equal(t.ofSource('2001:db8:1:2:ffff::1')?.size, 1, 'another address of the same /64 is the same source');
  assert.equal(t.ofSource('2001:db8:1:4::1'), undefined);
});
