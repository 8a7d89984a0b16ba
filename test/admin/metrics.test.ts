/** /metrics over a real socket: the text parses as the Prometheus exposition format, carries no per-tunnel
 *  labels, and its counters move when real TSP sessions happen and packets arrive. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawUdp, eventually } from '../helpers/clients.js';
import { digestTunnelOverUdp } from './tsp-session.js';
import { ipv6Udp } from '../helpers/packets.js';
import { parsePrometheus } from './prometheus.js';

let b: TestBroker;
before(async () => {
  // a short negotiation timeout: a UDP session that failed authentication is reported when it expires
  b = await startTestBroker({ admin: { enabled: true, port: 0 }, limits: { negotiationTimeoutS: 1 } });
  await b.addUser('mia', 'mia-password');
});
after(async () => {
  await b?.stop();
});

async function scrape(): Promise<{
  types: Map<string, string>;
  get: (name: string, labels?: Record<string, string>) => number;
}> {
  const r = await fetch(`http://127.0.0.1:${b.admin!.port}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const { types, samples } = parsePrometheus(await r.text());
  const get = (name: string, labels: Record<string, string> = {}) =>
    samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((sum, s) => sum + s.value, 0);
  return { types, get };
}

test('the exposition parses and declares every documented family with the right type', async () => {
  const { types } = await scrape();
  const want: Record<string, string> = {
    tsp_sessions_total: 'counter',
    tsp_auth_failures_total: 'counter',
    tsp_tunnels_live: 'gauge',
    tsp_control_sessions: 'gauge',
    tsp_dataplane_packets_total: 'counter',
    tsp_dataplane_bytes_total: 'counter',
    tsp_dataplane_drops_total: 'counter',
    tsp_pool_allocated_blocks: 'gauge',
    tsp_store_writes_total: 'counter',
    tsp_store_checkpoints_total: 'counter',
    tsp_store_wal_pages: 'gauge',
    tsp_reverse_dns_updates_total: 'counter',
    nodejs_eventloop_lag_seconds: 'gauge',
  };
  for (const [name, type] of Object.entries(want)) assert.equal(types.get(name), type, name);
});

test('the parser rejects malformed text (it can fail)', () => {
  assert.throws(() => parsePrometheus('# TYPE x counter\nx{a="1" 2\n'));
  assert.throws(() => parsePrometheus('y 1\n'), /has no TYPE/);
  assert.throws(() => parsePrometheus('# TYPE x counter\nx one\n'));
});

test('counters move with real sessions, failed authentications and packets; no per-tunnel labels', async (t) => {
  const before = await scrape();
  const established = { transport: 'udp', mechanism: 'DIGEST-MD5', result: 'established' };

  const ok = await digestTunnelOverUdp(b.ports.udp, 'mia', 'mia-password');
  t.after(() => ok.udp.close());
  assert.equal(ok.result, 'established');
  const bad = await digestTunnelOverUdp(b.ports.udp, 'mia', 'not-the-password');
  bad.udp.close();
  assert.match(bad.result, /^300/);

  // an IPv6 packet from the tunnel's endpoint and address is counted as received; from elsewhere it is a drop
  const ipv6 = ipv6Udp(ok.clientIpv6!, '2001:db8:100::2', 60);
  ok.udp.send(ipv6, b.ports.udp);
  const stranger = await RawUdp.open();
  t.after(() => stranger.close());
  stranger.send(ipv6, b.ports.udp);

  let now = await scrape();
  assert.ok(
    await eventually(
      async () => {
        now = await scrape();
        return (
          now.get('tsp_dataplane_packets_total', { direction: 'rx' }) >
            before.get('tsp_dataplane_packets_total', { direction: 'rx' }) &&
          now.get('tsp_dataplane_drops_total', { reason: 'unknown_endpoint' }) >
            before.get('tsp_dataplane_drops_total', { reason: 'unknown_endpoint' })
        );
      },
      3000,
      50,
    ),
    'packet and drop counters moved',
  );
  assert.equal(now.get('tsp_sessions_total', established), before.get('tsp_sessions_total', established) + 1);
  assert.equal(
    now.get('tsp_auth_failures_total', { mechanism: 'DIGEST-MD5' }),
    before.get('tsp_auth_failures_total', { mechanism: 'DIGEST-MD5' }) + 1,
  );
  assert.equal(
    now.get('tsp_tunnels_live', { type: 'v6udpv4' }),
    before.get('tsp_tunnels_live', { type: 'v6udpv4' }) + 1,
  );
  assert.equal(
    now.get('tsp_dataplane_bytes_total', { direction: 'rx' }) -
      before.get('tsp_dataplane_bytes_total', { direction: 'rx' }),
    60,
  );
  assert.ok(now.get('tsp_pool_allocated_blocks', { pool: 'link' }) >= 1);
  // the session's offer and accept were written, in commits that may carry several writes each
  const writes = now.get('tsp_store_writes_total', { kind: 'write' });
  assert.ok(writes >= before.get('tsp_store_writes_total', { kind: 'write' }) + 2);
  assert.ok(now.get('tsp_store_writes_total', { kind: 'commit' }) <= writes);
  // the failed session is reported when it closes (UDP has no close: at the negotiation timeout), bounded wait
  assert.ok(
    await eventually(
      async () => {
        const s = await scrape();
        return s.get('tsp_sessions_total', { mechanism: 'DIGEST-MD5', result: 'auth_failed' }) >= 1;
      },
      5000,
      100,
    ),
  );

  const text = await (await fetch(`http://127.0.0.1:${b.admin!.port}/metrics`)).text();
  assert.doesNotMatch(text, /mia|tunnel_id|client_ipv4|127\.0\.0\.1/, 'no per-tunnel or per-account labels');
});
