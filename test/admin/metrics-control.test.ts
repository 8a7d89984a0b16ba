/** /metrics shows what the TSP transports did to stay up under attack: VERSION answered without a session,
 *  replies withheld by the amplification budget or the resend limit, sessions evicted from a full table, and
 *  sessions closed because their processing failed (none here). */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawUdp, udpDatagram } from '../helpers/clients.js';
import { framedRequest } from '../../src/protocol/framing/content-length.js';
import { writeCreateRequest } from '../../src/protocol/request-writer.js';

let b: TestBroker;
before(async () => {
  b = await startTestBroker({ admin: { enabled: true, port: 0 }, limits: { halfOpenSessions: 2 } });
});
after(async () => {
  await b?.stop();
});

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${b.admin!.port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} is exported`);
  return Number(line.split(' ')[1]);
}

test('control events and withheld replies are counted, from zero', async () => {
  assert.equal(await metric('tsp_control_events_total{event="version_stateless"}'), 0);
  assert.equal(await metric('tsp_udp_replies_withheld_total{reason="resends"}'), 0);
  const socks = await Promise.all([1, 2, 3].map((i) => RawUdp.open(`127.0.70.${i}`)));
  try {
    for (const u of socks) {
      await u.request(udpDatagram(1, 0, 'VERSION=2.0.2\r\n'), b.ports.udp);
      await u.request(udpDatagram(2, 0, 'AUTHENTICATE ANONYMOUS\r\n\0'), b.ports.udp);
    }
    const u = socks[2]!;
    const create = framedRequest(writeCreateRequest({ type: 'v6udpv4', clientIpv4: '127.0.70.3' }));
    assert.ok(await u.request(udpDatagram(3, 0, create), b.ports.udp));
    for (let i = 0; i < 20; i++) await u.request(udpDatagram(3, i, ''), b.ports.udp, 50);
    assert.equal(await metric('tsp_control_events_total{event="version_stateless"}'), 3);
    assert.equal(await metric('tsp_control_events_total{event="half_open_eviction"}'), 1, 'the table holds 2');
    assert.ok((await metric('tsp_udp_replies_withheld_total{reason="amplification"}')) > 0);
    assert.equal(await metric('tsp_control_events_total{event="session_crash"}'), 0);
    assert.equal(await metric('tsp_control_events_total{event="reply_unsent"}'), 0, 'every reply went out');
  } finally {
    for (const u of socks) u.close();
  }
});
