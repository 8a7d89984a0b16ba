/** The /me page's Reverse DNS card in real Chromium (Debian's /usr/bin/chromium, playwright-core), against a real
 *  Knot DNS server: an account holder with a delegated prefix types two name servers, saves, and sees them
 *  delegated, which the DNS server confirms; a name inside a reverse tree is refused with the reason on the
 *  page, and the delegation stays as it was. */

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type BrowserContext } from 'playwright-core';
import { reverseZoneNames } from '../../src/dns/reverse.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { haveKnot, startKnot, type Knot } from '../helpers/knot.js';
import { runSession } from '../helpers/tsp.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run'];
const MORE_ARGS = ['--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ZONE = '0.f.8.b.d.0.1.0.0.2.ip6.arpa';
const KEY = { name: 'tsp-broker', algorithm: 'hmac-sha256' as const, secret: Buffer.alloc(32, 5).toString('base64') };
const ARTIFACTS = path.resolve('artifacts');

let knot: Knot | undefined;
let b: TestBroker | undefined;
let ctx: BrowserContext | undefined;
const profile = mkdtempSync(path.join(os.tmpdir(), 'tsp-ui-rdns-'));

before(async () => {
  if (!haveKnot()) return;
  knot = await startKnot({ zone: ZONE, key: KEY });
  b = await startTestBroker({
    admin: { enabled: true, port: 0 },
    reverseDns: { server: '127.0.0.1', port: knot.port, zone: ZONE, tsig: KEY },
  });
});
after(async () => {
  await ctx?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  await b?.stop();
  await knot?.stop();
});

test('an account holder delegates their reverse zone from /me', { skip: !haveKnot() && 'needs knotd' }, async () => {
  const broker = b!;
  await broker.addUser('wanda', 'wanda-password');
  const s = await runSession({
    transport: 'udp',
    port: broker.ports.udp,
    auth: { mechanism: 'PLAIN', username: 'wanda', password: 'wanda-password' },
    prefixLength: 48,
  });
  assert.equal(s.createStatus, 200);
  const [name] = reverseZoneNames(s.offer!.prefix!.address, 48);

  mkdirSync(ARTIFACTS, { recursive: true });
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: [...ARGS, ...MORE_ARGS],
    headless: true,
  });
  ctx.setDefaultTimeout(15_000);
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const base = `http://127.0.0.1:${broker.admin!.port}`;
  await page.goto(`${base}/login`);
  await page.fill('#username', 'wanda');
  await page.fill('#password', 'wanda-password');
  await Promise.all([page.waitForURL(/\/me$/), page.click('button[type=submit]')]);
  assert.match((await page.textContent('#rdns-state')) ?? '', /is not delegated/);

  await page.fill('#reverse-dns textarea[name=servers]', 'ns1.example.net\nns2.example.net');
  await Promise.all([page.waitForURL(/done=rdns/), page.click('#reverse-dns button[type=submit]')]);
  assert.match((await page.textContent('.flash')) ?? '', /Reverse DNS name servers saved/);
  assert.match((await page.textContent('#rdns-state')) ?? '', new RegExp(`Delegated: ${name!.replace(/\./g, '\\.')}`));
  assert.deepEqual(await knot!.ns(name!), ['ns1.example.net', 'ns2.example.net']);
  await page.screenshot({ path: path.join(ARTIFACTS, 'reverse-dns.png'), fullPage: true });

  await page.fill('#reverse-dns textarea[name=servers]', 'ns.1.0.8.b.d.0.1.0.0.2.ip6.arpa');
  const refused = await Promise.all([page.waitForResponse(/\/me\/reverse-dns/), page.click('#reverse-dns button')]);
  assert.equal(refused[0].status(), 400);
  assert.match((await page.textContent('body')) ?? '', /inside a reverse tree/);
  assert.deepEqual(await knot!.ns(name!), ['ns1.example.net', 'ns2.example.net'], 'unchanged');
});
