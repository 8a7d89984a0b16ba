/** Broker policy through a real broker over real sockets: auth modes, §8.1 type choice, router-mode status
 *  codes, sticky addresses, leases, replacement, expiry and restore. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { runSession } from '../../helpers/tsp.js';
import { eventually } from '../../helpers/clients.js';
import { ipv6Udp } from '../../helpers/packets.js';
import { ManualClock } from '../../../src/clock.js';
import type { ConfigInput } from '../../../src/config/schema.js';
import { expandIpv6 } from '../../../src/protocol/xml.js';
import type { BrokerError } from '../../../src/errors.js';
import { MemoryDataPlane } from '../../../src/dataplane/memory.js';
import type { TunnelSpec } from '../../../src/dataplane/types.js';

const open: TestBroker[] = [];
after(async () => {
  for (const b of open) await b.stop().catch(() => {});
});
async function broker(over: ConfigInput = {}, opts: Parameters<typeof startTestBroker>[1] = {}) {
  const b = await startTestBroker(over, opts);
  open.push(b);
  return b;
}
const bob = { mechanism: 'DIGEST-MD5' as const, username: 'bob', password: 'hunter22' };

test('auth modes decide CAPABILITY; authenticated mode refuses ANONYMOUS with 300', async () => {
  const b = await broker({ auth: { mode: 'authenticated', plain: false } });
  const r = await runSession({ transport: 'tcp', port: b.ports.tcp, auth: { mechanism: 'ANONYMOUS' } });
  assert.equal(r.raw[0], 'CAPABILITY TUNNEL=V6V4 TUNNEL=V6UDPV4 AUTH=DIGEST-MD5\r\n');
  assert.equal(r.authStatus, '300 Authentication failed\r\n');
  const a = await broker({ auth: { mode: 'anonymous' } });
  const r2 = await runSession({ transport: 'udp', port: a.ports.udp, auth: { mechanism: 'ANONYMOUS' } });
  assert.equal(r2.raw[0], 'CAPABILITY TUNNEL=V6V4 TUNNEL=V6UDPV4 AUTH=ANONYMOUS\r\n');
  assert.equal(r2.createStatus, 200);
});

test('PLAIN and DIGEST-MD5 check the stored credentials; a disabled account fails', async () => {
  const b = await broker();
  await b.addUser('bob', 'hunter22');
  for (const transport of ['udp', 'tcp'] as const) {
    for (const mechanism of ['PLAIN', 'DIGEST-MD5'] as const) {
      const good = await runSession({
        transport,
        port: transport === 'udp' ? b.ports.udp : b.ports.tcp,
        auth: { mechanism, username: 'bob', password: 'hunter22' },
        type: 'v6anyv4',
        accept: false,
      });
      assert.equal(good.authStatus, '200 Success\r\n', `${transport} ${mechanism}`);
      good.udp?.close();
      good.tcp?.close();
      const bad = await runSession({
        transport,
        port: transport === 'udp' ? b.ports.udp : b.ports.tcp,
        auth: { mechanism, username: 'bob', password: 'nope' },
      });
      assert.match(bad.authStatus, /^300 /, `${transport} ${mechanism} wrong password`);
      bad.udp?.close();
      bad.tcp?.close();
    }
  }
  await b.accounts.setDisabled('test', 'bob', true);
  const r = await runSession({ transport: 'tcp', port: b.ports.tcp, auth: bob });
  assert.match(r.authStatus, /^300 /);
  r.tcp?.close();
});

test('authentication failures are rate limited per source', async () => {
  const b = await broker({ auth: { maxFailures: 3 } });
  await b.addUser('bob', 'hunter22');
  for (let i = 0; i < 3; i++) {
    const r = await runSession({ transport: 'tcp', port: b.ports.tcp, auth: { ...bob, password: `wrong${i}` } });
    r.tcp?.close();
  }
  const r = await runSession({ transport: 'tcp', port: b.ports.tcp, auth: bob });
  assert.match(r.authStatus, /^300 /, 'even the right password is refused while throttled');
  r.tcp?.close();
});

test('tunnel type choice (§8.1): v6udpv4 over TCP is 303, v6anyv4 picks by NAT, v6v4 behind NAT is refused', async () => {
  const b = await broker();
  await b.addUser('bob', 'hunter22');
  const tcp = (type: 'v6udpv4' | 'v6anyv4' | 'v6v4', clientIpv4: string) =>
    runSession({
      transport: 'tcp',
      port: b.ports.tcp,
      auth: { mechanism: 'ANONYMOUS' },
      type,
      clientIpv4,
      accept: false,
    });
  const udp = (type: 'v6udpv4' | 'v6anyv4' | 'v6v4', clientIpv4: string) =>
    runSession({
      transport: 'udp',
      port: b.ports.udp,
      auth: { mechanism: 'ANONYMOUS' },
      type,
      clientIpv4,
      accept: false,
    });
  const cases: [Promise<Awaited<ReturnType<typeof tcp>>>, number, string | undefined][] = [
    [tcp('v6udpv4', '127.0.0.1'), 303, undefined],
    [udp('v6udpv4', '192.0.2.99'), 200, 'v6udpv4'],
    [udp('v6anyv4', '127.0.0.1'), 200, 'v6v4'],
    [udp('v6anyv4', '192.0.2.99'), 200, 'v6udpv4'],
    [tcp('v6anyv4', '127.0.0.1'), 200, 'v6v4'],
    [tcp('v6anyv4', '192.0.2.99'), 303, undefined],
    [tcp('v6v4', '192.0.2.99'), 303, undefined],
    [tcp('v6v4', '127.0.0.1'), 200, 'v6v4'],
  ];
  for (const [i, [p, code, type]] of cases.entries()) {
    const r = await p;
    assert.equal(r.createStatus, code, `case ${i}`);
    assert.equal(r.offer?.type, type, `case ${i}`);
    if (r.offer) assert.equal(r.offer.clientIpv4, '127.0.0.1', 'the offer carries the observed address');
    r.udp?.close();
    r.tcp?.close();
  }
});

test('router mode: prefix within bounds, else 518; 520 without a length; 522 for anonymous; 507 when the pool is out', async () => {
  const b = await broker({ pools: { delegation: '2001:db8:f000::/55', prefixLen: { min: 56, max: 60, default: 56 } } });
  await b.addUser('bob', 'hunter22');
  await b.addUser('carol', 'hunter22');
  await b.addUser('dave', 'hunter22');
  const s = (auth: Parameters<typeof runSession>[0]['auth'], prefixLength?: number) =>
    runSession({
      transport: 'tcp',
      port: b.ports.tcp,
      auth,
      type: 'v6v4',
      ...(prefixLength !== undefined ? { prefixLength } : {}),
    });
  const ok = await s(bob, 56);
  assert.equal(ok.createStatus, 200);
  assert.deepEqual(ok.offer!.prefix, { address: '2001:0db8:f000:0000:0000:0000:0000:0000', length: 56 });
  assert.equal((await s(bob, 48)).createStatus, 518);
  assert.equal((await s(bob, 64)).createStatus, 518);
  assert.equal((await s({ mechanism: 'ANONYMOUS' }, 56)).createStatus, 522);
  const noLen = await runSession({ transport: 'tcp', port: b.ports.tcp, auth: bob, type: 'v6v4', prefixLength: 56 });
  noLen.tcp?.close();
  assert.equal((await s({ ...bob, username: 'carol' }, 56)).createStatus, 200, 'the second /56 of the /55');
  assert.equal((await s({ ...bob, username: 'dave' }, 56)).createStatus, 507, 'pool out of /56s');
});

test('missing prefix length gets 520', async () => {
  const b = await broker();
  await b.addUser('bob', 'hunter22');
  const { RawTcp } = await import('../../helpers/clients.js');
  const c = await RawTcp.connect(b.ports.tcp);
  c.write('VERSION=2.0.2\r\nAUTHENTICATE ANONYMOUS\r\n\0');
  await c.waitFor((t) => t.includes('200 Success'));
  const xml =
    '<tunnel action="create" type="v6v4"><client><address type="ipv4">127.0.0.1</address><router><prefix/></router></client></tunnel>';
  c.write(`Content-length: ${xml.length}\r\n${xml}`);
  const text = await c.waitFor((t) => t.includes('Content-length'));
  assert.ok(
    text.endsWith('Content-length: 36\r\n522 Prefix requested for anonymous\r\n'),
    'anonymous is refused first',
  );
  c.close();
  const d = await RawTcp.connect(b.ports.tcp);
  d.write('VERSION=2.0.2\r\nAUTHENTICATE PLAIN\r\n\0\0bob\0hunter22\r\n');
  await d.waitFor((t) => t.includes('200 Success'));
  d.write(`Content-length: ${xml.length}\r\n${xml}`);
  assert.ok(
    (await d.waitFor((t) => t.includes('Content-length'))).endsWith(
      'Content-length: 27\r\n520 Missing prefix length\r\n',
    ),
  );
  d.close();
});

test('an account keeps its addresses across sessions and restarts; one live tunnel per account', async () => {
  const b = await broker();
  await b.addUser('bob', 'hunter22');
  const first = await runSession({ transport: 'udp', port: b.ports.udp, auth: bob, prefixLength: 56 });
  assert.equal(first.createStatus, 200);
  assert.ok(await eventually(async () => (await b.store.listTunnels({ state: 'established' })).total === 1));
  const second = await runSession({ transport: 'udp', port: b.ports.udp, auth: bob, prefixLength: 56 });
  assert.equal(second.offer!.clientIpv6, first.offer!.clientIpv6);
  assert.deepEqual(second.offer!.prefix, first.offer!.prefix);
  assert.ok(
    await eventually(async () =>
      (await b.store.listTunnels({ state: 'ended' })).items.some((t) => t.endReason === 'replaced'),
    ),
  );
  assert.equal(
    (await b.store.listTunnels({ state: 'established' })).total,
    1,
    'the new session replaced the old tunnel',
  );
  first.udp?.close();
  second.udp?.close();
  const dir = b.dir;
  await b.close();
  const again = await broker({}, { dir });
  const third = await runSession({
    transport: 'tcp',
    port: again.ports.tcp,
    auth: bob,
    type: 'v6v4',
    prefixLength: 56,
  });
  assert.equal(third.offer!.clientIpv6, first.offer!.clientIpv6, 'same address after a restart');
  assert.deepEqual(third.offer!.prefix, first.offer!.prefix);
  third.tcp?.close();
});

test('anonymous leases: each session its own block, released when the tunnel ends', async () => {
  const clock = new ManualClock(Date.now());
  const b = await broker(
    { tunnels: { idleMinS: 10, keepalive: { default: 10, min: 10 }, idleIntervals: 2 } },
    { clock },
  );
  const one = await runSession({ transport: 'udp', port: b.ports.udp, auth: { mechanism: 'ANONYMOUS' } });
  const two = await runSession({ transport: 'udp', port: b.ports.udp, auth: { mechanism: 'ANONYMOUS' } });
  assert.notEqual(one.offer!.clientIpv6, two.offer!.clientIpv6);
  assert.ok(await eventually(async () => (await b.store.listTunnels({ state: 'established' })).total === 2));
  const usage = async () => (await b.store.poolUsage()).find((p) => p.pool === 'link')?.blocks ?? 0;
  assert.equal(await usage(), 2);
  clock.advance(59_000); // the offered keepalive is the requested 30 s: the idle limit is 2 × 30 s
  await b.broker.sweep();
  assert.equal((await b.store.listTunnels({ state: 'established' })).total, 2, 'not idle yet');
  clock.advance(2_000);
  await b.broker.sweep();
  assert.equal((await b.store.listTunnels({ state: 'established' })).total, 0, 'idle tunnels expired');
  assert.ok((await b.store.listTunnels({ state: 'ended' })).items.every((t) => t.endReason === 'idle'));
  assert.equal(await usage(), 0, 'leases released');
  one.udp?.close();
  two.udp?.close();
});

test('an offer that is never accepted is rolled back', async () => {
  const b = await broker({ limits: { negotiationTimeoutS: 1 } });
  const r = await runSession({ transport: 'udp', port: b.ports.udp, auth: { mechanism: 'ANONYMOUS' }, accept: false });
  assert.equal(r.createStatus, 200);
  assert.ok(
    await eventually(
      async () => (await b.store.listTunnels({ state: 'ended' })).items.some((t) => t.endReason === 'not_accepted'),
      4000,
    ),
  );
  assert.ok(
    await eventually(async () => ((await b.store.poolUsage()).find((p) => p.pool === 'link')?.blocks ?? 0) === 0),
  );
  assert.ok(await eventually(() => b.sessionCounts().total === 0, 3000));
  r.udp?.close();
});

test("an anonymous offer from the node's chunks writes nothing until its accept, and nothing if never accepted", async () => {
  const b = await broker({ limits: { negotiationTimeoutS: 1, anonymousPerSource: 2 } });
  const anon = { transport: 'udp' as const, port: b.ports.udp, auth: { mechanism: 'ANONYMOUS' as const } };
  const rows = async (state: 'offered' | 'established' | 'ended') => (await b.store.listTunnels({ state })).total;
  const leases = async () => (await b.store.poolUsage()).find((p) => p.pool === 'link')?.blocks ?? 0;
  const first = await runSession(anon); // the first lease after a start reads the node's chunks back
  assert.ok(await eventually(async () => (await rows('established')) === 1));
  const unwanted = await runSession({ ...anon, accept: false });
  assert.equal(unwanted.createStatus, 200);
  assert.equal(await rows('offered'), 0, 'no row while the offer waits for its accept');
  assert.equal(await leases(), 1, 'and no lease row');
  // the held offer counts toward the source's quota (2): a third tunnel from 127.0.0.1 is refused meanwhile
  const refused = await runSession(anon);
  assert.equal(refused.createStatus, 301, 'the pending offer is held');
  assert.ok(await eventually(() => b.sessionCounts().total === 0, 4000), 'the unwanted offer timed out');
  assert.equal(await rows('ended'), 0, 'it leaves no row behind');
  const third = await runSession(anon);
  assert.equal(third.createStatus, 200, 'its hold was given back');
  assert.ok(await eventually(async () => (await rows('established')) === 2));
  const t = (await b.store.listTunnels({ state: 'established' })).items.find(
    (x) => expandIpv6(x.clientIpv6) === expandIpv6(third.offer!.clientIpv6),
  );
  assert.ok(t, 'the accepted tunnel has the offered addresses');
  assert.ok(t.establishedAt! >= t.createdAt, 'created at the offer, established at the accept');
  assert.equal(await leases(), 2, 'its lease row written with it');
  for (const r of [first, unwanted, refused, third]) r.udp?.close();
});

test("an account's offer writes nothing until its accept once it holds its link block", async () => {
  const b = await broker({ limits: { negotiationTimeoutS: 1 } });
  await b.addUser('bob', 'hunter22');
  const rows = async (state: 'offered' | 'established' | 'ended') => (await b.store.listTunnels({ state })).items;
  const first = await runSession({ transport: 'udp', port: b.ports.udp, auth: bob }); // claims the block
  assert.ok(await eventually(async () => (await rows('established')).length === 1));
  const unwanted = await runSession({ transport: 'udp', port: b.ports.udp, auth: bob, accept: false });
  assert.equal(unwanted.createStatus, 200);
  assert.equal(unwanted.offer!.clientIpv6, first.offer!.clientIpv6, 'the block it holds');
  assert.equal((await rows('offered')).length, 0, 'no row while the offer waits for its accept');
  assert.ok(await eventually(() => b.sessionCounts().total === 0, 4000), 'the unwanted offer timed out');
  assert.equal((await rows('ended')).length, 0, 'it leaves no row, and the live tunnel stays');
  assert.equal(b.broker.liveTunnels().length, 1);
  const again = await runSession({ transport: 'udp', port: b.ports.udp, auth: bob });
  assert.ok(await eventually(async () => (await rows('ended')).length === 1));
  const [live] = await rows('established');
  assert.equal(live?.username, 'bob', "the accept writes the account's row, established");
  assert.equal(expandIpv6(live!.clientIpv6), expandIpv6(first.offer!.clientIpv6));
  assert.equal((await rows('ended'))[0]?.endReason, 'replaced', 'and ends the tunnel it replaces');
  for (const r of [first, unwanted, again]) r.udp?.close();
});

test('a pending offer the data plane refuses at its accept leaves its row ended and its lease free', async () => {
  let refuse = false;
  const dp = new (class extends MemoryDataPlane {
    override addTunnel(spec: TunnelSpec): void {
      if (refuse) throw new Error('refused by the data plane');
      super.addTunnel(spec);
    }
  })({ listenAddress: '127.0.0.1', port: 0 });
  const b = await broker({}, { dataplane: dp });
  const anon = { transport: 'udp' as const, port: b.ports.udp, auth: { mechanism: 'ANONYMOUS' as const } };
  const leases = async () => (await b.store.poolUsage()).find((p) => p.pool === 'link')?.blocks ?? 0;
  const first = await runSession(anon); // the first lease after a start reads the node's chunks back
  assert.ok(await eventually(async () => (await b.store.listTunnels({ state: 'established' })).total === 1));
  refuse = true;
  const refused = await runSession(anon);
  assert.equal(refused.createStatus, 200, 'offered');
  assert.ok(!refused.raw.at(-1)!.startsWith('200'), `the accept is answered with an error: ${refused.raw.at(-1)}`);
  const ended = (await b.store.listTunnels({ state: 'ended' })).items;
  assert.deepEqual(
    ended.map((t) => [expandIpv6(t.clientIpv6), t.endReason]),
    [[expandIpv6(refused.offer!.clientIpv6), 'not_accepted']],
    'the row the accept wrote is ended',
  );
  assert.equal(await leases(), 1, 'and its lease released');
  assert.equal(b.broker.liveTunnels().length, 1);
  for (const r of [first, refused]) r.udp?.close();
});

test('established tunnels are restored into the data plane after a restart', async () => {
  const b = await broker();
  await b.addUser('bob', 'hunter22');
  const r = await runSession({ transport: 'udp', port: b.ports.udp, auth: bob });
  assert.ok(await eventually(() => b.broker.liveTunnels().length === 1));
  const dir = b.dir;
  await b.close(); // like a crash: nothing ends the tunnel in the store
  const again = await broker({}, { dir });
  const live = again.broker.liveTunnels();
  assert.equal(live.length, 1);
  assert.equal(expandIpv6(live[0]!.clientIpv6), expandIpv6(r.offer!.clientIpv6));
  const dp = again.dataplane as import('../../../src/dataplane/memory.js').MemoryDataPlane;
  assert.equal(dp.tunnel(live[0]!.id as never)?.client.port, r.udp!.port, 'same endpoint in the data plane');
  r.udp?.close();
});

test('link pool exhaustion: 301 No more tunnels available, and a log line', async () => {
  const lines: string[] = [];
  const { pino } = await import('pino');
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(s) });
  const b = await broker({ pools: { link: '2001:db8:f00::/64' } }, { log });
  await b.addUser('bob', 'hunter22');
  await b.addUser('carol', 'hunter22');
  const first = await runSession({ transport: 'tcp', port: b.ports.tcp, auth: bob, type: 'v6v4' });
  assert.equal(first.createStatus, 200, 'the pool holds one /64');
  const second = await runSession({
    transport: 'tcp',
    port: b.ports.tcp,
    auth: { ...bob, username: 'carol' },
    type: 'v6v4',
  });
  assert.equal(second.createStatus, 301);
  assert.equal(second.raw.at(-1), 'Content-length: 31\r\n301 No more tunnels available\r\n');
  assert.ok(
    lines.some((l) => l.includes('link pool exhausted')),
    'the operator is told',
  );
  first.tcp?.close();
  second.tcp?.close();
});

test('restore reads every page before ending stale offers, and a tunnel the data plane refuses ends alone', async () => {
  const b = await broker();
  const row = (n: number) => ({
    accountId: null,
    leaseId: null,
    type: 'v6udpv4' as const,
    transport: 'udp' as const,
    clientIpv4: '192.0.2.7',
    clientPort: 1024 + n,
    serverIpv4: '192.0.2.1',
    serverIpv6: `2001:db8:f00:${n.toString(16)}::1`,
    clientIpv6: `2001:db8:f00:${n.toString(16)}::2`,
    prefix: null,
    prefixLen: null,
    keepaliveInterval: 30,
    lifetimeS: 604800,
  });
  // Oldest first: 3 established tunnels, then more stale offers than one page (1000) holds, newest first.
  const established: number[] = [];
  for (let n = 0; n < 3; n++) {
    const t = await b.store.createTunnel(row(n), Date.now());
    await b.store.establishTunnel(t.id, Date.now());
    established.push(t.id);
  }
  for (let n = 3; n < 1003; n++) await b.store.createTunnel(row(n), Date.now());
  const dir = b.dir;
  await b.close(); // like a crash: the rows stay as they are

  const refused = established[1]!;
  const dp = new (class extends MemoryDataPlane {
    override addTunnel(spec: TunnelSpec): void {
      if (spec.id === refused) throw new Error('refused by the data plane');
      super.addTunnel(spec);
    }
  })({ listenAddress: '127.0.0.1', port: 0 });
  const again = await broker({}, { dir, dataplane: dp });
  assert.deepEqual(
    again.broker
      .liveTunnels()
      .map((t) => t.id)
      .sort((x, y) => x - y),
    [established[0], established[2]],
  );
  assert.equal((await again.store.getTunnel(refused))?.endReason, 'shutdown');
  assert.equal((await again.store.listTunnels({ state: 'live', limit: 10 })).total, 2, 'no stale offer left');
});

test('an account disabled or deleted from another process loses its live tunnel at the next sweep', async () => {
  const b = await broker();
  await b.addUser('bob', 'hunter22');
  await b.addUser('carol', 'hunter22');
  const one = await runSession({ transport: 'udp', port: b.ports.udp, auth: bob });
  const two = await runSession({ transport: 'udp', port: b.ports.udp, auth: { ...bob, username: 'carol' } });
  assert.ok(await eventually(() => b.broker.liveTunnels().length === 2));
  // what `tsp-broker user disable` does: its own store handle on the same file, and the audit trail
  const { openSqliteStore } = await import('../../../src/store/sqlite.js');
  const { AccountService } = await import('../../../src/broker/accounts.js');
  const other = await openSqliteStore({ file: b.config.store.path });
  try {
    const cli = new AccountService(other, 'tsp-fake');
    await cli.setDisabled('cli', 'bob', true);
    await cli.delete('cli', 'carol');
  } finally {
    await other.close();
  }
  assert.equal(b.broker.liveTunnels().length, 2, 'nothing happens until the sweep');
  await b.broker.sweep();
  assert.equal(b.broker.liveTunnels().length, 0);
  const ended = (await b.store.listTunnels({ state: 'ended' })).items;
  assert.deepEqual(ended.map((t) => t.endReason).sort(), ['account_deleted', 'account_disabled']);
  one.udp?.close();
  two.udp?.close();
});

test('tunnel kill from another process: ended in the store at once, out of the data plane at the next sweep', async () => {
  const b = await broker();
  const r = await runSession({ transport: 'udp', port: b.ports.udp, auth: { mechanism: 'ANONYMOUS' } });
  assert.ok(await eventually(() => b.broker.liveTunnels().length === 1));
  const id = b.broker.liveTunnels()[0]!.id;
  const { openSqliteStore } = await import('../../../src/store/sqlite.js');
  const { killTunnelInStore } = await import('../../../src/broker/tunnel-admin.js');
  const other = await openSqliteStore({ file: b.config.store.path });
  try {
    await killTunnelInStore(other, id, 'cli', Date.now());
    await assert.rejects(
      killTunnelInStore(other, id, 'cli', Date.now()),
      (e: BrokerError) => e.code === 'STORE_CONFLICT',
    );
    await assert.rejects(
      killTunnelInStore(other, 9999, 'cli', Date.now()),
      (e: BrokerError) => e.code === 'STORE_NOT_FOUND',
    );
  } finally {
    await other.close();
  }
  assert.equal((await b.store.getTunnel(id))?.endReason, 'admin');
  assert.equal((await b.store.poolUsage()).find((p) => p.pool === 'link')?.blocks ?? 0, 0, 'the lease is released');
  await b.broker.sweep();
  assert.equal(b.broker.liveTunnels().length, 0);
  const dp = b.dataplane as import('../../../src/dataplane/memory.js').MemoryDataPlane;
  assert.equal(dp.tunnel(id as never), undefined, 'gone from the data plane');
  r.udp?.close();
});

test('a sweep writes the counters of tunnels that moved, and nothing for idle ones', async () => {
  const b = await broker();
  const r = await runSession({ transport: 'udp', port: b.ports.udp, auth: { mechanism: 'ANONYMOUS' } });
  assert.ok(await eventually(() => b.broker.liveTunnels().length === 1));
  const id = b.broker.liveTunnels()[0]!.id;
  const writes: number[][] = [];
  const store = b.store;
  const original = store.updateCounters.bind(store);
  store.updateCounters = (u) => {
    writes.push(u.map((x) => x.id));
    return original(u);
  };
  await b.broker.sweep();
  assert.deepEqual(writes, [], 'no traffic: no write');
  // an IPv6 packet from the tunnel's endpoint and client address: MemoryDataPlane accepts and counts it
  const packet = ipv6Udp(r.offer!.clientIpv6, '2001:db8:100::2', 60);
  r.udp!.send(packet, b.ports.udp);
  assert.ok(await eventually(() => (b.broker.liveTunnels()[0]?.rxPackets ?? 0) === 1));
  await b.broker.sweep();
  assert.deepEqual(writes, [[id]]);
  assert.equal((await b.store.getTunnel(id))?.rxPackets, 1);
  await b.broker.sweep();
  assert.deepEqual(writes, [[id]], 'unchanged since: no second write');
  r.udp?.close();
});

test('a UDP session restarted by VERSION= that authenticates anonymously gets an anonymous tunnel, not the earlier account', async () => {
  const b = await broker();
  await b.addUser('bob', 'hunter22');
  const { RawUdp, udpDatagram } = await import('../../helpers/clients.js');
  const { encodePlain } = await import('../../../src/protocol/sasl/plain.js');
  const { framedRequest } = await import('../../../src/protocol/framing/content-length.js');
  const { writeCreateRequest } = await import('../../../src/protocol/request-writer.js');
  const u = await RawUdp.open();
  try {
    const say = async (seq: number, body: string | Buffer) =>
      (await u.request(udpDatagram(seq, 0, body), b.ports.udp))?.subarray(8).toString('latin1') ?? '';
    assert.match(await say(1, 'VERSION=2.0.2\r\n'), /^CAPABILITY/);
    await say(2, 'AUTHENTICATE PLAIN\r\n\0');
    assert.match(await say(3, encodePlain({ username: 'bob', password: 'hunter22' })), /^200/);
    assert.match(await say(4, 'VERSION=2.0.2\r\n'), /^CAPABILITY/, 'the session starts over');
    assert.match(await say(5, 'AUTHENTICATE ANONYMOUS\r\n\0'), /^200/);
    const create = framedRequest(writeCreateRequest({ type: 'v6udpv4', clientIpv4: '127.0.0.1' }));
    assert.match(await say(6, create), /^Content-length/);
    const offered = (await b.store.listTunnels({ state: 'offered' })).items;
    assert.equal(offered.length, 1);
    assert.equal(offered[0]!.accountId, null, 'recorded as anonymous');
  } finally {
    u.close();
  }
});
