/** Static 6in4 tunnels against a real broker over real sockets (SQLite file, MemoryDataPlane, the admin and
 *  self-service listeners): they follow pools.linkMode like TSP tunnels, a stranger's wrong passwords do not
 *  lock out the update key, an operator's kill-and-block holds them, concurrent endpoint changes leave the
 *  store and the data plane agreeing, and an update may only name its own source address. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { nicUpdate as nic, nicUpdateFrom, staticApi as api, type StaticCtx } from '../helpers/static-tunnels.js';
import { ManualClock } from '../../src/clock.js';
import { TokenService } from '../../src/admin/tokens.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { MemoryDataPlane } from '../../src/dataplane/memory.js';
import type { TunnelId } from '../../src/dataplane/types.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-static-guards-'));
const clock = new ManualClock(Date.now());
const running: TestBroker[] = [];
after(async () => {
  for (const b of running) await b.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

const CONFIG: ConfigInput = {
  admin: { enabled: true, port: 0 },
  selfService: { enabled: true, address: '127.0.0.1', port: 0 },
  // the updates come from 127.0.0.1 and name documentation addresses (the last test checks the default, true)
  staticTunnels: { updatesPerMinute: 1000, changesPerHour: 1000, endpointFromSource: false },
};

/** A broker of its own (its own database) with an operator token and the given users (password NAME-password). */
async function start(users: string[], overrides: ConfigInput = {}): Promise<StaticCtx & { ids: number[] }> {
  const sub = mkdtempSync(path.join(dir, 'b-'));
  const b = await startTestBroker(
    { ...CONFIG, ...overrides, staticTunnels: { ...CONFIG.staticTunnels, ...overrides.staticTunnels } },
    { dir: sub, clock },
  );
  running.push(b);
  const ids: number[] = [];
  for (const u of users) ids.push(await b.addUser(u, `${u}-password`));
  return { b, ids, token: (await new TokenService(b.store, clock).create('test', 'ops')).token };
}

test('in shared-64 mode a static tunnel gets the account /126, like a TSP tunnel', async () => {
  const c = await start(['alice', 'bob'], { pools: { link: '2001:db8:f00::/64', linkMode: 'shared-64' } });
  const alice = await api(c, 'POST', '/accounts/alice/static-tunnel', { endpoint: '192.0.2.10' });
  assert.equal(alice.status, 201, JSON.stringify(alice.json));
  const bob = await api(c, 'POST', '/accounts/bob/static-tunnel', { endpoint: '192.0.2.11' });
  assert.equal(bob.status, 201, JSON.stringify(bob.json));
  // two accounts in the one /64 of the pool: each a /126 (server ::1, client ::2 of it)
  assert.deepEqual(
    [alice.json.tunnel!.serverIpv6, alice.json.tunnel!.clientIpv6, bob.json.tunnel!.clientIpv6],
    ['2001:db8:f00::1', '2001:db8:f00::2', '2001:db8:f00::6'],
  );
  assert.equal((await c.b.store.findAllocation(c.ids[0]!, 'link'))?.prefixLen, 126);
});

test("a stranger's wrong passwords lock the username's password out of /nic/update, never its update key", async () => {
  const c = await start(['alice']);
  assert.equal((await api(c, 'POST', '/accounts/alice/static-tunnel', { endpoint: '192.0.2.10' })).status, 201);
  const key = (await api(c, 'POST', '/accounts/alice/static-tunnel/update-key')).json.updateKey!;
  const q = 'hostname=alice&myip=192.0.2.20';
  const stranger: string[] = [];
  for (let i = 0; i < 10 && stranger.at(-1) !== 'abuse'; i++)
    stranger.push((await nicUpdateFrom(c, '127.0.0.2', q, 'alice', `guess-${i}`))[1]);
  assert.equal(stranger.at(-1), 'abuse', `the username is locked: ${stranger.join(',')}`);
  assert.ok(stranger.slice(0, -1).every((a) => a === 'badauth'));
  // from the router's own source: its password is locked out too, but its update key goes through
  assert.deepEqual(await nic(c, q, 'alice', 'alice-password'), [200, 'abuse']);
  assert.deepEqual(await nic(c, q, 'alice', key), [200, 'good 192.0.2.20']);
  assert.equal(c.b.broker.tunnels.list()[0]!.clientIpv4, '192.0.2.20');
  // a correct key clears nothing: the password stays locked
  assert.deepEqual(await nic(c, 'hostname=alice&myip=192.0.2.21', 'alice', 'alice-password'), [200, 'abuse']);
});

test("an operator's kill and block holds a static tunnel down until the block ends", async () => {
  const c = await start(['alice']);
  assert.equal((await api(c, 'POST', '/accounts/alice/static-tunnel', { endpoint: '192.0.2.10' })).status, 201);
  const id = c.b.broker.tunnels.list()[0]!.id;
  assert.equal((await api(c, 'POST', `/tunnels/${id}/kill`, { blockMinutes: 5 })).status, 204);
  const live = () => c.b.broker.tunnels.list().map((t) => t.clientIpv4);
  assert.deepEqual(live(), []);
  // the router's next updates, the same address or a new one: refused, nothing stored
  const ok = ['alice', 'alice-password'] as const;
  assert.deepEqual(await nic(c, 'hostname=alice&myip=192.0.2.10', ...ok), [200, 'abuse']);
  assert.deepEqual(await nic(c, 'hostname=alice&myip=192.0.2.11', ...ok), [200, 'abuse']);
  const put = await api(c, 'PUT', '/accounts/alice/static-tunnel/endpoint', { endpoint: '192.0.2.12' });
  assert.equal(put.status, 409);
  assert.equal(put.json.code, 'STATIC_TUNNEL_BLOCKED');
  assert.match(put.json.message!, /blocked by an operator for \d+ more seconds/);
  assert.equal((await api(c, 'GET', '/accounts/alice/static-tunnel')).json.endpoint, '192.0.2.10');
  // disabling and enabling the account does not bring it back either
  assert.equal((await api(c, 'POST', '/accounts/alice/disable')).status, 200);
  assert.equal((await api(c, 'POST', '/accounts/alice/enable')).status, 200);
  await c.b.broker.sweep(); // the sweep follows the enable in the audit trail too
  assert.deepEqual(live(), []);
  clock.advance(5 * 60_000 + 1000); // the block is over: the next update makes it live again
  assert.deepEqual(await nic(c, 'hostname=alice&myip=192.0.2.11', ...ok), [200, 'good 192.0.2.11']);
  assert.deepEqual(live(), ['192.0.2.11']);
});

test('concurrent updates of one static tunnel leave the settings, the tunnels row and the data plane agreeing', async () => {
  const c = await start(['alice']);
  assert.equal((await api(c, 'POST', '/accounts/alice/static-tunnel', { endpoint: '192.0.2.10' })).status, 201);
  const ok = ['alice', 'alice-password'] as const;
  const dataplane = c.b.dataplane as MemoryDataPlane;
  const agree = async (why: string) => {
    const live = c.b.broker.tunnels.list();
    assert.equal(live.length, 1, `${why}: one live tunnel, not ${live.map((t) => t.clientIpv4).join(' ')}`);
    const stored = (await api(c, 'GET', '/accounts/alice/static-tunnel')).json.endpoint;
    assert.equal(live[0]!.clientIpv4, stored, why);
    assert.equal((await c.b.store.getTunnel(live[0]!.id))?.clientIpv4, stored, `${why}: the tunnels row`);
    assert.equal(dataplane.tunnel(live[0]!.id as TunnelId)?.client.address, stored, `${why}: the data plane`);
    return stored;
  };
  // a live tunnel moved by two updates at once, then a killed one made live again by two at once: over HTTP,
  // and straight into the service in one tick (the same stale settings, as two requests read them)
  const both = () =>
    Promise.all([nic(c, 'hostname=alice&myip=192.0.2.11', ...ok), nic(c, 'hostname=alice&myip=192.0.2.12', ...ok)]);
  const moved = await both();
  assert.deepEqual(moved.map(([, a]) => a.split(' ')[0]).sort(), ['good', 'good']);
  assert.ok(['192.0.2.11', '192.0.2.12'].includes((await agree('moved'))!));
  const statics = c.b.broker.statics;
  const st = await statics.require((await c.b.store.getAccount(c.ids[0]!))!);
  const twice = () =>
    Promise.all([
      statics.setEndpoint('test', st, '192.0.2.13', 'api'),
      statics.setEndpoint('test', st, '192.0.2.14', 'api'),
    ]);
  assert.deepEqual(await twice(), ['good', 'good']);
  assert.equal(await agree('moved in one tick'), '192.0.2.14');
  assert.equal((await api(c, 'POST', `/tunnels/${c.b.broker.tunnels.list()[0]!.id}/kill`)).status, 204);
  const back = await both();
  assert.deepEqual(back.map(([, a]) => a.split(' ')[0]).sort(), ['good', 'good']);
  await agree('made live again');
  assert.equal((await api(c, 'POST', `/tunnels/${c.b.broker.tunnels.list()[0]!.id}/kill`)).status, 204);
  assert.deepEqual(await twice(), ['good', 'good']);
  assert.equal(await agree('made live again in one tick'), '192.0.2.14');
});

test('two accounts racing for one endpoint: the loser is refused and keeps its old endpoint', async () => {
  const c = await start(['alice', 'bob']);
  assert.equal((await api(c, 'POST', '/accounts/alice/static-tunnel', { endpoint: '192.0.2.10' })).status, 201);
  assert.equal((await api(c, 'POST', '/accounts/bob/static-tunnel', { endpoint: '192.0.2.30' })).status, 201);
  const statics = c.b.broker.statics;
  const [alice, bob] = await Promise.all(c.ids.map(async (id) => statics.require((await c.b.store.getAccount(id))!)));
  // both pass the collision check before either has written: the data plane takes one
  const results = await Promise.allSettled([
    statics.setEndpoint('test', alice!, '192.0.2.20', 'api'),
    statics.setEndpoint('test', bob!, '192.0.2.20', 'api'),
  ]);
  assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  const refused = results.find((r) => r.status === 'rejected')!;
  assert.equal((refused.reason as { code: string }).code, 'STATIC_TUNNEL_HOLDS');
  for (const [name, old] of [
    ['alice', '192.0.2.10'],
    ['bob', '192.0.2.30'],
  ] as const) {
    const v = (await api(c, 'GET', `/accounts/${name}/static-tunnel`)).json;
    assert.equal(v.endpoint, v.tunnel!.clientIpv4, `${name}: the settings say where it is live`);
    assert.ok([old, '192.0.2.20'].includes(v.endpoint!), name);
  }
});

test("an update names its own source address (staticTunnels.endpointFromSource), never the broker's", async () => {
  const c = await start(['alice'], { serverIpv4: '192.0.2.1', staticTunnels: { endpointFromSource: true } });
  assert.equal((await api(c, 'POST', '/accounts/alice/static-tunnel', { endpoint: '192.0.2.10' })).status, 201);
  const ok = ['alice', 'alice-password'] as const;
  // from 127.0.0.1, naming another address: refused, nothing moves
  assert.deepEqual(await nic(c, 'hostname=alice&myip=192.0.2.20', ...ok), [400, 'badip 192.0.2.20']);
  assert.deepEqual(await nic(c, 'hostname=alice&myip=192.0.2.20,2001:db8::1', ...ok), [400, 'badip 192.0.2.20']);
  assert.equal(c.b.broker.tunnels.list()[0]!.clientIpv4, '192.0.2.10');
  // the broker's own addresses are no endpoint, whoever asks
  const own = await api(c, 'PUT', '/accounts/alice/static-tunnel/endpoint', { endpoint: '192.0.2.1' });
  assert.equal(own.status, 400);
  assert.match(own.json.message!, /192\.0\.2\.1 is the broker's own address/);
  // nor an address of the v4v6 pool: protocol 41 into one of the broker's own tunnels would loop
  const pooled = await start(['alice'], { pools: { ipv4: '198.51.100.0/24' } });
  const inPool = await api(pooled, 'POST', '/accounts/alice/static-tunnel', { endpoint: '198.51.100.9' });
  assert.equal(inPool.status, 400);
  assert.match(inPool.json.message!, /198\.51\.100\.9 is inside the broker's own pool 198\.51\.100\.0\/24/);
  const loose = await start(['alice'], { serverIpv4: '192.0.2.1' });
  assert.equal((await api(loose, 'POST', '/accounts/alice/static-tunnel', { endpoint: '192.0.2.10' })).status, 201);
  assert.deepEqual(await nic(loose, 'hostname=alice&myip=192.0.2.1', ...ok), [400, 'badip 192.0.2.1']);
  // ddclient 3.10 and later send myip=V4,V6: the IPv4 part is the endpoint
  assert.deepEqual(await nic(loose, 'hostname=alice&myip=192.0.2.21,2001:db8::1', ...ok), [200, 'good 192.0.2.21']);
  assert.deepEqual(await nic(loose, 'hostname=alice&myip=2001:db8::1,192.0.2.22', ...ok), [200, 'good 192.0.2.22']);
  assert.deepEqual(await nic(loose, 'hostname=alice&myip=2001:db8::1', ...ok), [400, 'badip 2001:db8::1']);
});
