/** A real TSP client session over UDP for the admin tests: VERSION, AUTHENTICATE DIGEST-MD5 (client side from
 *  src/protocol/sasl/digest-md5.ts, rspauth checked), create a v6udpv4 tunnel, accept. Every wait is bounded
 *  (RawUdp.request times out); the caller closes the socket. */
import assert from 'node:assert/strict';
import { RawUdp, udpDatagram } from '../helpers/clients.js';
import { buildClientResponse, checkRspauth, parseChallenge } from '../../src/protocol/sasl/digest-md5.js';

function body(reply: Buffer | undefined, what: string): string {
  assert.ok(reply, `no reply to ${what}`);
  return reply.subarray(8).toString('latin1');
}

export interface DigestOutcome {
  udp: RawUdp;
  /** 'established' when the tunnel was accepted, else the status line that ended it. */
  result: string;
}

/** Authenticates with DIGEST-MD5 and, when that succeeds, creates and accepts a v6udpv4 tunnel. */
export async function digestTunnelOverUdp(port: number, username: string, password: string): Promise<DigestOutcome> {
  const udp = await RawUdp.open();
  let seq = 1;
  const ask = async (text: string | Buffer, what: string) =>
    body(await udp.request(udpDatagram(seq++, 0, text), port), what);
  try {
    const cap = await ask('VERSION=2.0.2\r\n', 'VERSION');
    assert.match(cap, /^CAPABILITY .*AUTH=DIGEST-MD5/, cap);
    const challengeB64 = await ask('AUTHENTICATE DIGEST-MD5\r\n\0', 'AUTHENTICATE');
    const challenge = parseChallenge(Buffer.from(challengeB64.trim(), 'base64').toString('latin1'));
    const r = buildClientResponse({
      username,
      password,
      challenge,
      cnonce: String(Date.now()),
      digestUri: `tsp/127.0.0.1:${port}`,
    });
    const rsp = await ask(`${Buffer.from(r.text, 'latin1').toString('base64')}\r\n`, 'digest response');
    if (rsp.startsWith('300')) return { udp, result: rsp.trim() };
    assert.ok(
      checkRspauth(Buffer.from(rsp.trim(), 'base64').toString('latin1'), r.expectedRspauth),
      `bad rspauth: ${rsp}`,
    );
    const ok = await ask('', 'empty datagram after rspauth');
    assert.equal(ok, '200 Success\r\n');
    const xml =
      '<tunnel action="create" type="v6udpv4" proxy="no">\r\n <client>\r\n  <address type="ipv4">127.0.0.1</address>\r\n' +
      '  <keepalive interval="30">\r\n    <address type="ipv6">::</address>\r\n  </keepalive>\r\n </client>\r\n</tunnel>\r\n';
    const offer = await ask(`Content-length: ${Buffer.byteLength(xml)}\r\n${xml}`, 'create');
    assert.match(offer, /^Content-length: \d+\r\n200 Success\r\n<tunnel action="info" type="v6udpv4"/, offer);
    await ask('Content-length: 35\r\n<tunnel action="accept"></tunnel>\r\n', 'accept');
    return { udp, result: 'established' };
  } catch (err) {
    udp.close();
    throw err;
  }
}
