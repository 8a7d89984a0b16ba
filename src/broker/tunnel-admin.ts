/** @module broker/tunnel-admin: what operators do to tunnels, one implementation for every front end: list and
 *  show them (live ones with live counters), kill one (and block its owner for a while).
 *
 *  `killTunnelInStore` is the CLI's path: it opens the store itself, so it commits and audits the end there; the
 *  running broker sees the `tunnel.kill` event at its next sweep and takes the tunnel out of the data plane
 *  (broker/audit-follow.ts). `TunnelAdmin.kill` is the running broker's: the end is at once. */

import type { Clock } from '../clock.js';
import type { Logger } from 'pino';
import { BrokerError } from '../errors.js';
import { endpointAddress, type TunnelType } from '../tunnel-model.js';
import type { Page, Store, TunnelRecord, TunnelSort, TunnelState } from '../store/types.js';
import type { TunnelBlocks } from './blocks.js';
import type { TunnelRegistry } from './tunnels.js';

export interface TunnelQuery {
  /** 'live': tunnels in the data plane now (with live counters); 'all': every state, newest first. */
  state: TunnelState | 'live' | 'all';
  type?: TunnelType;
  /** Only this account's tunnels (STORE_NOT_FOUND when there is no such account). */
  username?: string;
  /** Case-insensitive substring of the username, client IPv4, client IPv6 or delegated prefix. */
  search?: string;
  sort?: TunnelSort;
  order?: 'asc' | 'desc';
  offset: number;
  limit: number;
}

export async function killTunnelInStore(
  store: Pick<Store, 'batch' | 'getTunnel' | 'endTunnel' | 'releaseLease' | 'addAudit'>,
  id: number,
  actor: string,
  nowMs: number,
): Promise<void> {
  await store.batch(async (tx) => {
    const t = await tx.getTunnel(id);
    if (!t) throw new BrokerError('STORE_NOT_FOUND', `no tunnel with id ${id}`);
    if (t.state === 'ended') throw new BrokerError('STORE_CONFLICT', `tunnel ${id} already ended (${t.endReason})`);
    await tx.endTunnel(id, 'admin', nowMs);
    if (t.leaseId) await tx.releaseLease(t.leaseId);
    await tx.addAudit({
      at: nowMs,
      actor,
      action: 'tunnel.kill',
      target: String(id),
      detail: { username: t.username },
    });
  });
}

export class TunnelAdmin {
  constructor(
    private readonly deps: {
      store: Pick<
        Store,
        'listTunnels' | 'getTunnel' | 'addAudit' | 'getAccountSecrets' | 'batch' | 'endTunnel' | 'releaseLease'
      >;
      tunnels: TunnelRegistry;
      blocks: TunnelBlocks;
      clock: Clock;
      log: Logger;
      /** Several nodes share the store (cluster/node.ts): a live tunnel may be another node's. */
      clustered?: boolean;
    },
  ) {}

  /** Ends a live tunnel on an operator's order; `blockMinutes`: its account (or an anonymous tunnel's source
   *  address) gets no tunnel until the block expires. */
  async kill(id: number, actor: string, opts: { blockMinutes?: number } = {}): Promise<void> {
    const t = this.deps.tunnels.get(id);
    if (!t && this.deps.clustered) {
      // another node's: ended and audited in the store, whose message makes that node drop it (cluster.ts);
      // a block holds on this node only (blocks are in memory: docs/admin.md)
      const row = await this.deps.store.getTunnel(id);
      await killTunnelInStore(this.deps.store, id, actor, this.deps.clock.now());
      if (row && opts.blockMinutes)
        this.deps.blocks.block(
          row.accountId !== null ? { accountId: row.accountId } : { source: endpointAddress(row) },
          opts.blockMinutes,
        );
      this.deps.log.info({ tunnel: id, actor, node: row?.node }, "another node's tunnel killed");
      return;
    }
    if (!t) throw new BrokerError('STORE_NOT_FOUND', `tunnel ${id} is not live`);
    await this.deps.tunnels.end(id, 'admin');
    let blocked: { blockMinutes: number; blockedUntil: string } | undefined;
    if (opts.blockMinutes) {
      const key = t.accountId !== null ? { accountId: t.accountId } : { source: endpointAddress(t) };
      const until = this.deps.blocks.block(key, opts.blockMinutes);
      blocked = { blockMinutes: opts.blockMinutes, blockedUntil: new Date(until).toISOString() };
      this.deps.log.info({ tunnel: id, ...key, ...blocked, actor }, 'tunnel killed and its owner blocked');
    }
    await this.deps.store.addAudit({
      at: this.deps.clock.now(),
      actor,
      action: 'tunnel.kill',
      target: String(id),
      detail: { username: t.username, ...(blocked ?? {}) },
    });
  }

  /** Tunnels by filter, searched, sorted and paged. Live ones come from the registry with live counters (so a
   *  traffic sort is by the live counters; they are as many as the broker holds, never the stored history);
   *  every other state is a store query, and stored rows of tunnels still live get the live counters too. */
  async list(q: TunnelQuery): Promise<Page<TunnelRecord>> {
    const accountId = q.username === undefined ? undefined : await this.accountId(q.username);
    // on a cluster the live tunnels are every node's: the store has them all (this node's with live counters)
    if (q.state === 'live' && !this.deps.clustered) {
      const items = this.deps.tunnels
        .list()
        .filter(
          (t) =>
            (q.type === undefined || t.type === q.type) &&
            (accountId === undefined || t.accountId === accountId) &&
            (!q.search || matches(t, q.search)),
        )
        .sort(compareBy(q.sort ?? 'started', q.order ?? 'desc'));
      return { items: items.slice(q.offset, q.offset + q.limit), total: items.length };
    }
    const page = await this.deps.store.listTunnels({
      ...(q.state === 'all' ? {} : { state: q.state }),
      ...(q.type ? { type: q.type } : {}),
      ...(accountId !== undefined ? { accountId } : {}),
      ...(q.search ? { search: q.search } : {}),
      ...(q.sort ? { sort: q.sort } : {}),
      ...(q.order ? { order: q.order } : {}),
      offset: q.offset,
      limit: q.limit,
    });
    const byId = new Map(this.deps.tunnels.listOf(page.items.map((t) => t.id)).map((t) => [t.id, t]));
    return { items: page.items.map((t) => byId.get(t.id) ?? t), total: page.total };
  }

  private async accountId(username: string): Promise<number> {
    const a = await this.deps.store.getAccountSecrets(username);
    if (!a) throw new BrokerError('STORE_NOT_FOUND', `no account named ${username}`);
    return a.id;
  }

  /** One tunnel, with live counters when it is live. STORE_NOT_FOUND when there is no such tunnel. */
  async get(id: number): Promise<TunnelRecord & { live: boolean }> {
    const [live] = this.deps.tunnels.listOf([id]);
    if (live) return { ...live, live: true };
    const t = await this.deps.store.getTunnel(id);
    if (!t) throw new BrokerError('STORE_NOT_FOUND', `no tunnel with id ${id}`);
    return { ...t, live: false };
  }

  /** Live tunnels by type, for the dashboard and /api/v1/stats. */
  liveByType(): Record<TunnelType, number> {
    return this.deps.tunnels.countByType();
  }
}

/** The store's search and order (store listTunnels), for the live tunnels the broker holds. */
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
