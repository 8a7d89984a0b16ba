/** @module broker/anonymous: the anonymous tunnels held (offered or live), counted per source IPv4 and per
 *  /24, so the offer policy can bound them (broker/offer-policy.ts anonymousRefusal). In memory: a restart
 *  counts the restored tunnels again (TunnelRegistry.restore). */

import { prefix24 } from '../address.js';
import type { TunnelRecord } from '../store/types.js';

export class AnonymousHoldings {
  private readonly byId = new Map<number, { source: string; prefix: string }>();
  private readonly bySource = new Map<string, number>();
  private readonly byPrefix = new Map<string, number>();

  /** What a source holds now, for the quota check. */
  held(source: string): { bySource: number; byPrefix24: number; total: number } {
    return {
      bySource: this.bySource.get(source) ?? 0,
      byPrefix24: this.byPrefix.get(prefix24(source)) ?? 0,
      total: this.byId.size,
    };
  }

  /** Counts an anonymous tunnel once (account tunnels and repeats are ignored). */
  hold(t: Pick<TunnelRecord, 'id' | 'accountId' | 'clientIpv4'>): void {
    if (t.accountId !== null || this.byId.has(t.id)) return;
    const k = { source: t.clientIpv4, prefix: prefix24(t.clientIpv4) };
    this.byId.set(t.id, k);
    bump(this.bySource, k.source, 1);
    bump(this.byPrefix, k.prefix, 1);
  }

  /** Idempotent: every path that ends a tunnel row calls it. */
  release(id: number): void {
    const k = this.byId.get(id);
    if (!k) return;
    this.byId.delete(id);
    bump(this.bySource, k.source, -1);
    bump(this.byPrefix, k.prefix, -1);
  }
}

function bump(m: Map<string, number>, key: string, by: number): void {
  const n = (m.get(key) ?? 0) + by;
  if (n > 0) m.set(key, n);
  else m.delete(key);
}
