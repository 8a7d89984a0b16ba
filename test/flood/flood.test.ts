/** Floods over real sockets on loopback, each bounded in count and time, while a real client negotiates.
 *  Addresses in 127.0.0.0/8 other than 127.0.0.1 stand for spoofed sources (a UDP source proves nothing, so
 *  a flood from them is what a spoofer can send). Each asserts what a user would notice: the real client gets
 *  its tunnel, the broker's state and reply bytes stay within their bounds, and the broker is still up. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawTcp, RawUdp, eventually, udpDatagram } from '../helpers/clients.js';
import { runSession } from '../helpers/tsp.js';
import { framedRequest } from '../../src/protocol/framing/content-length.js';
import { writeCreateRequest } from '../../src/protocol/request-writer.js';

const HALF_OPEN_CAP = 200;
let b: TestBroker;
let maxHalfOpen = 0;
let sampler: NodeJS.Timeout;
before(async () => {
  b = await startTestBroker({
    limits: { halfOpenSessions: HALF_OPEN_CAP, halfOpenPerSource: 16, tcpConnections: 100, negotiationTimeoutS: 5 },
  });
  await b.addUser('alice', 'alice-pass');
  sampler = setInterval(() => (maxHalfOpen = Math.max(maxHalfOpen, b.sessionCounts().halfOpen)), 2);
});
after(async () => {
  clearInterval(sampler);
  await b?.stop();
});

/** `n` sockets spread over `prefixes` /24s of 127.0.0.0/8 (never 127.0.0.0/24, where the real client is). */
async function sources(n: number, prefixes: number): Promise<RawUdp[]> {
  const out: RawUdp[] = [];
  for (let i = 0; i < n; i++) out.push(await RawUdp.open(`127.1.${i % prefixes}.${1 + Math.floor(i / prefixes)}`));
  return out;
}

/** Sends `rounds` datagrams from every socket, yielding between rounds so the broker and the client run. */
async function flood(socks: RawUdp[], rounds: number, body: (round: number) => Buffer, port: number): Promise<number> {
  let sent = 0;
  for (let r = 0; r < rounds; r++) {
    for (const s of socks) {
      s.send(body(r), port);
      // pace bursts to what the receive buffer holds: dropped by the kernel, they would test nothing
      if (++sent % 50 === 0) await new Promise((res) => setTimeout(res, 2));
    }
  }
  return sent;
}

const fdCount = () => readdirSync('/proc/self/fd').length;

test('a VERSION flood from many sources leaves no state, and a real client gets its tunnel meanwhile', async (t) => {
  const socks = await sources(300, 60);
  try {
    const heapBefore = process.memoryUsage().heapUsed;
    const flooding = flood(socks, 40, (r) => udpDatagram(r + 1, 0, 'VERSION=2.0.2\r\n'), b.ports.udp);
    const real = await runSession({
      transport: 'udp',
      port: b.ports.udp,
      auth: { mechanism: 'ANONYMOUS' },
      tries: 8,
      retransmitMs: 250,
    });
    const sent = await flooding;
    assert.equal(sent, 12_000, 'the whole flood went out: 60 times the half-open cap');
    assert.equal(real.createStatus, 200, 'the real client got its offer');
    real.udp?.close();
    assert.ok(b.udp!.statelessReplies >= 1000, `VERSION answered without state (${b.udp!.statelessReplies})`);
    assert.ok(b.sessionCounts().total <= 1, `sessions held: ${JSON.stringify(b.sessionCounts())}`);
    const grewMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    t.diagnostic(
      `VERSION flood: ${sent} datagrams from 300 sources, ${b.udp!.statelessReplies} answered without state, ` +
        `sessions held ${b.sessionCounts().total}, heap +${grewMb.toFixed(1)} MB, real client: ${real.createStatus}`,
    );
    assert.ok(grewMb < 64, `heap grew ${grewMb.toFixed(1)} MB`);
  } finally {
    for (const s of socks) s.close();
  }
});

test('an AUTHENTICATE flood at several times the half-open cap: the table stays bounded, a real client completes', async (t) => {
  const socks = await sources(1000, 100);
  try {
    // each source opens a session, over and over (a new sequence each round): 5 times the cap per round set
    const flooding = flood(
      socks,
      12,
      (r) => udpDatagram(r * 2 + 1, 0, r % 2 ? 'AUTHENTICATE ANONYMOUS\r\n\0' : 'VERSION=2.0.2\r\n'),
      b.ports.udp,
    );
    // the real client retransmits like gogoc when a reply is missing (each request: up to 3 tries)
    let real;
    for (let attempt = 0; attempt < 3 && real?.createStatus !== 200; attempt++) {
      real = await runSession({
        transport: 'udp',
        port: b.ports.udp,
        auth: { mechanism: 'DIGEST-MD5', username: 'alice', password: 'alice-pass' },
        tries: 8,
        retransmitMs: 250,
      });
      real.udp?.close();
    }
    const sent = await flooding;
    t.diagnostic(
      `AUTHENTICATE flood: ${sent} datagrams from 1000 sources against a table of ${HALF_OPEN_CAP}: peak ` +
        `half-open ${maxHalfOpen}, ${b.udp!.stats.evictions} evictions, real client: ${real?.createStatus}`,
    );
    assert.equal(real?.createStatus, 200, `the real client got its tunnel (${JSON.stringify(real?.raw)})`);
    assert.ok(maxHalfOpen <= HALF_OPEN_CAP, `half-open sessions peaked at ${maxHalfOpen}`);
    assert.ok(
      b.udp!.stats.evictions > 0,
      `the full table made room by eviction: ${JSON.stringify([b.udp!.stats, b.udp!.dropped, b.udp!.statelessReplies, b.sessionCounts()])}`,
    );
    assert.equal(b.udp!.stats.crashes, 0);
  } finally {
    for (const s of socks) s.close();
  }
});

test('header-only repeats across many sessions: replies stay within 3x the bytes on the wire', async (t) => {
  const socks = await sources(50, 10);
  try {
    let sentWire = 0;
    let gotWire = 0;
    for (const s of socks) s.socket.on('message', (m) => (gotWire += m.length + 28));
    const send = (s: RawUdp, d: Buffer) => {
      sentWire += d.length + 28;
      s.send(d, b.ports.udp);
    };
    const create = framedRequest(writeCreateRequest({ type: 'v6udpv4', clientIpv4: '192.0.2.1' }));
    for (const s of socks) {
      send(s, udpDatagram(1, 0, 'AUTHENTICATE ANONYMOUS\r\n\0'));
      send(s, udpDatagram(2, 0, create));
    }
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 100; i++) {
      for (const s of socks) send(s, udpDatagram(2, i, '')); // the create's sequence, 8 bytes
      await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 300));
    t.diagnostic(
      `header-only repeats: sent ${sentWire} bytes on the wire, drew ${gotWire} (${(gotWire / sentWire).toFixed(2)}x)`,
    );
    assert.ok(gotWire > 0);
    assert.ok(gotWire <= 3 * sentWire, `sent ${sentWire} bytes, drew ${gotWire}: ${(gotWire / sentWire).toFixed(2)}x`);
  } finally {
    for (const s of socks) s.close();
  }
});

test('many TCP connections: past the bound they get 530, file descriptors stay bounded, all close again', async () => {
  const fdsBefore = fdCount();
  const conns: RawTcp[] = [];
  try {
    for (let i = 0; i < 250; i++) conns.push(await RawTcp.connect(b.ports.tcp, `127.2.${i % 25}.${1 + (i % 7)}`));
    assert.ok(await eventually(() => conns.filter((c) => c.ended).length >= 150, 5000));
    assert.ok(b.tcp!.counts().total <= 100, `connections held: ${b.tcp!.counts().total}`);
    const refused = conns.filter((c) => c.ended);
    assert.ok(refused.every((c) => c.text() === '530 Server too busy\r\n'));
    // the test's own 250 client sockets plus at most 100 held by the broker
    assert.ok(fdCount() - fdsBefore <= 250 + 100 + 10, `fds grew by ${fdCount() - fdsBefore}`);
  } finally {
    for (const c of conns) c.close();
  }
  assert.ok(await eventually(() => b.tcp!.counts().total === 0, 5000));
  const real = await runSession({ transport: 'tcp', port: b.ports.tcp, auth: { mechanism: 'ANONYMOUS' } });
  assert.equal(real.authStatus, '200 Success\r\n', 'the broker still serves TCP');
  real.tcp?.close();
});

test('anonymous tunnels from one source: 8 at most; an account holder still gets a tunnel after', async () => {
  const socks: RawUdp[] = [];
  const statuses: number[] = [];
  try {
    for (let i = 0; i < 30; i++) {
      const u = await RawUdp.open('127.3.0.1');
      socks.push(u);
      const r = await runSession({ transport: 'udp', port: b.ports.udp, auth: { mechanism: 'ANONYMOUS' }, udp: u });
      statuses.push(r.createStatus);
    }
    assert.equal(statuses.filter((s) => s === 200).length, 8);
    assert.ok(statuses.slice(8).every((s) => s === 301));
    const alice = await runSession({
      transport: 'udp',
      port: b.ports.udp,
      auth: { mechanism: 'DIGEST-MD5', username: 'alice', password: 'alice-pass' },
      udp: await RawUdp.open('127.3.0.1'),
    });
    alice.udp?.close();
    assert.equal(alice.createStatus, 200);
  } finally {
    for (const s of socks) s.close();
  }
});
