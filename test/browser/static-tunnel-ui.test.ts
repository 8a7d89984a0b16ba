/** The static 6in4 tunnel card in real Chromium (Debian's /usr/bin/chromium driven by playwright-core) on the
 *  self-service listener of a real broker: the account holder signs in, creates the tunnel, sets its
 *  endpoint, makes an update key (the confirmation prompt answered), sees the key once and the ddclient
 *  example carrying it, and the key then moves the endpoint through /nic/update. A screenshot of the card
 *  goes to artifacts/. Browser and broker are closed in after hooks even when a step fails. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';

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

let b: TestBroker;
let ctx: BrowserContext | undefined;
const profile = mkdtempSync(path.join(os.tmpdir(), 'tsp-ui-profile-'));

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  b = await startTestBroker({
    admin: { enabled: true, port: 0, publicTspHost: 'tsp.example.net' },
    selfService: { enabled: true, address: '127.0.0.1', port: 0 },
    // the update comes from 127.0.0.1 and names a documentation address
    staticTunnels: { endpointFromSource: false },
  });
  await b.addUser('holder', 'holder-password');
});

after(async () => {
  await ctx?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  await b?.stop();
});

test('an account holder sets up a static tunnel and its update key on /me', async () => {
  const base = `http://127.0.0.1:${b.selfService!.port}`;
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    viewport: { width: 1280, height: 900 },
  });
  ctx.setDefaultTimeout(15_000);
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on('dialog', (d) => void d.accept());

  await page.goto(`${base}/`);
  await page.fill('#username', 'holder');
  await page.fill('#password', 'holder-password');
  await Promise.all([page.waitForURL((u) => u.pathname === '/me'), page.click('button[type=submit]')]);

  await page.fill('#create-static input[name=hostname]', 'cabin');
  await Promise.all([page.waitForURL(/done=staticcreated/), page.click('#create-static button[type=submit]')]);
  await page.fill('#static-endpoint input[name=endpoint]', '198.51.100.40');
  await Promise.all([page.waitForURL(/done=staticendpoint/), page.click('#static-endpoint button[type=submit]')]);
  const details = await page.textContent('#static-details');
  assert.match(details ?? '', /198\.51\.100\.40/);
  assert.match(details ?? '', /live/);

  await Promise.all([page.waitForURL(/\/me\/static-tunnel\/update-key$/), page.click('#static-new-key button')]);
  const key = (await page.textContent('#static-key-value'))?.trim() ?? '';
  assert.match(key, /^tspu_/);
  assert.match((await page.textContent('#ddclient-conf')) ?? '', new RegExp(`password='${key}'`));
  assert.match((await page.textContent('#ddclient-conf')) ?? '', /server=tsp\.example\.net:PORT/);
  await page.locator('#static-tunnel').screenshot({ path: path.join(ARTIFACTS, 'static-tunnel-card.png') });

  const r = await fetch(`${base}/nic/update?hostname=cabin&myip=198.51.100.41`, {
    headers: { authorization: `Basic ${Buffer.from(`holder:${key}`).toString('base64')}` },
  });
  assert.equal((await r.text()).trim(), 'good 198.51.100.41');
  await page.goto(`${base}/me`);
  assert.match((await page.textContent('#static-details')) ?? '', /198\.51\.100\.41/);
  assert.equal(await page.locator('#static-key-value').count(), 0, 'the key is shown only once');
});
