/** @module broker/rate-limit: counts authentication failures per key and answers whether the next attempt
 *  must wait. The first `maxFailures` failures are free; each one beyond doubles a wait counted from the last
 *  failure (1 s, 2 s, 4 s, … up to the window), so a guesser slows to one try per window while a person who
 *  mistyped waits seconds, never a fixed lockout. A key with no failure for a whole window starts afresh.
 *  Which keys are counted (user and source /24, validated sources only) is the broker's choice: keys are
 *  built so a third party cannot fill someone else's (docs/security.md).
 *  Bounded: at most MAX_KEYS keys are tracked; the least recently failed are forgotten first (docs/style.md §10). */

import type { Clock } from '../clock.js';

/** Keys tracked at once: a scan from many sources cannot grow memory past this. */
export const MAX_KEYS = 100_000;
/** The wait after the first failure beyond the free ones. */
export const BACKOFF_BASE_MS = 1000;

interface Entry {
  failures: number;
  lastMs: number;
}

export class FailureLimiter {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly clock: Clock,
    private readonly maxFailures: number,
    private readonly windowMs: number,
  ) {}

  private current(key: string, now: number): Entry | undefined {
    const e = this.entries.get(key);
    if (e && now - e.lastMs > this.windowMs) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  /** How long the key must still wait before its next attempt is checked (0: it may try now). */
  waitMs(key: string): number {
    const now = this.clock.now();
    const e = this.current(key, now);
    if (!e || e.failures < this.maxFailures) return 0;
    const backoff = Math.min(this.windowMs, BACKOFF_BASE_MS * 2 ** Math.min(30, e.failures - this.maxFailures));
    return Math.max(0, e.lastMs + backoff - now);
  }

  /** True while the key waits out its backoff: answer 300 without checking. */
  isBlocked(key: string): boolean {
    return this.waitMs(key) > 0;
  }

  fail(key: string): void {
    const now = this.clock.now();
    const e = this.current(key, now) ?? { failures: 0, lastMs: now };
    e.failures++;
    e.lastMs = now;
    this.entries.delete(key); // re-insert: Map order is then least recently failed first
    this.entries.set(key, e);
    while (this.entries.size > MAX_KEYS) this.entries.delete(this.entries.keys().next().value!);
  }

  /** A success clears a username's failures (not the source's: one good login does not excuse a scan). */
  clear(key: string): void {
    this.entries.delete(key);
  }
}

/** Counts events per key in fixed windows: `take` says whether one more fits in the key's current window
 *  (at most `max` per `windowMs`, counted from the key's first event of the window). Bounded like
 *  FailureLimiter: at most MAX_KEYS keys, the least recently started window forgotten first. */
export class WindowCounter {
  private readonly windows = new Map<string, { startMs: number; count: number; refused: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly max: number,
    private readonly windowMs: number,
  ) {}

  /** Counts one event; false (and not counted) when the key's window is full. */
  take(key: string): boolean {
    const now = this.clock.now();
    let w = this.windows.get(key);
    if (!w || now - w.startMs >= this.windowMs) {
      this.windows.delete(key);
      w = { startMs: now, count: 0, refused: 0 };
      this.windows.set(key, w);
      while (this.windows.size > MAX_KEYS) this.windows.delete(this.windows.keys().next().value!);
    }
    if (w.count >= this.max) {
      w.refused++;
      return false;
    }
    w.count++;
    return true;
  }

  /** How many events `take` refused in the key's current window (callers log the first only). */
  refusedNow(key: string): number {
    return this.windows.get(key)?.refused ?? 0;
  }

  /** Seconds until the key's window ends (0 when it has none). */
  retryAfterS(key: string): number {
    const w = this.windows.get(key);
    return w ? Math.max(0, Math.ceil((w.startMs + this.windowMs - this.clock.now()) / 1000)) : 0;
  }
}
