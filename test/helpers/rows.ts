/** Store rows for tests that write the store directly: one tunnel fixture, overridden per test. */
import type { NewTunnel } from '../../src/store/types.js';

/** An anonymous v6udpv4 tunnel row from 192.0.2.10:40000 (documentation addresses), with `over` applied. */
export function newTunnel(over: Partial<NewTunnel> = {}): NewTunnel {
  return {
    accountId: null,
    leaseId: null,
    type: 'v6udpv4',
    transport: 'udp',
    clientIpv4: '192.0.2.10',
    clientPort: 40000,
    serverIpv4: '198.51.100.1',
    serverIpv6: 'fd00:1::1',
    clientIpv6: 'fd00:1::2',
    prefix: null,
    prefixLen: null,
    keepaliveInterval: 30,
    lifetimeS: 604800,
    ...over,
  };
}
