/** @module protocol/redirect: the broker list of a TSP redirect (status 1200, docs/protocol.md "Redirect"),
 *  written in the form gogoc 1.2 reads: a <tunnel> holding one <broker> with an <address> per broker. Values
 *  are validated here: nothing unvalidated reaches the reply. Pure. */

import ipaddr from 'ipaddr.js';
import { RemoteProtocolError, type BrokerError } from '../errors.js';

export interface BrokerAddress {
  type: 'ipv4' | 'ipv6';
  address: string;
}

/** Where a new session goes instead of an offer (several nodes: cluster/node.ts), or why it is refused. */
export type RedirectDecision = { redirect: readonly BrokerAddress[] } | { error: BrokerError };

/** The status a redirect is answered with (gogoSERVER's; clients follow any status above 1000). */
export const REDIRECT_STATUS = { code: 1200, text: 'Redirect' } as const;

/** The body after the status line: `<tunnel action="info"><broker><address type="ipv4">…</address>…`. */
export function writeBrokerList(brokers: readonly BrokerAddress[]): string {
  if (brokers.length === 0) throw new RemoteProtocolError('INTERNAL', 'a redirect needs at least one broker');
  const entries = brokers.map((b) => `<address type="${b.type}">${checked(b)}</address>`).join('');
  return `<tunnel action="info"><broker>${entries}</broker></tunnel>\r\n`;
}

function checked(b: BrokerAddress): string {
  if (b.type === 'ipv4' && ipaddr.IPv4.isValidFourPartDecimal(b.address)) return b.address;
  if (b.type === 'ipv6' && ipaddr.IPv6.isValid(b.address) && !b.address.includes('%'))
    return ipaddr.IPv6.parse(b.address).toString();
  throw new RemoteProtocolError('INTERNAL', `not a broker address of type ${b.type}: ${b.address}`);
}
