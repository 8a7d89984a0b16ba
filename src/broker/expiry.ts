/** @module broker/expiry: tunnels whose client fell silent, or whose lifetime passed, end. The rule is pure
 *  (`endReasonAt`, and `dueAtMs`, the time after which it says so if nothing arrives meanwhile); the registry
 *  keeps every live tunnel under its due time and the sweep visits only those whose time has come
 *  (TunnelRegistry.endExpired). The sweep runs every few seconds on the Clock, together with what else must
 *  happen periodically (following other processes' changes, persisting counters), and asks the data plane once
 *  which tunnels moved: its cost follows the traffic, not the number of tunnels. */

import type { Clock, Timer } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { EndReason, TunnelRecord } from '../store/types.js';
import { idleLimitMs } from './offer-policy.js';
import type { IdleRule, TunnelRegistry } from './tunnels.js';

type ExpiryFields = Pick<TunnelRecord, 'keepaliveInterval' | 'accountId' | 'establishedAt' | 'lifetimeS'>;

/** Why a live tunnel ends at `nowMs`, or null: silent for longer than its idle limit since `lastRxMs` (its
 *  last packet received, or when it became live), or past its lifetime. Idle is said first when both hold. */
export function endReasonAt(t: ExpiryFields, lastRxMs: number, nowMs: number, cfg: IdleRule): EndReason | null {
  if (nowMs - lastRxMs > idleLimitMs(t, cfg)) return 'idle';
  if (t.establishedAt !== null && nowMs > t.establishedAt + t.lifetimeS * 1000) return 'lifetime';
  return null;
}

/** The time after which endReasonAt says the tunnel ends, if it receives nothing more: endReasonAt(t, lastRxMs,
 *  now) is not null exactly when now > dueAtMs(t, lastRxMs). A later lastRxMs never makes it earlier. */
export function dueAtMs(t: ExpiryFields, lastRxMs: number, cfg: IdleRule): number {
  const idle = lastRxMs + idleLimitMs(t, cfg);
  return t.establishedAt === null ? idle : Math.min(idle, t.establishedAt + t.lifetimeS * 1000);
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
      /** Runs after the expiry (audit-follow). */
      also?: () => Promise<void>;
    },
  ) {}

  /** One sweep: learns which tunnels moved, ends those due, runs `also`, writes the counters that moved. */
  async sweep(): Promise<void> {
    const { tunnels, clock } = this.deps;
    tunnels.takeChanges();
    await tunnels.endExpired(clock.now());
    await this.deps.also?.();
    await tunnels.persistCounters();
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
