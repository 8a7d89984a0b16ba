/** @module broker/expiry: tunnels whose client fell silent, or whose lifetime passed, end. The rule is pure
 *  (`expired`); the sweep runs it every few seconds on the Clock, together with what else must happen
 *  periodically (following other processes' changes, persisting counters), reading the data plane's counters
 *  once for all of it. */

import type { Clock, Timer } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { EndReason, TunnelRecord } from '../store/types.js';
import { idleLimitMs } from './offer-policy.js';
import type { CountersById, TunnelRegistry } from './tunnels.js';

/** The tunnels to end now, and why: silent past their idle limit, or past their lifetime. */
export function expired(
  live: readonly { record: TunnelRecord; lastRxMs: number }[],
  nowMs: number,
  cfg: Pick<Config['tunnels'], 'idleIntervals' | 'idleMinS' | 'anonymousIdleMaxS'>,
): [number, EndReason][] {
  const out: [number, EndReason][] = [];
  for (const { record: t, lastRxMs } of live) {
    if (nowMs - lastRxMs > idleLimitMs(t, cfg)) out.push([t.id, 'idle']);
    else if (t.establishedAt !== null && nowMs > t.establishedAt + t.lifetimeS * 1000) out.push([t.id, 'lifetime']);
  }
  return out;
}

/** How often the sweep runs: every 5 s, or a quarter of the shortest idle limit when that is shorter. */
export function sweepEveryMs(cfg: Pick<Config['tunnels'], 'idleMinS'>): number {
  return Math.min(5000, (cfg.idleMinS * 1000) / 4);
}

export class Sweeper {
  private timer: Timer | undefined;

  constructor(
    private readonly deps: {
      tunnels: TunnelRegistry;
      clock: Clock;
      config: Config;
      /** Runs after the expiry, with the same counters (audit-follow). */
      also?: () => Promise<void>;
    },
  ) {}

  /** One sweep: ends expired tunnels, runs `also`, writes the counters that moved. */
  async sweep(): Promise<void> {
    const { tunnels, clock, config } = this.deps;
    const counters: CountersById = tunnels.readCounters();
    await tunnels.endAll(expired(tunnels.activity(counters), clock.now(), config.tunnels));
    await this.deps.also?.();
    await tunnels.persistCounters(counters);
  }

  /** `run`: how the caller keeps the sweep's promise in view (so shutdown can wait for it). */
  start(run: (p: Promise<void>) => void): void {
    this.timer = this.deps.clock.setInterval(() => run(this.sweep()), sweepEveryMs(this.deps.config.tunnels), {
      unref: true,
    });
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}
