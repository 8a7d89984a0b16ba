/** @module admin/actions: operations the REST API and the web UI both offer, composed once so the two cannot
 *  drift apart (docs/style.md §9). Account changes go through AccountService (which audits them); these add what a
 *  running broker must also do: end the live tunnels of a disabled or deleted account, overlay live counters
 *  on stored tunnel rows, check the current password before a self-service change. */

import { BrokerError } from '../errors.js';
import type { AccountService } from '../broker/accounts.js';
import type { Broker } from '../broker/broker.js';
import { verifyPassword } from '../broker/credentials.js';
import type { Account, Page, Store, TunnelRecord, TunnelSort, TunnelState } from '../store/types.js';
import type { TunnelType } from '../dataplane/types.js';

export interface TunnelQuery {
  /** 'live': tunnels in the data plane now (with live counters); 'all': every state, newest first. */
  state: TunnelState | 'live' | 'all';
  type?: TunnelType;
  username?: string;
  /** Case-insensitive substring of the username, client IPv4, client IPv6 or delegated prefix. */
  search?: string;
  sort?: TunnelSort;
  order?: 'asc' | 'desc';
  offset: number;
  limit: number;
}

/** The store's search and order (kysely-store.ts listTunnels), for the live tunnels the broker holds. */
function matches(t: TunnelRecord, search: string): boolean {
  const s = search.toLowerCase();
  return [t.username, t.clientIpv4, t.clientIpv6, t.prefix].some((v) => v !== null && v.toLowerCase().includes(s));
}

function compareBy(sort: TunnelSort, order: 'asc' | 'desc'): (a: TunnelRecord, b: TunnelRecord) => number {
  const key = (t: TunnelRecord): string | number =>
    sort === 'account'
      ? (t.username ?? '')
      : sort === 'type'
        ? t.type
        : sort === 'traffic'
          ? t.rxBytes + t.txBytes
          : t.createdAt;
  const sign = order === 'asc' ? 1 : -1;
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    return sign * (ka < kb ? -1 : ka > kb ? 1 : a.id - b.id);
  };
}

export class AdminActions {
  constructor(
    private readonly store: Store,
    private readonly accounts: AccountService,
    private readonly broker: Broker,
  ) {}

  /** Disabling also ends the account's live tunnels (it could not authenticate again anyway). */
  async setDisabled(actor: string, username: string, disabled: boolean): Promise<Account> {
    const account = await this.accounts.setDisabled(actor, username, disabled);
    if (disabled) await this.broker.endAccountTunnels(account.id, 'account_disabled');
    return account;
  }

  /** Ends the account's live tunnels (counters saved, reason 'admin'), then deletes it. */
  async deleteAccount(actor: string, username: string): Promise<void> {
    const account = await this.accounts.get(username);
    await this.broker.endAccountTunnels(account.id, 'admin');
    await this.accounts.delete(actor, username);
  }

  /** An account holder changing their own password must know the current one. */
  async changeOwnPassword(
    actor: string,
    account: Account,
    currentPassword: string,
    newPassword: string,
  ): Promise<void> {
    const secrets = await this.store.getAccountSecrets(account.username);
    if (!secrets || !(await verifyPassword(secrets.passwordHash, currentPassword)))
      throw new BrokerError('AUTH_FAILED', 'the current password is wrong');
    await this.accounts.setPassword(actor, account.username, newPassword);
  }

  /** Tunnels by filter, searched, sorted and paged. Live ones come from the broker with live counters (so a
   *  traffic sort is by the live counters; they are as many as the broker holds, never the stored history);
   *  every other state is a store query, and stored rows of tunnels still live get the live counters too. */
  async tunnels(q: TunnelQuery): Promise<Page<TunnelRecord>> {
    const accountId = q.username === undefined ? undefined : (await this.accounts.get(q.username)).id;
    const live = this.broker.liveTunnels();
    if (q.state === 'live') {
      const items = live
        .filter(
          (t) =>
            (q.type === undefined || t.type === q.type) &&
            (accountId === undefined || t.accountId === accountId) &&
            (!q.search || matches(t, q.search)),
        )
        .sort(compareBy(q.sort ?? 'started', q.order ?? 'desc'));
      return { items: items.slice(q.offset, q.offset + q.limit), total: items.length };
    }
    const page = await this.store.listTunnels({
      ...(q.state === 'all' ? {} : { state: q.state }),
      ...(q.type ? { type: q.type } : {}),
      ...(accountId !== undefined ? { accountId } : {}),
      ...(q.search ? { search: q.search } : {}),
      ...(q.sort ? { sort: q.sort } : {}),
      ...(q.order ? { order: q.order } : {}),
      offset: q.offset,
      limit: q.limit,
    });
    const byId = new Map(live.map((t) => [t.id, t]));
    return { items: page.items.map((t) => byId.get(t.id) ?? t), total: page.total };
  }

  /** One tunnel, with live counters when it is live. STORE_NOT_FOUND when there is no such tunnel. */
  async tunnel(id: number): Promise<TunnelRecord & { live: boolean }> {
    const live = this.broker.liveTunnels().find((t) => t.id === id);
    if (live) return { ...live, live: true };
    const t = await this.store.getTunnel(id);
    if (!t) throw new BrokerError('STORE_NOT_FOUND', `no tunnel with id ${id}`);
    return { ...t, live: false };
  }

  /** Live tunnels by type, for the dashboard and /api/v1/stats. */
  liveByType(): Record<TunnelType, number> {
    const out: Record<TunnelType, number> = { v6v4: 0, v6udpv4: 0 };
    for (const t of this.broker.liveTunnels()) out[t.type] += 1;
    return out;
  }
}
