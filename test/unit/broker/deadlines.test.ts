/** broker/deadlines: the registry's heap of tunnels by due time. Whatever the order of sets, moves and
 *  deletes, the first item is always one with the earliest time, every item is in it once, and a deleted one
 *  is gone without a trace (its index -1). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Deadlines } from '../../../src/broker/deadlines.js';

interface Item {
  name: number;
  heapIndex: number;
}

test('the first is always the earliest, through sets, moves both ways and deletes', () => {
  const heap = new Deadlines<Item>();
  const items: Item[] = Array.from({ length: 200 }, (_, name) => ({ name, heapIndex: -1 }));
  const at = new Map<Item, number>(); // what the heap should hold
  let seed = 12345;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let step = 0; step < 20_000; step++) {
    const item = items[random(items.length)]!;
    if (random(4) === 0) {
      heap.delete(item);
      at.delete(item);
      assert.equal(item.heapIndex, -1);
    } else {
      const time = 1_700_000_000_000 + random(1000) * 1000; // ms timestamps, as the registry keeps
      heap.set(item, time);
      at.set(item, time);
    }
    assert.equal(heap.size, at.size);
    const first = heap.first();
    if (at.size === 0) assert.equal(first, undefined);
    else {
      assert.equal(first!.atMs, Math.min(...at.values()));
      assert.equal(at.get(first!.item), first!.atMs);
    }
  }
  // drained in order
  const drained: number[] = [];
  for (let f = heap.first(); f; f = heap.first()) {
    drained.push(f.atMs);
    heap.delete(f.item);
  }
  assert.deepEqual(
    drained,
    [...at.values()].sort((a, b) => a - b),
  );
  assert.ok(items.every((i) => i.heapIndex === -1));
});
