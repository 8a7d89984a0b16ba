/** @module store/tunnel-record: the record of a tunnel not yet read back from a row: what the store's createTunnel
 *  returns for the row it just wrote (kysely/tunnels.ts) and what a pending offer is (broker/pending-offer.ts). */

import { clientPortFor } from '../tunnel-model.js';
import { canonicalAddress } from './prefix.js';
import type { NewTunnel, TunnelRecord } from './types.js';

/** `t` as a record of state 'offered' created at `at` (or 'established' at `establishedAt`), with no traffic. */
export function newTunnelRecord(
  t: NewTunnel,
  at: number,
  own: { id: number; username: string | null; node?: string; establishedAt?: number },
): TunnelRecord {
  // every field written out: a record of the one shape every TunnelRecord has
  return {
    id: own.id,
    accountId: t.accountId,
    username: own.username,
    leaseId: t.leaseId,
    type: t.type,
    transport: t.transport,
    clientIpv4: t.clientIpv4,
    clientPort: clientPortFor(t.type, t.clientPort),
    serverIpv4: t.serverIpv4,
    serverIpv6: t.serverIpv6,
    clientIpv6: t.clientIpv6,
    prefix: t.prefix === null ? null : canonicalAddress(t.prefix),
    prefixLen: t.prefixLen,
    keepaliveInterval: t.keepaliveInterval,
    lifetimeS: t.lifetimeS,
    state: own.establishedAt === undefined ? 'offered' : 'established',
    createdAt: at,
    establishedAt: own.establishedAt ?? null,
    endedAt: null,
    endReason: null,
    lastSeenAt: null,
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    ...(own.node !== undefined ? { node: own.node } : {}),
  };
}
