/** The interactive API reference (/api/v1/docs, Swagger UI from the swagger-ui-dist package served by the admin
 *  server) in Debian's Chromium with the admin server's Content-Security-Policy enforced: it loads without a
 *  signed-in session, nothing is fetched from another origin, nothing is blocked by the policy, and it lists
 *  the operations of /api/v1/openapi.json. Screenshot: artifacts/api-docs.png. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';

const ARTIFACTS = path.resolve('artifacts');
let b: TestBroker;
let ctx: BrowserContext | undefined;
let profile: string;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  b = await startTestBroker({ admin: { enabled: true, port: 0 } });
  profile = mkdtempSync(path.join(os.tmpdir(), 'tsp-docs-profile-'));
});

after(async () => {
  await ctx?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  await b?.stop();
});

test('/api/v1/docs renders the OpenAPI document and lists the operations', async () => {
  assert.ok(b.admin);
  const base = `http://127.0.0.1:${b.admin.port}`;
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    headless: true,
    viewport: { width: 1280, height: 900 },
  });
  ctx.setDefaultTimeout(20_000);
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  const foreign: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith('data:')) foreign.push(r.url());
  });

  const r = await page.goto(`${base}/api/v1/docs`);
  assert.equal(r?.status(), 200);
  assert.match(r?.headers()['content-security-policy'] ?? '', /script-src 'self'/, 'the usual policy applies');
  await page.waitForSelector('.opblock');
  const operations = await page.locator('.opblock').evaluateAll((els) =>
    els.map((e) => {
      const method = e.querySelector('.opblock-summary-method')?.textContent ?? '';
      const p = e.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? '';
      return `${method} ${p}`;
    }),
  );
  for (const op of ['GET /accounts', 'POST /tunnels/{id}/kill', 'GET /me', 'DELETE /tokens/{name}'])
    assert.ok(operations.includes(op), `${op} is listed (${operations.join(', ')})`);
  assert.ok(operations.length >= 15, `${operations.length} operations listed`);
  assert.match((await page.textContent('.info .title')) ?? '', /tsp-broker admin API/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'api-docs.png'), fullPage: false });
  assert.deepEqual(foreign, [], 'nothing is fetched from another origin');
  assert.deepEqual(problems, [], 'no script error and nothing blocked by the Content-Security-Policy');
});
