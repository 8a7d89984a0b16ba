/** @module admin/audit-budget: audit rows for events nobody authenticated (failed and locked-out sign-ins).
 *  Whoever can reach the sign-in form can cause them, so each row is bounded in size and their number is
 *  budgeted per source address and in all, per fixed one-minute window:
 *
 *  - the target (the username as sent) keeps at most AUDIT_TARGET_MAX characters, the actor
 *    AUDIT_ACTOR_MAX, and a detail whose JSON exceeds AUDIT_DETAIL_MAX characters is replaced by
 *    `{ "truncated": true }`;
 *  - past AUDIT_BUDGET_PER_SOURCE rows from one source, or AUDIT_BUDGET_TOTAL from all sources, in a window,
 *    no row is written: the `onSuppressed` hook counts it (tsp_audit_suppressed_total) and the first one of
 *    each window is logged (a warning naming the source), so a flood shows up without writing a line per
 *    request.
 *
 *  Memory is bounded too: the per-source counts are dropped at every window and hold at most
 *  AUDIT_BUDGET_TOTAL sources (a source past that is over budget anyway). */

import type { Logger } from 'pino';
import type { AuditEvent, Store } from '../store/types.js';
import type { Clock } from '../clock.js';

/** Usernames are at most 64 characters (the API's limit): a longer one cannot name an account. */
export const AUDIT_TARGET_MAX = 64;
export const AUDIT_ACTOR_MAX = 128;
export const AUDIT_DETAIL_MAX = 512;
/** Rows per source address per window: enough to see what a mistyping operator did. */
export const AUDIT_BUDGET_PER_SOURCE = 10;
/** Rows from all sources per window, so a spread-out flood is bounded as well. */
export const AUDIT_BUDGET_TOTAL = 300;
export const AUDIT_WINDOW_MS = 60_000;

export interface AuditBudgetHooks {
  /** Called once for every row not written. */
  onSuppressed?: () => void;
  log?: Logger;
}

/** `s` cut to at most `max` characters (whole code points), marked with a trailing '…' when cut. */
export function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  const points = Array.from(s.slice(0, max + 1));
  return points.length <= max ? points.join('') : points.slice(0, max - 1).join('') + '…';
}

export class UnauthenticatedAudit {
  private windowStart = -Infinity;
  private total = 0;
  private logged = false;
  private readonly perSource = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly hooks: AuditBudgetHooks = {},
  ) {}

  /** Writes the event, size-capped, unless `source` or everyone is over the window's budget. Returns whether
   *  a row was written. */
  async add(source: string, e: Omit<AuditEvent, 'id'>): Promise<boolean> {
    const now = this.clock.now();
    if (now - this.windowStart >= AUDIT_WINDOW_MS || now < this.windowStart) {
      this.windowStart = now;
      this.total = 0;
      this.logged = false;
      this.perSource.clear();
    }
    const used = this.perSource.get(source) ?? 0;
    if (used >= AUDIT_BUDGET_PER_SOURCE || this.total >= AUDIT_BUDGET_TOTAL) {
      this.hooks.onSuppressed?.();
      if (!this.logged) {
        this.logged = true;
        this.hooks.log?.warn(
          { source: truncate(source, AUDIT_ACTOR_MAX), action: e.action, windowS: AUDIT_WINDOW_MS / 1000 },
          'audit budget of unauthenticated events used up: further rows this window are counted, not written',
        );
      }
      return false;
    }
    this.perSource.set(source, used + 1);
    this.total += 1;
    const detail =
      e.detail === null || JSON.stringify(e.detail).length <= AUDIT_DETAIL_MAX ? e.detail : { truncated: true };
    await this.store.addAudit({
      at: e.at,
      actor: truncate(e.actor, AUDIT_ACTOR_MAX),
      action: e.action,
      target: e.target === null ? null : truncate(e.target, AUDIT_TARGET_MAX),
      detail,
    });
    return true;
  }
}
