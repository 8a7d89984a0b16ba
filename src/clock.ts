/** @module clock: time as a dependency, so tests move time instead of sleeping (docs/style.md §1). A Clock reads the
 *  time and arms timers; systemClock is Node's, ManualClock is moved by hand and fires its timers as it moves.
 *  Code that reads the time or waits takes a Clock (the session hosts, the broker's sweep, the client); code
 *  that only measures (benchmarks, log timestamps) may use Date.now() directly. */

/** A timer armed on a Clock. */
export interface Timer {
  /** Stops the timer. Idempotent, and harmless after a one-shot timer fired. */
  cancel(): void;
}

export interface TimerOptions {
  /** Do not keep the process alive for this timer (Node's `unref()`): for housekeeping that must never hold
   *  a process up on its own. ManualClock ignores it. */
  unref?: boolean;
}

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Calls `fn` once, `ms` from now (negative counts as 0). Callbacks run from the event loop, never inside
   *  the call that armed them. */
  setTimeout(fn: () => void, ms: number, options?: TimerOptions): Timer;
  /** Calls `fn` every `ms` (at least 1) until cancelled. */
  setInterval(fn: () => void, ms: number, options?: TimerOptions): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms, options) {
    const t = setTimeout(fn, Math.max(0, ms));
    if (options?.unref) t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  setInterval(fn, ms, options) {
    const t = setInterval(fn, Math.max(1, ms));
    if (options?.unref) t.unref();
    return { cancel: () => clearInterval(t) };
  },
};

/** A wait of `ms` on `clock` that can be cut short: `wake()` resolves `done` at once (idempotent). */
export function sleep(clock: Clock, ms: number): { done: Promise<void>; wake(): void } {
  let wake!: () => void;
  const done = new Promise<void>((resolve) => {
    const timer = clock.setTimeout(() => resolve(), ms);
    wake = () => {
      timer.cancel();
      resolve();
    };
  });
  return { done, wake };
}

interface Pending {
  at: number;
  /** Arming order: timers due at the same time fire in the order they were armed. */
  seq: number;
  fn: () => void;
  /** Set for intervals: the period. */
  every?: number;
}

/** A clock tests move by hand. Time stands still until advance()/advanceTo()/runAll(); they fire every timer
 *  that falls due, earliest first (equal times in arming order), with now() reading each timer's due time
 *  inside its callback. A timer armed by a callback fires in the same call if it falls due by its end; an
 *  interval fires once per period passed. A callback that throws stops the advance there and the error
 *  reaches the caller, with the clock at that timer's due time. */
export class ManualClock implements Clock {
  private readonly timers: Pending[] = [];
  private seq = 0;

  constructor(private ms = 1_700_000_000_000) {}

  now(): number {
    return this.ms;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.arm({ at: this.ms + Math.max(0, ms), seq: this.seq++, fn });
  }

  setInterval(fn: () => void, ms: number): Timer {
    const every = Math.max(1, ms);
    return this.arm({ at: this.ms + every, seq: this.seq++, fn, every });
  }

  /** Timers armed and not yet fired or cancelled. */
  get pending(): number {
    return this.timers.length;
  }

  /** When the next timer falls due, if any is armed. */
  nextAt(): number | undefined {
    return this.timers[0]?.at;
  }

  /** Moves time forward by `ms`, firing what falls due on the way. */
  advance(ms: number): void {
    this.advanceTo(this.ms + ms);
  }

  /** Moves time to `at` (never backwards), firing what falls due on the way. */
  advanceTo(at: number): void {
    while (this.timers.length > 0 && this.timers[0]!.at <= at) this.fireNext();
    this.ms = Math.max(this.ms, at);
  }

  /** Fires timers until none is left, moving time to each; throws after `limit` firings (an interval never
   *  runs out). */
  runAll(limit = 10_000): void {
    for (let n = 0; this.timers.length > 0; n++) {
      if (n >= limit) throw new Error(`ManualClock.runAll: still ${this.timers.length} timer(s) after ${limit}`);
      this.fireNext();
    }
  }

  /** advance() for code that awaits between timers: after each timer fires (and once before the first), lets
   *  promise continuations and pending I/O callbacks run (one macrotask turn), so a timer armed in a
   *  continuation is seen by the same call. Takes no wall-clock time beyond those turns. */
  async advanceAsync(ms: number): Promise<void> {
    const to = this.ms + ms;
    await turn();
    while (this.timers.length > 0 && this.timers[0]!.at <= to) {
      this.fireNext();
      await turn();
    }
    this.ms = Math.max(this.ms, to);
  }

  private arm(p: Pending): Timer {
    this.insert(p);
    return {
      cancel: () => {
        const i = this.timers.indexOf(p);
        if (i >= 0) this.timers.splice(i, 1);
      },
    };
  }

  private insert(p: Pending): void {
    let i = this.timers.length;
    while (i > 0 && before(p, this.timers[i - 1]!)) i--;
    this.timers.splice(i, 0, p);
  }

  private fireNext(): void {
    const p = this.timers.shift()!;
    this.ms = Math.max(this.ms, p.at);
    if (p.every !== undefined) {
      // Re-armed before the call, so the callback can cancel its own interval with the handle it holds.
      p.at += p.every;
      p.seq = this.seq++;
      this.insert(p);
    }
    p.fn();
  }
}

function before(a: Pending, b: Pending): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** One macrotask turn: promise continuations and ready I/O callbacks run before it resolves. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
