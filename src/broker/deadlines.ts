/** @module broker/deadlines: a min-heap of items by a time, where each item knows its own place (`heapIndex`),
 *  so removing one is O(log n) and nothing stale is left behind. The registry keeps one entry per live tunnel,
 *  keyed by a time at or before which it cannot be due to end (broker/tunnels.ts), and the sweep looks only at
 *  the top: what is not due costs nothing. */

export interface HeapItem {
  /** Its index in the heap; -1 when it is in none. Owned by the heap. */
  heapIndex: number;
}

export class Deadlines<T extends HeapItem> {
  /** The times, unboxed (a number array of doubles), beside the items at the same index. */
  private readonly times: number[] = [];
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  /** Adds `item` at `atMs`, or moves it there if it is already in. */
  set(item: T, atMs: number): void {
    if (item.heapIndex >= 0) {
      const i = item.heapIndex;
      const earlier = atMs < this.times[i]!;
      this.times[i] = atMs;
      if (earlier) this.up(i);
      else this.down(i);
      return;
    }
    this.times.push(atMs);
    this.items.push(item);
    item.heapIndex = this.items.length - 1;
    this.up(item.heapIndex);
  }

  /** Takes `item` out (no-op when it is in none). */
  delete(item: T): void {
    const i = item.heapIndex;
    if (i < 0) return;
    item.heapIndex = -1;
    const lastTime = this.times.pop()!;
    const last = this.items.pop()!;
    if (i === this.items.length) return; // it was the last
    this.times[i] = lastTime;
    this.items[i] = last;
    last.heapIndex = i;
    if (i > 0 && lastTime < this.times[(i - 1) >> 1]!) this.up(i);
    else this.down(i);
  }

  /** The earliest item and its time, if any. */
  first(): { item: T; atMs: number } | undefined {
    return this.items.length ? { item: this.items[0]!, atMs: this.times[0]! } : undefined;
  }

  private up(i: number): void {
    const time = this.times[i]!;
    const item = this.items[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.times[parent]! <= time) break;
      this.place(i, this.times[parent]!, this.items[parent]!);
      i = parent;
    }
    this.place(i, time, item);
  }

  private down(i: number): void {
    const n = this.items.length;
    const time = this.times[i]!;
    const item = this.items[i]!;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.times[child + 1]! < this.times[child]!) child++;
      if (this.times[child]! >= time) break;
      this.place(i, this.times[child]!, this.items[child]!);
      i = child;
    }
    this.place(i, time, item);
  }

  private place(i: number, time: number, item: T): void {
    this.times[i] = time;
    this.items[i] = item;
    item.heapIndex = i;
  }
}
