/** The nodes page in real Chromium (Debian's, through playwright-core) on a cluster of two in-process nodes
 *  sharing one PostgreSQL (test/helpers/cluster.ts): an admin signed in on node-a sees both nodes alive, drains
 *  node-b with its button (node-b then redirects a real TSP client to node-a), sees it marked draining, and
 *  undrains it; the tunnel list shows which node carries a tunnel. Needs TSP_TEST_PG_URL. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { eventually } from '../helpers/clients.js';
import { NODE_ADDRESS, TestCluster } from '../helpers/cluster.js';
import { PG_SKIP } from '../helpers/pg.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run'];

describe('the nodes page', { skip: PG_SKIP }, () => {
  let c: TestCluster;
  let ctx: BrowserContext | undefined;
  let profile: string | undefined;
  let base: string;
  before(async () => {
    c = await TestCluster.create('tsp_nodes_ui');
    const a = await c.start('a', { admin: { enabled: true, address: '127.0.0.1', port: 0 } });
    await c.start('b');
    await a.addUser('root', 'root-password', 'admin');
    await a.addUser('alice', 'correct horse');
    base = `http://127.0.0.1:${a.admin!.port}`;
  });
  after(async () => {
    await ctx?.close().catch(() => undefined);
    if (profile) rmSync(profile, { recursive: true, force: true });
    await c?.close();
  });

  async function browser(): Promise<Page> {
    profile = mkdtempSync(path.join(os.tmpdir(), 'tsp-ui-profile-'));
    ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS, headless: true });
    ctx.setDefaultTimeout(15_000);
    return ctx.pages()[0] ?? (await ctx.newPage());
  }

  test('an admin drains and undrains a node from the page; the tunnel list names the node', async () => {
    assert.ok(await eventually(() => c.node('a').cluster!.node.nodes().length === 2, 5000), 'node-a sees node-b');
    const page = await browser();
    await page.goto(`${base}/login`);
    await page.fill('#username', 'root');
    await page.fill('#password', 'root-password');
    await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('button[type=submit]')]);
    await page.click('nav >> text=Nodes');
    await page.waitForURL(/\/nodes$/);
    const row = (name: string) => page.locator(`tr[data-node="${name}"]`);
    assert.match((await row('node-a').textContent()) ?? '', /node-a\s*\(this one\)\s*alive/);
    assert.match((await row('node-b').textContent()) ?? '', /alive/);
    assert.doesNotMatch((await row('node-b').textContent()) ?? '', /draining/);

    await Promise.all([page.waitForURL(/done=drained/), row('node-b').locator('button:has-text("Drain")').click()]);
    assert.match((await page.textContent('.flash')) ?? '', /Node node-b is draining/);
    assert.match((await row('node-b').textContent()) ?? '', /draining/);
    assert.ok(await eventually(() => c.node('b').cluster!.node.draining, 1500), 'node-b heard it');
    await assert.rejects(c.negotiate(NODE_ADDRESS.b), /redirects to 127\.0\.36\.1/);

    await Promise.all([page.waitForURL(/done=undrained/), row('node-b').locator('button:has-text("Undrain")').click()]);
    assert.doesNotMatch((await row('node-b').textContent()) ?? '', /draining/);
    assert.ok(await eventually(() => !c.node('b').cluster!.node.draining, 1500), 'node-b heard it');

    await c.negotiate(NODE_ADDRESS.b);
    assert.ok(await eventually(() => c.node('b').broker.tunnels.size === 1, 3000));
    await page.goto(`${base}/tunnels`);
    assert.equal(await page.textContent('[data-testid=node]'), 'on node-b');
  });
});
