/** @module test/helpers/tsp-test-client: a small TSP client for the broker's end-to-end tests (not tspc). Run
 *  inside a client namespace:
 *
 *    node --import tsx test/helpers/tsp-test-client.ts '{"server":"203.0.113.1","type":"v6udpv4",...}'
 *
 *  negotiate over UDP --> TUN up with the offered addresses --> print {"event":"up",...} --> keepalives
 *  (ping6 to the offer's keepalive address) until stdin closes, SIGTERM, or a deadline
 *
 *  The TSP session runs over the UDP socket of the addon's client tunnel (startClientTunnel: sendControl and
 *  onControl), so the v6udpv4 data that follows shares its NAT binding, as gogoc's does (docs/protocol.md §8.3).
 *  When the offer is v6v4 (asked for, or v6anyv4 without NAT) that tunnel is closed and a protocol-41 one
 *  opened under the same device name. Options (one JSON argument) are ClientPlan below. Lines on stdout are
 *  JSON events: {"event":"up","offer":…,"localPort":…} once, {"event":"error","message":…} on failure (exit 1).
 *  Line "counters" on stdin prints {"event":"counters",…}. */

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import ipaddr from 'ipaddr.js';
import { startClientTunnel, type ClientTunnel } from '../../src/dataplane/client-tunnel.js';
import type { ControlDatagram } from '../../src/dataplane/types.js';
import { framedRequest } from '../../src/protocol/framing/content-length.js';
import { encodePlain } from '../../src/protocol/sasl/plain.js';
import { parseOffer, type Offer, type RequestedType } from '../../src/protocol/xml.js';
import { writeActionRequest, writeCreateRequest } from '../../src/protocol/request-writer.js';

export interface ClientPlan {
  /** The broker's IPv4 address; TSP on `port` (default 3653). */
  server: string;
  port?: number;
  type: RequestedType;
  /** What the client says its IPv4 address is (its own interface's): the broker compares it for NAT. */
  clientIpv4: string;
  /** PLAIN credentials; anonymous without them. */
  username?: string;
  password?: string;
  keepaliveInterval?: number;
  /** Router mode: ask for a prefix of this length; its ::1 goes on lo, reachable from outside. */
  prefixLength?: number;
  /** Send no keepalives (a silent client, for idle expiry). */
  silent?: boolean;
  tunName?: string;
  /** Exit after this long whatever happens, so a leaked client cannot outlive a test run by much. */
  maxLifetimeS?: number;
}

const REPLY_TIMEOUT_MS = 1_000;
const ATTEMPTS = 5;

const plan = JSON.parse(process.argv[2] ?? '{}') as ClientPlan;
const tunName = plan.tunName ?? 'tun0';
const port = plan.port ?? 3653;
let tunnel: ClientTunnel | undefined;
let keepalive: ChildProcess | undefined;

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

function shutDown(code: number): never {
  keepalive?.kill('SIGKILL');
  tunnel?.close();
  process.exit(code);
}

/** Request/response over the tunnel's UDP flow: one outstanding datagram, matched by sequence number,
 *  retransmitted with the same sequence (the broker answers a repeat from its reply cache, §2.3). */
class UdpExchange {
  private seq = 1;
  private waiting: { seq: number; resolve: (body: string) => void } | undefined;

  onBatch = (batch: readonly ControlDatagram[]): void => {
    for (const d of batch) {
      if (d.data.length < 8) continue;
      const seq = d.data.readUInt32BE(0) & 0x0fffffff;
      if (this.waiting?.seq === seq) this.waiting.resolve(d.data.subarray(8).toString('latin1'));
    }
  };

  async request(t: ClientTunnel, body: string | Buffer): Promise<string> {
    const seq = this.seq++;
    const header = Buffer.alloc(8);
    header.writeUInt32BE((0xf0000000 | seq) >>> 0, 0);
    const datagram = Buffer.concat([header, typeof body === 'string' ? Buffer.from(body, 'latin1') : body]);
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const reply = new Promise<string | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), REPLY_TIMEOUT_MS);
        this.waiting = {
          seq,
          resolve: (text) => {
            clearTimeout(timer);
            resolve(text);
          },
        };
      });
      t.sendControl(datagram);
      const text = await reply;
      if (text !== undefined) return text;
    }
    throw new Error(`no reply to sequence ${seq} after ${ATTEMPTS} attempts`);
  }
}

async function negotiate(t: ClientTunnel, exchange: UdpExchange): Promise<Offer> {
  const version = await exchange.request(t, 'VERSION=2.0.2\r\n');
  if (!version.startsWith('CAPABILITY')) throw new Error(`VERSION answered: ${version.trim()}`);
  let auth: string;
  if (plan.username !== undefined) {
    await exchange.request(t, 'AUTHENTICATE PLAIN\r\n\0');
    auth = await exchange.request(t, encodePlain({ username: plan.username, password: plan.password ?? '' }));
  } else {
    auth = await exchange.request(t, 'AUTHENTICATE ANONYMOUS\r\n\0');
  }
  if (!auth.startsWith('200')) throw new Error(`authentication answered: ${auth.trim()}`);
  const create = writeCreateRequest({
    type: plan.type,
    clientIpv4: plan.clientIpv4,
    keepaliveInterval: plan.keepaliveInterval ?? 2,
    ...(plan.prefixLength !== undefined ? { prefixLength: plan.prefixLength } : {}),
  });
  const offerText = await exchange.request(t, framedRequest(create));
  if (!/^Content-length: \d+\r\n200 /.test(offerText)) throw new Error(`create answered: ${offerText.trim()}`);
  const offer = parseOffer(offerText.slice(offerText.indexOf('<')));
  await exchange.request(t, framedRequest(writeActionRequest('accept')));
  return offer;
}

/** <prefix>::1, as canonical text (offers write addresses fully expanded). */
function firstHost(prefixAddress: string): string {
  const bytes = ipaddr.IPv6.parse(prefixAddress).toByteArray();
  bytes[15] = 1;
  return ipaddr.fromByteArray(bytes).toString();
}

async function main(): Promise<void> {
  const exchange = new UdpExchange();
  const server = { address: plan.server, port };
  tunnel = startClientTunnel({ tunName, type: 'v6udpv4', server }, exchange.onBatch);
  const offer = await negotiate(tunnel, exchange);
  if (offer.type === 'v6v4') {
    // Protocol 41 from here on: the UDP flow was for TSP only.
    tunnel.close();
    tunnel = startClientTunnel({ tunName, type: 'v6v4', server: { address: offer.serverIpv4, port } });
  }
  ip('link', 'set', 'dev', tunnel.tunName, 'mtu', '1280', 'up');
  ip('-6', 'addr', 'add', `${offer.clientIpv6}/64`, 'dev', tunnel.tunName, 'nodad');
  ip('-6', 'route', 'add', 'default', 'dev', tunnel.tunName);
  if (offer.prefix) ip('-6', 'addr', 'replace', `${firstHost(offer.prefix.address)}/128`, 'dev', 'lo'); // kept from a previous run
  if (!plan.silent && offer.keepalive && offer.keepalive.interval > 0) {
    // The keepalive is an ICMPv6 echo through the tunnel to the offer's address (docs/protocol.md §9.1).
    keepalive = spawn(
      'ping',
      [
        '-6',
        '-q',
        '-i',
        String(offer.keepalive.interval),
        '-w',
        String(plan.maxLifetimeS ?? 300),
        offer.keepalive.address,
      ],
      { stdio: 'ignore' },
    );
  }
  emit({ event: 'up', offer, tunName: tunnel.tunName, localPort: tunnel.localPort });
}

process.on('SIGTERM', () => shutDown(0));
process.on('SIGINT', () => shutDown(0));
setTimeout(() => shutDown(0), (plan.maxLifetimeS ?? 300) * 1000).unref();
// The test process holds our stdin: when it goes away, so do we.
createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (line.trim() === 'counters' && tunnel) emit({ event: 'counters', ...tunnel.readCounters() });
  })
  .on('close', () => shutDown(0));

main().catch((err: unknown) => {
  emit({ event: 'error', message: err instanceof Error ? err.message : String(err) });
  shutDown(1);
});
