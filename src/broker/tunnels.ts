/** @module broker/tunnels: ending a tunnel from outside the running broker (`tsp-broker tunnel kill` opens
 *  the store directly). The end is committed and audited here; the running broker sees the `tunnel.kill`
 *  audit event at its next sweep and takes the tunnel out of the data plane (Broker.followAudit). */

import { BrokerError } from '../errors.js';
import type { Store } from '../store/types.js';

export async function killTunnelInStore(store: Store, id: number, actor: string, nowMs: number): Promise<void> {
  await store.batch(async () => {
    const t = await store.getTunnel(id);
    if (!t) throw new BrokerError('STORE_NOT_FOUND', `no tunnel with id ${id}`);
    if (t.state === 'ended') throw new BrokerError('STORE_CONFLICT', `tunnel ${id} already ended (${t.endReason})`);
    await store.endTunnel(id, 'admin', nowMs);
    if (t.leaseId) await store.releaseLease(t.leaseId);
    await store.addAudit({
      at: nowMs,
      actor,
      action: 'tunnel.kill',
      target: String(id),
      detail: { username: t.username },
    });
  });
}
