/** The client session fed bytes directly (no sockets, time moved by hand): byte-exact requests against the
 *  recorded gogoc 1.2 sessions, a scripted server replaying every recorded server reply with its header
 *  rewritten to echo ours, the 302 fallback, retransmission timing, rspauth checks, offer checks, CAPABILITY
 *  parsing and mechanism choice, TCP under every split. docs/protocol.md §3.3, §13.2, §14. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ClientSession,
  type ClientEvent,
  type ClientSessionOptions,
  type ClientStep,
} from '../../../src/protocol/client/session.js';
import { chooseMechanism, nextLowerVersion, redirectList } from '../../../src/protocol/client/replies.js';
import type { TspVersion } from '../../../src/protocol/constants.js';
import { loadRecordings, payloadBytes, type RecordedMessage, type Recording } from '../../helpers/recordings.js';

const recordings = loadRecordings();
const rec = (name: string): Recording => recordings.find((r) => r.name.startsWith(name))!;
/** Start of a second: gogoc's timestamps count milliseconds from the start of the second its engine started. */
const T0 = 1_700_000_000_000;

function recordedCnonce(r: Recording): string {
  const m = r.messages.find((x) => x.from === 'client' && /^[A-Za-z0-9+/]{40,}/.test(x.payload));
  return m ? /cnonce="(\d+)"/.exec(Buffer.from(m.payload.trim(), 'base64').toString())![1]! : '0';
}

/** Our options for the settings a recording was made with (client_v4=auto was 192.0.2.2 in the lab). */
function optionsFor(r: Recording, over: Partial<ClientSessionOptions> = {}): ClientSessionOptions {
  const c = r.client_config;
  return {
    transport: r.messages[0]!.transport,
    version: '2.0.2',
    auth: { method: c.auth_method as ClientSessionOptions['auth']['method'], username: c.userid, password: c.passwd },
    serverString: c.server!,
    request: {
      mode: c.tunnel_mode as 'v6udpv4',
      clientIpv4: '192.0.2.2',
      ...(c.keepalive === 'yes' ? { keepaliveInterval: Number(c.keepalive_interval) } : {}),
      ...(c.host_type === 'router' ? { prefixLength: Number(c.prefixlen) } : {}),
    },
    cnonce: recordedCnonce(r),
    nowMs: T0,
    ...over,
  };
}

function header(seq: number, timestamp: number): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE((0xf0000000 | seq) >>> 0, 0);
  h.writeUInt32BE(timestamp >>> 0, 4);
  return h;
}

const events = (steps: ClientStep[]): ClientEvent[] => steps.flatMap((s) => s.events);
const failure = (steps: ClientStep[]) => events(steps).find((e) => e.type === 'failed');

/** A scripted UDP server: answers each of our datagrams with the next recorded server payload behind our
 *  header. Sessions that get 302 are replaced by a new one (a new socket) with the next lower version, as the
 *  caller of ClientSession does. Time follows the recorded timestamps. Returns what we sent and the events. */
function replayUdp(r: Recording, over: Partial<ClientSessionOptions> = {}) {
  const fromServer = r.messages.filter((m) => m.from === 'server');
  const sent: { seq: number; timestamp: number; payload: string }[] = [];
  const allSteps: ClientStep[] = [];
  let version: TspVersion = '2.0.2';
  let session = new ClientSession(optionsFor(r, { ...over, version }));
  let step = session.start(T0);
  for (;;) {
    allSteps.push(step);
    if (step.done) {
      const refused = step.events.find((e) => e.type === 'versionRefused');
      if (!refused || refused.type !== 'versionRefused') break;
      version = refused.next;
      session = new ClientSession(optionsFor(r, { ...over, version }));
      step = session.start(T0);
      continue;
    }
    assert.equal(step.send.length, 1, 'one datagram per UDP step');
    const d = step.send[0]!;
    const seq = d.readUInt32BE(0) & 0x0fffffff;
    sent.push({ seq, timestamp: d.readUInt32BE(4), payload: d.subarray(8).toString('latin1') });
    const reply = fromServer.shift();
    if (!reply) break;
    step = session.receive(Buffer.concat([d.subarray(0, 8), payloadBytes(reply)]), T0 + 10);
  }
  return { sent, events: events(allSteps), session };
}

const firstAttempts = (r: Recording): RecordedMessage[] =>
  r.messages.filter((m) => m.from === 'client' && (m.attempt ?? 0) === 0);

for (const r of recordings.filter((x) => x.messages[0]!.transport === 'udp')) {
  test(`UDP replay ${r.name}: our payloads and sequences equal gogoc's, the replies are understood`, () => {
    const { sent, events: ev } = replayUdp(r);
    const want = firstAttempts(r);
    assert.deepEqual(
      sent.map((s) => s.payload),
      want.map((m) => m.payload),
      'payloads byte for byte',
    );
    assert.deepEqual(
      sent.map((s) => s.seq),
      want.map((m) => Number(m.header!.seq) & 0x0fffffff),
      'sequence from 0xF00000F0, one per request, back to the start on a new socket',
    );
    const env = r.client_tunnel_environment ?? {};
    const established = ev.find((e) => e.type === 'established');
    if (r.client_exit === 'exit code: 16') {
      const f = ev.find((e) => e.type === 'failed');
      assert.ok(f && f.type === 'failed' && f.error.code === 'CLIENT_AUTH_FAILED', 'authentication failed');
      assert.equal(established, undefined);
      return;
    }
    assert.ok(established && established.type === 'established', `established: ${JSON.stringify(ev)}`);
    const o = established.offer;
    assert.equal(o.type, env.TSP_TUNNEL_MODE);
    assert.equal(o.clientIpv4, env.TSP_CLIENT_ADDRESS_IPV4);
    assert.equal(o.clientIpv6, env.TSP_CLIENT_ADDRESS_IPV6);
    assert.equal(o.serverIpv4, env.TSP_SERVER_ADDRESS_IPV4);
    assert.equal(o.serverIpv6, env.TSP_SERVER_ADDRESS_IPV6);
    if (env.TSP_PREFIXLEN) assert.equal(String(o.prefix?.length), env.TSP_PREFIXLEN);
  });
}

test('UDP timestamps: milliseconds since the start of the second the session started (recording 01)', () => {
  const r = rec('01');
  const fromServer = r.messages.filter((m) => m.from === 'server');
  const want = firstAttempts(r);
  const s = new ClientSession(optionsFor(r, { nowMs: T0 + want[0]!.header!.timestamp }));
  let step = s.start(T0 + want[0]!.header!.timestamp);
  for (let i = 0; i < want.length; i++) {
    const d = step.send[0]!;
    assert.equal(d.readUInt32BE(4), want[i]!.header!.timestamp, `timestamp of message ${i}`);
    assert.equal(d.readUInt32BE(0), Number(want[i]!.header!.seq), `header word of message ${i}`);
    const now = T0 + (want[i + 1]?.header!.timestamp ?? 0);
    step = s.receive(Buffer.concat([d.subarray(0, 8), payloadBytes(fromServer[i]!)]), now);
  }
  assert.ok(step.done);
});

test('DIGEST-MD5 response equals recording 02 byte for byte (cnonce 1795700979, tsp/192.0.2.1:3653)', () => {
  const r = rec('02');
  const { sent } = replayUdp(r, { cnonce: '1795700979', serverString: '192.0.2.1:3653' });
  const response = firstAttempts(r).find((m) => m.payload.startsWith('Y2hh'))!;
  assert.equal(sent[2]!.payload, response.payload);
  assert.match(
    Buffer.from(sent[2]!.payload.trim(), 'base64').toString(),
    /^charset=utf-8,username="bob",realm="tsp-fake",nonce="762f53ae1752548c",nc=00000001,cnonce="1795700979",digest-uri="tsp\/192.0.2.1:3653",response=3f0149a293bd1daf8691a68ec1dfd1a5,qop=auth$/,
  );
  assert.equal(sent[3]!.payload, '', 'the empty poll after rspauth');
});

test('recording 08: 302 for 2.0.2 and 2.0.1, each on a new session starting at 0xF00000F0; 2.0.0 accepted', () => {
  const { sent, events: ev } = replayUdp(rec('08'));
  assert.deepEqual(
    sent.slice(0, 3).map((s) => [s.seq, s.payload]),
    [
      [0xf0, 'VERSION=2.0.2\r\n'],
      [0xf0, 'VERSION=2.0.1\r\n'],
      [0xf0, 'VERSION=2.0.0\r\n'],
    ],
  );
  assert.deepEqual(
    ev.filter((e) => e.type === 'versionRefused').map((e) => e.type === 'versionRefused' && e.next),
    ['2.0.1', '2.0.0'],
  );
  assert.ok(ev.some((e) => e.type === 'established'));
  assert.equal(nextLowerVersion('2.0.0'), undefined);
});

test('302 to 2.0.0 ends the fallback with CLIENT_VERSION', () => {
  const s = new ClientSession(optionsFor(rec('08'), { version: '2.0.0' }));
  const d = s.start(T0).send[0]!;
  const step = s.receive(Buffer.concat([d.subarray(0, 8), Buffer.from('302 Unsupported client version\r\n')]), T0);
  const f = failure([step]);
  assert.ok(f && f.type === 'failed' && f.error.code === 'CLIENT_VERSION' && f.status === 302);
  assert.ok(step.done);
});

test('retransmission before the first reply: 3 transmissions 2 s apart, same seq, new timestamps, then UNREACHABLE', () => {
  const s = new ClientSession(optionsFor(rec('08'), { nowMs: T0 + 990 }));
  const first = s.start(T0 + 990);
  assert.equal(first.wakeAtMs, T0 + 2990);
  const second = s.timeout(T0 + 2990);
  assert.equal(second.send.length, 1);
  assert.equal(second.send[0]!.readUInt32BE(0), 0xf00000f0, 'same sequence');
  assert.equal(second.send[0]!.readUInt32BE(4), 2990, 'new timestamp (gogoc sent 2993)');
  assert.equal(second.send[0]!.subarray(8).toString(), 'VERSION=2.0.2\r\n');
  assert.equal(s.timeout(T0 + 3000).send.length, 0, 'nothing before the deadline');
  const third = s.timeout(T0 + 4990);
  assert.equal(third.send.length, 1);
  const last = s.timeout(T0 + 6990);
  const f = failure([last]);
  assert.ok(f && f.type === 'failed' && f.error.code === 'CLIENT_UNREACHABLE', JSON.stringify(last.events));
  assert.ok(last.done);
});

test('a late reply echoing the first timestamp answers the retransmission (recording 08)', () => {
  const r = rec('08');
  const s = new ClientSession(optionsFor(r, { version: '2.0.0', nowMs: T0 + 12 }));
  s.start(T0 + 12);
  s.timeout(T0 + 2012);
  const step = s.receive(
    Buffer.concat([header(0xf0, 12), Buffer.from(r.messages.find((m) => m.payload.startsWith('CAPABILITY'))!.payload)]),
    T0 + 2015,
  );
  assert.equal(step.send[0]!.subarray(8).toString('latin1'), 'AUTHENTICATE ANONYMOUS\r\n\0');
  assert.equal(step.send[0]!.readUInt32BE(0), 0xf00000f1);
});

test('replies with another sequence, and datagrams that are not control, are ignored', () => {
  const s = new ClientSession(optionsFor(rec('01')));
  s.start(T0);
  const cap = Buffer.from('CAPABILITY TUNNEL=V6UDPV4 AUTH=PLAIN\r\n');
  assert.deepEqual(s.receive(Buffer.concat([header(0xef, 0), cap]), T0).send, []);
  assert.deepEqual(s.receive(Buffer.from([0x60, 0, 0, 0, 0, 0, 0, 0, 1, 2]), T0).send, []);
  assert.equal(s.currentState, 'sentVersion');
  assert.equal(s.receive(Buffer.concat([header(0xf0, 0), cap]), T0).send.length, 1);
});

test('after the first reply the RTO adapts (2-30 s), doubles from the third timeout, 8 transmissions at most', () => {
  const s = new ClientSession(optionsFor(rec('01')));
  s.start(T0);
  const step = s.receive(Buffer.concat([header(0xf0, 0), Buffer.from('CAPABILITY TUNNEL=V6UDPV4 AUTH=PLAIN\r\n')]), T0);
  assert.equal(step.wakeAtMs, T0 + 2000, 'a fast server keeps the 2 s floor');
  let now = T0;
  const gaps: number[] = [];
  let wake = step.wakeAtMs!;
  for (let i = 0; i < 10; i++) {
    const st = s.timeout(wake);
    gaps.push(wake - now);
    now = wake;
    if (st.done) {
      const f = failure([st]);
      assert.ok(f && f.type === 'failed' && f.error.code === 'CLIENT_TIMEOUT');
      break;
    }
    wake = st.wakeAtMs!;
  }
  assert.deepEqual(gaps, [2000, 2000, 2000, 4000, 8000, 16000, 30000, 30000]);
});

// ---- authentication ----

function udpSession(
  over: Partial<ClientSessionOptions> = {},
  capability = 'CAPABILITY TUNNEL=V6V4 TUNNEL=V6UDPV4 AUTH=DIGEST-MD5 AUTH=PLAIN AUTH=ANONYMOUS\r\n',
) {
  const s = new ClientSession(optionsFor(rec('02'), over));
  let last = s.start(T0);
  const reply = (payload: string | Buffer): ClientStep => {
    const d = last.send[last.send.length - 1]!;
    last = s.receive(Buffer.concat([d.subarray(0, 8), Buffer.from(payload as string, 'latin1')]), T0);
    return last;
  };
  reply(capability);
  return { s, reply, sent: () => last.send.map((d) => d.subarray(8).toString('latin1')) };
}

const CHALLENGE_02 = rec('02').messages.find((m) => m.from === 'server' && m.payload.startsWith('cmVh'))!.payload;

test('rspauth missing: 200 instead of rspauth is an authentication failure, not a crash', () => {
  const { reply } = udpSession({ cnonce: '1795700979' });
  reply(CHALLENGE_02);
  const step = reply('200 Success\r\n');
  const f = failure([step]);
  assert.ok(f && f.type === 'failed' && f.error.code === 'CLIENT_AUTH_FAILED', JSON.stringify(step.events));
  assert.match(f.error.message, /missing/);
  assert.equal(step.send.length, 0, 'no poll and no create after a failed rspauth');
});

test('rspauth wrong: a server that does not know the password is refused', () => {
  const { reply } = udpSession({ cnonce: '1795700979' });
  reply(CHALLENGE_02);
  const step = reply(`${Buffer.from('rspauth=00000000000000000000000000000000').toString('base64')}\r\n`);
  const f = failure([step]);
  assert.ok(f && f.type === 'failed' && f.error.code === 'CLIENT_AUTH_FAILED');
  assert.match(f.error.message, /wrong/);
});

test('rspauth right (recording 02): the empty poll follows, then the create', () => {
  const r = rec('02');
  const { reply, sent } = udpSession({ cnonce: '1795700979' });
  reply(CHALLENGE_02);
  reply(r.messages.find((m) => m.from === 'server' && m.payload.startsWith('cnNw'))!.payload);
  assert.deepEqual(sent(), ['']);
  reply('200 Success\r\n');
  assert.match(sent()[0]!, /^Content-length: 214\r\n<tunnel action="create" type="v6udpv4"/);
});

test('mechanism choice: any takes DIGEST-MD5 over PLAIN and never ANONYMOUS; a named one must be offered', () => {
  assert.equal(chooseMechanism('any', ['PLAIN', 'DIGEST-MD5', 'ANONYMOUS']), 'DIGEST-MD5');
  assert.equal(chooseMechanism('any', ['ANONYMOUS', 'PLAIN']), 'PLAIN');
  assert.equal(chooseMechanism('any', ['ANONYMOUS']), undefined);
  assert.equal(chooseMechanism('any', ['PASSDSS-3DES-1']), undefined);
  assert.equal(chooseMechanism('plain', ['DIGEST-MD5']), undefined);
  assert.equal(chooseMechanism('anonymous', ['ANONYMOUS']), 'ANONYMOUS');
});

test('CAPABILITY: lower case and a last token without CR LF still count', () => {
  const { sent } = udpSession({ auth: { method: 'anonymous' } }, 'capability tunnel=v6udpv4 auth=anonymous');
  assert.deepEqual(sent(), ['AUTHENTICATE ANONYMOUS\r\n\0']);
});

test('the NUL after AUTHENTICATE can be switched off', () => {
  const { sent } = udpSession({ auth: { method: 'anonymous' }, nulAfterAuthenticate: false });
  assert.deepEqual(sent(), ['AUTHENTICATE ANONYMOUS\r\n']);
});

test('no mechanism in common, or the tunnel mode not advertised: clear failures before authenticating', () => {
  const a = udpSession(
    { auth: { method: 'any', username: 'bob', password: 'x' } },
    'CAPABILITY TUNNEL=V6UDPV4 AUTH=ANONYMOUS\r\n',
  );
  assert.equal(a.s.currentState, 'failed', 'any never falls back to ANONYMOUS');
  const b = new ClientSession(optionsFor(rec('01')));
  const d = b.start(T0).send[0]!;
  const st = b.receive(Buffer.concat([d.subarray(0, 8), Buffer.from('CAPABILITY TUNNEL=V6V4 AUTH=PLAIN\r\n')]), T0);
  const f = failure([st]);
  assert.ok(f && f.type === 'failed' && f.error.code === 'CLIENT_UNSUPPORTED_MODE', JSON.stringify(st.events));
  assert.equal(st.send.length, 0);
  const c = new ClientSession(
    optionsFor(rec('01'), { auth: { method: 'digest-md5', username: 'bob', password: 'x' } }),
  );
  const dc = c.start(T0).send[0]!;
  const sc = c.receive(Buffer.concat([dc.subarray(0, 8), Buffer.from('CAPABILITY TUNNEL=V6UDPV4 AUTH=PLAIN\r\n')]), T0);
  const fc = failure([sc]);
  assert.ok(fc && fc.type === 'failed' && fc.error.code === 'CLIENT_NO_MECHANISM');
});

test('v6anyv4 over TCP needs TUNNEL=V6V4 (v6udpv4 cannot run over TCP)', () => {
  const s = new ClientSession(optionsFor(rec('05'), { request: { mode: 'v6anyv4', clientIpv4: '192.0.2.2' } }));
  s.start(T0);
  const f = failure([s.receive(Buffer.from('CAPABILITY TUNNEL=V6UDPV4 AUTH=ANONYMOUS\r\n'), T0)]);
  assert.ok(f && f.type === 'failed' && f.error.code === 'CLIENT_UNSUPPORTED_MODE');
});

// ---- offers ----

const OFFER_01 = rec('01').messages.find((m) => m.from === 'server' && m.payload.startsWith('Content-length'))!.payload;

function toOffer(over: Partial<ClientSessionOptions> = {}) {
  const s = new ClientSession(optionsFor(rec('01'), { auth: { method: 'anonymous' }, ...over }));
  let last = s.start(T0);
  const reply = (payload: string): ClientStep => {
    const d = last.send[0]!;
    last = s.receive(Buffer.concat([d.subarray(0, 8), Buffer.from(payload, 'latin1')]), T0);
    return last;
  };
  reply('CAPABILITY TUNNEL=V6V4 TUNNEL=V6UDPV4 AUTH=ANONYMOUS\r\n');
  reply('200 Success\r\n');
  return { s, reply };
}

function framed(body: string): string {
  return `Content-length: ${Buffer.byteLength(body)}\r\n${body}`;
}

function offerCode(payload: string, over: Partial<ClientSessionOptions> = {}): string | undefined {
  const f = failure([toOffer(over).reply(payload)]);
  return f && f.type === 'failed' ? f.error.code : undefined;
}

test('offer checks: exact Content-length, status 200, concrete and matching type, router prefix', () => {
  const xml = OFFER_01.slice(OFFER_01.indexOf('\n') + 1);
  assert.equal(offerCode(OFFER_01), undefined, 'the recorded offer is fine');
  assert.equal(offerCode(OFFER_01.replace('501', '502')), 'CLIENT_PROTOCOL', 'one byte short');
  assert.equal(offerCode(`${OFFER_01}310 F`), 'CLIENT_PROTOCOL', 'too long');
  assert.equal(offerCode(framed('303 Unsupported tunnel type\r\n')), 'CLIENT_UNSUPPORTED_MODE');
  assert.equal(offerCode(framed('301 No more tunnels available\r\n')), 'CLIENT_SERVER_ERROR');
  assert.equal(offerCode('303 Unsupported tunnel type\r\n'), 'CLIENT_UNSUPPORTED_MODE', 'bare status tolerated');
  assert.equal(offerCode(framed(xml.replace('type="v6udpv4"', 'type="v6anyv4"'))), 'CLIENT_BAD_OFFER');
  assert.equal(offerCode(framed(xml.replace('type="v6udpv4"', 'type="v6v4"'))), 'CLIENT_BAD_OFFER', 'asked v6udpv4');
  assert.equal(
    offerCode(framed(xml.replace('type="v6udpv4"', 'type="v6v4"')), {
      request: { mode: 'v6anyv4', clientIpv4: '192.0.2.2', keepaliveInterval: 30 },
    }),
    undefined,
    'v6anyv4 takes either',
  );
  assert.equal(
    offerCode(OFFER_01, { request: { mode: 'v6udpv4', clientIpv4: '192.0.2.2', prefixLength: 56 } }),
    'CLIENT_BAD_OFFER',
    'router mode without a prefix',
  );
  assert.equal(
    offerCode(framed(xml.replace('2001:0db8:0f00:0000:0000:0000:0000:0002', 'not-an-address'))),
    'CLIENT_BAD_OFFER',
  );
  assert.equal(
    offerCode(framed(xml.replace('<address type="ipv4">192.0.2.1</address>', ''))),
    'CLIENT_BAD_OFFER',
    'four addresses',
  );
});

test('offers: compressed IPv6 is accepted and values lower-cased', () => {
  const xml = OFFER_01.slice(OFFER_01.indexOf('\n') + 1).replace(
    '2001:0db8:0f00:0000:0000:0000:0000:0002',
    '2001:DB8:F00::2',
  );
  const { reply } = toOffer();
  const step = reply(framed(xml));
  const offer = step.events.find((e) => e.type === 'offer');
  assert.ok(offer && offer.type === 'offer');
  assert.equal(offer.offer.clientIpv6, '2001:db8:f00::2');
  assert.equal(step.send[0]!.subarray(8).toString(), 'Content-length: 35\r\n<tunnel action="accept"></tunnel>\r\n');
});

test('a redirect (> 1000) carries its broker list', () => {
  const body =
    '1200 Redirect\r\n<tunnel action="info"><broker><address type="dn">tb2.example.net</address>' +
    '<address type="ipv4">198.51.100.9</address><address type="ipv6">2001:db8::9</address></broker></tunnel>\r\n';
  assert.deepEqual(redirectList(body), ['tb2.example.net', '198.51.100.9', '[2001:db8::9]']);
  const s = new ClientSession(optionsFor(rec('01')));
  const d = s.start(T0).send[0]!;
  const f = failure([s.receive(Buffer.concat([d.subarray(0, 8), Buffer.from(body)]), T0)]);
  assert.ok(f && f.type === 'failed' && f.error.code === 'CLIENT_REDIRECT' && f.brokers?.length === 3);
});

// ---- TCP ----

/** Feeds a TCP recording's server side as `chunks` splits it; returns the concatenated writes and events. */
function replayTcp(r: Recording, chunking: (all: Buffer, parts: Buffer[]) => Buffer[]) {
  const s = new ClientSession(optionsFor(r));
  const steps = [s.start(T0)];
  const serverParts = r.messages.filter((m) => m.from === 'server').map(payloadBytes);
  for (const chunk of chunking(Buffer.concat(serverParts), serverParts)) steps.push(s.receive(chunk, T0));
  return { written: Buffer.concat(steps.flatMap((x) => x.send)).toString('latin1'), events: events(steps), steps };
}

for (const r of recordings.filter((x) => x.messages[0]!.transport === 'tcp')) {
  const want = r.messages
    .filter((m) => m.from === 'client')
    .map((m) => m.payload)
    .join('');
  const ways: Record<string, (all: Buffer, parts: Buffer[]) => Buffer[]> = {
    'one write per reply': (_all, parts) => parts,
    'all replies coalesced': (all) => [all],
    'byte by byte': (all) => [...all].map((b) => Buffer.from([b])),
  };
  for (const [how, chunking] of Object.entries(ways)) {
    test(`TCP replay ${r.name}, ${how}: gogoc's bytes, the offer understood`, () => {
      const { written, events: ev, steps } = replayTcp(r, chunking);
      assert.equal(written, want);
      const est = ev.find((e) => e.type === 'established');
      assert.ok(est && est.type === 'established', JSON.stringify(ev));
      assert.equal(est.offer.type, 'v6v4');
      assert.equal(est.offer.clientIpv6, r.client_tunnel_environment!.TSP_CLIENT_ADDRESS_IPV6);
      assert.ok(steps[steps.length - 1]!.done);
    });
  }
}

test('TCP: PLAIN credentials go out with AUTHENTICATE, without waiting (recording 06)', () => {
  const s = new ClientSession(optionsFor(rec('06')));
  s.start(T0);
  const step = s.receive(Buffer.from('CAPABILITY TUNNEL=V6V4 AUTH=PLAIN\r\n'), T0);
  assert.deepEqual(
    step.send.map((b) => b.toString('latin1')),
    ['AUTHENTICATE PLAIN\r\n\0', '\0bob\0hunter2\r\n'],
  );
});

test('TCP: a read timeout per reply, and EOF before the end, are failures', () => {
  const s = new ClientSession(optionsFor(rec('05'), { tcpReadTimeoutMs: 15_000 }));
  const st = s.start(T0);
  assert.equal(st.wakeAtMs, T0 + 15_000);
  assert.equal(s.timeout(T0 + 14_999).events.length, 0);
  const f = failure([s.timeout(T0 + 15_000)]);
  assert.ok(f && f.type === 'failed' && f.error.code === 'CLIENT_TIMEOUT');
  const t = new ClientSession(optionsFor(rec('05')));
  t.start(T0);
  t.receive(Buffer.from('CAPABILITY TUNNEL=V6V4 AUTH=ANONYMOUS\r\n'), T0);
  const g = failure([t.closed(T0)]);
  assert.ok(g && g.type === 'failed' && g.error.code === 'CLIENT_IO');
});

test('TCP DIGEST with 2.0.0: the §5.6 quirk changes the response only when X holds a 0x00 (vector D)', () => {
  const challenge = Buffer.from(
    'realm="tsp-fake",nonce="762f53ae1752548c",qop="auth",algorithm=md5-sess,charset=utf-8',
  ).toString('base64');
  const responseFor = (version: TspVersion) => {
    const s = new ClientSession(
      optionsFor(rec('07'), {
        version,
        auth: { method: 'digest-md5', username: 'bob', password: 'pass21' },
        cnonce: '1795700979',
      }),
    );
    s.start(T0);
    s.receive(Buffer.from('CAPABILITY TUNNEL=V6V4 AUTH=DIGEST-MD5\r\n'), T0);
    const st = s.receive(Buffer.from(`${challenge}\r\n`), T0);
    return /response=([0-9a-f]{32})/.exec(Buffer.from(st.send[0]!.toString().trim(), 'base64').toString())![1];
  };
  assert.equal(responseFor('2.0.2'), '4f00e67582d590dcfbea66c27262a21c');
  assert.equal(responseFor('2.0.0'), 'b670ed582c671d05ac4471ba2557b09f');
});
