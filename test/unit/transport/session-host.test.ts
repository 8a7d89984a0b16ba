/** The session host's guard, on real sockets: whatever throws while a session is processed (the handler here,
 *  standing for any broker bug) closes that session alone, is reported with its peer and counted, and the
 *  listener goes on serving. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TcpControl } from '../../../src/transport/tcp.js';
import { UdpControl } from '../../../src/transport/udp.js';
import { ServerSession, type SessionEvent } from '../../../src/protocol/server/session.js';
import { MemoryDataPlane } from '../../../src/dataplane/memory.js';
import { systemClock } from '../../../src/clock.js';
import type { TspVersion } from '../../../src/protocol/constants.js';
import type { SessionContext, SessionHandler } from '../../../src/transport/session-host.js';
import { RawTcp, RawUdp, eventually, udpDatagram } from '../../helpers/clients.js';

const caps = { tunnelTypes: ['v6v4', 'v6udpv4'] as const, mechanisms: ['ANONYMOUS'] as const };
const newSession = (transport: 'udp' | 'tcp', nowMs: number, afterVersion?: TspVersion) =>
  new ServerSession({
    ...(afterVersion ? { afterVersion } : {}),
    transport,
    tunnelTypes: [...caps.tunnelTypes],
    mechanisms: [...caps.mechanisms],
    realm: 'r',
    negotiationTimeoutMs: 5000,
    newNonce: () => '00',
    nowMs,
  });

/** Throws on every 'authenticated' event, as a buggy broker would. */
class ThrowingHandler implements SessionHandler {
  crashed: { peer: string; err: string }[] = [];
  closedEvents = 0;
  onEvents(_ctx: SessionContext, events: readonly SessionEvent[]): void {
    for (const e of events) {
      if (e.type === 'closed') this.closedEvents++;
      if (e.type === 'authenticated') throw new TypeError('bug in the handler');
    }
  }
  onCrash(ctx: SessionContext, err: unknown): void {
    this.crashed.push({ peer: `${ctx.peer.address}:${ctx.peer.port}`, err: String(err) });
  }
}

test('TCP: a throw while processing closes that connection, is reported with its peer, and the server serves on', async () => {
  const h = new ThrowingHandler();
  const tcp = new TcpControl(newSession, h, systemClock, {
    halfOpenSessions: 10,
    tcpPerSource: 10,
    tcpConnections: 10,
  });
  await tcp.listen('127.0.0.1', 0);
  try {
    const c = await RawTcp.connect(tcp.port);
    const localPort = c.socket.localPort;
    c.write('VERSION=2.0.2\r\nAUTHENTICATE ANONYMOUS\r\n\0');
    assert.ok(await c.waitClosed(2000), 'the connection was closed');
    assert.equal(tcp.stats.crashes, 1);
    assert.equal(h.crashed.length, 1);
    assert.equal(h.crashed[0]!.peer, `127.0.0.1:${localPort}`);
    assert.match(h.crashed[0]!.err, /bug in the handler/);
    assert.equal(h.closedEvents, 1, 'the handler heard the session close (offers are given back)');
    assert.ok(await eventually(() => tcp.counts().total === 0));
    c.close();
    const again = await RawTcp.connect(tcp.port);
    again.write('VERSION=2.0.2\r\n');
    assert.match(await again.waitFor((t) => t.includes('\r\n')), /^CAPABILITY /);
    again.close();
  } finally {
    await tcp.close();
  }
});

test('UDP: a throw while processing forgets that session; the next VERSION from it is answered', async () => {
  const h = new ThrowingHandler();
  const dp = new MemoryDataPlane({ listenAddress: '127.0.0.1', port: 0 });
  await dp.start();
  const udp = new UdpControl(
    dp,
    newSession,
    h,
    systemClock,
    { halfOpenSessions: 10, halfOpenPerSource: 10 },
    { tunnelTypes: [...caps.tunnelTypes], mechanisms: [...caps.mechanisms] },
  );
  udp.start();
  const u = await RawUdp.open();
  try {
    assert.ok(await u.request(udpDatagram(1, 0, 'VERSION=2.0.2\r\n'), dp.udpPort));
    const reply = await u.request(udpDatagram(2, 0, 'AUTHENTICATE ANONYMOUS\r\n\0'), dp.udpPort);
    assert.equal(reply?.subarray(8).toString(), '200 Success\r\n', 'sends go out before the events are handled');
    assert.equal(udp.stats.crashes, 1);
    assert.equal(udp.counts().total, 0, 'the session is gone');
    assert.match((await u.request(udpDatagram(3, 0, 'VERSION=2.0.2\r\n'), dp.udpPort))!.subarray(8).toString(), /^CAP/);
  } finally {
    u.close();
    udp.close();
    await dp.close();
  }
});
