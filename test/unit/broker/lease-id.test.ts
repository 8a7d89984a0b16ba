/** Anonymous lease ids: unique and increasing within a process whatever the clock does (many in one
 *  millisecond, a clock stepped back), so a new lease's index entry goes after every earlier one. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { anonymousLeaseId } from '../../../src/broker/lease-id.js';

test('ids increase and never repeat: many in one millisecond, and after the clock steps back', () => {
  const t0 = Date.now() + 10_000; // after any id made so far in this process
  const times = [
    ...Array.from({ length: 50_000 }, () => t0),
    t0 + 1,
    ...Array.from({ length: 1000 }, (_, i) => t0 - 5000 + i), // stepped back five seconds
    t0 + 2,
  ];
  const ids = times.map((t) => anonymousLeaseId(t));
  assert.equal(new Set(ids).size, ids.length);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} before ${ids[i]}`);
  assert.match(ids[0]!, /^anon-[0-9a-f]{12}-[0-9a-f]{8}-[0-9a-f]{12}$/);
});
