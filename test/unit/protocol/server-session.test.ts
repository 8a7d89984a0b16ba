/** The server session fed bytes directly (no sockets): every status path, the UDP reply cache, TCP framing
 *  under every split, NUL handling and timeouts. */
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import {
  ServerSession,
  type ServerSessionOptions,
  type SessionEvent,
  type Step,
} from '../../../src/protocol/server/session.js';
import { digestSecret } from '../../../src/protocol/sasl/digest-md5.js';
import { BrokerError } from '../../../src/errors.js';
import type { Offer } from '../../../src/protocol/xml.js';
import { loadRecordings, datagramBytes, payloadBytes } from '../../helpers/recordings.js';
import { udpDatagram } from '../../helpers/clients.js';

const OFFER: Offer = {
  type: 'v6v4',
  lifetimeS: 604800,
  serverIpv4: '192.0.2.1',
  serverIpv6: '2001:db8:f00::1',
  clientIpv4: '192.0.2.2',
  clientIpv6: '2001:db8:f00::2',
  keepalive: { interval: 30, address: '2001:db8:f00::1' },
  dnsServer: '2001:db8:f00::1',
};

function make(transport: 'udp' | 'tcp', over: Partial<ServerSessionOptions> = {}): ServerSession {
  return new ServerSession({
    transport,
    tunnelTypes: ['v6v4', 'v6udpv4'],
    mechanisms: ['DIGEST-MD5', 'PLAIN', 'ANONYMOUS'],
    realm: 'tsp-fake',
    negotiationTimeoutMs: 30_000,
    newNonce: () => '762f53ae1752548c',
    nowMs: 0,
    ...over,
  });
}

/** Answers the session's requests the way a broker with user bob/hunter2 would, and collects everything. */
class Driver {
  sent: Buffer[] = [];
  events: SessionEvent[] = [];
  done = false;
  wakeAtMs: number | undefined;
  constructor(
    readonly s: ServerSession,
    readonly policy: { offer?: Offer | BrokerError; password?: string } = {},
  ) {}
  feed(bytes: Buffer | string, now = 1): this {
    return this.apply(this.s.receive(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes, now), now);
  }
  tick(now: number): this {
    return this.apply(this.s.timeout(now), now);
  }
  private apply(step: Step, now: number): this {
    this.sent.push(...step.send);
    this.events.push(...step.events);
    this.done ||= step.done;
    this.wakeAtMs = step.wakeAtMs;
    const pw = this.policy.password ?? 'hunter2';
    for (const e of step.events) {
      if (e.type === 'verifyPlain')
        this.apply(this.s.plainResult(e.username === 'bob' && e.password === pw, 'wrong password', now), now);
      if (e.type === 'lookupDigest')
        this.apply(
          this.s.digestSecret(
            e.username === 'bob' ? digestSecret('bob', 'tsp-fake', pw) : undefined,
            'unknown user',
            now,
          ),
          now,
        );
      if (e.type === 'tunnelRequested') {
        const o = this.policy.offer ?? OFFER;
        this.apply(this.s.offerDecision(o instanceof BrokerError ? { error: o } : { offer: o }, now), now);
      }
      if (e.type === 'offerAccepted') this.apply(this.s.acceptDone(undefined, now), now);
      if (e.type === 'deleteRequested') this.apply(this.s.deleteDone(undefined, now), now);
    }
    return this;
  }
  text(): string {
    return Buffer.concat(this.sent).toString('latin1');
  }
  bodies(): string[] {
    return this.sent.map((b) => b.subarray(8).toString('latin1'));
  }
  types(): string[] {
    return this.events.map((e) => e.type);
  }
}

const CREATE =
  'Content-length: 211\r\n<tunnel action="create" type="v6v4" proxy="no">\r\n <client>\r\n  <address type="ipv4">192.0.2.2</address>\r\n  <keepalive interval="30">\r\n    <address type="ipv6">::</address>\r\n  </keepalive>\r\n </client>\r\n</tunnel>\r\n';
const ACCEPT = 'Content-length: 35\r\n<tunnel action="accept"></tunnel>\r\n';

test('TCP anonymous session: CAPABILITY, 200, offer, silence after the accept', () => {
  const d = new Driver(make('tcp'))
    .feed('VERSION=2.0.2\r\n')
    .feed('AUTHENTICATE ANONYMOUS\r\n\0')
    .feed(CREATE)
    .feed(ACCEPT);
  const t = d.text();
  assert.ok(
    t.startsWith(
      'CAPABILITY TUNNEL=V6V4 TUNNEL=V6UDPV4 AUTH=DIGEST-MD5 AUTH=PLAIN AUTH=ANONYMOUS\r\n200 Success\r\nContent-length: ',
    ),
  );
  assert.ok(t.endsWith('</tunnel>\r\n'), 'nothing written after the offer');
  assert.equal(d.s.currentState, 'established');
  assert.equal(d.done, false);
});

test('TCP: the same client bytes give the same replies whole, byte by byte, and split at every offset', () => {
  for (const name of ['05', '06', '07']) {
    const rec = loadRecordings().find((r) => r.name.startsWith(name))!;
    const stream = Buffer.concat(rec.messages.filter((m) => m.from === 'client').map(payloadBytes));
    const nonce = /nonce="([^"]+)"/.exec(
      Buffer.from(
        (
          rec.messages.find((m) => m.from === 'server' && /^[A-Za-z0-9+/]+=*\r\n$/.test(m.payload))?.payload ?? ''
        ).trim(),
        'base64',
      ).toString(),
    )?.[1];
    const run = (pieces: Buffer[]) => {
      const d = new Driver(make('tcp', nonce ? { newNonce: () => nonce } : {}));
      for (const p of pieces) {
        d.feed(p);
        if (d.wakeAtMs !== undefined && d.s.currentState === 'md5Pause') d.tick(d.wakeAtMs);
      }
      return { text: d.text(), state: d.s.currentState, events: d.types() };
    };
    const whole = run([stream]);
    assert.equal(whole.state, 'established', `${name} establishes`);
    const expected = rec.messages.filter((m) => m.from === 'server').map((m) => m.payload);
    assert.equal(
      whole.text.split('Content-length')[0],
      expected.join('').split('Content-length')[0],
      `${name}: replies before the offer`,
    );
    assert.deepEqual(run([...stream].map((b) => Buffer.from([b]))), whole, `${name} byte by byte`);
    for (let cut = 0; cut <= stream.length; cut++)
      assert.deepEqual(run([stream.subarray(0, cut), stream.subarray(cut)]), whole, `${name} split at ${cut}`);
  }
});

test('TCP: exactly one NUL is discarded after AUTHENTICATE, even when it arrives later; PLAIN keeps its leading NUL', () => {
  const d = new Driver(make('tcp'))
    .feed('VERSION=2.0.2\r\nAUTHENTICATE PLAIN\r\n')
    .feed('\0')
    .feed('\0bob\0hunter2\r\n');
  assert.equal(d.text().split('\r\n')[1], '200 Success');
  const e = new Driver(make('tcp')).feed('VERSION=2.0.2\r\nAUTHENTICATE PLAIN\r\nbob\0hunter2\r\n');
  assert.equal(e.text().split('\r\n')[1], '200 Success', 'no NUL at all is fine too (two-field credentials)');
});

test('TCP DIGEST: rspauth alone, then 200 Success as its own write after the pause', () => {
  const rec = loadRecordings().find((r) => r.name.startsWith('07'))!;
  const nonce = 'be16918c7aab36ba';
  const d = new Driver(make('tcp', { newNonce: () => nonce }));
  const client = rec.messages.filter((m) => m.from === 'client').map(payloadBytes);
  d.feed(client[0]!).feed(client[1]!).feed(client[2]!, 1000);
  assert.equal(d.sent.length, 3);
  assert.equal(
    Buffer.from(d.sent[2]!.toString().trim(), 'base64').toString(),
    'rspauth=dcb1ecf5558e1ef2d5e9aaa132d0bcc6',
  );
  assert.ok(d.wakeAtMs !== undefined && d.wakeAtMs >= 1250, 'pause of at least 250 ms');
  d.feed(client[3]!, 1100); // the create arrives early: it waits for the 200
  assert.equal(d.sent.length, 3);
  d.tick(d.wakeAtMs);
  assert.equal(d.sent[3]!.toString(), '200 Success\r\n');
  assert.ok(d.sent[4]!.toString().startsWith('Content-length: '), 'the buffered create is answered after the 200');
});

test('UDP: a repeated sequence gets the cached reply and is not executed twice', () => {
  const d = new Driver(make('udp'));
  d.feed(udpDatagram(0xf0, 1, 'VERSION=2.0.2\r\n')).feed(udpDatagram(0xf1, 2, 'AUTHENTICATE ANONYMOUS\r\n\0'));
  d.feed(udpDatagram(0xf2, 3, CREATE));
  const requests = () => d.events.filter((e) => e.type === 'tunnelRequested').length;
  assert.equal(requests(), 1);
  d.feed(udpDatagram(0xf2, 9, CREATE)); // retransmission with a new timestamp
  assert.equal(requests(), 1, 'the create is not re-executed');
  assert.deepEqual(d.sent[3], d.sent[2], 'the cached reply, header included');
  d.feed(udpDatagram(0xf3, 4, ACCEPT)).feed(udpDatagram(0xf3, 5, ACCEPT));
  assert.equal(d.events.filter((e) => e.type === 'offerAccepted').length, 1, 'the accept is not re-executed');
  assert.equal(d.sent[4]!.length, 8, 'header-only accept ack');
  assert.deepEqual(d.sent[5], d.sent[4]);
});

test('UDP: stale sequences are dropped; VERSION= restarts the session and withdraws an offer', () => {
  const d = new Driver(make('udp'));
  d.feed(udpDatagram(5, 1, 'VERSION=2.0.2\r\n'))
    .feed(udpDatagram(6, 1, 'AUTHENTICATE ANONYMOUS\r\n\0'))
    .feed(udpDatagram(7, 1, CREATE));
  const before = d.sent.length;
  d.feed(udpDatagram(3, 1, 'AUTHENTICATE ANONYMOUS\r\n\0'));
  assert.equal(d.sent.length, before, 'older sequence: no reply');
  d.feed(udpDatagram(0xf0, 1, 'VERSION=2.0.1\r\n'));
  assert.ok(d.types().includes('offerWithdrawn'));
  assert.equal(d.s.currentState, 'auth');
  assert.ok(d.bodies().at(-1)!.startsWith('CAPABILITY '));
});

test('UDP PLAIN: header-only ack to AUTHENTICATE PLAIN, 200 for good credentials, 300 for bad', () => {
  const ok = new Driver(make('udp'))
    .feed(udpDatagram(1, 0, 'VERSION=2.0.2\r\n'))
    .feed(udpDatagram(2, 0, 'AUTHENTICATE PLAIN\r\n\0'))
    .feed(udpDatagram(3, 0, '\0bob\0hunter2\r\n'));
  assert.deepEqual(ok.bodies().slice(1), ['', '200 Success\r\n']);
  const bad = new Driver(make('udp'))
    .feed(udpDatagram(1, 0, 'VERSION=2.0.2\r\n'))
    .feed(udpDatagram(2, 0, 'AUTHENTICATE PLAIN\r\n\0'))
    .feed(udpDatagram(3, 0, '\0bob\0wrong\r\n'));
  assert.deepEqual(bad.bodies().slice(1), ['', '300 Authentication failed\r\n']);
  assert.ok(bad.types().includes('authFailed'));
  assert.equal(bad.s.currentState, 'closed');
  bad.feed(udpDatagram(3, 7, '\0bob\0wrong\r\n'));
  assert.equal(bad.bodies().at(-1), '300 Authentication failed\r\n', 'a retransmission still gets the cached 300');
});

test('UDP DIGEST: recording 02 end to end, with the empty poll answered by 200', () => {
  const rec = loadRecordings().find((r) => r.name.startsWith('02'))!;
  const d = new Driver(make('udp'));
  for (const m of rec.messages.filter((x) => x.from === 'client')) d.feed(datagramBytes(m));
  const want = rec.messages.filter((m) => m.from === 'server').map((m) => m.payload);
  const got = d.bodies();
  assert.deepEqual(got.slice(0, 4), want.slice(0, 4));
  assert.equal(got.length, want.length);
  assert.equal(d.s.currentState, 'established');
});

test('status paths in the version and authentication phases', () => {
  const v = new Driver(make('tcp')).feed('VERSION=1.0.1\r\n');
  assert.equal(v.text(), '302 Unsupported client version\r\n');
  assert.ok(v.done, '302 ends the session (TCP closes)');
  const u = new Driver(make('udp')).feed(udpDatagram(1, 0, 'VERSION=3.0.0\r\n'));
  assert.deepEqual(u.bodies(), ['302 Unsupported client version\r\n']);
  assert.ok(u.done, '302 keeps no UDP state');
  const mech = new Driver(make('tcp')).feed('VERSION=2.0.2\r\nAUTHENTICATE PASSDSS-3DES-1\r\n\0');
  assert.ok(mech.text().endsWith('300 Authentication failed\r\n') && mech.done);
  const unadvertised = new Driver(make('tcp', { mechanisms: ['DIGEST-MD5'] })).feed(
    'VERSION=2.0.2\r\nAUTHENTICATE ANONYMOUS\r\n\0',
  );
  assert.ok(unadvertised.text().endsWith('300 Authentication failed\r\n'));
  assert.equal(unadvertised.text().split('\r\n')[0], 'CAPABILITY TUNNEL=V6V4 TUNNEL=V6UDPV4 AUTH=DIGEST-MD5');
  const b64 = new Driver(make('tcp'))
    .feed('VERSION=2.0.2\r\nAUTHENTICATE DIGEST-MD5\r\n\0')
    .feed('!!!not base64!!!\r\n');
  assert.ok(b64.text().endsWith('300 Authentication failed\r\n') && b64.done);
  const junkResponse = new Driver(make('tcp'))
    .feed('VERSION=2.0.2\r\nAUTHENTICATE DIGEST-MD5\r\n\0')
    .feed(`${Buffer.from('hello').toString('base64')}\r\n`);
  assert.ok(junkResponse.text().endsWith('300 Authentication failed\r\n'));
  const unknownUser = new Driver(make('tcp')).feed('VERSION=2.0.2\r\nAUTHENTICATE PLAIN\r\n\0\0mallory\0x\r\n');
  assert.ok(unknownUser.text().endsWith('300 Authentication failed\r\n'));
  const garbage = new Driver(make('tcp')).feed('GET / HTTP/1.1\r\n');
  assert.equal(garbage.text(), '500 Invalid request format or specified length\r\n');
  assert.ok(garbage.done);
});

test('status paths in the command phase are Content-length framed and end the session', () => {
  const anon = () => new Driver(make('tcp')).feed('VERSION=2.0.2\r\nAUTHENTICATE ANONYMOUS\r\n\0');
  const last = (d: Driver) => d.sent.at(-1)!.toString();
  const create = (xml: string) => `Content-length: ${Buffer.byteLength(xml)}\r\n${xml}`;
  const cases: [string, string][] = [
    [create('<tunnel action="create" type="v4v6"><client/></tunnel>'), ''],
    [create('<tunnel action="create" type="bogus"><client/></tunnel>'), '303 Unsupported tunnel type'],
    [
      create('<tunnel action="create" type="v6v4"><client><address type="ipv4">1.2.3</address></client></tunnel>'),
      '501 Invalid IPv4 address',
    ],
    [
      create('<tunnel action="create" type="v6v4"><client><address type="ipv6">::g</address></client></tunnel>'),
      '502 Invalid IPv6 address',
    ],
    [
      create('<tunnel action="create" type="v6v4"><client><router><prefix length="x"/></router></client></tunnel>'),
      '518 Unsupported prefix length',
    ],
    [create('<tunnel action="create" type="v6v4"'), '500 Invalid request format or specified length'],
    [create('<tunnel action="frobnicate"/>'), '500 Invalid request format or specified length'],
    [ACCEPT, '500 Invalid request format or specified length'],
    ['Content-length: 99999\r\n', '500 Invalid request format or specified length'],
    ['Hello: there\r\n', '500 Invalid request format or specified length'],
  ];
  for (const [input, status] of cases) {
    if (!status) continue;
    const d = anon().feed(input);
    const body = `${status}\r\n`;
    assert.equal(last(d), `Content-length: ${Buffer.byteLength(body)}\r\n${body}`, input.slice(0, 60));
    assert.ok(d.done, `${input.slice(0, 40)} ends the session`);
  }
  for (const [err, status] of [
    [new BrokerError('POOL_EXHAUSTED', 'x'), '301 No more tunnels available'],
    [new BrokerError('TSP_UNSUPPORTED_TUNNEL', 'x'), '303 Unsupported tunnel type'],
    [new BrokerError('TSP_PREFIX_LENGTH_UNAVAILABLE', 'x'), '507 Prefix length unavailable'],
    [new BrokerError('TSP_PREFIX_LENGTH_UNSUPPORTED', 'x'), '518 Unsupported prefix length'],
    [new BrokerError('TSP_PREFIX_LENGTH_MISSING', 'x'), '520 Missing prefix length'],
    [new BrokerError('TSP_PREFIX_FOR_ANONYMOUS', 'x'), '522 Prefix requested for anonymous'],
    [new BrokerError('STORE_FAILED', 'x'), '310 Server side error'],
    [new BrokerError('INTERNAL', 'x'), '310 Server side error'],
  ] as const) {
    const d = new Driver(make('tcp'), { offer: err })
      .feed('VERSION=2.0.2\r\nAUTHENTICATE ANONYMOUS\r\n\0')
      .feed(CREATE);
    const body = `${status}\r\n`;
    assert.equal(last(d), `Content-length: ${body.length}\r\n${body}`, err.code);
  }
});

test('an oversized line over TCP gets 500 and the session ends; an oversized UDP datagram is ignored', () => {
  const d = new Driver(make('tcp')).feed(`VERSION=${'9'.repeat(5000)}`);
  assert.equal(d.text(), '500 Invalid request format or specified length\r\n');
  assert.ok(d.done);
  const u = new Driver(make('udp')).feed(udpDatagram(1, 0, `VERSION=2.0.2\r\n${'x'.repeat(10_000)}`));
  assert.deepEqual(u.sent, []);
});

test('a silent client times out: state dropped, offer withdrawn, TCP closed', () => {
  const d = new Driver(make('tcp', { negotiationTimeoutMs: 1000 })).feed('VERSION=2.0.2\r\n', 0);
  assert.equal(d.wakeAtMs, 1000);
  d.tick(999);
  assert.equal(d.done, false);
  d.tick(1000);
  assert.ok(d.done);
  assert.ok(d.types().includes('closed'));
  const o = new Driver(make('udp', { negotiationTimeoutMs: 1000 }));
  o.feed(udpDatagram(1, 0, 'VERSION=2.0.2\r\n'), 0)
    .feed(udpDatagram(2, 0, 'AUTHENTICATE ANONYMOUS\r\n\0'), 0)
    .feed(udpDatagram(3, 0, CREATE), 0);
  assert.equal(o.s.currentState, 'offered');
  o.tick(o.wakeAtMs!);
  assert.ok(o.types().includes('offerWithdrawn') && o.done);
  assert.equal(o.s.isHalfOpen, false);
});

test('a late broker answer after a timeout is ignored', () => {
  const s = make('tcp', { negotiationTimeoutMs: 1000 });
  s.receive(Buffer.from('VERSION=2.0.2\r\nAUTHENTICATE PLAIN\r\n\0\0bob\0hunter2\r\n'), 0);
  assert.equal(s.awaiting, 'plain');
  s.timeout(1000);
  const late = s.plainResult(true, '', 1001);
  assert.deepEqual(late.send, []);
  assert.equal(s.currentState, 'closed');
});

test('reject returns to the command phase; delete answers Content-length 13', () => {
  const REJECT = 'Content-length: 35\r\n<tunnel action="reject"></tunnel>\r\n';
  const u = new Driver(make('udp'))
    .feed(udpDatagram(1, 0, 'VERSION=2.0.2\r\n'))
    .feed(udpDatagram(2, 0, 'AUTHENTICATE ANONYMOUS\r\n\0'))
    .feed(udpDatagram(3, 0, CREATE))
    .feed(udpDatagram(4, 0, REJECT));
  assert.equal(u.bodies().at(-1), '');
  assert.equal(u.s.currentState, 'command');
  assert.ok(u.types().includes('offerWithdrawn'));
  const DELETE = 'Content-length: 35\r\n<tunnel action="delete"></tunnel>\r\n';
  const t = new Driver(make('tcp'))
    .feed('VERSION=2.0.2\r\nAUTHENTICATE ANONYMOUS\r\n\0')
    .feed(CREATE)
    .feed(ACCEPT)
    .feed(DELETE);
  assert.equal(t.sent.at(-1)!.toString(), 'Content-length: 13\r\n200 Success\r\n');
});

test('the 2.0.0 truncated-HA1 DIGEST form: only with the switch on, on 2.0.0, and for a strong enough X', () => {
  const HEX = (x: Buffer | string) => createHash('md5').update(x).digest('hex');
  // X = MD5(bob:tsp-fake:pw14) has 9 bytes before its first zero; vector D's (pass21) has 5
  const quirkLine = (pass: string) => {
    const x = digestSecret('bob', 'tsp-fake', pass);
    const ha1 = HEX(x.subarray(0, x.indexOf(0)));
    const kd = (a2: string) => HEX(`${ha1}:762f53ae1752548c:00000001:1795700979:auth:${HEX(a2)}`);
    const text = `charset=utf-8,username="bob",realm="tsp-fake",nonce="762f53ae1752548c",nc=00000001,cnonce="1795700979",digest-uri="tsp/192.0.2.1:3653",response=${kd('AUTHENTICATE:tsp/192.0.2.1:3653')},qop=auth`;
    return { b64: Buffer.from(text).toString('base64'), rspauth: kd(':tsp/192.0.2.1:3653') };
  };
  const run = (version: string, pass: string, quirk200: boolean) =>
    new Driver(make('tcp', { quirk200 }), { password: pass }).feed(
      `VERSION=${version}\r\nAUTHENTICATE DIGEST-MD5\r\n\0${quirkLine(pass).b64}\r\n`,
    );
  const ok = run('2.0.0', 'pw14', true);
  assert.equal(Buffer.from(ok.sent[2]!.toString().trim(), 'base64').toString(), `rspauth=${quirkLine('pw14').rspauth}`);
  assert.ok(run('2.0.0', 'pw14', false).text().endsWith('300 Authentication failed\r\n'), 'off by default');
  assert.ok(run('2.0.2', 'pw14', true).text().endsWith('300 Authentication failed\r\n'), 'only on 2.0.0');
  assert.ok(run('2.0.0', 'pass21', true).text().endsWith('300 Authentication failed\r\n'), '5 bytes of X: refused');
});

test('CAPABILITY lists only what is enabled', () => {
  const s = make('udp', { tunnelTypes: ['v6udpv4'], mechanisms: ['ANONYMOUS'] });
  assert.equal(s.capabilityLine().toString(), 'CAPABILITY TUNNEL=V6UDPV4 AUTH=ANONYMOUS\r\n');
});

test('UDP anti-amplification: a challenge over 3x the AUTHENTICATE on the wire waits for a retransmission', () => {
  const auth = udpDatagram(2, 0, 'AUTHENTICATE DIGEST-MD5\r\n\0'); // gogoc's exact bytes: 34 on the wire + 28
  const first = (realm: string) => {
    const s = make('udp', { realm, afterVersion: '2.0.2' });
    const step = s.receive(auth, 1);
    return { s, step };
  };
  // the README's claim: a realm of up to 34 characters fits the first reply
  assert.equal(first('r'.repeat(34)).step.send.length, 1);
  const long = first('r'.repeat(35));
  assert.equal(long.step.send.length, 0);
  assert.deepEqual(long.step.events, [{ type: 'replyWithheld', reason: 'amplification' }]);
  const again = long.s.receive(auth, 2); // the client's retransmission doubles the budget
  assert.equal(again.send.length, 1);
  assert.match(Buffer.from(again.send[0]!.subarray(8).toString(), 'base64').toString(), /^realm="r{35}"/);
});

test('UDP: a cached reply is resent at most 7 times, and a DIGEST nonce echo lifts the 3x budget', () => {
  const s = make('udp', { afterVersion: '2.0.2' });
  s.receive(udpDatagram(2, 0, 'AUTHENTICATE ANONYMOUS\r\n\0'), 1);
  let resent = 0;
  for (let i = 0; i < 20; i++) resent += s.receive(udpDatagram(2, i, 'AUTHENTICATE ANONYMOUS\r\n\0'), 2).send.length;
  assert.equal(resent, 7);
  assert.equal(s.sourceValidated, false);
  const d = new Driver(make('udp'));
  d.feed(udpDatagram(1, 0, 'VERSION=2.0.2\r\n')).feed(udpDatagram(2, 0, 'AUTHENTICATE DIGEST-MD5\r\n\0'));
  const ch = Buffer.from(d.sent.at(-1)!.subarray(8).toString(), 'base64').toString();
  assert.match(ch, /nonce="762f53ae1752548c"/);
  const response =
    'charset=utf-8,username="bob",realm="tsp-fake",nonce="762f53ae1752548c",nc=00000001,cnonce="c",digest-uri="tsp/192.0.2.1:3653",response=00000000000000000000000000000000,qop=auth';
  d.feed(udpDatagram(3, 0, `${Buffer.from(response).toString('base64')}\r\n`));
  assert.equal(d.s.sourceValidated, true, 'the response carried our nonce, even with a wrong password');
  assert.ok(d.events.some((e) => e.type === 'authFailed' && e.sourceValidated));
});
