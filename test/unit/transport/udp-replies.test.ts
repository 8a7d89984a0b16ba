/** How UdpControl sends its replies, on a real MemoryDataPlane socket: the replies one event-loop turn makes
 *  leave together when it ends, in the order they were made, and a reply the channel refuses (a data plane
 *  closing) is counted while the others still go. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UdpControl } from '../../../src/transport/udp.js';
import type { ControlChannel } from '../../../src/transport/udp6.js';
import { ServerSession } from '../../../src/protocol/server/session.js';
import { MemoryDataPlane } from '../../../src/dataplane/memory.js';
import { systemClock } from '../../../src/clock.js';
import type { ControlDatagram, Endpoint } from '../../../src/dataplane/types.js';
import type { TspVersion } from '../../../src/protocol/constants.js';
import type { Capabilities } from '../../../src/protocol/server/version.js';
import type { SessionHandler } from '../../../src/transport/session-host.js';
import { RawUdp, udpDatagram } from '../../helpers/clients.js';

const caps: Capabilities = { tunnelTypes: ['v6udpv4'], mechanisms: ['ANONYMOUS'] };
const newSession = (transport: 'udp' | 'tcp', nowMs: number, afterVersion?: TspVersion) =>
  new ServerSession({
    ...(afterVersion ? { afterVersion } : {}),
    transport,
    ...caps,
    realm: 'r',
    negotiationTimeoutMs: 5000,
    newNonce: () => '00',
    nowMs,
  });
const quiet: SessionHandler = { onEvents: () => {}, onCrash: () => {} };

/** A UdpControl on a real MemoryDataPlane, through a channel that records each send; sends to `refusePort`
 *  throw, as a closed native data plane's do. `deliver` hands a batch over as the native data plane does. */
async function rig(refusePort = -1) {
  const dp = new MemoryDataPlane({ listenAddress: '127.0.0.1', port: 0 });
  await dp.start();
  const sent: { to: Endpoint; body: string }[] = [];
  let handler: ((batch: readonly ControlDatagram[]) => void) | undefined;
  const channel: ControlChannel = {
    onControl(h) {
      handler = h;
      dp.onControl(h);
    },
    sendControl(to, datagram) {
      sent.push({ to, body: Buffer.from(datagram).subarray(8).toString('latin1') });
      if (to.port === refusePort) throw new Error('data plane is closed');
      dp.sendControl(to, datagram);
    },
  };
  const limits = { halfOpenSessions: 10, halfOpenPerSource: 10 };
  const udp = new UdpControl(channel, newSession, quiet, systemClock, limits, caps);
  udp.start();
  return { dp, udp, sent, deliver: (batch: ControlDatagram[]) => handler!(batch) };
}

test("UDP: a turn's replies leave together after it, in order; one the channel refuses is counted, the rest go", async () => {
  const a = await RawUdp.open();
  const b = await RawUdp.open();
  const { dp, udp, sent, deliver } = await rig(a.port);
  try {
    // one batch, as the native data plane hands over what one wakeup read: b's VERSION, then b's AUTHENTICATE
    // (it opens b's session) and a's VERSION
    const from = (u: RawUdp) => ({ address: '127.0.0.1', port: u.port });
    deliver([
      { from: from(b), data: udpDatagram(1, 0, 'VERSION=2.0.2\r\n') },
      { from: from(a), data: udpDatagram(1, 0, 'VERSION=2.0.2\r\n') },
      { from: from(b), data: udpDatagram(2, 0, 'AUTHENTICATE ANONYMOUS\r\n\0') },
    ]);
    assert.equal(sent.length, 0, 'nothing is sent while the turn still reads');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      sent.map((s) => [s.to.port, s.body.slice(0, 12)]),
      [
        [b.port, 'CAPABILITY T'],
        [a.port, 'CAPABILITY T'],
        [b.port, '200 Success\r'],
      ],
      'every reply of the turn, in the order they were made',
    );
    assert.equal(udp.unsent, 1, "a's reply, refused, is counted");
    assert.match((await b.next())!.subarray(8).toString(), /^CAPABILITY /, 'b still gets its replies');
    assert.equal((await b.next())!.subarray(8).toString(), '200 Success\r\n');
    assert.equal(await a.next(200), undefined, 'a gets nothing');
    assert.equal(udp.counts().total, 1, "b's session is open");
    // over the socket as well: a datagram read alone is answered once its turn ends
    assert.match((await b.request(udpDatagram(3, 0, 'VERSION=2.0.2\r\n'), dp.udpPort))!.subarray(8).toString(), /^CAP/);
  } finally {
    a.close();
    b.close();
    udp.close();
    await dp.close();
  }
});

test('UDP: close() sends what its turn made at once, and nothing read after it is answered', async () => {
  const b = await RawUdp.open();
  const { dp, udp, sent, deliver } = await rig();
  const from = { address: '127.0.0.1', port: b.port };
  try {
    deliver([{ from, data: udpDatagram(1, 0, 'VERSION=2.0.2\r\n') }]);
    udp.close(); // the broker stopping, in the same turn
    assert.equal(sent.length, 1, "the turn's reply went before close() returned");
    deliver([{ from, data: udpDatagram(2, 0, 'VERSION=2.0.2\r\n') }]); // read before the data plane closes
    await new Promise((r) => setImmediate(r));
    assert.equal(sent.length, 1, 'nothing is answered after close()');
    assert.equal(udp.statelessReplies, 1, 'nor even read');
    assert.match((await b.next())!.subarray(8).toString(), /^CAPABILITY /);
  } finally {
    b.close();
    await dp.close();
  }
});
