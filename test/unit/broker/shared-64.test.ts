/** pools.linkMode 'shared-64' through a real broker over real sockets (MemoryDataPlane, SQLite file): what the
 *  offers name, what the data plane is given, the account's addresses kept across sessions and restarts, a
 *  full pool answered 301, and a database switched from per-account-64 with tunnels still live. The packet
 *  path itself (source checks through the addon) is test/e2e/shared-64.test.ts. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import ipaddr from 'ipaddr.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { runSession, type SessionResult } from '../../helpers/tsp.js';
import { eventually } from '../../helpers/clients.js';
import type { ConfigInput } from '../../../src/config/schema.js';
import type { MemoryDataPlane } from '../../../src/dataplane/memory.js';
import type { V6TunnelSpec } from '../../../src/dataplane/types.js';
import { overlaps, parsePrefix } from '../../../src/store/prefix.js';
import { normalisePrefix } from '../../../src/broker/pools.js';
import type { KyselyStore } from '../../../src/store/kysely-store.js';
import { buildAdminApp } from '../../../src/admin/server.js';
import { login } from '../../admin/session.js';

const open: TestBroker[] = [];
after(async () => {
  for (const b of open) await b.stop().catch(() => {});
});
async function broker(over: ConfigInput = {}, opts: Parameters<typeof startTestBroker>[1] = {}) {
  const b = await startTestBroker(over, opts);
  open.push(b);
  return b;
}
const SHARED: ConfigInput = { pools: { link: '2001:db8:f00::/64', linkMode: 'shared-64' } };
const PASSWORD = 'hunter22';
const as = (username: string) => ({ mechanism: 'DIGEST-MD5' as const, username, password: PASSWORD });
const anonymous = { mechanism: 'ANONYMOUS' as const };
const canonical = (a: string) => ipaddr.parse(a).toString();
/** The block of `length` an address lies in. */
const blockOf = (address: string, length: number) => parsePrefix(normalisePrefix(`${address}/${length}`));
const inside = (address: string, prefix: string) => {
  const [at, length] = prefix.split('/');
  return overlaps(blockOf(address, 128), blockOf(at!, Number(length)));
};
const close = (...rs: SessionResult[]) => rs.forEach((r) => (r.udp?.close(), r.tcp?.close()));

test('shared-64: each tunnel a server and a client /128 of its own /126, all in the one /64 of the pool', async () => {
  const b = await broker(SHARED);
  await b.addUser('alice', PASSWORD);
  await b.addUser('bob', PASSWORD);
  const rs = [
    await runSession({ transport: 'udp', port: b.ports.udp, auth: as('alice') }),
    await runSession({ transport: 'udp', port: b.ports.udp, auth: as('bob') }),
    await runSession({ transport: 'udp', port: b.ports.udp, auth: anonymous }),
    await runSession({ transport: 'udp', port: b.ports.udp, auth: anonymous }),
  ];
  assert.ok(rs.every((r) => r.createStatus === 200));
  const offers = rs.map((r) => r.offer!);
  const all = offers.flatMap((o) => [canonical(o.serverIpv6), canonical(o.clientIpv6)]);
  assert.equal(new Set(all).size, 8, 'no address twice, server or client');
  for (const a of all) assert.ok(inside(a, '2001:db8:f00::/64'), `${a} in the link pool`);
  for (const o of offers) {
    const block = blockOf(o.clientIpv6, 126);
    assert.ok(inside(o.serverIpv6, `${canonical(o.clientIpv6)}/126`), 'server and client share a /126');
    assert.equal(blockOf(o.clientIpv6, 128).start - block.start, 2n, 'client ::2 of it');
    assert.equal(blockOf(o.serverIpv6, 128).start - block.start, 1n, 'server ::1 of it');
    assert.equal(canonical(o.keepalive!.address), canonical(o.serverIpv6), 'keepalives go to its own server address');
  }
  // the data plane routes and source-checks each client /128 (and answers echo on each server /128)
  assert.ok(await eventually(() => b.broker.liveTunnels().length === 4));
  const dp = b.dataplane as MemoryDataPlane;
  const specs = b.broker.liveTunnels().map((t) => dp.tunnel(t.id as never)!);
  assert.deepEqual(
    new Set(specs.map((s) => canonical((s as V6TunnelSpec).clientIpv6))),
    new Set(offers.map((o) => canonical(o.clientIpv6))),
  );
  close(...rs);
});

test('shared-64: an account keeps its addresses across sessions and restarts', async () => {
  const b = await broker(SHARED);
  await b.addUser('carol', PASSWORD);
  const first = await runSession({ transport: 'udp', port: b.ports.udp, auth: as('carol') });
  const second = await runSession({ transport: 'tcp', port: b.ports.tcp, auth: as('carol'), type: 'v6v4' });
  assert.equal(second.offer!.clientIpv6, first.offer!.clientIpv6);
  assert.equal(second.offer!.serverIpv6, first.offer!.serverIpv6);
  close(first, second);
  const dir = b.dir;
  await b.close();
  const again = await broker(SHARED, { dir });
  const third = await runSession({ transport: 'udp', port: again.ports.udp, auth: as('carol') });
  assert.equal(third.offer!.clientIpv6, first.offer!.clientIpv6, 'same address after a restart');
  close(third);
});

test('shared-64: a full link pool answers 301 No more tunnels available', async () => {
  const b = await broker({ pools: { link: '2001:db8:f00::/124', linkMode: 'shared-64' } }); // four /126s
  const rs: SessionResult[] = [];
  for (const u of ['u1', 'u2', 'u3', 'u4', 'u5']) {
    await b.addUser(u, PASSWORD);
    rs.push(await runSession({ transport: 'tcp', port: b.ports.tcp, auth: as(u), type: 'v6v4' }));
  }
  assert.deepEqual(
    rs.map((r) => r.createStatus),
    [200, 200, 200, 200, 301],
  );
  assert.equal(rs[4]!.raw.at(-1), 'Content-length: 31\r\n301 No more tunnels available\r\n');
  close(...rs);
});

test('switching a database from per-account-64 to shared-64 keeps live tunnels; accounts move once, when their tunnels have ended', async () => {
  const link = '2001:db8:f00::/56';
  const b = await broker({ pools: { link } });
  const dave = await b.addUser('dave', PASSWORD);
  const old = await runSession({ transport: 'udp', port: b.ports.udp, auth: as('dave') });
  const oldAnon = await runSession({ transport: 'udp', port: b.ports.udp, auth: anonymous });
  assert.ok(await eventually(() => b.broker.liveTunnels().length === 2));
  const dir = b.dir;
  await b.close(); // as for a restart with the new configuration: the tunnels stay established
  const again = await broker({ pools: { link, linkMode: 'shared-64' } }, { dir });
  const dp = again.dataplane as MemoryDataPlane;
  const restored = again.broker
    .liveTunnels()
    .map((t) => canonical((dp.tunnel(t.id as never) as V6TunnelSpec).clientIpv6));
  assert.deepEqual(new Set(restored), new Set([old, oldAnon].map((r) => canonical(r.offer!.clientIpv6))));
  const fresh = await runSession({ transport: 'udp', port: again.ports.udp, auth: anonymous });
  // dave's /64 is in use by his live tunnel: a new offer keeps it rather than free it under that tunnel
  const kept = await runSession({ transport: 'udp', port: again.ports.udp, auth: as('dave'), accept: false });
  assert.equal(canonical(kept.offer!.clientIpv6), canonical(old.offer!.clientIpv6), 'same address while live');
  await again.broker.endAccountTunnels(dave, 'admin');
  const moved = await runSession({ transport: 'udp', port: again.ports.udp, auth: as('dave') });
  for (const r of [fresh, moved])
    assert.ok(!inside(r.offer!.clientIpv6, `${canonical(oldAnon.offer!.clientIpv6)}/64`), 'not in a /64 still held');
  assert.notEqual(canonical(moved.offer!.clientIpv6), canonical(old.offer!.clientIpv6), 'dave gets a /126');
  const later = await runSession({ transport: 'udp', port: again.ports.udp, auth: as('dave') });
  assert.equal(later.offer!.clientIpv6, moved.offer!.clientIpv6, 'and keeps it from then on');
  close(old, oldAnon, fresh, kept, moved, later);
});

test('a /64 link pool switched back to per-account-64: the chunks shared-64 cut go back, so the /64 serves an account', async () => {
  const link = '2001:db8:f00::/64';
  const b = await broker({ pools: { link, linkMode: 'shared-64' } });
  const rs: SessionResult[] = [];
  for (let i = 0; i < 3; i++) rs.push(await runSession({ transport: 'udp', port: b.ports.udp, auth: anonymous }));
  // the node claims a chunk of /126 leases (a /118) for the sessions to come, in a transaction of its own
  const chunkRows = () =>
    (b.store as KyselyStore).transaction((trx) =>
      trx.selectFrom('allocations').select('id').where('lease_id', 'like', 'chunk:%').execute(),
    );
  assert.ok(await eventually(async () => (await chunkRows()).length === 1));
  for (const t of b.broker.liveTunnels()) await b.broker.killTunnel(t.id, 'test');
  close(...rs);
  const dir = b.dir;
  await b.close();
  const again = await broker({ pools: { link } }, { dir });
  await again.addUser('erin', PASSWORD);
  const r = await runSession({ transport: 'tcp', port: again.ports.tcp, auth: as('erin'), type: 'v6v4' });
  assert.equal(r.createStatus, 200, 'the one /64 of the pool is free again');
  assert.equal(canonical(r.offer!.clientIpv6), '2001:db8:f00::2');
  close(r);
});

test("the operators' pools page counts a shared-64 link pool in /126s", async () => {
  const b = await broker({ pools: { link: '2001:db8:f00::/120', linkMode: 'shared-64' } }); // 64 /126s
  await b.addUser('root', PASSWORD, 'admin');
  const r = await runSession({ transport: 'udp', port: b.ports.udp, auth: anonymous });
  const app = await buildAdminApp(b);
  try {
    const { cookie } = await login(app, 'root', PASSWORD);
    const page = await app.inject({ method: 'GET', url: '/pools', headers: { cookie } });
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /1 of 64 \/126s/);
  } finally {
    await app.close();
    close(r);
  }
});

test('the pools page shows a capacity beyond 2^52 as a power of two, not a rounded count', async () => {
  const b = await broker({ pools: { link: '2001:db8:f00::/48', linkMode: 'shared-64' } });
  await b.addUser('root', PASSWORD, 'admin');
  const app = await buildAdminApp(b);
  try {
    const { cookie } = await login(app, 'root', PASSWORD);
    const page = await app.inject({ method: 'GET', url: '/pools', headers: { cookie } });
    assert.match(page.body, /0 of 2\^78 \/126s/);
  } finally {
    await app.close();
  }
});
