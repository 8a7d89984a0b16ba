/** Retention as an operator sees it: a broker started on a database full of old history prunes what is past
 *  `retention.*` (and expired web sessions) at once and says how much in its log; recent rows and live tunnels
 *  stay; 0 keeps history forever; a pass is bounded and leaves the rest to the next one. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../../src/config/schema.js';
import { openSqliteStore } from '../../../src/store/sqlite.js';
import type { NewTunnel, Store } from '../../../src/store/types.js';
import { pruneOnce } from '../../../src/broker/retention.js';
import { startTestBroker } from '../../helpers/broker.js';
import { eventually } from '../../helpers/clients.js';
import { newTunnel } from '../../helpers/rows.js';

const DAY = 86_400_000;
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tempDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'tsp-retention-'));
  dirs.push(d);
  return d;
}

const tunnel: NewTunnel = newTunnel();

/** An ended tunnel that started `createdDaysAgo` and ended `endedDaysAgo`; returns its id. */
async function endedTunnel(store: Store, now: number, createdDaysAgo: number, endedDaysAgo: number) {
  const t = await store.createTunnel(tunnel, now - createdDaysAgo * DAY);
  await store.endTunnel(t.id, 'idle', now - endedDaysAgo * DAY);
  return t.id;
}

const audit = (store: Store, at: number, action: string) =>
  store.addAudit({ at, actor: 'system', action, target: null, detail: null });

test('a starting broker prunes ended tunnels, audit events and web sessions past retention, and logs it', async () => {
  const dir = tempDir();
  const now = Date.now();
  const store = await openSqliteStore({ file: path.join(dir, 'broker.db') });
  const oldTunnel = await endedTunnel(store, now, 200, 91);
  const recentTunnel = await endedTunnel(store, now, 200, 89);
  await audit(store, now - 366 * DAY, 'old.event');
  await audit(store, now - 364 * DAY, 'recent.event');
  const acc = await store.createAccount({
    username: 'ret-web',
    role: 'admin',
    passwordHash: '$argon2id$x',
    digestHa1: null,
    digestRealm: null,
  });
  const session = { accountId: acc.id, csrfToken: 'c', createdAt: now - DAY };
  await store.createWebSession('expired', { ...session, expiresAt: now - 1000 });
  await store.createWebSession('valid', { ...session, expiresAt: now + DAY });
  await store.close();

  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const b = await startTestBroker({}, { dir, log: pino({ level: 'info' }, sink) });
  try {
    assert.ok(
      await eventually(() => lines.some((l) => l.includes('retention: pruned old rows')), 10_000),
      'a pass runs at start and logs what it removed',
    );
    const logged = JSON.parse(lines.find((l) => l.includes('retention: pruned old rows'))!) as Record<string, unknown>;
    assert.deepEqual([logged.tunnels, logged.audit, logged.webSessions], [1, 1, 1]);
    assert.equal(await b.store.getTunnel(oldTunnel), undefined, 'ended 91 days ago: gone (default 90)');
    assert.equal((await b.store.getTunnel(recentTunnel))?.state, 'ended', 'ended 89 days ago: kept');
    assert.deepEqual(
      (await b.store.listAudit({ actor: 'system' })).items.map((e) => e.action).filter((a) => a.endsWith('.event')),
      ['recent.event'],
      'older than 365 days: gone',
    );
    assert.equal(await b.store.getWebSession('expired', now - 2000), undefined, 'expired session deleted');
    assert.ok(await b.store.getWebSession('valid', now));
  } finally {
    await b.stop();
  }
});

test('retention 0 keeps history forever; a pass is bounded and the next one goes on; bad values name the key', async () => {
  const now = Date.now();
  const store = await openSqliteStore({ file: path.join(tempDir(), 'broker.db') });
  try {
    for (let i = 0; i < 5; i++) await endedTunnel(store, now, 1000, 900);
    const live = await store.createTunnel(tunnel, now - 1000 * DAY);
    await audit(store, now - 1000 * DAY, 'ancient.event');

    const forever = await pruneOnce(store, { endedTunnelsDays: 0, auditDays: 0 }, now);
    assert.deepEqual([forever.tunnels, forever.audit], [0, 0]);
    assert.equal((await store.listTunnels({})).total, 6);

    const cfg = { endedTunnelsDays: 30, auditDays: 30 };
    const first = await pruneOnce(store, cfg, now, { batch: 2, maxBatches: 2 });
    assert.deepEqual([first.tunnels, first.audit, first.more], [4, 1, true], 'two batches of two, then stop');
    const second = await pruneOnce(store, cfg, now, { batch: 2, maxBatches: 2 });
    assert.deepEqual([second.tunnels, second.more], [1, false]);
    assert.deepEqual(
      (await store.listTunnels({})).items.map((t) => t.id),
      [live.id],
      'the live tunnel, 1000 days old, stays',
    );
  } finally {
    await store.close();
  }

  assert.deepEqual(parseConfig({}).retention, { endedTunnelsDays: 90, auditDays: 365 });
  assert.throws(() => parseConfig({ retention: { auditDays: -1 } }), /retention\.auditDays: /);
  assert.throws(() => parseConfig({ retention: { endedTunnelsDays: 1.5 } }), /retention\.endedTunnelsDays: /);
  assert.throws(() => parseConfig({ retention: { sessionsDays: 1 } }), /retention\.sessionsDays: unknown key/);
});
