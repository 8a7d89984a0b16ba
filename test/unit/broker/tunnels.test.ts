/** broker/tunnels: the registry of live tunnels over the in-memory data plane model and a real SQLite file:
 *  the one counter accountant. Traffic carried after the last read and before a removal is not lost, totals
 *  only grow, and ends are stored with their final counters and reported as events. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { ManualClock } from '../../../src/clock.js';
import { MemoryDataPlane } from '../../../src/dataplane/memory.js';
import { AnonymousHoldings } from '../../../src/broker/anonymous.js';
import { TunnelRegistry, type TunnelEventMap } from '../../../src/broker/tunnels.js';
import { openSqliteStore } from '../../../src/store/sqlite.js';
import type { Store, TunnelRecord } from '../../../src/store/types.js';
import { ipv6Udp } from '../../helpers/packets.js';

/** The idle rule: 4 keepalive intervals, at least 60 s; anonymous tunnels at most 120 s (the defaults). */
const IDLE = { idleIntervals: 4, idleMinS: 60, anonymousIdleMaxS: 120 };

async function setup(t: import('node:test').TestContext) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-registry-'));
  const store: Store = await openSqliteStore({ file: path.join(dir, 'broker.db') });
  const clock = new ManualClock(1_000_000);
  const dp = new MemoryDataPlane({ listenAddress: '127.0.0.1', port: 0, clock });
  await dp.start();
  t.after(async () => {
    await dp.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  /** A registry over this store and data plane: the first one, or a new process's after a restart. */
  const registry = (anonymous = new AnonymousHoldings(), restorePage?: number) =>
    new TunnelRegistry({
      dataplane: dp,
      store,
      clock,
      log: pino({ level: 'silent' }),
      anonymous,
      idle: IDLE,
      ...(restorePage ? { restorePage } : {}),
    });
  const anonymous = new AnonymousHoldings();
  const tunnels = registry(anonymous);
  let n = 0;
  /** An offered v6v4 tunnel row for client 192.0.2.(10+n) (or `client`), link 2001:db8:0:n::/64. */
  const offer = async (accountId: number | null = null, client?: string): Promise<TunnelRecord> => {
    n++;
    return store.createTunnel(
      {
        accountId,
        leaseId: accountId === null ? `anon-${n}` : null,
        type: 'v6v4',
        transport: 'tcp',
        clientIpv4: client ?? `192.0.2.${10 + n}`,
        clientPort: 0,
        serverIpv4: '198.51.100.1',
        serverIpv6: `2001:db8:0:${n}::1`,
        clientIpv6: `2001:db8:0:${n}::2`,
        prefix: null,
        prefixLen: null,
        keepaliveInterval: 30,
        lifetimeS: 3600,
      },
      clock.now(),
    );
  };
  /** `count` packets of 100 bytes from a tunnel's client, decapsulated by the model. */
  const fromClient = (r: TunnelRecord, count: number) => {
    for (let i = 0; i < count; i++) dp.proto41.write(r.clientIpv4, ipv6Udp(r.clientIpv6, '2001:db8:ffff::1', 100));
  };
  return { store, clock, dp, tunnels, anonymous, offer, fromClient, registry };
}

test('traffic a tunnel carried after the last read is counted when it ends; totals only grow', async (t) => {
  const { tunnels, offer, fromClient, store } = await setup(t);
  const a = await tunnels.establish(await offer(), { replaceAccount: false });
  const b = await tunnels.establish(await offer(), { replaceAccount: false });
  fromClient(a, 3);
  fromClient(b, 2);
  assert.deepEqual(tunnels.traffic().totals, { rxPackets: 5, rxBytes: 500, txPackets: 0, txBytes: 0 });
  fromClient(b, 4); // after the last read...
  const ended: TunnelEventMap['ended'][] = [];
  tunnels.events.on('ended', (e) => ended.push(e));
  await tunnels.end(b.id, 'idle'); // ...and before the removal
  assert.deepEqual(tunnels.traffic().totals, { rxPackets: 9, rxBytes: 900, txPackets: 0, txBytes: 0 });
  assert.deepEqual(
    tunnels.traffic().tunnels.map((x) => x.id),
    [a.id],
    'only live tunnels are listed',
  );
  assert.equal(ended.length, 1);
  assert.deepEqual([ended[0]!.reason, ended[0]!.counters.rxPackets], ['idle', 6]);
  const row = await store.getTunnel(b.id);
  assert.deepEqual([row?.state, row?.endReason, row?.rxPackets, row?.rxBytes], ['ended', 'idle', 6, 600]);
  assert.equal(tunnels.has(b.id), false);
  await tunnels.end(b.id, 'admin'); // a second end finds nothing to do
  assert.equal((await store.getTunnel(b.id))?.endReason, 'idle');
});

test('a restore adds the stored counters to the new entry, ends stale offers, and counts anonymous tunnels again', async (t) => {
  const { tunnels, offer, fromClient, store, dp, registry } = await setup(t);
  const live = await tunnels.establish(await offer(), { replaceAccount: false });
  const stale = await offer(); // never accepted
  fromClient(live, 2);
  await tunnels.persistCounters();
  // a new process: a fresh registry (with holdings of its own) over the same store and data plane entry table
  const anonymous = new AnonymousHoldings();
  const again = registry(anonymous);
  assert.equal(anonymous.held(live.clientIpv4, live.type).bySource, 0);
  dp.removeTunnel(live.id as never);
  assert.equal(await again.restore(), 1);
  assert.equal((await store.getTunnel(stale.id))?.endReason, 'not_accepted');
  fromClient(live, 1);
  assert.equal(again.list()[0]?.rxPackets, 3, 'stored 2 + counted 1');
  assert.equal(anonymous.held(live.clientIpv4, live.type).bySource, 1);
});

test('a restore reads the live tunnels a page at a time and restores every one, whatever the page size', async (t) => {
  const { tunnels, offer, store, dp, registry } = await setup(t);
  const live: TunnelRecord[] = [];
  for (let i = 0; i < 5; i++) {
    live.push(await tunnels.establish(await offer(), { replaceAccount: false }));
    if (i === 2) await offer(); // a stale offer between them, ended by the restore
  }
  for (const r of live) dp.removeTunnel(r.id as never);
  const again = registry(new AnonymousHoldings(), 2);
  const pages: unknown[] = [];
  const read = store.liveTunnels.bind(store);
  t.mock.method(store, 'liveTunnels', (page?: { afterId: number; limit: number }) => {
    pages.push(page);
    return read(page);
  });
  assert.equal(await again.restore(), 5);
  assert.ok(
    pages.length >= 3 && pages.every((p) => (p as { limit?: number } | undefined)?.limit === 2),
    `read in pages of 2: ${JSON.stringify(pages)}`,
  );
  t.mock.restoreAll();
  assert.deepEqual(
    again
      .find(() => true)
      .map((x) => x.id)
      .sort((a, b) => a - b),
    live.map((r) => r.id),
  );
  assert.equal((await store.liveTunnels()).length, 5, 'the stale offer ended');
});

test("establishing replaces the tunnel at the same client endpoint, and an account's others with replaceAccount, with their final counters", async (t) => {
  const { tunnels, offer, fromClient, store } = await setup(t);
  const first = await tunnels.establish(await offer(), { replaceAccount: false });
  fromClient(first, 2);
  const other = await tunnels.establish(await offer(), { replaceAccount: false });
  const second = await tunnels.establish(await offer(null, first.clientIpv4), { replaceAccount: false });
  assert.deepEqual(
    tunnels
      .find(() => true)
      .map((x) => x.id)
      .sort((a, b) => a - b),
    [other.id, second.id],
  );
  const row = await store.getTunnel(first.id);
  assert.deepEqual([row?.endReason, row?.rxPackets], ['replaced', 2]);
  assert.equal((await store.getTunnel(second.id))?.state, 'established');
  assert.equal(tunnels.atEndpoint(`${first.clientIpv4}:0`)?.id, second.id, 'the endpoint index follows');
  // an account's tunnels: replaced by its next one only with replaceAccount
  const a = await store.createAccount({
    username: 'acct',
    role: 'user',
    passwordHash: 'x',
    digestHa1: null,
    digestRealm: null,
  });
  const mine = await tunnels.establish(await offer(a.id), { replaceAccount: true });
  const kept = await tunnels.establish(await offer(a.id), { replaceAccount: false });
  assert.deepEqual(
    tunnels
      .ofAccount(a.id)
      .map((x) => x.id)
      .sort((x, y) => x - y),
    [mine.id, kept.id],
  );
  const newest = await tunnels.establish(await offer(a.id), { replaceAccount: true });
  assert.deepEqual(
    tunnels.ofAccount(a.id).map((x) => x.id),
    [newest.id],
  );
  assert.equal((await store.getTunnel(kept.id))?.endReason, 'replaced');
});

test('ending several tunnels reads and removes them in one step: totals never go down while the ends are stored', async (t) => {
  const { tunnels, offer, fromClient, store } = await setup(t);
  const a = await tunnels.establish(await offer(), { replaceAccount: false });
  const b = await tunnels.establish(await offer(), { replaceAccount: false });
  fromClient(a, 1);
  fromClient(b, 1);
  // hold the store's transaction open while packets keep coming, as a busy disk would
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const batch = store.batch.bind(store);
  store.batch = async (fn) => {
    await gate;
    return batch(fn);
  };
  const readings = [tunnels.traffic().totals.rxPackets];
  const ending = tunnels.endWhere(() => true, 'account_disabled');
  fromClient(b, 3); // after the end began: b is out of the data plane, so these are not b's any more
  readings.push(tunnels.traffic().totals.rxPackets);
  open();
  await ending;
  readings.push(tunnels.traffic().totals.rxPackets);
  assert.deepEqual(readings, [2, 2, 2]);
  assert.deepEqual([(await store.getTunnel(a.id))?.rxPackets, (await store.getTunnel(b.id))?.rxPackets], [1, 1]);
});

test('tunnels end idle when silent past their limit, not while they keep sending, and at their lifetime', async (t) => {
  const { tunnels, offer, fromClient, store, clock } = await setup(t);
  const a = await store.createAccount({
    username: 'acct',
    role: 'user',
    passwordHash: 'x',
    digestHa1: null,
    digestRealm: null,
  });
  // idle limits: 4 × 30 s keepalive = 120 s for both (an anonymous one at most 120 s); lifetime 3600 s
  const talker = await tunnels.establish(await offer(a.id), { replaceAccount: false });
  const silent = await tunnels.establish(await offer(), { replaceAccount: false });
  const sweep = async () => {
    tunnels.takeChanges();
    await tunnels.endExpired(clock.now());
  };
  clock.advance(100_000);
  fromClient(talker, 1);
  await sweep();
  clock.advance(20_000); // 120 s silent: not past the limit yet
  await sweep();
  assert.deepEqual([tunnels.has(talker.id), tunnels.has(silent.id)], [true, true]);
  clock.advance(1);
  await sweep();
  assert.deepEqual([tunnels.has(talker.id), tunnels.has(silent.id)], [true, false]);
  assert.equal((await store.getTunnel(silent.id))?.endReason, 'idle');
  // the talker sends every 100 s, so only its lifetime ends it: at the first sweep past 3600 s
  let sent = 1;
  while (clock.now() + 100_000 <= talker.establishedAt! + 3_600_000) {
    clock.advance(100_000);
    fromClient(talker, 1);
    sent++;
    await sweep();
    assert.ok(tunnels.has(talker.id), `live at ${clock.now() - talker.establishedAt!} ms`);
  }
  clock.advance(talker.establishedAt! + 3_600_001 - clock.now());
  await sweep();
  assert.equal(tunnels.has(talker.id), false);
  const row = await store.getTunnel(talker.id);
  assert.deepEqual([row?.endReason, row?.rxPackets], ['lifetime', sent]);
});

test('a tunnel both silent and past its lifetime ends idle; one restored counts its silence from the restore', async (t) => {
  const { tunnels, offer, store, clock, dp, registry } = await setup(t);
  const old = await tunnels.establish(await offer(), { replaceAccount: false });
  clock.advance(4_000_000); // a sweep that comes late (a paused process): both limits passed
  tunnels.takeChanges();
  await tunnels.endExpired(clock.now());
  assert.equal((await store.getTunnel(old.id))?.endReason, 'idle');
  const kept = await tunnels.establish(await offer(), { replaceAccount: false });
  clock.advance(100_000);
  const again = registry();
  dp.removeTunnel(kept.id as never);
  assert.equal(await again.restore(), 1);
  clock.advance(120_000); // 220 s since it was established, 120 s since the restore
  await again.endExpired(clock.now());
  assert.ok(again.has(kept.id));
  clock.advance(1);
  await again.endExpired(clock.now());
  assert.equal(again.has(kept.id), false);
});

test('the periodic work reads nothing per idle tunnel and writes only the counters that moved', async (t) => {
  const { tunnels, offer, fromClient, store, dp, clock } = await setup(t);
  const all = [];
  for (let i = 0; i < 20; i++) all.push(await tunnels.establish(await offer(), { replaceAccount: false }));
  const reads: string[] = [];
  for (const name of ['readCounters', 'readCountersOf'] as const) {
    const original = dp[name].bind(dp) as (...a: never[]) => unknown;
    (dp as unknown as Record<string, unknown>)[name] = (...a: never[]) => {
      reads.push(name);
      return original(...a);
    };
  }
  const writes: number[][] = [];
  const updateCounters = store.updateCounters.bind(store);
  store.updateCounters = (u) => {
    writes.push(u.map((x) => x.id));
    return updateCounters(u);
  };
  const sweep = async () => {
    tunnels.takeChanges();
    await tunnels.endExpired(clock.now());
    await tunnels.persistCounters();
  };
  await sweep();
  assert.deepEqual([reads, writes], [[], []], 'nothing moved: nothing read, nothing written');
  fromClient(all[3]!, 2);
  fromClient(all[7]!, 1);
  clock.advance(1000);
  await sweep();
  assert.deepEqual(reads, []);
  assert.deepEqual(
    writes.map((w) => w.sort((x, y) => x - y)),
    [[all[3]!.id, all[7]!.id]],
  );
  assert.deepEqual(
    [(await store.getTunnel(all[3]!.id))?.rxPackets, (await store.getTunnel(all[7]!.id))?.rxPackets],
    [2, 1],
  );
  await sweep();
  assert.equal(writes.length, 1, 'unchanged since: no second write');
  // a failed write is retried with the next, with the newer counters
  store.updateCounters = () => Promise.reject(new Error('disk full'));
  fromClient(all[3]!, 1);
  await assert.rejects(tunnels.persistCounters(), /disk full/);
  fromClient(all[3]!, 1);
  store.updateCounters = updateCounters;
  await tunnels.persistCounters();
  assert.equal((await store.getTunnel(all[3]!.id))?.rxPackets, 4);
});

test('a static tunnel has no deadline, moves its endpoint with its counters, and no TSP tunnel replaces it', async (t) => {
  const { tunnels, offer, fromClient, store, clock, dp } = await setup(t);
  const account = async (username: string) =>
    (
      await store.createAccount({
        username,
        role: 'user',
        passwordHash: 'x',
        digestHa1: 'a'.repeat(32),
        digestRealm: 'r',
      })
    ).id;
  const sid = await account('static-owner');
  const other = await account('someone-else');
  const row = await offer(sid, '192.0.2.200');
  const staticRow = await store.createTunnel(
    { ...row, transport: 'static', keepaliveInterval: 0, lifetimeS: 0, clientIpv4: '192.0.2.201' },
    clock.now(),
  );
  await tunnels.endOffer(row, 'not_accepted');
  const s = await tunnels.establish(staticRow, { replaceAccount: true });
  fromClient(s, 3);

  clock.advance(24 * 3600_000); // a day without a packet, and past its lifetime of 0
  tunnels.takeChanges();
  await tunnels.endExpired(clock.now());
  assert.equal(tunnels.has(s.id), true, 'silence and lifetime never end it');

  await tunnels.moveEndpoint(s.id, '203.0.113.9');
  fromClient(s, 1); // from the old address: nobody's now
  for (let i = 0; i < 2; i++) dp.proto41.write('203.0.113.9', ipv6Udp(s.clientIpv6, '2001:db8:ffff::1', 100));
  const c = tunnels.list().find((x) => x.id === s.id)!;
  assert.equal(c.clientIpv4, '203.0.113.9');
  assert.equal(c.rxPackets, 5, 'the three before the move and the two from the new address');
  assert.equal(dp.readDrops().unknown_endpoint, 1);
  assert.equal((await store.getTunnel(s.id))?.clientIpv4, '203.0.113.9', 'stored');

  const holds = (e: unknown) => (e as { code?: string }).code === 'STATIC_TUNNEL_HOLDS';
  await assert.rejects(tunnels.establish(await offer(sid), { replaceAccount: true }), holds, 'same account');
  await assert.rejects(
    tunnels.establish(await offer(other, '203.0.113.9'), { replaceAccount: false }),
    holds,
    'its endpoint',
  );
  const theirs = await tunnels.establish(await offer(other, '192.0.2.250'), { replaceAccount: false });
  await assert.rejects(tunnels.moveEndpoint(s.id, theirs.clientIpv4), holds, 'onto a live tunnel');
  assert.equal(tunnels.has(s.id) && tunnels.has(theirs.id), true);
});
