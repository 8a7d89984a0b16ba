/** @module broker/rate-limit: counts authentication failures per key (source IPv4, username) in a sliding
 *  window. Bounded: at most MAX_KEYS keys are tracked; the oldest are forgotten first (STYLE.md §10). */

import type { Clock } from '../clock.js';

/** Keys tracked at once: a scan from many sources cannot grow memory past this. */
export const MAX_KEYS = 100_000;

export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly clock: Clock,
    private readonly maxFailures: number,
    private readonly windowMs: number,
  ) {}

  private recent(key: string): number[] {
    const cutoff = this.clock.now() - this.windowMs;
    const list = (this.failures.get(key) ?? []).filter((t) => t > cutoff);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }

  /** True when the key has used up its failures in the window: answer 300 without checking. */
  isBlocked(key: string): boolean {
    return this.recent(key).length >= this.maxFailures;
  }

  fail(key: string): void {
    const list = this.recent(key);
    list.push(this.clock.now());
    this.failures.delete(key); // re-insert: Map order is then least recently failed first
    this.failures.set(key, list.slice(-this.maxFailures));
    while (this.failures.size > MAX_KEYS) this.failures.delete(this.failures.keys().next().value!);
  }

  /** A success clears a username's failures (not the source's: one good login does not excuse a scan). */
  clear(key: string): void {
    this.failures.delete(key);
  }
}
