/** A real TSP client session over UDP for the admin tests: DIGEST-MD5 (rspauth checked), then a v6udpv4
 *  tunnel created and accepted, through the shared scripted client (test/helpers/tsp.ts). Every wait is
 *  bounded; the caller closes the socket. */
import assert from 'node:assert/strict';
import type { RawUdp } from '../helpers/clients.js';
import { runSession } from '../helpers/tsp.js';

export interface DigestOutcome {
  udp: RawUdp;
  /** 'established' when the tunnel was accepted, else the status line that ended it. */
  result: string;
  /** The tunnel's client address, when established: the source its data packets must carry. */
  clientIpv6?: string;
}

/** Authenticates with DIGEST-MD5 and, when that succeeds, creates and accepts a v6udpv4 tunnel. */
export async function digestTunnelOverUdp(port: number, username: string, password: string): Promise<DigestOutcome> {
  const r = await runSession({ transport: 'udp', port, auth: { mechanism: 'DIGEST-MD5', username, password } });
  assert.ok(r.udp);
  if (!r.authStatus.startsWith('200')) return { udp: r.udp, result: r.authStatus.trim() };
  assert.equal(r.createStatus, 200, `create: ${r.raw.at(-2) ?? ''}`);
  assert.equal(r.offer?.type, 'v6udpv4');
  return { udp: r.udp, result: 'established', clientIpv6: r.offer.clientIpv6 };
}
