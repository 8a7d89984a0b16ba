/** @module broker/anonymous: the anonymous tunnels held (offered or live), counted per source (an IPv4 address,
 *  an IPv6 /64) and per network (an IPv4 /24, an IPv6 /48), so the offer policy can bound them
 *  (broker/offer-policy.ts anonymousRefusal). In memory: a restart counts the restored tunnels again
 *  (TunnelRegistry.restore). */

import { prefix24, sourceKey } from '../address.js';
import type { TunnelRecord } from '../store/types.js';
import { endpointAddress, type TunnelType } from '../tunnel-model.js';

export class AnonymousHoldings {
  /** Tunnel id -> its source: the caller's string, not a copy; the /24 is worked out again at release, so a
   *  held tunnel costs one map entry here (100,000 of them in bench:scale). */
  private readonly byId = new Map<number, string>();
  private readonly bySource = new Map<string, number>();
  private readonly byPrefix = new Map<string, number>();
  /** v4v6 tunnels among byId: they hold the IPv4 pool, the others the link pool (each pool's share is its own). */
  private readonly v4v6 = new Set<number>();

  /** What a source holds now, for the quota check; `total`: the anonymous tunnels holding the same pool as a
   *  tunnel of `type` would (the v4v6 pool for v4v6, the link pool for the others). */
  held(source: string, type: TunnelType): { bySource: number; byPrefix24: number; total: number } {
    return {
      bySource: this.bySource.get(sourceKey(source)) ?? 0,
      byPrefix24: this.byPrefix.get(prefix24(source)) ?? 0,
      total: type === 'v4v6' ? this.v4v6.size : this.byId.size - this.v4v6.size,
    };
  }

  /** Counts an anonymous tunnel once (account tunnels and repeats are ignored). */
  hold(t: Pick<TunnelRecord, 'id' | 'accountId' | 'type' | 'clientIpv4' | 'clientIpv6'>): void {
    if (t.accountId !== null || this.byId.has(t.id)) return;
    const source = endpointAddress(t);
    this.byId.set(t.id, source);
    if (t.type === 'v4v6') this.v4v6.add(t.id);
    bump(this.bySource, sourceKey(source), 1);
    bump(this.byPrefix, prefix24(source), 1);
  }

  /** Idempotent: every path that ends a tunnel row calls it. */
  release(id: number): void {
    const source = this.byId.get(id);
    if (source === undefined) return;
    this.byId.delete(id);
    this.v4v6.delete(id);
    bump(this.bySource, sourceKey(source), -1);
    bump(this.byPrefix, prefix24(source), -1);
  }
}

function bump(m: Map<string, number>, key: string, by: number): void {
  const n = (m.get(key) ?? 0) + by;
  if (n > 0) m.set(key, n);
  else m.delete(key);
}
