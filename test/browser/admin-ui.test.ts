/** The web UI in real Chromium (Debian's /usr/bin/chromium driven by playwright-core; never a downloaded
 *  browser) against a real broker with the admin server on a real port:
 *    1. sign in as an admin; 2. create an account; 3. reset its password; 4. a real TSP DIGEST-MD5 negotiation
 *    over UDP fails with the old password and succeeds with the new one; 5. the tunnel appears live on the
 *    tunnels page; 6. kill it from the UI and see it gone; 7. the account holder signs in, sees ready-to-paste
 *    configuration, and cannot reach admin pages.
 *  Screenshots of the dashboard, the tunnels page and the account holder's page go to artifacts/. Browser,
 *  sockets and broker are closed in after hooks even when a step fails. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawUdp } from '../helpers/clients.js';
import { digestTunnelOverUdp } from '../admin/tsp-session.js';
import { ipv6Udp } from '../helpers/packets.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const ARTIFACTS = path.resolve('artifacts');
const STEP_TIMEOUT_MS = 15_000;

let b: TestBroker;
let base: string;
const contexts: BrowserContext[] = [];
const profiles: string[] = [];
const sockets: RawUdp[] = [];

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  b = await startTestBroker({ admin: { enabled: true, port: 0 } });
  assert.ok(b.admin, 'admin server started');
  base = `http://127.0.0.1:${b.admin.port}`;
  await b.addUser('root', 'root-password', 'admin');
});

after(async () => {
  for (const s of sockets) s.close();
  for (const c of contexts) await c.close().catch(() => {});
  for (const p of profiles) rmSync(p, { recursive: true, force: true });
  await b?.stop();
});

/** A fresh browser with its own profile (so no cookies are shared between users). */
async function browser(): Promise<Page> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'tsp-ui-profile-'));
  profiles.push(profile);
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    viewport: { width: 1280, height: 860 },
  });
  contexts.push(ctx);
  ctx.setDefaultTimeout(STEP_TIMEOUT_MS);
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on('dialog', (d) => void d.accept()); // the confirmation prompts: answer yes
  return page;
}

async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.goto(`${base}/`);
  assert.match(page.url(), /\/login\?next=/, 'unauthenticated visit goes to the sign-in page');
  await page.fill('#username', username);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('button[type=submit]')]);
}

/** Sends IPv6 packets from the tunnel's endpoint and address for a while, so the traffic chart has a shape. */
async function trafficFor(udp: RawUdp, clientIpv6: string, ms: number): Promise<void> {
  const packet = ipv6Udp(clientIpv6, '2001:db8:100::2', 1200);
  const end = Date.now() + ms;
  for (let i = 0; Date.now() < end; i++) {
    const burst = 5 + Math.round(20 * Math.abs(Math.sin(i / 6)));
    for (let j = 0; j < burst; j++) udp.send(packet, b.ports.udp);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test('an admin manages an account and a live tunnel in the web UI; the account holder cannot reach admin pages', async () => {
  const page = await browser();

  // 1. sign in as admin: the dashboard
  await signIn(page, 'root', 'root-password');
  assert.equal(await page.textContent('h1'), 'Dashboard');
  assert.equal(await page.textContent('[data-testid=live-count]'), '0');

  // 2. create an account
  await page.goto(`${base}/accounts`);
  await page.fill('#create-account input[name=username]', 'walter');
  await page.fill('#create-account input[name=password]', 'first-password');
  await Promise.all([page.waitForURL(/\/accounts\/walter/), page.click('#create-account button[type=submit]')]);
  assert.match((await page.textContent('.flash')) ?? '', /Account walter created/);

  // 3. reset its password (a confirmation prompt, accepted)
  await page.fill('#reset-password input[name=password]', 'second-password');
  await Promise.all([page.waitForURL(/done=password/), page.click('#reset-password button[type=submit]')]);
  assert.match((await page.textContent('.flash')) ?? '', /Password of walter changed/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'account.png'), fullPage: true });

  // 4. a real DIGEST-MD5 negotiation over UDP: the old password fails, the new one gets a tunnel
  const old = await digestTunnelOverUdp(b.ports.udp, 'walter', 'first-password');
  old.udp.close();
  assert.match(old.result, /^300 Authentication failed/);
  const session = await digestTunnelOverUdp(b.ports.udp, 'walter', 'second-password');
  sockets.push(session.udp);
  assert.equal(session.result, 'established');

  // 5. the tunnel is live on the tunnels page
  await trafficFor(session.udp, session.clientIpv6!, 11_000);
  await page.goto(`${base}/tunnels`);
  const row = page.locator('#live-tunnels tr', { hasText: 'walter' });
  assert.equal(await row.count(), 1, 'one live tunnel row for walter');
  const rowText = (await row.textContent()) ?? '';
  assert.match(rowText, /v6udpv4/);
  assert.match(rowText, new RegExp(`127\\.0\\.0\\.1:${session.udp.port}`), 'endpoint shown');
  assert.match(rowText, /2001:db8:f00:/, 'client IPv6 shown');
  await page.screenshot({ path: path.join(ARTIFACTS, 'tunnels.png'), fullPage: true });

  await page.goto(`${base}/`);
  assert.equal(await page.textContent('[data-testid=live-count]'), '1');
  assert.equal(await page.locator('svg.chart path.line-rx, svg.chart path.line-tx').count(), 2, 'traffic chart drawn');
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });

  // 6. kill it from the UI (confirmation accepted) and see it gone
  await page.goto(`${base}/tunnels`);
  const tunnelId = await page.locator('#live-tunnels tr', { hasText: 'walter' }).getAttribute('data-tunnel-id');
  assert.ok(tunnelId);
  await Promise.all([
    page.waitForURL(/done=killed/),
    page
      .locator('#live-tunnels tr', { hasText: 'walter' })
      .locator('button', { hasText: /^\s*Kill\s*$/ })
      .click(),
  ]);
  assert.match((await page.textContent('.flash')) ?? '', new RegExp(`Tunnel ${tunnelId} ended`));
  assert.equal(await page.locator('#live-tunnels tr', { hasText: 'walter' }).count(), 0, 'no longer live');
  assert.match(
    (await page.locator(`#recent-tunnels tr[data-tunnel-id="${tunnelId}"]`).textContent()) ?? '',
    /ended \(admin\)/,
  );
  assert.equal(b.broker.liveTunnels().length, 0, 'the broker agrees');

  // 7. the account holder: own page with configuration, no admin pages
  const own = await browser();
  await signIn(own, 'walter', 'second-password');
  assert.match(own.url(), /\/me$/);
  const gogoc = (await own.textContent('#gogoc-conf')) ?? '';
  assert.match(gogoc, new RegExp(`server=127\\.0\\.0\\.1:${b.ports.udp}`));
  assert.match(gogoc, /userid=walter/);
  assert.match(gogoc, /auth_method=digest-md5/);
  assert.match(gogoc, /tunnel_mode=v6anyv4/);
  assert.match((await own.textContent('#tspc-conf')) ?? '', /userid=walter/);
  assert.equal(await own.locator('nav a', { hasText: 'Accounts' }).count(), 0, 'no admin navigation');
  await own.screenshot({ path: path.join(ARTIFACTS, 'account-holder.png'), fullPage: true });
  for (const adminPage of ['/accounts', '/tunnels', '/audit', '/tokens', '/dashboard/live']) {
    const r = await own.goto(`${base}${adminPage}`);
    assert.equal(r?.status(), 403, `${adminPage} is refused`);
    assert.match((await own.textContent('h1')) ?? '', /Not allowed/);
  }
  const api = await own.goto(`${base}/api/v1/accounts`);
  assert.equal(api?.status(), 403);
  assert.equal(((await api?.json()) as { code: string }).code, 'API_FORBIDDEN');

  // the admin's actions are in the audit log, shown in the UI
  await page.goto(`${base}/audit`);
  const audit = (await page.textContent('table')) ?? '';
  for (const action of ['account.create', 'account.passwd', 'tunnel.kill', 'auth.login'])
    assert.ok(audit.includes(action), `audit shows ${action}`);
  assert.match(audit, /admin:root/);
});
