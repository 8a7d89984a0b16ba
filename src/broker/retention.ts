/** @module broker/retention: keeps the database from growing without bound. Ended tunnels and audit events older
 *  than the configured retention (config `retention`, 0 = forever) and expired web sessions are deleted: once
 *  when the broker starts, then hourly.
 *
 *  A pass deletes in batches of PRUNE_BATCH rows, each its own short transaction, and yields to the event loop
 *  between them (better-sqlite3 is synchronous: one big DELETE over a year of backlog would stall every TSP
 *  session for its whole duration). A pass also stops after MAX_BATCHES_PER_PASS batches per kind, so a huge
 *  backlog is worked off over several passes, a minute apart, instead of in one long run. */

import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Clock, Timer } from '../clock.js';
import type { AuditStore, TunnelStore, WebStore } from '../store/types.js';

/** The store calls retention makes. */
type RetentionStore = TunnelStore & AuditStore & WebStore;

export interface RetentionConfig {
  /** Days after their end that ended tunnels are kept; 0: forever. */
  endedTunnelsDays: number;
  /** Days audit events are kept; 0: forever. */
  auditDays: number;
}

/** Rows per transaction: a few milliseconds of work on SQLite. */
export const PRUNE_BATCH = 500;
/** Batches per kind of row in one pass (50,000 rows). */
export const MAX_BATCHES_PER_PASS = 100;
export const PRUNE_INTERVAL_MS = 3600_000;
/** The next pass after one that left work behind. */
export const CATCH_UP_INTERVAL_MS = 60_000;

const DAY_MS = 86_400_000;

export interface PruneResult {
  tunnels: number;
  audit: number;
  webSessions: number;
  /** Some kind still had rows past its retention when the pass stopped (MAX_BATCHES_PER_PASS). */
  more: boolean;
}

export interface PruneOptions {
  batch?: number;
  maxBatches?: number;
  /** Checked before each batch: true ends the pass early (the broker is stopping). */
  stopping?: () => boolean;
}

/** One pass at `now`. Store errors reject (the caller logs them and tries again at the next pass). */
export async function pruneOnce(
  store: RetentionStore,
  cfg: RetentionConfig,
  now: number,
  opts: PruneOptions = {},
): Promise<PruneResult> {
  const batch = opts.batch ?? PRUNE_BATCH;
  const maxBatches = opts.maxBatches ?? MAX_BATCHES_PER_PASS;
  let more = false;
  const drain = async (step: () => Promise<number>): Promise<number> => {
    let total = 0;
    for (let i = 0; i < maxBatches; i++) {
      if (opts.stopping?.()) return total;
      const n = await step();
      total += n;
      if (n < batch) return total;
      await yieldToEventLoop();
    }
    more = true;
    return total;
  };
  const tunnels =
    cfg.endedTunnelsDays > 0
      ? await drain(() => store.pruneEndedTunnels(now - cfg.endedTunnelsDays * DAY_MS, batch))
      : 0;
  const audit = cfg.auditDays > 0 ? await drain(() => store.pruneAudit(now - cfg.auditDays * DAY_MS, batch)) : 0;
  const webSessions = await drain(() => store.deleteExpiredWebSessions(now, batch));
  return { tunnels, audit, webSessions, more };
}

export interface Retention {
  /** Stops the timer and waits for a pass in progress (call before closing the store). */
  stop(): Promise<void>;
}

/** Runs pruneOnce now and then every PRUNE_INTERVAL_MS on an unref'd timer (it never keeps the process up);
 *  logs what each pass removed when it removed anything. */
export function startRetention(store: RetentionStore, cfg: RetentionConfig, clock: Clock, log: Logger): Retention {
  let timer: Timer | undefined;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = clock.setTimeout(run, ms, { unref: true });
  };
  const run = () => {
    running = pruneOnce(store, cfg, clock.now(), { stopping: () => stopped }).then(
      (r) => {
        if (r.tunnels || r.audit || r.webSessions)
          log.info(
            { tunnels: r.tunnels, audit: r.audit, webSessions: r.webSessions, more: r.more },
            'retention: pruned old rows',
          );
        schedule(r.more ? CATCH_UP_INTERVAL_MS : PRUNE_INTERVAL_MS);
      },
      (err: unknown) => {
        if (!stopped) log.warn({ err }, 'retention: pruning failed; trying again at the next pass');
        schedule(PRUNE_INTERVAL_MS);
      },
    );
  };
  run();
  return {
    async stop() {
      stopped = true;
      timer?.cancel();
      await running;
    },
  };
}
