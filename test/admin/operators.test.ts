/** What operators expect on day one, through the REST API (fastify inject against a real broker): the tunnel
 *  list searched, filtered, sorted and paged in the store; audit filters by actor, target and time; the
 *  dashboard's ranges from stored traffic history, which survives a broker restart; a live tunnel's own
 *  traffic and the top talkers. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { eventually } from '../helpers/clients.js';
import { icmpv6EchoRequest } from '../helpers/packets.js';
import { buildAdminApp } from '../../src/admin/server.js';
import { TokenService } from '../../src/admin/tokens.js';
import type { NewTunnel } from '../../src/store/types.js';
import { digestTunnelOverUdp } from './tsp-session.js';
import { newTunnel } from '../helpers/rows.js';

let b: TestBroker;
let app: FastifyInstance;
const AUTH = { authorization: '' };

before(async () => {
  b = await startTestBroker();
  app = await buildAdminApp(b);
  const r = await app.inject({ method: 'GET', url: '/api/v1/me' });
  assert.equal(r.statusCode, 401);
  // a token straight from the service: these tests are about listing, not about tokens
  AUTH.authorization = `Bearer ${(await new TokenService(b.store).create('cli', 'ops')).token}`;
});
after(async () => {
  await app?.close();
  await b?.stop();
});

const get = async <T>(url: string): Promise<T> => {
  const r = await app.inject({ method: 'GET', url: `/api/v1${url}`, headers: AUTH });
  assert.equal(r.statusCode, 200, r.body);
  return r.json<T>();
};

const tunnel = (over: Partial<NewTunnel>): NewTunnel => newTunnel({ clientIpv4: '192.0.2.50', ...over });

test('GET /tunnels searches, filters, sorts and pages stored tunnels in the store', async () => {
  const ops = await b.store.createAccount({
    username: 'ops-olive',
    role: 'user',
    passwordHash: 'x',
    digestHa1: null,
    digestRealm: null,
  });
  const ids: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t = await b.store.createTunnel(
      tunnel({
        accountId: i < 4 ? ops.id : null,
        leaseId: i < 4 ? null : `ops-lease-${i}`,
        type: i % 2 ? 'v6v4' : 'v6udpv4',
        clientIpv6: `fd00:abcd::${i + 1}`,
      }),
      1000 + i,
    );
    await b.store.updateCounters([
      { id: t.id, rxPackets: 1, rxBytes: (i * 37) % 7, txPackets: 0, txBytes: 0, lastSeenAt: null },
    ]);
    await b.store.endTunnel(t.id, 'idle', 2000);
    ids.push(t.id);
  }
  type List = { items: { id: number; rxBytes: number; username: string | null }[]; total: number };
  const all = await get<List>('/tunnels?state=ended&search=FD00:ABCD&limit=3');
  assert.equal(all.total, 7);
  assert.deepEqual(
    all.items.map((t) => t.id),
    [ids[6], ids[5], ids[4]],
    'newest first',
  );
  const second = await get<List>('/tunnels?state=ended&search=fd00:abcd&limit=3&offset=3');
  assert.deepEqual(
    second.items.map((t) => t.id),
    [ids[3], ids[2], ids[1]],
    'the second page',
  );
  const byTraffic = await get<List>('/tunnels?state=ended&search=fd00:abcd&sort=traffic&order=desc');
  const rx = byTraffic.items.map((t) => t.rxBytes);
  assert.deepEqual(
    rx,
    [...rx].sort((x, y) => y - x),
    'most traffic first',
  );
  const olive = await get<List>('/tunnels?state=ended&search=olive&type=v6v4');
  assert.deepEqual(
    olive.items.map((t) => t.id),
    [ids[3], ids[1]],
    'account search and type filter together',
  );
  const byAccount = await get<List>('/tunnels?state=ended&search=fd00:abcd&sort=account&order=asc');
  assert.equal(byAccount.items[0]?.username, null, 'anonymous first');
  assert.equal(byAccount.items.at(-1)?.username, 'ops-olive');
  const bad = await app.inject({ method: 'GET', url: '/api/v1/tunnels?sort=node', headers: AUTH });
  assert.equal(bad.statusCode, 400);
});

test('GET /audit filters by exact action, actor substring, target substring and a time range', async () => {
  for (const [at, actor, action, target] of [
    [5000, 'admin:aud-root', 'account.create', 'aud-alice'],
    [6000, 'admin:aud-root', 'tunnel.kill', '42'],
    [7000, 'token:aud-prov', 'account.create', 'aud-bob'],
  ] as const)
    await b.store.addAudit({ at, actor, action, target, detail: null });
  type List = { items: { at: number }[]; total: number };
  const ats = async (q: string) => {
    const p = new URLSearchParams({ from: '5000', to: '8000', ...Object.fromEntries(new URLSearchParams(q)) });
    return (await get<List>(`/audit?${p.toString()}`)).items.map((e) => e.at);
  };
  assert.deepEqual(await ats('actorContains=AUD-ROOT'), [6000, 5000]);
  assert.deepEqual(await ats('target=aud-'), [7000, 5000]);
  assert.deepEqual(await ats('action=account.create&actorContains=aud'), [7000, 5000]);
  assert.deepEqual(await ats('from=6000&to=7000'), [6000]);
});

test('the OpenAPI document describes the new query parameters', async () => {
  const doc = (await app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json<{
    paths: Record<string, Record<string, { parameters?: { name: string }[] }>>;
  }>();
  const names = (p: string) => (doc.paths[p]?.get?.parameters ?? []).map((x) => x.name);
  for (const n of ['search', 'sort', 'order', 'type', 'username', 'state', 'offset', 'limit'])
    assert.ok(names('/tunnels').includes(n), `/tunnels ${n}`);
  for (const n of ['action', 'actor', 'actorContains', 'target', 'from', 'to'])
    assert.ok(names('/audit').includes(n), `/audit ${n}`);
  assert.ok(names('/stats').includes('range'));
  assert.ok(doc.paths['/tunnels/{id}/traffic']?.get);
});

test('stored traffic history: ranges from the store, kept across a broker restart; per-tunnel traffic and top talkers', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-ops-restart-'));
  let first: TestBroker | undefined;
  let second: TestBroker | undefined;
  try {
    first = await startTestBroker({ admin: { enabled: true, port: 0 } }, { dir });
    await first.addUser('hist-hank', 'hist-password');
    const s = await digestTunnelOverUdp(first.ports.udp, 'hist-hank', 'hist-password');
    try {
      assert.equal(s.result, 'established');
      const live = first.broker.liveTunnels()[0]!;
      // echo requests to the broker's end of the tunnel: each comes back, so rx and tx are equal
      for (let i = 0; i < 40; i++)
        s.udp.send(icmpv6EchoRequest(live.clientIpv6, live.serverIpv6, 7, i, 1000), first.ports.udp);
      assert.ok(await eventually(() => (first!.dataplane.readCounters()[0]?.txPackets ?? 0) >= 40));
      const base = `http://127.0.0.1:${first.admin!.port}`;
      const token = (await new TokenService(first.store).create('cli', 'hist')).token;
      const fetchJson = async <T>(url: string) => {
        const r = await fetch(`${base}/api/v1${url}`, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(r.status, 200);
        return (await r.json()) as T;
      };
      // the per-tunnel history fills every 5 s: wait for two samples
      type Traffic = { live: boolean; samples: unknown[]; rates: { rx: number; tx: number }[] };
      assert.ok(
        await eventually(
          async () => (await fetchJson<Traffic>(`/tunnels/${live.id}/traffic`)).samples.length >= 2,
          12_000,
          200,
        ),
      );
      const traffic = await fetchJson<Traffic>(`/tunnels/${live.id}/traffic`);
      assert.equal(traffic.live, true);
      type Stats = { topTalkers: { id: number; rxBytes: number; txBytes: number }[] };
      const talkers = (await fetchJson<Stats>('/stats')).topTalkers;
      assert.equal(talkers[0]?.id, live.id, 'the busy tunnel is the top talker');
      assert.ok(talkers[0]!.rxBytes > 40_000 && talkers[0]!.rxBytes === talkers[0]!.txBytes, 'rx equals tx');
    } finally {
      s.udp.close();
    }
    await first.stop(); // writes the last partial interval
    first = undefined;

    second = await startTestBroker({ admin: { enabled: true, port: 0 } }, { dir });
    const token = (await new TokenService(second.store).create('cli', 'hist2')).token;
    const r = await fetch(`http://127.0.0.1:${second.admin!.port}/api/v1/stats?range=1h`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const stats = (await r.json()) as {
      history: { range: string; bucketMs: number; points: { rx: number | null; tx: number | null }[] };
    };
    assert.equal(stats.history.range, '1h');
    assert.equal(stats.history.bucketMs, 60_000);
    const withTraffic = stats.history.points.filter((p) => (p.rx ?? 0) > 0);
    assert.ok(withTraffic.length >= 1, 'the traffic before the restart is still there');
    assert.ok(withTraffic.every((p) => p.rx === p.tx));
    assert.ok(
      stats.history.points.some((p) => p.rx === null),
      'minutes before the first broker ran are gaps, not zeros',
    );
  } finally {
    await first?.stop();
    await second?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
