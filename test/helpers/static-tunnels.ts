/** Calls for static 6in4 tunnel tests against a TestBroker over real sockets: the REST API on the admin
 *  listener (an operator's token, or a web session's cookie) and /nic/update on the self-service listener. */
import http from 'node:http';
import type { TestBroker } from './broker.js';
import type { AuditEvent, TunnelRecord } from '../../src/store/types.js';

export interface StaticCtx {
  b: TestBroker;
  /** An operator's API token. */
  token: string;
}

/** The fields tests read from the API's replies (each reply has some of them). */
export interface StaticReply {
  code?: string;
  message?: string;
  hostname?: string;
  endpoint?: string | null;
  hasUpdateKey?: boolean;
  tunnel?: TunnelRecord | null;
  updateKey?: string;
  result?: string;
  total?: number;
  staticTunnel?: { tunnel: TunnelRecord };
  items?: (TunnelRecord & AuditEvent)[];
}

/** A REST call on the admin listener with the operator's token. */
export async function staticApi(
  c: StaticCtx,
  method: string,
  url: string,
  body?: object,
): Promise<{ status: number; json: StaticReply }> {
  const r = await fetch(`http://127.0.0.1:${c.b.admin!.port}/api/v1${url}`, {
    method,
    headers: { authorization: `Bearer ${c.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await r.text();
  return { status: r.status, json: (text ? JSON.parse(text) : {}) as StaticReply };
}

/** A dyndns2 update on the self-service listener, as ddclient sends it; returns the status and the body line. */
export async function nicUpdate(
  c: StaticCtx,
  query: string,
  user?: string,
  password?: string,
): Promise<[number, string]> {
  const headers: Record<string, string> = {};
  if (user !== undefined) headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const r = await fetch(`http://127.0.0.1:${c.b.selfService!.port}/nic/update?system=dyndns&${query}`, { headers });
  return [r.status, (await r.text()).trim()];
}

/** The same update sent from another loopback source address (`from`, e.g. 127.0.0.2): another client, as the
 *  broker's per-source limits see it. */
export function nicUpdateFrom(
  c: StaticCtx,
  from: string,
  query: string,
  user: string,
  password: string,
): Promise<[number, string]> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        host: '127.0.0.1',
        port: c.b.selfService!.port,
        path: `/nic/update?system=dyndns&${query}`,
        localAddress: from,
        auth: `${user}:${password}`,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve([res.statusCode ?? 0, body.trim()]));
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('no answer from /nic/update')));
    req.on('error', reject);
  });
}
