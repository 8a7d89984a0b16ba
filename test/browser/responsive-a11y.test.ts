/** Every page of the web UI in real Chromium (Debian's /usr/bin/chromium driven by playwright-core) at phone
 *  width (375x812) and desktop width (1280x860):
 *    - no horizontal page scroll at 375 px (document.documentElement.scrollWidth <= 375): the header wraps,
 *      tables scroll inside their own container, forms fit;
 *    - axe-core (the npm package's axe.min.js injected into the page, no CDN) finds no violation of impact
 *      moderate, serious or critical; minor ones are printed;
 *    - /favicon.ico is served.
 *  Screenshots of every page at both widths go to artifacts/ (phone-*.png, desktop-*.png). Pages with rows
 *  are filled first: a live tunnel of a real TSP session, an account, a token, audit events. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import type { RawUdp } from '../helpers/clients.js';
import { digestTunnelOverUdp } from '../admin/tsp-session.js';
import { runSession } from '../helpers/tsp.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'];
const ARTIFACTS = path.resolve('artifacts');
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const PHONE = { width: 375, height: 812 };
const DESKTOP = { width: 1280, height: 860 };
const MARGARET = {
  mechanism: 'DIGEST-MD5',
  username: 'margaret-with-a-rather-long-username',
  password: 'margaret-password',
} as const;

let b: TestBroker;
let base: string;
let tunnelId: number;
const contexts: BrowserContext[] = [];
const profiles: string[] = [];
const sockets: RawUdp[] = [];

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  b = await startTestBroker({ admin: { enabled: true, port: 0 } });
  assert.ok(b.admin);
  base = `http://127.0.0.1:${b.admin.port}`;
  await b.addUser('root', 'root-password', 'admin');
  await b.addUser('margaret-with-a-rather-long-username', 'margaret-password');
  const s = await digestTunnelOverUdp(b.ports.udp, 'margaret-with-a-rather-long-username', 'margaret-password');
  sockets.push(s.udp);
  assert.equal(s.result, 'established');
  tunnelId = b.broker.liveTunnels()[0]!.id;
});

after(async () => {
  for (const s of sockets) s.close();
  for (const c of contexts) await c.close().catch(() => {});
  for (const p of profiles) rmSync(p, { recursive: true, force: true });
  await b?.stop();
});

/** A fresh browser with its own profile. CSP is bypassed only so that axe can be injected as a script tag. */
async function browser(): Promise<Page> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'tsp-a11y-profile-'));
  profiles.push(profile);
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    viewport: DESKTOP,
    bypassCSP: true,
  });
  contexts.push(ctx);
  ctx.setDefaultTimeout(15_000);
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on('dialog', (d) => void d.accept());
  return page;
}

async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.goto(`${base}/login`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('button[type=submit]')]);
}

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/** Impacts that fail the test; minor violations are printed only. */
const FAILING_IMPACTS = new Set(['moderate', 'serious', 'critical']);

/** Runs axe on the page; returns the moderate, serious and critical violations, prints the others. */
async function axe(page: Page, label: string): Promise<string[]> {
  await page.addScriptTag({ content: AXE_SOURCE });
  const violations = await page.evaluate(async () => {
    const w = window as unknown as { axe: { run(ctx: Document): Promise<{ violations: AxeViolation[] }> } };
    const r = await w.axe.run(document);
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target })),
    }));
  });
  const line = (v: AxeViolation) =>
    `${label}: [${v.impact}] ${v.id} (${v.help}) at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`;
  for (const v of violations.filter((v) => !FAILING_IMPACTS.has(v.impact ?? '')))
    console.log(`axe (not failing) ${line(v)}`);
  return violations.filter((v) => FAILING_IMPACTS.has(v.impact ?? '')).map(line);
}

/** Loads a page at both widths: no horizontal scroll on the phone, axe clean, screenshots of both. */
async function check(page: Page, url: string, name: string, failures: string[]): Promise<void> {
  for (const [kind, size] of [
    ['phone', PHONE],
    ['desktop', DESKTOP],
  ] as const) {
    await page.setViewportSize(size);
    const r = await page.goto(`${base}${url}`);
    assert.equal(r?.status(), 200, `${url} loads`);
    await page.screenshot({ path: path.join(ARTIFACTS, `${kind}-${name}.png`), fullPage: true });
    if (kind === 'phone') {
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= PHONE.width, `${url} lays out ${width} px wide at ${PHONE.width} px`);
    }
    failures.push(...(await axe(page, `${url} at ${kind} width`)));
  }
}

test('every page fits a 375 px phone and has no moderate or worse accessibility violation', async () => {
  const page = await browser();
  const failures: string[] = [];

  // the sign-in page, before signing in; its username field has the focus
  await check(page, '/login', 'login', failures);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'username', 'sign-in focuses the username');

  await signIn(page, 'root', 'root-password');
  // a token, so the tokens table has a row (and the audit log more events)
  await page.goto(`${base}/tokens`);
  await page.fill('#token-name', 'provisioning-token-for-a-long-name');
  await Promise.all([page.waitForLoadState(), page.click('form[action="/tokens"] button[type=submit]')]);

  for (const [url, name] of [
    ['/', 'dashboard'],
    ['/tunnels', 'tunnels'],
    [`/tunnels/${tunnelId}`, 'tunnel'],
    ['/accounts', 'accounts'],
    ['/accounts/margaret-with-a-rather-long-username', 'account'],
    ['/pools', 'pools'],
    ['/audit', 'audit'],
    ['/tokens', 'tokens'],
    ['/me', 'me-admin'],
  ] as const)
    await check(page, url, name, failures);

  // the active navigation item is marked for assistive technology, and a skip link leads to the content
  await page.goto(`${base}/accounts`);
  assert.equal(await page.getAttribute('nav a[aria-current=page]', 'href'), '/accounts');
  assert.equal(await page.getAttribute('a.skip', 'href'), '#main');
  assert.equal(await page.locator('nav a', { hasText: 'My account' }).count(), 1, 'admins have a link to /me');

  // the account holder's own page
  const own = await browser();
  await signIn(own, 'margaret-with-a-rather-long-username', 'margaret-password');
  await check(own, '/me', 'me', failures);

  // kill and block from the tunnel's page: the note says the client comes back, the block keeps it out
  await page.goto(`${base}/tunnels/${tunnelId}`);
  assert.match((await page.textContent('#kill-note')) ?? '', /reconnects about 80 s/);
  await page.fill('.kill-block input[name=blockMinutes]', '5');
  await Promise.all([page.waitForURL(/done=killblocked/), page.click('.kill-block button[type=submit]')]);
  assert.match((await page.textContent('.flash')) ?? '', new RegExp(`Tunnel ${tunnelId} ended; .* 5 minutes`));
  const again = await runSession({ transport: 'udp', port: b.ports.udp, auth: MARGARET });
  again.udp?.close();
  assert.equal(again.createStatus, 301, 'the blocked account gets no tunnel');

  const icon = await page.request.get(`${base}/favicon.ico`);
  assert.equal(icon.status(), 200, '/favicon.ico is served');

  assert.deepEqual(failures, [], 'no moderate, serious or critical axe violations');
});
