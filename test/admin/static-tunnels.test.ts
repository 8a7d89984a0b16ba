/** Static 6in4 tunnels through the REST API and the dyndns2 endpoint /nic/update, over real sockets (the admin
 *  listener and the self-service one) against a real broker (SQLite file, MemoryDataPlane, real TSP sockets):
 *  an operator creates one, updates move its endpoint in the data plane (account password or update key),
 *  repeated ones answer nochg, every change is audited, it never expires and comes back after a restart, it
 *  keeps TSP sessions of its account out, and every kind of bad input gets its dyndns2 answer or a 4xx. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { runSession } from '../helpers/tsp.js';
import { ManualClock } from '../../src/clock.js';
import { TokenService } from '../../src/admin/tokens.js';
import { AccountService } from '../../src/broker/accounts.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { nicUpdate, staticApi, type StaticCtx, type StaticReply } from '../helpers/static-tunnels.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-static-'));
const clock = new ManualClock(Date.now());
const running: TestBroker[] = [];
after(async () => {
  for (const b of running) await b.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

const CONFIG: ConfigInput = {
  admin: { enabled: true, port: 0 },
  selfService: { enabled: true, address: '127.0.0.1', port: 0 },
  // the updates here come from 127.0.0.1 and name documentation addresses: endpointFromSource's check is
  // static-tunnels-guards.test.ts's
  staticTunnels: { updatesPerMinute: 1000, changesPerHour: 1000, endpointFromSource: false },
};

async function start(overrides: ConfigInput = CONFIG): Promise<TestBroker> {
  const b = await startTestBroker(overrides, { dir, clock });
  running.push(b);
  return b;
}

// the API and /nic/update calls are the shared ones (test/helpers/static-tunnels.ts)
type Ctx = StaticCtx;
const api = staticApi;
const nic = nicUpdate;

let ctx: Ctx;

test('an operator creates a static tunnel: live at once, with the account link addresses, as v6v4', async () => {
  const b = await start();
  await b.addUser('alice', 'alice-password');
  await b.addUser('bob', 'bob-password');
  ctx = { b, token: (await new TokenService(b.store, clock).create('test', 'ops')).token };

  const created = await api(ctx, 'POST', '/accounts/alice/static-tunnel', {
    hostname: 'Home.Alice',
    endpoint: '192.0.2.10',
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  assert.equal(created.json.hostname, 'home.alice');
  assert.equal(created.json.endpoint, '192.0.2.10');
  const t = created.json.tunnel!;
  assert.equal(t.type, 'v6v4');
  assert.equal(t.transport, 'static');
  assert.equal(t.clientIpv4, '192.0.2.10');
  assert.match(t.clientIpv6, /^2001:db8:f00:[0-9a-f:]*:2$/);
  const live = await api(ctx, 'GET', '/tunnels?state=live');
  assert.deepEqual(
    live.json.items!.map((x) => [x.clientIpv4, x.transport]),
    [['192.0.2.10', 'static']],
  );
});

test('/nic/update moves the endpoint (account password), nochg when it is there, audited', async () => {
  const c = ctx;
  assert.deepEqual(await nic(c, 'hostname=home.alice&myip=198.51.100.7', 'alice', 'alice-password'), [
    200,
    'good 198.51.100.7',
  ]);
  const live = c.b.broker.tunnels.list();
  assert.equal(live.length, 1);
  assert.equal(live[0]!.clientIpv4, '198.51.100.7');
  assert.equal(c.b.broker.tunnels.atEndpoint('192.0.2.10:0'), undefined, 'the old endpoint is gone');
  assert.equal(c.b.broker.tunnels.atEndpoint('198.51.100.7:0')?.id, live[0]!.id, 'the same tunnel, moved');
  assert.deepEqual(await nic(c, 'hostname=HOME.alice&myip=198.51.100.7', 'alice', 'alice-password'), [
    200,
    'nochg 198.51.100.7',
  ]);
  const audit = await api(c, 'GET', '/audit?action=static.endpoint');
  assert.equal(audit.json.total, 1, 'one change, one row (nochg is no change)');
  assert.deepEqual(audit.json.items![0]!.detail, {
    hostname: 'home.alice',
    from: '192.0.2.10',
    to: '198.51.100.7',
    via: 'nic',
  });
  assert.equal(audit.json.items![0]!.actor, 'user:alice');
});

test('an update key works as the password; a new one replaces it; wrong ones are badauth', async () => {
  const c = ctx;
  const k1 = (await api(c, 'POST', '/accounts/alice/static-tunnel/update-key')).json.updateKey!;
  assert.match(k1, /^tspu_/);
  assert.deepEqual(await nic(c, 'hostname=home.alice&myip=203.0.113.5', 'alice', k1), [200, 'good 203.0.113.5']);
  const k2 = (await api(c, 'POST', '/accounts/alice/static-tunnel/update-key')).json.updateKey!;
  assert.deepEqual(await nic(c, 'hostname=home.alice&myip=203.0.113.6', 'alice', k1), [200, 'badauth']);
  assert.deepEqual(await nic(c, 'hostname=home.alice&myip=203.0.113.6', 'bob', k2), [200, 'badauth'], "alice's key");
  assert.deepEqual(await nic(c, 'hostname=home.alice&myip=203.0.113.6', 'bob', 'bob-password'), [200, 'nohost']);
  assert.deepEqual(await nic(c, 'hostname=home.alice&myip=203.0.113.6', 'alice', 'not-the-password'), [200, 'badauth']);
  assert.deepEqual(await nic(c, 'hostname=home.alice&myip=203.0.113.6', 'alice', k2), [200, 'good 203.0.113.6']);
  const view = await api(c, 'GET', '/accounts/alice/static-tunnel');
  assert.equal(view.json.hasUpdateKey, true);
  assert.equal(view.json.endpoint, '203.0.113.6');
  assert.equal(JSON.stringify(view.json).includes(k2), false, 'the key is never shown again');
});

test('bad input to /nic/update gets its dyndns2 answer', async () => {
  const c = ctx;
  const ok = ['alice', 'alice-password'] as const;
  assert.deepEqual(await nic(c, 'hostname=home.alice&myip=203.0.113.6'), [401, 'badauth'], 'no credentials');
  assert.deepEqual(await nic(c, 'hostname=home..alice&myip=203.0.113.6', ...ok), [200, 'notfqdn']);
  assert.deepEqual(await nic(c, 'hostname=-home&myip=203.0.113.6', ...ok), [200, 'notfqdn']);
  assert.deepEqual(await nic(c, 'myip=203.0.113.6', ...ok), [200, 'notfqdn'], 'no hostname');
  assert.deepEqual(await nic(c, 'hostname=office.alice&myip=203.0.113.6', ...ok), [200, 'nohost']);
  assert.deepEqual(await nic(c, 'hostname=home.alice,office.alice&myip=203.0.113.6', ...ok), [200, 'numhost']);
  assert.deepEqual(await nic(c, 'hostname=home.alice&myip=1.2.3.4%0agood%201.2.3.4', ...ok), [400, 'badip']);
  assert.deepEqual(await nic(c, 'hostname=home.alice&myip=x', ...ok), [400, 'badip']);
  for (const bad of ['127.0.0.1', '224.0.0.5', '0.0.0.0', '10.1.2.3', '255.255.255.255', '203.0.113', '::1'])
    assert.deepEqual(await nic(c, `hostname=home.alice&myip=${bad}`, ...ok), [400, `badip ${bad}`], bad);
  // without myip, the request's source: here loopback, which is no endpoint
  assert.deepEqual(await nic(c, 'hostname=home.alice', ...ok), [400, 'badip 127.0.0.1']);
  assert.deepEqual(await nic(c, 'hostname=bob&myip=203.0.113.6', 'nobody', 'whatever-password'), [200, 'badauth']);
  assert.equal(c.b.broker.tunnels.list()[0]!.clientIpv4, '203.0.113.6', 'nothing moved');
});

test('the REST API refuses bad input with 4xx and a reason', async () => {
  const c = ctx;
  const expect = async (r: Promise<{ status: number; json: StaticReply }>, status: number, code: string) => {
    const x = await r;
    assert.equal(x.status, status, JSON.stringify(x.json));
    assert.equal(x.json.code, code);
    assert.ok(String(x.json.message).length > 0);
  };
  await expect(api(c, 'POST', '/accounts/alice/static-tunnel', {}), 409, 'STORE_CONFLICT');
  await expect(api(c, 'POST', '/accounts/bob/static-tunnel', { hostname: 'bad_name' }), 400, 'API_BAD_REQUEST');
  await expect(api(c, 'POST', '/accounts/bob/static-tunnel', { hostname: 'home.alice' }), 409, 'STORE_CONFLICT');
  await expect(api(c, 'POST', '/accounts/bob/static-tunnel', { endpoint: '127.0.0.1' }), 400, 'API_BAD_REQUEST');
  await expect(api(c, 'POST', '/accounts/bob/static-tunnel', { endpoint: '203.0.113.6' }), 409, 'STATIC_TUNNEL_HOLDS');
  await expect(api(c, 'GET', '/accounts/bob/static-tunnel'), 404, 'STORE_NOT_FOUND');
  await expect(
    api(c, 'PUT', '/accounts/bob/static-tunnel/endpoint', { endpoint: '192.0.2.1' }),
    404,
    'STORE_NOT_FOUND',
  );
  await expect(api(c, 'PUT', '/accounts/alice/static-tunnel/endpoint', { endpoint: '::1' }), 400, 'API_BAD_REQUEST');
  await expect(api(c, 'GET', '/me/static-tunnel'), 403, 'API_FORBIDDEN');
  await c.b.addUser('carol', 'carol-password');
  await api(c, 'PUT', '/accounts/carol/limits', { tunnelTypes: ['v6udpv4'] });
  await expect(api(c, 'POST', '/accounts/carol/static-tunnel', {}), 400, 'TSP_UNSUPPORTED_TUNNEL');
  // bob's own, without an endpoint: nothing live until one is set
  const bob = await api(c, 'POST', '/accounts/bob/static-tunnel', {});
  assert.equal(bob.status, 201);
  assert.equal(bob.json.hostname, 'bob');
  assert.equal(bob.json.tunnel, null);
  const set = await api(c, 'PUT', '/accounts/bob/static-tunnel/endpoint', { endpoint: '192.0.2.77' });
  assert.equal(set.json.result, 'good');
  assert.equal(set.json.staticTunnel!.tunnel.clientIpv4, '192.0.2.77');
  // alice may not take bob's endpoint through an update either
  assert.deepEqual(await nic(c, 'hostname=home.alice&myip=192.0.2.77', 'alice', 'alice-password'), [200, 'abuse']);
});

test('a TSP session of the account is refused while its static tunnel is live; the tunnel never idles out', async () => {
  const c = ctx;
  const r = await runSession({
    transport: 'udp',
    port: c.b.ports.udp,
    auth: { mechanism: 'PLAIN', username: 'alice', password: 'alice-password' },
  });
  r.udp?.close();
  assert.equal(r.createStatus, 301, r.raw.join('|'));
  // a TSP delete (or info) of the account is about its TSP tunnel: the static one is not a session's
  const session = c.b.broker.service.open({
    id: 'static-test',
    transport: 'udp',
    peer: { address: '192.0.2.99', port: 4000 },
    localAddress: undefined,
    startedMs: clock.now(),
  });
  assert.equal((await session.verifyPlain('alice', 'alice-password', true)).ok, true);
  session.note({ type: 'authenticated', mechanism: 'PLAIN', username: 'alice' });
  assert.equal((await session.deleteTunnels())?.code, 'STORE_NOT_FOUND', 'nothing of the session to delete');
  assert.equal(await session.info(), undefined);
  assert.equal(c.b.broker.tunnels.list().length, 2, 'both static tunnels still live');
  // another account's v6v4 tunnel from a static tunnel's endpoint: protocol 41 from there is the static one's
  await c.b.addUser('dave', 'dave-password');
  const from = (address: string) => {
    return c.b.broker.service.open({
      id: `static-${address}`,
      transport: 'udp',
      peer: { address, port: 4000 },
      localAddress: '127.0.0.1',
      startedMs: clock.now(),
    });
  };
  const dave = from('203.0.113.6');
  assert.equal((await dave.verifyPlain('dave', 'dave-password', true)).ok, true);
  dave.note({ type: 'authenticated', mechanism: 'PLAIN', username: 'dave' });
  const req = { action: 'create', type: 'v6v4', proxy: false, clientIpv4: '203.0.113.6' } as const;
  const refused = await dave.requestTunnel(req);
  assert.equal('error' in refused && refused.error.code, 'STATIC_TUNNEL_HOLDS');
  clock.advance(20 * 60_000); // 20 minutes without a packet: past the idle limit (60 s here) and its lifetime (0)
  await c.b.broker.sweep();
  assert.deepEqual(
    c.b.broker.tunnels
      .list()
      .map((t) => t.clientIpv4)
      .sort(),
    ['192.0.2.77', '203.0.113.6'],
  );
});

test('disabling the account ends it, enabling brings it back (also from another process); one killed by an operator is back at the next start', async () => {
  const c = ctx;
  const live = () =>
    c.b.broker.tunnels
      .list()
      .map((t) => t.username)
      .sort();
  assert.equal((await api(c, 'POST', '/accounts/bob/disable')).status, 200);
  assert.deepEqual(live(), ['alice']);
  assert.equal((await api(c, 'POST', '/accounts/bob/enable')).status, 200);
  assert.deepEqual(live(), ['alice', 'bob']);
  // the same from another process (`tsp-broker user disable|enable`): the broker follows the audit trail
  const other = await openSqliteStore({ file: c.b.config.store.path });
  const cli = new AccountService(other, c.b.config.auth.realm);
  try {
    await cli.setDisabled('cli', 'bob', true);
    await c.b.broker.sweep();
    assert.deepEqual(live(), ['alice']);
    await cli.setDisabled('cli', 'bob', false);
    assert.deepEqual(live(), ['alice'], 'nothing until the sweep');
    await c.b.broker.sweep();
    assert.deepEqual(live(), ['alice', 'bob']);
  } finally {
    await other.close();
  }
  const alice = c.b.broker.tunnels.list().find((t) => t.username === 'alice')!;
  assert.equal((await api(c, 'POST', `/tunnels/${alice.id}/kill`)).status, 204);
  assert.deepEqual(live(), ['bob']);
});

test('static tunnels come back after a restart; removing one ends it and frees its endpoint', async () => {
  const c = ctx;
  await c.b.stop();
  const b = await start();
  const again = { b, token: c.token };
  assert.deepEqual(
    b.broker.tunnels
      .list()
      .map((t) => [t.username, t.clientIpv4, t.transport])
      .sort(),
    [
      ['alice', '203.0.113.6', 'static'],
      ['bob', '192.0.2.77', 'static'],
    ],
  );
  assert.deepEqual(await nic(again, 'hostname=bob&myip=192.0.2.78', 'bob', 'bob-password'), [200, 'good 192.0.2.78']);
  const del = await api(again, 'DELETE', '/accounts/alice/static-tunnel');
  assert.equal(del.status, 204);
  assert.deepEqual(
    b.broker.tunnels.list().map((t) => t.username),
    ['bob'],
  );
  assert.deepEqual(await nic(again, 'hostname=home.alice&myip=203.0.113.9', 'alice', 'alice-password'), [
    200,
    'nohost',
  ]);
  const actions = (await api(again, 'GET', '/audit?limit=100')).json.items!.map((e) => e.action);
  for (const a of ['static.create', 'static.endpoint', 'static.key', 'static.delete'])
    assert.ok(actions.includes(a), `${a} audited`);
  ctx = again;
});

test('a flood of updates from one source is cut off with abuse; so are too many changes per hour', async () => {
  const b = ctx.b;
  await b.stop();
  const limited = await start({
    ...CONFIG,
    staticTunnels: { updatesPerMinute: 5, changesPerHour: 2, endpointFromSource: false },
  });
  const c = { b: limited, token: ctx.token };
  const answers: string[] = [];
  for (let i = 0; i < 8; i++) answers.push((await nic(c, 'hostname=bob&myip=192.0.2.78', 'bob', 'bob-password'))[1]);
  assert.deepEqual(answers, [...Array(5).fill('nochg 192.0.2.78'), ...Array(3).fill('abuse')]);
  clock.advance(61_000); // the next minute
  assert.deepEqual(await nic(c, 'hostname=bob&myip=192.0.2.80', 'bob', 'bob-password'), [200, 'good 192.0.2.80']);
  assert.deepEqual(await nic(c, 'hostname=bob&myip=192.0.2.81', 'bob', 'bob-password'), [200, 'good 192.0.2.81']);
  assert.deepEqual(await nic(c, 'hostname=bob&myip=192.0.2.82', 'bob', 'bob-password'), [200, 'abuse']);
  assert.equal(limited.broker.tunnels.list()[0]!.clientIpv4, '192.0.2.81');
});
