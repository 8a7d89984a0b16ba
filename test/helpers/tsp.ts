/** Drives whole TSP sessions over real sockets for tests (a scripted client, not tspc): anonymous, PLAIN or
 *  DIGEST-MD5, then create and accept. Returns what a user would see: statuses and the parsed offer. */
import { RawTcp, RawUdp, udpDatagram } from './clients.js';
import { framedRequest } from '../../src/protocol/framing/content-length.js';
import { parseOffer, type Offer, type RequestedType } from '../../src/protocol/xml.js';
import { writeActionRequest, writeCreateRequest } from '../../src/protocol/request-writer.js';
import { buildClientResponse, checkRspauth, parseChallenge } from '../../src/protocol/sasl/digest-md5.js';
import { encodePlain } from '../../src/protocol/sasl/plain.js';

export interface SessionPlan {
  transport: 'udp' | 'tcp';
  port: number;
  auth: { mechanism: 'ANONYMOUS' } | { mechanism: 'PLAIN' | 'DIGEST-MD5'; username: string; password: string };
  type?: RequestedType;
  clientIpv4?: string;
  keepaliveInterval?: number;
  prefixLength?: number;
  /** Router mode: name servers for the prefix's reverse zone. */
  dnsServers?: string[];
  accept?: boolean;
  /** Reuse an open UDP socket (same source port). */
  udp?: RawUdp;
  /** UDP: send each request up to this many times, `retransmitMs` apart, as gogoc does under loss (default 1:
   *  no retransmission). */
  tries?: number;
  retransmitMs?: number;
}

export interface SessionResult {
  authStatus: string;
  /** Status code of the reply to create, or 0 if the session ended before. */
  createStatus: number;
  offer?: Offer;
  raw: string[];
  udp?: RawUdp;
  tcp?: RawTcp;
}

function status(text: string): number {
  const m = /^(?:Content-length: \d+\r\n)?(\d{3,4}) /.exec(text);
  return m ? Number(m[1]) : 0;
}

export async function runSession(p: SessionPlan): Promise<SessionResult> {
  const raw: string[] = [];
  const create = framedRequest(
    writeCreateRequest({
      type: p.type ?? (p.transport === 'udp' ? 'v6udpv4' : 'v6v4'),
      clientIpv4: p.clientIpv4 ?? '127.0.0.1',
      ...(p.keepaliveInterval !== undefined ? { keepaliveInterval: p.keepaliveInterval } : { keepaliveInterval: 30 }),
      ...(p.prefixLength !== undefined ? { prefixLength: p.prefixLength } : {}),
      ...(p.dnsServers ? { dnsServers: p.dnsServers } : {}),
    }),
  );
  if (p.transport === 'udp') {
    const u = p.udp ?? (await RawUdp.open());
    let seq = 0xf0;
    const req = async (body: string | Buffer) => {
      const d = udpDatagram(seq++, 0, body);
      let r: Buffer | undefined;
      for (let t = 0; t < (p.tries ?? 1) && !r; t++) r = await u.request(d, p.port, p.retransmitMs ?? 2000);
      const t = r ? r.subarray(8).toString('latin1') : '(no reply)';
      raw.push(t);
      return t;
    };
    await req('VERSION=2.0.2\r\n');
    let authStatus: string;
    if (p.auth.mechanism === 'ANONYMOUS') authStatus = await req('AUTHENTICATE ANONYMOUS\r\n\0');
    else if (p.auth.mechanism === 'PLAIN') {
      await req('AUTHENTICATE PLAIN\r\n\0');
      authStatus = await req(encodePlain({ username: p.auth.username, password: p.auth.password }));
    } else {
      const ch = parseChallenge(Buffer.from((await req('AUTHENTICATE DIGEST-MD5\r\n\0')).trim(), 'base64').toString());
      const r = buildClientResponse({
        username: p.auth.username,
        password: p.auth.password,
        challenge: ch,
        cnonce: '42',
        digestUri: `tsp/127.0.0.1:${p.port}`,
      });
      const rsp = await req(`${Buffer.from(r.text).toString('base64')}\r\n`);
      if (!checkRspauth(Buffer.from(rsp.trim(), 'base64').toString(), r.expectedRspauth))
        return { authStatus: rsp, createStatus: 0, raw, udp: u };
      authStatus = await req('');
    }
    if (!authStatus.startsWith('200')) return { authStatus, createStatus: 0, raw, udp: u };
    const offerText = await req(create);
    const createStatus = status(offerText);
    const result: SessionResult = { authStatus, createStatus, raw, udp: u };
    if (createStatus === 200) {
      result.offer = parseOffer(offerText.slice(offerText.indexOf('<')));
      if (p.accept !== false) await req(framedRequest(writeActionRequest('accept')));
    }
    return result;
  }
  const c = await RawTcp.connect(p.port);
  let seen = 0;
  const next = async (pred: (t: string) => boolean) => {
    const t = await c.waitFor((all) => pred(all.slice(seen)), 3000);
    const mine = t.slice(seen);
    seen = t.length;
    raw.push(mine);
    return mine;
  };
  const line = (t: string) => t.includes('\r\n');
  c.write('VERSION=2.0.2\r\n');
  await next(line);
  let authStatus: string;
  if (p.auth.mechanism === 'ANONYMOUS') {
    c.write('AUTHENTICATE ANONYMOUS\r\n\0');
    authStatus = await next(line);
  } else if (p.auth.mechanism === 'PLAIN') {
    c.write(
      Buffer.concat([
        Buffer.from('AUTHENTICATE PLAIN\r\n\0'),
        encodePlain({ username: p.auth.username, password: p.auth.password }),
      ]),
    );
    authStatus = await next(line);
  } else {
    c.write('AUTHENTICATE DIGEST-MD5\r\n\0');
    const ch = parseChallenge(Buffer.from((await next(line)).trim(), 'base64').toString());
    const r = buildClientResponse({
      username: p.auth.username,
      password: p.auth.password,
      challenge: ch,
      cnonce: '42',
      digestUri: `tsp/127.0.0.1:${p.port}`,
    });
    c.write(`${Buffer.from(r.text).toString('base64')}\r\n`);
    const rsp = await next(line);
    if (rsp.startsWith('300')) return { authStatus: rsp, createStatus: 0, raw, tcp: c };
    authStatus = await next(line);
  }
  if (!authStatus.startsWith('200')) return { authStatus, createStatus: 0, raw, tcp: c };
  c.write(create);
  const offerText = await next((t) => {
    const m = /^Content-length: (\d+)\r\n/.exec(t);
    return !!m && t.length >= m[0].length + Number(m[1]);
  });
  const createStatus = status(offerText);
  const result: SessionResult = { authStatus, createStatus, raw, tcp: c };
  if (createStatus === 200) {
    result.offer = parseOffer(offerText.slice(offerText.indexOf('<')));
    if (p.accept !== false) c.write(framedRequest(writeActionRequest('accept')));
  }
  return result;
}
