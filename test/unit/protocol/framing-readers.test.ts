/** The framing readers and writers (src/protocol/framing/) on their own, fed bytes in every way they arrive:
 *  the TCP server reader at every split, with the NUL after AUTHENTICATE and blank lines; the UDP server reader's
 *  reply cache, stale and restart handling and anti-amplification budget; the client's reply reader; the first
 *  datagram classification; status lines from the registry. No sessions, no sockets. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_LINE_BYTES, MAX_REPLY_RESENDS } from '../../../src/protocol/constants.js';
import { framedRequest, scanFramed } from '../../../src/protocol/framing/content-length.js';
import { TcpClientFraming, UdpClientFraming } from '../../../src/protocol/framing/client.js';
import { TcpServerFraming, takeReply, tcpBusyReply } from '../../../src/protocol/framing/tcp.js';
import type { Inbound, Outbox, ReaderState } from '../../../src/protocol/framing/types.js';
import {
  UdpServerFraming,
  classifyFirstDatagram,
  decodeUdpHeader,
  encodeUdpHeader,
  isControlDatagram,
} from '../../../src/protocol/framing/udp.js';
import { AUTH_FAILED_LINE, BAD_VERSION_LINE, BUSY_LINE, errorLine, tspStatusOf } from '../../../src/protocol/status.js';
import { BrokerError } from '../../../src/errors.js';

const lines = (over: Partial<ReaderState> = {}): ReaderState => ({
  reading: 'line',
  atStart: false,
  waiting: false,
  skipBlankLines: false,
  ...over,
});
const framed = (over: Partial<ReaderState> = {}): ReaderState => lines({ reading: 'framed', ...over });

class Sink implements Outbox {
  sent: Buffer[] = [];
  withheldReasons: string[] = [];
  send(b: Buffer): void {
    this.sent.push(b);
  }
  withheld(reason: 'amplification' | 'resends'): void {
    this.withheldReasons.push(reason);
  }
}

const show = (m: Inbound | undefined): string =>
  m === undefined
    ? 'need'
    : m.kind === 'line'
      ? `line:${m.line.toString('latin1')}`
      : m.kind === 'framed'
        ? `framed:${m.body.toString('latin1')}`
        : m.kind;

/** Feeds `bytes` to a fresh TCP reader split at `at`, reading with `states` in turn; returns what it read. */
function readTcp(bytes: Buffer, at: number, states: ReaderState[], nulAfterFirst = false): string[] {
  const f = new TcpServerFraming();
  const got: string[] = [];
  let i = 0;
  const drain = () => {
    for (let m = f.next(states[i]!); m; m = f.next(states[i]!)) {
      got.push(show(m));
      if (nulAfterFirst && i === 0) f.expectNul();
      i = Math.min(i + 1, states.length - 1);
    }
  };
  f.push(bytes.subarray(0, at));
  drain();
  f.push(bytes.subarray(at));
  drain();
  return got;
}

test('TCP reader: lines then a Content-length message, split at every byte, one NUL after AUTHENTICATE', () => {
  const create = framedRequest('<tunnel action="create"></tunnel>\r\n');
  const bytes = Buffer.concat([Buffer.from('AUTHENTICATE ANONYMOUS\r\n\0'), create]);
  for (let at = 0; at <= bytes.length; at++)
    assert.deepEqual(
      readTcp(bytes, at, [lines(), framed()], true),
      ['line:AUTHENTICATE ANONYMOUS', 'framed:<tunnel action="create"></tunnel>\r\n'],
      `split at ${at}`,
    );
});

test('TCP reader: only one NUL is discarded, and only where announced', () => {
  const f = new TcpServerFraming();
  f.push(Buffer.from('\0\0bob\r\n'));
  f.expectNul();
  assert.equal(show(f.next(lines())), 'line:\0bob');
  const g = new TcpServerFraming();
  g.push(Buffer.from('\0bob\r\n'));
  assert.equal(show(g.next(lines())), 'line:\0bob', 'no AUTHENTICATE before: the NUL is data');
});

test('TCP reader: blank lines are skipped where the state says so, and before a Content-length header', () => {
  const f = new TcpServerFraming();
  f.push(Buffer.from('\r\n\r\nx\r\n'));
  assert.equal(show(f.next(lines({ skipBlankLines: true }))), 'line:x');
  const g = new TcpServerFraming();
  g.push(Buffer.from('\r\nx\r\n'));
  assert.equal(show(g.next(lines())), 'line:', 'a blank line is a message where a payload may be empty');
  const h = new TcpServerFraming();
  h.push(Buffer.concat([Buffer.from('\r\n \r\n'), framedRequest('ab')]));
  assert.equal(show(h.next(framed())), 'framed:ab');
});

test('TCP reader: nothing is read while waiting or closed; the bytes wait in the buffer', () => {
  const f = new TcpServerFraming();
  f.push(Buffer.from('VERSION=2.0.2\r\n'));
  assert.equal(f.next(lines({ waiting: true })), undefined);
  assert.equal(f.next(lines({ reading: 'nothing' })), undefined);
  assert.equal(show(f.next(lines())), 'line:VERSION=2.0.2');
});

test('TCP reader: bounded lines and headers, and a non-Content-length header is a framing error', () => {
  const code = (fn: () => unknown) => {
    try {
      fn();
      return 'none';
    } catch (e) {
      return (e as BrokerError).code;
    }
  };
  const long = new TcpServerFraming();
  long.push(Buffer.alloc(MAX_LINE_BYTES + 1, 0x41));
  assert.equal(
    code(() => long.next(lines())),
    'TSP_TOO_LARGE',
  );
  const exact = new TcpServerFraming();
  exact.push(Buffer.alloc(MAX_LINE_BYTES, 0x41));
  assert.equal(
    code(() => exact.next(lines())),
    'none',
    'at the bound: wait for the line end',
  );
  const header = new TcpServerFraming();
  header.push(Buffer.alloc(MAX_LINE_BYTES + 1, 0x41));
  assert.equal(
    code(() => header.next(framed())),
    'TSP_TOO_LARGE',
  );
  const wrong = new TcpServerFraming();
  wrong.push(Buffer.from('Content-type: 3\r\nabc'));
  assert.equal(
    code(() => wrong.next(framed())),
    'TSP_BAD_FRAME',
  );
  const big = new TcpServerFraming();
  big.push(Buffer.from('Content-length: 9000\r\n'));
  assert.equal(
    code(() => big.next(framed())),
    'TSP_TOO_LARGE',
  );
});

const dg = (seq: number, body: string | Buffer, timestamp = 7) =>
  Buffer.concat([encodeUdpHeader({ seq, timestamp }), typeof body === 'string' ? Buffer.from(body, 'latin1') : body]);

test('UDP reader: one request per datagram; the reply echoes its header and is cached for retransmissions', () => {
  const f = new UdpServerFraming();
  f.markValidated(); // the budget is tested below
  const out = new Sink();
  f.push(dg(5, 'AUTHENTICATE ANONYMOUS\r\n\0', 99), lines(), out);
  assert.equal(show(f.next(lines())), 'line:AUTHENTICATE ANONYMOUS');
  assert.equal(f.next(lines()), undefined, 'one message per datagram');
  f.reply(Buffer.from('200 Success\r\n'), out);
  assert.deepEqual(decodeUdpHeader(out.sent[0]!).header, { seq: 5, timestamp: 99 });
  f.push(dg(5, 'AUTHENTICATE ANONYMOUS\r\n\0', 100), lines(), out);
  assert.equal(f.next(lines()), undefined, 'a retransmission is never read again');
  assert.deepEqual(out.sent[1], out.sent[0], 'the cached reply, header included');
  for (let i = 1; i < MAX_REPLY_RESENDS; i++) f.push(dg(5, 'x'), lines(), out);
  assert.equal(out.sent.length, 1 + MAX_REPLY_RESENDS);
  f.push(dg(5, 'x'), lines(), out);
  assert.equal(out.sent.length, 1 + MAX_REPLY_RESENDS, 'bounded');
  assert.deepEqual(out.withheldReasons, ['resends']);
});

test('UDP reader: no cached reply while waiting; older sequences dropped; malformed datagrams ignored', () => {
  const f = new UdpServerFraming();
  f.markValidated();
  const out = new Sink();
  f.push(dg(10, framedRequest('<tunnel action="create"></tunnel>')), framed(), out);
  assert.equal(show(f.next(framed())), 'framed:<tunnel action="create"></tunnel>');
  f.push(dg(10, 'again'), framed({ waiting: true }), out);
  assert.equal(out.sent.length, 0, 'the answer is still being decided: nothing to resend');
  f.push(dg(9, framedRequest('old')), framed(), out);
  assert.equal(f.next(framed()), undefined, 'stale');
  f.push(Buffer.from('6000000000000000', 'hex'), framed(), out);
  assert.equal(f.next(framed()), undefined, 'not control');
  f.push(dg(11, ''), framed(), out);
  assert.equal(show(f.next(framed())), 'poll', 'header-only where a framed message belongs');
  f.push(dg(12, 'x'), framed({ waiting: true }), out);
  assert.equal(f.next(framed({ waiting: true })), undefined, 'a new request while waiting is not read');
});

test('UDP reader: VERSION= restarts a session past start, whatever its sequence; elsewhere the start reads only VERSION', () => {
  const f = new UdpServerFraming();
  const out = new Sink();
  f.push(dg(20, 'AUTHENTICATE ANONYMOUS\r\n'), lines(), out);
  f.next(lines());
  f.push(dg(3, 'VERSION=2.0.2\r\n'), framed(), out);
  assert.equal(show(f.next(framed())), 'restart');
  assert.equal(show(f.next(lines({ atStart: true }))), 'line:VERSION=2.0.2', 'an older sequence, read anyway');
  const g = new UdpServerFraming();
  g.push(dg(1, 'AUTHENTICATE ANONYMOUS\r\n'), lines({ atStart: true }), out);
  assert.equal(g.next(lines({ atStart: true })), undefined, 'a session we never saw: no reply');
  g.push(dg(2, 'VERSION=2.0.2\r\n'), lines({ reading: 'nothing' }), out);
  assert.equal(show(g.next(lines({ reading: 'nothing' }))), 'restart', 'a closed session restarts on VERSION=');
});

test('UDP reader: replies to an unvalidated source stay within 3x the bytes it sent', () => {
  const f = new UdpServerFraming();
  const out = new Sink();
  f.push(dg(1, 'AUTHENTICATE PLAIN\r\n'), lines(), out); // 28 bytes + 28 on the wire
  f.next(lines());
  f.reply(Buffer.alloc(200, 0x41), out);
  assert.equal(out.sent.length, 0);
  assert.deepEqual(out.withheldReasons, ['amplification']);
  f.reply(Buffer.alloc(100, 0x41), out); // 108 + 28 <= 3 * 56
  assert.equal(out.sent.length, 1);
  const v = new UdpServerFraming();
  v.markValidated();
  v.push(dg(1, 'x\r\n'), lines(), out);
  v.next(lines());
  v.reply(Buffer.alloc(1000, 0x41), out);
  assert.equal(out.sent.length, 2, 'a validated source has no budget');
});

test('control datagrams: one test for the 0xF nibble and a whole header', () => {
  assert.equal(isControlDatagram(Buffer.from('f000000000000000', 'hex')), true);
  assert.equal(isControlDatagram(Buffer.from('f0000000000000', 'hex')), false, 'short');
  assert.equal(isControlDatagram(Buffer.from('6000000000000000', 'hex')), false, 'IPv6');
  assert.equal(isControlDatagram(Buffer.alloc(0)), false);
});

test('first datagram: VERSION answered without state (CAPABILITY or 302), AUTHENTICATE opens, the rest dropped', () => {
  const caps = { tunnelTypes: ['v6v4'] as const, mechanisms: ['ANONYMOUS', 'PLAIN'] as const };
  const v = classifyFirstDatagram(dg(0xf0, 'VERSION=2.0.2\r\n', 111), caps);
  assert.equal(v.kind, 'version');
  if (v.kind !== 'version') return;
  assert.equal(v.version, '2.0.2');
  assert.deepEqual(decodeUdpHeader(v.reply).header, { seq: 0xf0, timestamp: 111 });
  assert.equal(v.reply.subarray(8).toString(), 'CAPABILITY TUNNEL=V6V4 AUTH=ANONYMOUS AUTH=PLAIN\r\n');
  const old = classifyFirstDatagram(dg(1, 'VERSION=1.0\r\n'), caps);
  assert.ok(old.kind === 'version' && old.version === undefined);
  assert.equal(old.kind === 'version' && old.reply.subarray(8).toString(), '302 Unsupported client version\r\n');
  assert.equal(classifyFirstDatagram(dg(2, 'AUTHENTICATE PLAIN\r\n\0'), caps).kind, 'authenticate');
  assert.equal(classifyFirstDatagram(dg(3, 'hello'), caps).kind, 'drop');
  assert.equal(classifyFirstDatagram(Buffer.from('VERSION=2.0.2\r\n'), caps).kind, 'drop', 'no header');
});

test('client reply reader: a Content-length reply, a bare line, a redirect with its broker list, split anywhere', () => {
  const reply = Buffer.from('Content-length: 13\r\n200 Success\r\nrest');
  for (let at = 0; at < reply.length; at++) {
    const head = takeReply(reply.subarray(0, at));
    assert.ok(head === undefined || head.reply.length === 33, `split at ${at}`);
  }
  assert.equal(takeReply(reply)!.rest.toString(), 'rest');
  assert.equal(
    takeReply(Buffer.from('300 Authentication failed\r\nX'))!.reply.toString(),
    '300 Authentication failed\r\n',
  );
  const redirect = Buffer.from('1200 Redirect\r\n<tunnel><broker><address>192.0.2.9</address></broker></tunnel>\r\n');
  assert.equal(takeReply(redirect.subarray(0, 30)), undefined, 'waits for </tunnel>');
  assert.ok(takeReply(redirect)!.reply.toString().endsWith('</tunnel>'));
  assert.equal(scanFramed(Buffer.from('Content-length: 5\r\nab')).kind, 'incomplete');
});

test('client UDP framing: 3 transmissions 2 s apart before any reply, then CLIENT_UNREACHABLE', () => {
  const f = new UdpClientFraming(0xf0, 1_000_500);
  const out: Buffer[] = [];
  f.request(Buffer.from('VERSION=2.0.2\r\n'), 1_000_500, out);
  assert.deepEqual(decodeUdpHeader(out[0]!).header, { seq: 0xf0, timestamp: 500 });
  assert.equal(f.wakeAtMs(), 1_002_500);
  assert.equal(f.timeout(1_002_500, out, 'sentVersion'), undefined);
  assert.equal(f.timeout(1_004_500, out, 'sentVersion'), undefined);
  assert.equal(out.length, 3);
  assert.equal(decodeUdpHeader(out[2]!).header.seq, 0xf0, 'a retransmission keeps its sequence');
  assert.equal(f.timeout(1_006_500, out, 'sentVersion')?.code, 'CLIENT_UNREACHABLE');
  f.push(dg(0xf0, 'CAPABILITY\r\n\0\0'), 1_006_600);
  assert.equal(f.next()?.toString(), 'CAPABILITY\r\n', 'matched on the sequence; trailing NULs go');
  f.push(dg(0xf0, 'again'), 1_006_700);
  assert.equal(f.next(), undefined, 'a late duplicate');
});

test('client TCP framing: a read timeout per expected reply', () => {
  const f = new TcpClientFraming(15_000);
  const out: Buffer[] = [];
  f.request(Buffer.from('VERSION=2.0.2\r\n'), 0, out);
  assert.equal(f.wakeAtMs(), 15_000);
  f.push(Buffer.from('CAPABILITY TUNNEL=V6V4'));
  assert.equal(f.next(), undefined);
  f.push(Buffer.from(' AUTH=ANONYMOUS\r\n'));
  assert.equal(f.next()?.toString(), 'CAPABILITY TUNNEL=V6V4 AUTH=ANONYMOUS\r\n');
  assert.equal(f.wakeAtMs(), undefined, 'answered: no timer');
  f.expectReply(100);
  assert.match(f.timeout(15_100, out, 'md5Poll')?.message ?? '', /no reply within 15000 ms while md5Poll/);
});

test('status lines come from the error registry', () => {
  assert.equal(BUSY_LINE.toString(), '530 Server too busy\r\n');
  assert.equal(tcpBusyReply().toString(), '530 Server too busy\r\n');
  assert.equal(AUTH_FAILED_LINE.toString(), '300 Authentication failed\r\n');
  assert.equal(BAD_VERSION_LINE.toString(), '302 Unsupported client version\r\n');
  assert.equal(errorLine('POOL_EXHAUSTED').toString(), '301 No more tunnels available\r\n');
  assert.deepEqual(tspStatusOf('CFG_INVALID'), { code: 310, text: 'Server side error' }, 'never sent on TSP');
});
