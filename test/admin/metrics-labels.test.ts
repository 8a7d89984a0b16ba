/** /metrics on a fresh broker and under made-up input: every family is there at zero before anything happened,
 *  and mechanism names a client invents (real TSP sessions sending `AUTHENTICATE <random>`) are counted as
 *  `other` instead of becoming label values, so the exposition stays the same size however many there are. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawTcp, eventually } from '../helpers/clients.js';
import { parsePrometheus } from './prometheus.js';

let b: TestBroker;
before(async () => {
  b = await startTestBroker({ admin: { enabled: true, port: 0 } });
});
after(async () => {
  await b?.stop();
});

async function scrape() {
  const r = await fetch(`http://127.0.0.1:${b.admin!.port}/metrics`);
  assert.equal(r.status, 200);
  const text = await r.text();
  const { types, samples } = parsePrometheus(text);
  const get = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  const sum = (name: string, labels: Record<string, string> = {}) => get(name, labels).reduce((n, s) => n + s.value, 0);
  return { text, types, samples, get, sum };
}

/** One TCP session: VERSION, then AUTHENTICATE with a mechanism nobody offers; the broker answers 300 and closes. */
async function bogusMechanism(name: string): Promise<string> {
  const c = await RawTcp.connect(b.ports.tcp);
  try {
    c.write('VERSION=2.0.2\r\n');
    await c.waitFor((t) => t.includes('\r\n'), 3000);
    c.write(`AUTHENTICATE ${name}\r\n\0`);
    const text = await c.waitFor((t) => /\r\n300 /.test(t), 3000);
    await c.waitClosed(3000);
    return text;
  } finally {
    c.close();
  }
}

test('a fresh broker shows every metric family, with its known label values at zero', async () => {
  const m = await scrape();
  for (const family of [
    'tsp_sessions_total',
    'tsp_auth_failures_total',
    'tsp_tunnels_live',
    'tsp_control_sessions',
    'tsp_dataplane_packets_total',
    'tsp_dataplane_bytes_total',
    'tsp_dataplane_drops_total',
    'tsp_pool_allocated_blocks',
    'tsp_audit_suppressed_total',
  ])
    assert.ok(m.get(family).length > 0, `${family} has samples before anything happened`);
  for (const transport of ['udp', 'tcp'])
    for (const mechanism of ['ANONYMOUS', 'PLAIN', 'DIGEST-MD5'])
      for (const result of ['established', 'auth_failed'])
        assert.deepEqual(
          m.get('tsp_sessions_total', { transport, mechanism, result }).map((s) => s.value),
          [0],
          `tsp_sessions_total{${transport},${mechanism},${result}}`,
        );
  for (const mechanism of ['ANONYMOUS', 'PLAIN', 'DIGEST-MD5', 'none', 'other'])
    assert.deepEqual(
      m.get('tsp_auth_failures_total', { mechanism }).map((s) => s.value),
      [0],
    );
  for (const reason of ['unknown_endpoint', 'spoofed_source', 'malformed', 'control_queue_full'])
    assert.equal(m.get('tsp_dataplane_drops_total', { reason }).length, 1, reason);
  assert.equal(m.sum('tsp_audit_suppressed_total'), 0);
});

test('mechanism names from the wire become `other`: /metrics does not grow with them', async () => {
  const before = await scrape();
  const N = 300;
  const names = Array.from({ length: N }, () => `X${randomBytes(12).toString('hex').toUpperCase()}`);
  for (let i = 0; i < N; i += 10) {
    const replies = await Promise.all(names.slice(i, i + 10).map(bogusMechanism));
    for (const r of replies) assert.match(r, /\r\n300 /, 'the broker refuses the mechanism');
  }
  let now = before;
  assert.ok(
    await eventually(
      async () => {
        now = await scrape();
        return now.sum('tsp_sessions_total', { transport: 'tcp', mechanism: 'other', result: 'auth_failed' }) === N;
      },
      5000,
      50,
    ),
    `every session counted once as other (got ${now.sum('tsp_sessions_total', { mechanism: 'other' })})`,
  );
  assert.equal(now.sum('tsp_auth_failures_total', { mechanism: 'other' }), N);
  for (const n of names.slice(0, 20)) assert.ok(!now.text.includes(n), `${n} is not a label value`);
  const mechanisms = new Set(
    now.samples.filter((s) => s.name.startsWith('tsp_') && s.labels.mechanism).map((s) => s.labels.mechanism),
  );
  assert.deepEqual([...mechanisms].sort(), ['ANONYMOUS', 'DIGEST-MD5', 'PLAIN', 'none', 'other']);
  // the same series as before, with other values: the process metrics vary a little, the tsp_ ones not at all
  const tspLines = (t: string) => t.split('\n').filter((l) => l.startsWith('tsp_')).length;
  assert.equal(tspLines(now.text), tspLines(before.text));
  assert.ok(
    now.text.length < before.text.length + 2048,
    `/metrics grew from ${before.text.length} to ${now.text.length} bytes`,
  );
});
