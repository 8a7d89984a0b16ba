/** @module broker/audit-follow: changes made by another process reach the data plane. `tsp-broker user
 *  disable|delete` and `tunnel kill` open the store directly and cannot reach the running broker; the audit
 *  trail says what changed, so every sweep reads the followed actions newer than the last seen (one small
 *  query per action, not a look at every live tunnel) and ends the affected live tunnels, with the same end
 *  reason as when the broker itself does it (broker/accounts.ts END_REASON). An `account.enable` brings the
 *  account's static 6in4 tunnel back (`onEnabled`, broker/static-tunnels.ts). */

import type { EndReason, Store } from '../store/types.js';
import type { TunnelRegistry } from './tunnels.js';

/** Audit actions, possibly taken by another process, that end live tunnels, and the reason each gives. */
export const FOLLOWED: Readonly<Record<string, EndReason>> = {
  'account.disable': 'account_disabled',
  'account.delete': 'account_deleted',
  'tunnel.kill': 'admin',
};

const ENABLE = 'account.enable';

export class AuditFollower {
  /** Newest audit event id seen per followed action. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly store: Pick<Store, 'listAudit' | 'getAccountSecrets'>,
    private readonly tunnels: TunnelRegistry,
    /** An account was enabled (by any process): what comes back with it. */
    private readonly onEnabled?: (accountId: number) => Promise<void>,
  ) {}

  /** Starts from the newest events: what happened before this process started is already in the store. */
  async start(): Promise<void> {
    for (const action of [...Object.keys(FOLLOWED), ENABLE])
      this.seen.set(action, (await this.store.listAudit({ action, limit: 1 })).items[0]?.id ?? 0);
  }

  /** The targets of `action`'s events since the last call (at most the newest 100). */
  private async newTargets(action: string): Promise<Set<string>> {
    const seen = this.seen.get(action) ?? 0;
    const page = await this.store.listAudit({ action, limit: 100 });
    this.seen.set(action, Math.max(seen, page.items[0]?.id ?? 0));
    return new Set(page.items.filter((e) => e.id > seen && e.target).map((e) => e.target!));
  }

  async follow(): Promise<void> {
    await this.followEnds();
    if (!this.onEnabled) return;
    for (const target of await this.newTargets(ENABLE)) {
      const account = await this.store.getAccountSecrets(target);
      if (account && !account.disabled) await this.onEnabled(account.id);
    }
  }

  private async followEnds(): Promise<void> {
    for (const [action, reason] of Object.entries(FOLLOWED)) {
      for (const target of await this.newTargets(action)) {
        if (action === 'tunnel.kill') {
          await this.tunnels.end(Number(target), reason); // the store has it ended already; this catches up
          continue;
        }
        const account = await this.store.getAccountSecrets(target);
        if (account && !account.disabled) continue; // enabled (or made again) since
        await this.tunnels.endAll(this.tunnels.idsOfUsername(target).map((id) => [id, reason]));
      }
    }
  }
}
