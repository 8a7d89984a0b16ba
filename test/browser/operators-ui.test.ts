/** Day-one operator pages in real Chromium (Debian's /usr/bin/chromium driven by playwright-core; never a
 *  downloaded browser) against a real broker: the tunnel list's search, filters, sort, paging and live refresh
 *  (paused while the tab is hidden or a row's Block… panel is open); a tunnel's own traffic graph; the
 *  dashboard's mirrored rx/tx chart with tooltips, ranges and top talkers, and its history after a broker
 *  restart; audit filters; the API token copy button. Screenshots go to artifacts/ (ops-*.png). */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import type { RawUdp } from '../helpers/clients.js';
import { icmpv6EchoRequest } from '../helpers/packets.js';
import { digestTunnelOverUdp } from '../admin/tsp-session.js';
import type { NewTunnel } from '../../src/store/types.js';
import { newTunnel } from '../helpers/rows.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'];
const ARTIFACTS = path.resolve('artifacts');
const shot = (name: string) => path.join(ARTIFACTS, `ops-${name}.png`);

let b: TestBroker | undefined;
let base: string;
const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-ops-ui-'));
const contexts: BrowserContext[] = [];
const profiles: string[] = [];
const sockets: RawUdp[] = [];

async function start(): Promise<TestBroker> {
  const broker = await startTestBroker({ admin: { enabled: true, port: 0 } }, { dir });
  assert.ok(broker.admin);
  base = `http://127.0.0.1:${broker.admin.port}`;
  return broker;
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  b = await start();
  await b.addUser('root', 'root-password', 'admin');
});

after(async () => {
  for (const s of sockets) s.close();
  for (const c of contexts) await c.close().catch(() => {});
  for (const p of profiles) rmSync(p, { recursive: true, force: true });
  await b?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function browser(): Promise<{ page: Page; ctx: BrowserContext }> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'tsp-ops-profile-'));
  profiles.push(profile);
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    viewport: { width: 1280, height: 900 },
  });
  contexts.push(ctx);
  ctx.setDefaultTimeout(15_000);
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on('dialog', (d) => void d.accept());
  return { page, ctx };
}

async function signIn(page: Page): Promise<void> {
  await page.goto(`${base}/login`);
  await page.fill('#username', 'root');
  await page.fill('#password', 'root-password');
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('button[type=submit]')]);
}

const ended = (over: Partial<NewTunnel>): NewTunnel => newTunnel({ clientIpv4: '192.0.2.80', ...over });

/** Row ids of the tunnel list as shown. */
const rowIds = (page: Page, table = '#tunnel-list table') =>
  page.$$eval(`${table} tbody tr[data-tunnel-id]`, (rows) => rows.map((r) => Number(r.getAttribute('data-tunnel-id'))));

test('operators: tunnel list, tunnel graph, dashboard chart and history across a restart, audit filters, token copy', async () => {
  const broker = b!;
  // 30 ended tunnels of two accounts and anonymous ones, with different traffic: more than one page
  const kim = await broker.addUser('kim', 'kim-password');
  const lou = await broker.addUser('lou', 'lou-password');
  for (let i = 0; i < 30; i++) {
    const t = await broker.store.createTunnel(
      ended({
        accountId: i % 3 === 0 ? kim : i % 3 === 1 ? lou : null,
        leaseId: i % 3 === 2 ? `ui-lease-${i}` : null,
        type: i % 2 ? 'v6v4' : 'v6udpv4',
        clientIpv6: `2001:db8:ee::${(i + 1).toString(16)}`,
      }),
      Date.now() - 3600_000 + i * 1000,
    );
    await broker.store.updateCounters([
      { id: t.id, rxPackets: i, rxBytes: ((i * 7919) % 97) * 1000, txPackets: i, txBytes: 500, lastSeenAt: null },
    ]);
    await broker.store.endTunnel(t.id, 'idle', Date.now() - 1000);
  }
  // a live tunnel carrying echo requests: each is answered, so rx and tx are equal
  await broker.addUser('walter', 'walter-password');
  const s = await digestTunnelOverUdp(broker.ports.udp, 'walter', 'walter-password');
  sockets.push(s.udp);
  assert.equal(s.result, 'established');
  const live = broker.broker.liveTunnels()[0]!;
  let seq = 0;
  const pinger = setInterval(() => {
    const n = 3 + Math.round(6 * Math.abs(Math.sin(seq / 9)));
    for (let i = 0; i < n; i++)
      s.udp.send(icmpv6EchoRequest(live.clientIpv6, live.serverIpv6, 9, seq++, 1200), broker.ports.udp);
  }, 200);

  try {
    const { page, ctx } = await browser();
    await signIn(page);

    // ---- tunnels: search, filter, sort, paging
    await page.goto(`${base}/tunnels?state=ended`);
    assert.equal(await page.textContent('[data-testid=tunnel-count]'), '(30)');
    assert.equal((await rowIds(page)).length, 25, 'first page of 25');
    await page.click('a[rel=next]');
    await page.waitForURL(/offset=25/);
    assert.equal((await rowIds(page)).length, 5, 'the second page has the rest');

    await page.goto(`${base}/tunnels?state=ended`);
    await page.fill('#tunnel-filters input[name=search]', 'KIM');
    await page.selectOption('#tunnel-filters select[name=type]', 'v6udpv4');
    await Promise.all([page.waitForURL(/search=KIM/), page.click('#tunnel-filters button[type=submit]')]);
    const kimRows = await page.$$eval('#tunnel-list tbody tr[data-tunnel-id]', (rows) =>
      rows.map((r) => r.textContent ?? ''),
    );
    assert.equal(kimRows.length, 5, 'kim has 10 tunnels, 5 of them v6udpv4');
    assert.ok(kimRows.every((t) => t.includes('kim') && t.includes('v6udpv4')));

    await page.goto(`${base}/tunnels?state=ended&search=2001:db8:ee::1`); // ::1, ::10 to ::1e
    assert.equal(await page.textContent('[data-testid=tunnel-count]'), '(16)', 'address search');

    // sort by traffic: the header link, then reversed by a second click
    await page.goto(`${base}/tunnels?state=ended`);
    await Promise.all([page.waitForURL(/sort=traffic&order=desc/), page.click('th a[data-sort=traffic]')]);
    const rxOf = async () =>
      page.$$eval('#tunnel-list tbody tr[data-tunnel-id]', (rows) =>
        rows.map((r) => r.querySelectorAll('td.num')[0]?.textContent ?? ''),
      );
    const bytes = (t: string) => {
      const m = /\/ ([\d.]+) (B|KiB|MiB)/.exec(t);
      return m ? Number(m[1]) * { B: 1, KiB: 1024, MiB: 1048576 }[m[2] as 'B'] : NaN;
    };
    const desc = (await rxOf()).map(bytes);
    assert.deepEqual(
      desc,
      [...desc].sort((x, y) => y - x),
      'most traffic first',
    );
    assert.equal(await page.getAttribute('th:has(a[data-sort=traffic])', 'aria-sort'), 'descending');
    await page.screenshot({ path: shot('tunnels-sorted'), fullPage: true });
    await Promise.all([page.waitForURL(/sort=traffic&order=asc/), page.click('th a[data-sort=traffic]')]);
    const asc = (await rxOf()).map(bytes);
    assert.deepEqual(
      asc,
      [...asc].sort((x, y) => x - y),
      'least traffic first',
    );
    await Promise.all([page.waitForURL(/sort=account&order=asc/), page.click('th a[data-sort=account]')]);
    const accounts = await page.$$eval('#tunnel-list tbody tr[data-tunnel-id] td:nth-child(2)', (tds) =>
      tds.map((td) => td.textContent?.trim() ?? ''),
    );
    assert.equal(accounts[0], 'anonymous', 'anonymous (no username) sorts first');
    assert.deepEqual([accounts[9], accounts[10], accounts[20]], ['anonymous', 'kim', 'lou'], 'then A to Z');

    // ---- live refresh: the list follows the broker without a reload, and pauses while the tab is hidden
    await page.goto(`${base}/tunnels`);
    assert.deepEqual(await rowIds(page, '#live-tunnels'), [live.id]);
    const lists: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/tunnels/list')) lists.push(r.url());
    });
    // (scripts as strings: tsx would wrap named functions in a helper the page does not have)
    const setHidden = (hidden: boolean) =>
      page.evaluate(
        `Object.defineProperty(document, 'hidden', { configurable: true, get() { return ${hidden}; } });` +
          `document.dispatchEvent(new Event('visibilitychange'));`,
      );
    await setHidden(true);
    await page.waitForTimeout(6000);
    assert.equal(lists.length, 0, 'no polling while the tab is hidden');
    await setHidden(false);
    await page.waitForResponse((r) => r.url().includes('/tunnels/list'));
    assert.ok(lists.length >= 1, 'polls again as soon as the tab shows');

    // ---- live refresh pauses while a row's Block… panel is open, even with the pointer and focus elsewhere,
    // so the minutes typed into it survive; closing it lets the list refresh again
    const panel = `#live-tunnels tr[data-tunnel-id="${live.id}"] details.kill-more`;
    const leave = async () => {
      await page.evaluate(`document.activeElement && document.activeElement.blur()`);
      await page.mouse.move(5, 5); // the header, outside the list
    };
    const markTable = () => page.evaluate(`document.querySelector('#live-tunnels').dataset.marked = 'yes'`);
    const tableMarked = () => page.evaluate(`document.querySelector('#live-tunnels').dataset.marked === 'yes'`);
    await page.click(`${panel} summary`);
    await page.fill(`${panel} input[name=blockMinutes]`, '42');
    await leave();
    await markTable();
    const before = lists.length;
    await page.waitForTimeout(6500); // past at least one 5 s tick
    assert.equal(lists.length, before, 'no refresh while the Block… panel is open');
    assert.equal(await page.getAttribute(panel, 'open'), '', 'the panel is still open');
    assert.equal(await page.inputValue(`${panel} input[name=blockMinutes]`), '42', 'with what was typed');
    assert.ok(await tableMarked(), 'the list was not replaced');
    await page.screenshot({ path: shot('tunnels-block-open'), fullPage: true });
    await page.click(`${panel} summary`);
    assert.equal(await page.getAttribute(panel, 'open'), null, 'closed');
    await leave();
    await page.waitForFunction(
      () => (document.querySelector('#live-tunnels') as HTMLElement | null)?.dataset.marked !== 'yes',
      null,
      { timeout: 8000 },
    );
    assert.ok(lists.length > before, 'refreshes again once the panel is closed');
    assert.deepEqual(await rowIds(page, '#live-tunnels'), [live.id]);

    // ---- the tunnel's own graph
    await page.goto(`${base}/tunnels/${live.id}`);
    await page.waitForSelector('#tunnel-traffic svg.chart path.line-rx');
    assert.ok(await page.locator('#tunnel-traffic svg.chart path.line-tx').count());
    await page.screenshot({ path: shot('tunnel-detail'), fullPage: true });

    // ---- dashboard: two distinguishable lines, tooltip, top talkers
    await page.goto(`${base}/`);
    type Box = { top: number; bottom: number; stroke: string | null; dash: string | null } | null;
    const lines = (await page.evaluate(`(() => {
      const svg = document.querySelector('#live svg.chart');
      const box = (sel) => {
        const el = svg.querySelector(sel);
        if (!el) return null;
        const b = el.getBBox();
        return { top: b.y, bottom: b.y + b.height, stroke: el.getAttribute('stroke'), dash: el.getAttribute('stroke-dasharray') };
      };
      return { mid: Number(svg.getAttribute('data-mid')), rx: box('path.line-rx'), tx: box('path.line-tx') };
    })()`)) as { mid: number; rx: Box; tx: Box };
    assert.ok(lines.rx && lines.tx, 'both lines drawn');
    assert.ok(lines.rx.bottom <= lines.mid + 0.5, 'rx above the axis');
    assert.ok(lines.tx.top >= lines.mid - 0.5, 'tx below it');
    assert.ok(lines.rx.top < lines.mid - 5 && lines.tx.bottom > lines.mid + 5, 'both carry traffic');
    assert.ok(
      Math.abs(lines.mid - lines.rx.top - (lines.tx.bottom - lines.mid)) < 2,
      'equal traffic: mirror images, both visible',
    );
    assert.notEqual(lines.rx.stroke, lines.tx.stroke);
    assert.notEqual(lines.rx.dash, lines.tx.dash);
    const hits = page.locator('#live svg.chart rect.hit');
    await hits.nth((await hits.count()) - 2).hover();
    const tip = (await page.textContent('#live .chart-tip')) ?? '';
    assert.match(tip, /\d\d:\d\d:\d\d UTC · rx [\d.]+ \w+\/s · tx [\d.]+ \w+\/s/);
    assert.equal(await page.isVisible('#live .chart-tip'), true);
    assert.match((await page.textContent('#top-talkers tbody tr')) ?? '', /walter/);
    await page.screenshot({ path: shot('dashboard'), fullPage: true });

    // ---- token copy button
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    await page.goto(`${base}/tokens`);
    await page.fill('input[name=name]', 'copied-token');
    await Promise.all([page.waitForSelector('#new-token'), page.click('form[action="/tokens"] button[type=submit]')]);
    const token = ((await page.textContent('#new-token')) ?? '').trim();
    assert.match(token, /^tspb_/);
    await page.click('#copy-token');
    await page.waitForFunction(() => document.querySelector('#copy-status')?.textContent === 'Copied.');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token, 'the token is on the clipboard');
    await page.screenshot({ path: shot('token-copied'), fullPage: true });
    // ---- audit filters: the token just made (actor substring), the sign-ins of root (target), a date range
    await page.goto(`${base}/audit`);
    await page.fill('#audit-filters input[name=actor]', 'ROOT');
    await Promise.all([page.waitForURL(/actor=ROOT/), page.click('#audit-filters button[type=submit]')]);
    const byActor = await page.$$eval('table tbody tr', (rows) => rows.map((r) => r.textContent ?? ''));
    assert.ok(byActor.some((r) => r.includes('token.create') && r.includes('copied-token')));
    assert.ok(
      byActor.every((r) => r.includes('admin:root')),
      'only what admin:root did',
    );
    await page.goto(`${base}/audit`);
    await page.fill('#audit-filters input[name=target]', 'roo');
    await page.fill('#audit-filters input[name=action]', 'auth.login');
    await page.fill('#audit-filters input[name=from]', new Date().toISOString().slice(0, 10));
    await Promise.all([page.waitForURL(/target=roo/), page.click('#audit-filters button[type=submit]')]);
    const logins = await page.$$eval('table tbody tr', (rows) => rows.map((r) => r.textContent ?? ''));
    assert.ok(logins.length >= 1);
    assert.ok(logins.every((r) => r.includes('auth.login') && r.includes('web:127.0.0.1') && r.includes('root')));
    await page.screenshot({ path: shot('audit'), fullPage: true });
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    await page.goto(`${base}/audit?from=${tomorrow}`);
    assert.equal(await page.textContent('[data-testid=audit-count]'), '0 event(s)', 'nothing in the future');
  } finally {
    clearInterval(pinger);
  }

  // ---- restart: the stored history is still on the dashboard
  await broker.stop();
  b = await start();
  const { page } = await browser();
  await signIn(page);
  await page.goto(`${base}/?range=1h`);
  assert.equal(await page.getAttribute('nav.ranges a.active', 'href'), '/?range=1h');
  const drawn = (await page.evaluate(`(() => {
    const n = (sel) => document.querySelectorAll('#live svg.chart ' + sel).length;
    return { rx: n('path.line-rx') + n('circle.dot-rx'), tx: n('path.line-tx') + n('circle.dot-tx') };
  })()`)) as { rx: number; tx: number };
  assert.ok(drawn.rx >= 1 && drawn.tx >= 1, 'the traffic before the restart is drawn');
  const hit = page.locator('#live svg.chart rect.hit[data-tip*="rx"]:not([data-tip*="no data"])');
  assert.ok((await hit.count()) >= 1);
  await hit.first().hover();
  assert.match((await page.textContent('#live .chart-tip')) ?? '', /rx [\d.]+ KiB\/s/);
  await page.screenshot({ path: shot('dashboard-after-restart'), fullPage: true });
});
