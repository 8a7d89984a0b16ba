/** Bad input against a running broker over real sockets: each gets the right status or a clean close, never
 *  a crash, and leaves no session behind (the session count is asserted after each case). The negotiation
 *  timeout is 1 s here so abandoned sessions expire within the test. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawTcp, RawUdp, eventually, udpDatagram } from '../helpers/clients.js';

let b: TestBroker;
before(async () => {
  b = await startTestBroker({ limits: { negotiationTimeoutS: 1, halfOpenPerSource: 8 } });
  await b.addUser('bob', 'hunter22');
});
after(async () => {
  await b?.stop();
});

async function noSessionsLeft(): Promise<void> {
  assert.ok(
    await eventually(() => b.sessionCounts().total === 0, 4000),
    `sessions left: ${JSON.stringify(b.sessionCounts())}`,
  );
}

async function tcpCase(input: (string | Buffer)[], expectEnd: string | RegExp | null): Promise<string> {
  const c = await RawTcp.connect(b.ports.tcp);
  for (const piece of input) c.write(piece);
  const closed = await c.waitClosed(3000);
  const text = c.text();
  c.close();
  assert.ok(closed, `the broker closed the connection (got ${JSON.stringify(text.slice(-80))})`);
  if (expectEnd instanceof RegExp) assert.match(text, expectEnd);
  else if (expectEnd !== null)
    assert.ok(
      text.endsWith(expectEnd),
      `ends with ${JSON.stringify(expectEnd)}, got ${JSON.stringify(text.slice(-80))}`,
    );
  await noSessionsLeft();
  return text;
}

const HELLO = 'VERSION=2.0.2\r\n';
const ANON = 'AUTHENTICATE ANONYMOUS\r\n\0';
const framed = (xml: string) => `Content-length: ${Buffer.byteLength(xml)}\r\n${xml}`;
const err = (line: string) => `Content-length: ${Buffer.byteLength(line) + 2}\r\n${line}\r\n`;

test('UDP: truncated headers, wrong nibble and openers other than VERSION and AUTHENTICATE get no reply and no session', async () => {
  const u = await RawUdp.open();
  try {
    u.send(Buffer.from('f00000', 'hex'), b.ports.udp); // truncated header
    u.send(udpDatagram(1, 0, framed('<tunnel action="create" type="v6udpv4"/>')), b.ports.udp); // no session
    u.send(udpDatagram(2, 0, ''), b.ports.udp); // a header-only poll to no session
    u.send(Buffer.concat([Buffer.from('7000000100000000', 'hex'), Buffer.from(HELLO)]), b.ports.udp); // nibble 7
    u.send(Buffer.alloc(0), b.ports.udp);
    u.send(Buffer.alloc(1500, 0xff), b.ports.udp);
    assert.equal(await u.next(500), undefined, 'no reply to any of them');
    assert.equal(b.sessionCounts().total, 0);
  } finally {
    u.close();
  }
});

test('UDP: VERSION is answered without a session; the session starts with AUTHENTICATE', async () => {
  const u = await RawUdp.open();
  try {
    const cap = await u.request(udpDatagram(1, 0, HELLO), b.ports.udp);
    assert.match(cap?.subarray(8).toString() ?? '', /^CAPABILITY .*\r\n$/);
    assert.equal(b.sessionCounts().total, 0, 'VERSION leaves no state behind');
    const old = await u.request(udpDatagram(2, 0, 'VERSION=1.0.1\r\n'), b.ports.udp);
    assert.equal(old?.subarray(8).toString(), '302 Unsupported client version\r\n');
    assert.equal(b.sessionCounts().total, 0);
    const ok = await u.request(udpDatagram(3, 0, ANON), b.ports.udp);
    assert.equal(ok?.subarray(8).toString(), '200 Success\r\n');
    assert.equal(b.sessionCounts().halfOpen, 1, 'AUTHENTICATE opened the session');
    await noSessionsLeft();
  } finally {
    u.close();
  }
});

test('UDP: oversized datagrams and a huge Content-length', async () => {
  const u = await RawUdp.open();
  try {
    assert.ok(await u.request(udpDatagram(1, 0, HELLO), b.ports.udp));
    assert.ok(await u.request(udpDatagram(2, 0, ANON), b.ports.udp));
    u.send(udpDatagram(3, 0, `${'x'.repeat(20_000)}`), b.ports.udp);
    assert.equal(await u.next(300), undefined, 'an oversized datagram is ignored');
    const r = await u.request(udpDatagram(4, 0, 'Content-length: 4000000000\r\n<tunnel'), b.ports.udp);
    assert.equal(r?.subarray(8).toString(), err('500 Invalid request format or specified length'));
    const short = await u.request(udpDatagram(5, 0, 'VERSION=2.0.2\r\n'), b.ports.udp);
    assert.ok(short?.subarray(8).toString().startsWith('CAPABILITY'), 'VERSION restarts a failed session');
    await noSessionsLeft();
  } finally {
    u.close();
  }
});

test('UDP: a Content-length that does not match the body gets 500', async () => {
  const u = await RawUdp.open();
  try {
    await u.request(udpDatagram(1, 0, HELLO), b.ports.udp);
    await u.request(udpDatagram(2, 0, ANON), b.ports.udp);
    const r = await u.request(
      udpDatagram(3, 0, 'Content-length: 300\r\n<tunnel action="create" type="v6udpv4"/>\r\n'),
      b.ports.udp,
    );
    assert.equal(r?.subarray(8).toString(), err('500 Invalid request format or specified length'));
    await noSessionsLeft();
  } finally {
    u.close();
  }
});

test('TCP: garbage, an unsupported version, unknown mechanisms and bad base64', async () => {
  await tcpCase(['GET / HTTP/1.1\r\nHost: x\r\n\r\n'], '500 Invalid request format or specified length\r\n');
  await tcpCase([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x0a])], null); // a TLS hello: no newline
  await tcpCase(['VERSION=1.0.1\r\n'], '302 Unsupported client version\r\n');
  await tcpCase([HELLO, 'AUTHENTICATE KERBEROS_V4\r\n\0'], '300 Authentication failed\r\n');
  await tcpCase([HELLO, 'AUTHENTICATE PASSDSS-3DES-1\r\n\0'], '300 Authentication failed\r\n');
  await tcpCase([HELLO, 'AUTHENTICATE DIGEST-MD5\r\n\0', '%%%%not-base64%%%%\r\n'], '300 Authentication failed\r\n');
  await tcpCase([HELLO, 'AUTHENTICATE PLAIN\r\n\0', 'no-nul-and-not-base64!\r\n'], '300 Authentication failed\r\n');
  await tcpCase([HELLO, 'HELLO\r\n'], '300 Authentication failed\r\n');
});

test('TCP: XML with missing or unknown elements, bad addresses, a huge Content-length', async () => {
  const pre = [HELLO, ANON];
  await tcpCase(
    [...pre, framed('<tunnel action="create"/>\r\n')],
    err('500 Invalid request format or specified length'),
  );
  await tcpCase(
    [
      ...pre,
      framed('<tunnel action="create" type="v6v4"><client><address type="ipv4">999.0.0.1</address></client></tunnel>'),
    ],
    err('501 Invalid IPv4 address'),
  );
  await tcpCase(
    [...pre, framed('<tunnel action="create" type="ipx"><client/></tunnel>')],
    err('303 Unsupported tunnel type'),
  );
  await tcpCase(
    [...pre, framed('<tunnel action="create" type="v6v4"><client><address type="ipv4">127.0.0.1</address></client>')],
    err('500 Invalid request format or specified length'),
  );
  await tcpCase(
    [...pre, framed('<!DOCTYPE lol [<!ENTITY a "aaaa">]><tunnel action="create" type="v6v4">&a;</tunnel>')],
    err('500 Invalid request format or specified length'),
  );
  await tcpCase([...pre, 'Content-length: 99999999\r\n'], err('500 Invalid request format or specified length'));
  await tcpCase([...pre, 'Content-type: text/xml\r\n'], err('500 Invalid request format or specified length'));
  await tcpCase([...pre, `${'A'.repeat(5000)}`], err('500 Invalid request format or specified length'));
  // unknown elements are fine: this one is offered
  const c = await RawTcp.connect(b.ports.tcp);
  c.write(
    HELLO +
      ANON +
      framed(
        '<tunnel action="create" type="v6v4"><client><address type="ipv4">127.0.0.1</address><flux capacitor="1.21"/></client><extra/></tunnel>',
      ),
  );
  assert.match(await c.waitFor((t) => t.includes('</tunnel>')), /200 Success\r\n<tunnel action="info" type="v6v4"/);
  c.close();
  await noSessionsLeft();
});

test('a silent client is closed after the negotiation timeout, over TCP and UDP', async () => {
  await tcpCase([], null);
  await tcpCase([HELLO], /^CAPABILITY /);
  await tcpCase([HELLO, 'AUTHENTICATE PLAIN\r\n\0'], /^CAPABILITY [^\r]*\r\n$/);
  const u = await RawUdp.open();
  await u.request(udpDatagram(1, 0, HELLO), b.ports.udp);
  await u.request(udpDatagram(2, 0, ANON), b.ports.udp);
  assert.equal(b.sessionCounts().halfOpen, 1);
  await noSessionsLeft();
  u.close();
});

test('half-open sessions are bounded per source: a new one evicts the oldest of that source', async () => {
  const socks: RawUdp[] = [];
  try {
    for (let i = 0; i < 8; i++) {
      const u = await RawUdp.open();
      socks.push(u);
      await u.request(udpDatagram(1, 0, HELLO), b.ports.udp);
      assert.equal((await u.request(udpDatagram(2, 0, ANON), b.ports.udp))?.subarray(8).toString(), '200 Success\r\n');
    }
    const extra = await RawUdp.open();
    socks.push(extra);
    await extra.request(udpDatagram(1, 0, HELLO), b.ports.udp);
    assert.equal(
      (await extra.request(udpDatagram(2, 0, ANON), b.ports.udp))?.subarray(8).toString(),
      '200 Success\r\n',
      'the newcomer is served, not refused',
    );
    assert.equal(b.sessionCounts().halfOpen, 8);
    const oldest = socks[0]!;
    assert.equal(
      await oldest.request(udpDatagram(3, 0, framed('<tunnel action="create" type="v6udpv4"/>')), b.ports.udp, 500),
      undefined,
      'the oldest session of that source was evicted',
    );
    await noSessionsLeft();
  } finally {
    for (const s of socks) s.close();
  }
});

test('the broker is still healthy after all of that', async () => {
  const c = await RawTcp.connect(b.ports.tcp);
  c.write(HELLO + 'AUTHENTICATE PLAIN\r\n\0\0bob\0hunter22\r\n');
  assert.match(await c.waitFor((t) => t.includes('200 Success')), /200 Success\r\n$/);
  c.close();
});
