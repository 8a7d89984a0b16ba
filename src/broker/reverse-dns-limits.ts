/** @module broker/reverse-dns-limits: the bounds on what reverse-DNS delegation may cost the operator's DNS
 *  server: changes of wish per account per hour (ChangeCounter), and updates in flight at once (Gate). */

import type { Clock } from '../clock.js';

/** The window of `reverseDns.changesPerHour`. */
const WINDOW_MS = 3_600_000;
/** Accounts counted at once; the oldest window is forgotten first (a Map keeps insertion order). */
export const MAX_COUNTED = 100_000;

/** Changes of wish per account in a fixed window. */
export class ChangeCounter {
  private readonly windows = new Map<number, { since: number; n: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly perHour: number,
  ) {}

  /** Counts one change; false (and not counted) when the account is over its limit for this window. */
  take(accountId: number): boolean {
    const now = this.clock.now();
    let w = this.windows.get(accountId);
    if (!w || now - w.since >= WINDOW_MS) {
      this.windows.delete(accountId);
      w = { since: now, n: 0 };
      this.windows.set(accountId, w);
      if (this.windows.size > MAX_COUNTED) this.windows.delete(this.windows.keys().next().value!);
    }
    if (w.n >= this.perHour) return false;
    w.n++;
    return true;
  }
}

/** At most `width` calls running at once; the rest wait their turn in order. */
export class Gate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly width: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.width) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
