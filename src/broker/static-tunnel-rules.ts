/** @module broker/static-tunnel-rules: what static 6in4 tunnels (broker/static-tunnels.ts) accept, as pure
 *  functions: host names, endpoint addresses, update keys, and which TSP offers a live static tunnel refuses. */

import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import type { TunnelRecord } from '../store/types.js';
import { endpointKey, type TunnelType } from '../tunnel-model.js';
import { BrokerError } from '../errors.js';
import type { TunnelRegistry } from './tunnels.js';

/** A host name: dot-separated labels of letters, digits and inner hyphens, 253 characters at most. */
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const UPDATE_KEY_PREFIX = 'tspu_';

export function isHostname(name: string): boolean {
  const n = name.toLowerCase();
  return n.length >= 1 && n.length <= 253 && n.split('.').every((l) => LABEL.test(l));
}

export function checkHostname(name: string): string {
  if (!isHostname(name))
    throw new BrokerError(
      'API_BAD_REQUEST',
      'hostname must be a host name: labels of letters, digits and inner hyphens, separated by dots (253 at most)',
    );
  return name.toLowerCase();
}

const DOCUMENTATION = ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24'].map((c) => ipaddr.IPv4.parseCIDR(c));

/** Why `address` cannot be a 6in4 endpoint, or null: it must be a dotted-quad, public-looking unicast IPv4
 *  (not private, loopback, link-local, shared, multicast, broadcast, unspecified or reserved). The
 *  documentation ranges are accepted: tests and examples use them. */
export function endpointRefusal(address: string): string | null {
  if (!ipaddr.IPv4.isValidFourPartDecimal(address)) return `${address} is not a dotted-quad IPv4 address`;
  const a = ipaddr.IPv4.parse(address);
  if (DOCUMENTATION.some((c) => a.match(c))) return null;
  const range = a.range();
  return range === 'unicast' ? null : `${address} is not a public unicast IPv4 address (${range})`;
}

export function isStatic(t: Pick<TunnelRecord, 'transport'>): boolean {
  return t.transport === 'static';
}

/** Why a TSP offer of this type, to this account from this source, would take what a live static tunnel holds
 *  (its account's addresses, or its protocol-41 endpoint for a v6v4 offer), or undefined. */
export function staticRefusal(
  tunnels: Pick<TunnelRegistry, 'ofAccount' | 'atEndpoint'>,
  who: { accountId: number | null; username: string | null },
  type: TunnelType,
  source: string,
): string | undefined {
  if (who.accountId !== null && tunnels.ofAccount(who.accountId).some(isStatic))
    return `account ${who.username ?? ''} has a static 6in4 tunnel (remove it to use TSP)`;
  const there = type === 'v6v4' ? tunnels.atEndpoint(endpointKey('v6v4', source, 0)) : undefined;
  return there && isStatic(there) ? `protocol 41 from ${source} belongs to a static 6in4 tunnel` : undefined;
}

export function hashUpdateKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
