/** Operators and a cluster of two nodes on one PostgreSQL (in-process, loopback; test/helpers/cluster.ts): the
 *  REST API on one node lists both nodes and drains the other, which hears it at once; the tunnel list shows
 *  which node carries each tunnel; `tsp-broker node list|drain|undrain|forget` as a separate process does the
 *  same from the command line, with clear errors for an unknown node and for a SQLite store. Needs
 *  TSP_TEST_PG_URL. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NODE_ADDRESS, TestCluster, until } from '../../helpers/cluster.js';
import { PG_SKIP } from '../../helpers/pg.js';
import { TokenService } from '../../../src/admin/tokens.js';

const CLI = path.resolve('src/cli/tsp-broker.ts');
const TSX = import.meta.resolve('tsx');

/** The CLI as a separate process, without blocking this one's event loop (the nodes run in it). */
function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-node-cli-'));
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', TSX, CLI, ...args], {
      cwd: dir,
      env: { ...process.env, TSP_BROKER_CONFIG: path.join(dir, 'none.json') },
      timeout: 30_000,
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.on('error', reject);
    p.on('close', (status) => {
      rmSync(dir, { recursive: true, force: true });
      resolve({ status, stdout, stderr });
    });
  });
}

describe('operators and a cluster', { skip: PG_SKIP }, () => {
  let c: TestCluster;
  let token: string;
  let api: (method: string, p: string) => Promise<{ status: number; body: unknown }>;
  before(async () => {
    c = await TestCluster.create('tsp_cluster_ops');
    // heartbeats every 4 s: a drain seen within 1.5 s came by message
    const slow = { heartbeatS: 4, deadAfterS: 12 };
    const a = await c.start('a', { admin: { enabled: true, address: '127.0.0.1', port: 0 }, cluster: slow });
    await c.start('b', { cluster: slow });
    await a.addUser('alice', 'correct horse');
    token = (await new TokenService(a.store).create('test', 'ops')).token;
    api = async (method, p) => {
      const r = await fetch(`http://127.0.0.1:${a.admin!.port}/api/v1${p}`, {
        method,
        headers: { authorization: `Bearer ${token}` },
      });
      return { status: r.status, body: r.status === 204 ? null : await r.json() };
    };
  });
  after(() => c?.close());

  test('the API lists both nodes, drains the other one (it redirects at once) and says which node carries a tunnel', async () => {
    await until(() => c.node('a').cluster!.node.nodes().length === 2, 12_000);
    const list = await api('GET', '/nodes');
    assert.equal(list.status, 200);
    const body = list.body as {
      clustered: boolean;
      self: string;
      items: { name: string; alive: boolean; ipv4: string }[];
    };
    assert.equal(body.clustered, true);
    assert.equal(body.self, 'node-a');
    assert.deepEqual(
      body.items.map((n) => [n.name, n.alive, n.ipv4]),
      [
        ['node-a', true, NODE_ADDRESS.a],
        ['node-b', true, NODE_ADDRESS.b],
      ],
    );
    assert.equal((await api('POST', '/nodes/node-b/drain')).status, 204);
    await until(() => c.node('b').cluster!.node.draining, 1500);
    await assert.rejects(c.negotiate(NODE_ADDRESS.b), /redirects to 127\.0\.36\.1/);
    assert.equal((await api('POST', '/nodes/node-x/drain')).status, 404);
    assert.equal((await api('POST', '/nodes/bad%20name/drain')).status, 400);
    assert.equal((await api('POST', '/nodes/node-b/undrain')).status, 204);
    await until(() => !c.node('b').cluster!.node.draining, 1500);
    // a tunnel on node-b, listed by node-a's API with its node
    await c.negotiate(NODE_ADDRESS.b);
    await until(() => c.node('b').broker.tunnels.size === 1, 3000);
    const tunnels = await api('GET', '/tunnels');
    const items = (tunnels.body as { items: { username: string; node: string }[] }).items;
    assert.deepEqual(
      items.map((t) => [t.username, t.node]),
      [['alice', 'node-b']],
      "node-a's live list holds node-b's tunnel",
    );
    const audit = await api('GET', '/audit?action=node.drain');
    assert.equal((audit.body as { items: { target: string }[] }).items[0]?.target, 'node-b');
  });

  test('tsp-broker node list, drain, undrain and forget; clear errors for an unknown node and a SQLite store', async () => {
    const url = ['--db-url', c.db.url];
    const list = await cli(['node', 'list', ...url]);
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /^NODE\tSTATUS\tDRAINING\tTUNNELS/);
    assert.match(list.stdout, /\nnode-a\talive\tno\t/);
    assert.match(list.stdout, /\nnode-b\talive\tno\t\d+\t-\t127\.0\.36\.2\t/); // tunnels as of its last heartbeat
    const drain = await cli(['node', 'drain', 'node-a', ...url]);
    assert.equal(drain.status, 0, drain.stderr);
    await until(() => c.node('a').cluster!.node.draining, 1500);
    await assert.rejects(c.negotiate(NODE_ADDRESS.a), /redirects to 127\.0\.36\.2/);
    const metrics = await (
      await fetch(`http://127.0.0.1:${c.node('a').admin!.port}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      })
    ).text();
    for (const line of [
      'tsp_cluster_nodes{state="alive"} 2',
      'tsp_cluster_nodes{state="draining"} 1',
      'tsp_cluster_draining 1',
      'tsp_cluster_messages_connected 1',
      'tsp_sessions_total{transport="udp",mechanism="PLAIN",result="redirected"} 1',
    ])
      assert.ok(metrics.includes(`\n${line}\n`), `${line} in /metrics`);
    const json = JSON.parse((await cli(['node', 'list', '--json', ...url])).stdout) as {
      name: string;
      draining: boolean;
    }[];
    assert.deepEqual(
      json.map((n) => [n.name, n.draining]),
      [
        ['node-a', true],
        ['node-b', false],
      ],
    );
    assert.equal((await cli(['node', 'undrain', 'node-a', ...url])).status, 0);
    await until(() => !c.node('a').cluster!.node.draining, 1500);
    const unknown = await cli(['node', 'drain', 'node-x', ...url]);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /no node named node-x/);
    const sqlite = await cli(['node', 'list', '--db', path.join(os.tmpdir(), 'nope.db')]);
    assert.equal(sqlite.status, 2);
    assert.match(sqlite.stderr, /store\.driver: node commands need the shared PostgreSQL store/);
    // a node gone for good: forgotten, its tunnels end (refused while it still looks alive, unless --force)
    const alive = await cli(['node', 'forget', 'node-a', ...url]);
    assert.equal(alive.status, 1);
    assert.match(alive.stderr, /node node-a is alive .* stop it first, or --force/);
    await c.stop('b');
    // a clean stop says so at once: no more redirects to it, and it can be forgotten without --force
    assert.match((await cli(['node', 'list', ...url])).stdout, /\nnode-b\tstopped\t/);
    const forget = await cli(['node', 'forget', 'node-b', ...url]);
    assert.equal(forget.status, 0, forget.stderr);
    assert.match(forget.stdout, /node node-b forgotten; 1 tunnel\(s\) it carried ended/);
    assert.doesNotMatch((await cli(['node', 'list', ...url])).stdout, /node-b/);
    const rows = await c.db.query<{ state: string; end_reason: string }>(
      "select state, end_reason from tunnels where node = 'node-b'",
    );
    assert.deepEqual(rows, [{ state: 'ended', end_reason: 'shutdown' }]);
  });
});
