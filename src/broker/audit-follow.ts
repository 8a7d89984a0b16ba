/** @module broker/audit-follow: changes made by another process reach the data plane. `tsp-broker user
 *  disable|delete` and `tunnel kill` open the store directly and cannot reach the running broker; the audit
 *  trail says what changed, so every sweep reads the followed actions newer than the last seen (one small
 *  query per action, not a look at every live tunnel) and ends the affected live tunnels, with the same end
 *  reason as when the broker itself does it (broker/accounts.ts END_REASON). */

import type { EndReason, Store } from '../store/types.js';
import type { TunnelRegistry } from './tunnels.js';

/** Audit actions, possibly taken by another process, that end live tunnels, and the reason each gives. */
export const FOLLOWED: Readonly<Record<string, EndReason>> = {
  'account.disable': 'account_disabled',
  'account.delete': 'account_deleted',
  'tunnel.kill': 'admin',
};

export class AuditFollower {
  /** Newest audit event id seen per followed action. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly store: Pick<Store, 'listAudit' | 'getAccountSecrets'>,
    private readonly tunnels: TunnelRegistry,
  ) {}

  /** Starts from the newest events: what happened before this process started is already in the store. */
  async start(): Promise<void> {
    for (const action of Object.keys(FOLLOWED))
      this.seen.set(action, (await this.store.listAudit({ action, limit: 1 })).items[0]?.id ?? 0);
  }

  async follow(): Promise<void> {
    for (const [action, reason] of Object.entries(FOLLOWED)) {
      const seen = this.seen.get(action) ?? 0;
      const page = await this.store.listAudit({ action, limit: 100 });
      this.seen.set(action, Math.max(seen, page.items[0]?.id ?? 0));
      const targets = new Set(page.items.filter((e) => e.id > seen && e.target).map((e) => e.target!));
      for (const target of targets) {
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
