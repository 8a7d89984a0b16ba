/** Several broker nodes on one PostgreSQL (cluster/, docs/cluster.md), in-process (MemoryDataPlane), on
 *  loopback: node-a on 127.0.36.1 and node-b on 127.0.36.2, the same port. tspc's own negotiate() is the
 *  client. What an operator and a client see: both nodes registered and alive, a drained node redirecting
 *  (TSP 1200 with the other node's address) and the client getting its tunnel there, one account on two nodes
 *  (the older tunnel ends on the other node at once), a kill or a disable made on one node reaching the node
 *  that carries the tunnel, capacity, and a restart restoring only the node's own tunnels. The sweep is off (the clock
 *  below runs no long interval), so only the nodes' messages can end a tunnel on another node. Needs
 *  TSP_TEST_PG_URL. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import ipaddr from 'ipaddr.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { NODE_ADDRESS, TestCluster, noSweep, until } from '../../helpers/cluster.js';
import { PG_SKIP } from '../../helpers/pg.js';
import type { RawConfig } from '../../../src/client/config.js';
import { BrokerError } from '../../../src/errors.js';
import { openPostgresStore } from '../../../src/store/open.js';
import { killTunnelInStore } from '../../../src/broker/tunnel-admin.js';

const A = NODE_ADDRESS.a;
const B = NODE_ADDRESS.b;

describe('cluster of two nodes', { skip: PG_SKIP }, () => {
  let c: TestCluster;
  const nodes = new Proxy({} as Record<'a' | 'b', TestBroker>, { get: (_t, k) => c.node(k as 'a' | 'b') });
  const start = (name: 'a' | 'b', cluster: Record<string, unknown> = {}) => c.start(name, { cluster });
  before(async () => {
    c = await TestCluster.create('tsp_cluster_test');
    await start('a');
    await start('b');
    await nodes.a.addUser('alice', 'correct horse');
    await nodes.a.addUser('bob', 'battery staple');
  });
  after(() => c?.close());

  const run = (server: string, raw: RawConfig = {}) => c.negotiate(server, raw);
  const rowOf = async (id: number) =>
    (
      await c.db.query<{ node: string; state: string; end_reason: string | null }>(
        'select node, state, end_reason from tunnels where id = $1',
        [id],
      )
    )[0]!;

  test('both nodes are registered and alive, each with the address its clients reach it on', async () => {
    await until(() => nodes.a.cluster!.node.nodes().length === 2, 5000);
    const seen = nodes.a.cluster!.node.nodes();
    assert.deepEqual(
      seen.map((n) => [n.name, n.ipv4, n.alive, n.draining]),
      [
        ['node-a', A, true, false],
        ['node-b', B, true, false],
      ],
    );
  });

  test('a drained node redirects new sessions (1200) to the live one, where the client gets its tunnel', async () => {
    // drained from outside the node, as `tsp-broker node drain` does: the node hears it through its messages
    const cli = await openPostgresStore({ url: c.db.url });
    try {
      assert.equal(await cli.setNodeDraining('node-a', true), true);
      assert.equal(await cli.setNodeDraining('node-x', true), false, 'no such node');
    } finally {
      await cli.close();
    }
    await until(() => nodes.a.cluster!.node.draining, 2000);
    await assert.rejects(run(A), (e: unknown) => {
      assert.ok(e instanceof BrokerError && e.code === 'CLIENT_REDIRECT', String(e));
      assert.deepEqual((e as { brokers?: string[] }).brokers, [B]);
      return true;
    });
    const n = await run(B);
    await until(() => nodes.b.broker.liveTunnels().some((t) => t.username === 'alice'), 3000);
    const t = nodes.b.broker.liveTunnels().find((x) => x.username === 'alice')!;
    assert.equal((await rowOf(t.id)).node, 'node-b', 'the tunnel row names the node that carries it');
    assert.equal(n.offer.serverIpv4, B);
    assert.equal(nodes.a.broker.liveTunnels().length, 0, 'nothing was reserved on the drained node');
  });

  test('the same account on the other node: the older tunnel ends on its node at once, the addresses stay', async () => {
    const cli = await openPostgresStore({ url: c.db.url });
    await cli.setNodeDraining('node-a', false).finally(() => cli.close());
    await until(() => !nodes.a.cluster!.node.draining, 2000);
    const onB = nodes.b.broker.liveTunnels().find((t) => t.username === 'alice')!;
    const n = await run(A);
    assert.equal(ipaddr.parse(n.offer.clientIpv6).toString(), onB.clientIpv6, 'the same link addresses on node-a');
    await until(() => nodes.a.broker.liveTunnels().some((t) => t.username === 'alice'), 3000);
    // well before any sweep (off here): the message did it
    await until(() => !nodes.b.broker.tunnels.has(onB.id), 1500);
    assert.deepEqual(await rowOf(onB.id), { node: 'node-b', state: 'ended', end_reason: 'replaced' });
  });

  test('a kill made on one node (or by the CLI) reaches the node that carries the tunnel', async () => {
    const onA = nodes.a.broker.liveTunnels().find((t) => t.username === 'alice')!;
    await nodes.b.broker.killTunnel(onA.id, 'admin');
    await until(() => !nodes.a.broker.tunnels.has(onA.id), 1500);
    assert.equal((await rowOf(onA.id)).end_reason, 'admin');
    // the CLI's path: the store opened on its own
    await run(A, { userid: 'bob', passwd: 'battery staple' });
    await until(() => nodes.a.broker.liveTunnels().some((t) => t.username === 'bob'), 3000);
    const bob = nodes.a.broker.liveTunnels().find((t) => t.username === 'bob')!;
    const cli = await openPostgresStore({ url: c.db.url });
    await killTunnelInStore(cli, bob.id, 'cli', Date.now()).finally(() => cli.close());
    await until(() => !nodes.a.broker.tunnels.has(bob.id), 1500);
    // an account disabled on the other node: its tunnel on node-a ends, with the disable's reason
    await run(A);
    await until(() => nodes.a.broker.liveTunnels().some((t) => t.username === 'alice'), 3000);
    const again = nodes.a.broker.liveTunnels().find((t) => t.username === 'alice')!;
    await nodes.b.accounts.setDisabled('admin', 'alice', true);
    await until(() => !nodes.a.broker.tunnels.has(again.id), 1500, "the disabled account's tunnel ended on node-a");
    assert.equal((await rowOf(again.id)).end_reason, 'account_disabled');
    await nodes.b.accounts.setDisabled('admin', 'alice', false);
  });

  test('over capacity, new sessions go to a node with room; a returning account stays', async () => {
    await c.stop('b');
    await start('b', { capacity: 1 });
    await run(B, { userid: 'bob', passwd: 'battery staple' });
    await until(() => nodes.b.broker.tunnels.size === 1, 3000);
    await assert.rejects(run(B), (e: unknown) => e instanceof BrokerError && e.code === 'CLIENT_REDIRECT');
    await run(B, { userid: 'bob', passwd: 'battery staple' }); // bob's own tunnel is here: replaced, not moved
    await until(() => nodes.b.broker.liveTunnels().filter((t) => t.username === 'bob').length === 1, 3000);
  });

  test('a second live broker with the same node name is refused at start, naming the key', async () => {
    await assert.rejects(
      startTestBroker(
        {
          listen: { address: '127.0.36.3', port: c.port },
          store: { driver: 'postgres', url: c.db.url },
          cluster: { nodeId: 'node-a', heartbeatS: 1, deadAfterS: 3 },
        } as never,
        { clock: noSweep },
      ),
      (e: unknown) => e instanceof BrokerError && /cluster\.nodeId: another live broker is node node-a/.test(e.message),
    );
    assert.equal(nodes.a.cluster!.node.nodes().find((n) => n.name === 'node-a')?.alive, true, 'node-a unharmed');
  });

  test('rows from before nodes were kept are adopted by the node whose address they name, only', async () => {
    const cli = await openPostgresStore({ url: c.db.url, nodeId: 'old' });
    const row = (server: string) =>
      cli.createTunnel(
        {
          accountId: null,
          leaseId: null,
          type: 'v6udpv4',
          transport: 'udp',
          clientIpv4: '198.51.100.40',
          clientPort: 4000 + Number(server.slice(-1)),
          serverIpv4: server,
          serverIpv6: '2001:db8:f00:99::1',
          clientIpv6: `2001:db8:f00:99::${server.slice(-1)}`,
          prefix: null,
          prefixLen: null,
          keepaliveInterval: 30,
          lifetimeS: 3600,
        },
        Date.now(),
      );
    const forB = await row(B);
    const forA = await row(A);
    for (const t of [forA, forB]) await cli.establishTunnel(t.id, Date.now());
    await cli.close();
    await c.db.query('update tunnels set node = null where id in ($1, $2)', [forA.id, forB.id]);
    await c.stop('b');
    await start('b');
    assert.ok(nodes.b.broker.tunnels.has(forB.id), 'node-b adopted and restored the row naming its address');
    assert.ok(!nodes.b.broker.tunnels.has(forA.id));
    assert.deepEqual(
      (
        await c.db.query<{ id: string; node: string | null }>(
          'select id::text, node from tunnels where id in ($1, $2) order by id',
          [forA.id, forB.id],
        )
      ).map((r) => r.node),
      forB.id < forA.id ? ['node-b', null] : [null, 'node-b'],
    );
    await nodes.b.broker.tunnels.end(forB.id, 'admin');
    await c.db.query("update tunnels set state = 'ended' where id = $1", [forA.id]);
  });

  test('static 6in4 tunnels are refused on a cluster, clearly (no node may take one over from another)', async () => {
    const account = (await nodes.a.store.getAccountSecrets('bob'))!;
    await assert.rejects(
      nodes.a.broker.statics.create('admin', account as never, { endpoint: '198.51.100.77' }),
      (e: unknown) => e instanceof BrokerError && e.code === 'STATIC_TUNNEL_CLUSTER',
    );
    assert.equal(await nodes.a.store.staticTunnelOf(account.id), undefined, 'nothing stored');
  });

  test('a node silent past deadAfterS is dead and no redirect target; restarted, it restores its own tunnels only', async () => {
    await run(A);
    await until(() => nodes.a.broker.tunnels.size === 1, 3000);
    const mine = nodes.b.broker.liveTunnels().map((t) => t.id);
    const theirs = nodes.a.broker.liveTunnels().map((t) => t.id);
    assert.ok(mine.length > 0 && theirs.length > 0);
    await c.stop('b');
    await until(() => nodes.a.cluster!.node.nodes().find((n) => n.name === 'node-b')?.alive === false, 6000);
    const cli = await openPostgresStore({ url: c.db.url });
    try {
      await cli.setNodeDraining('node-a', true);
      await until(() => nodes.a.cluster!.node.draining, 2000);
      // drained, and the only other node is dead: nowhere to go
      await assert.rejects(run(A), (e: unknown) => e instanceof BrokerError && e.code === 'CLIENT_BUSY');
      await start('b');
      assert.deepEqual(
        nodes.b.broker.liveTunnels().map((t) => t.id),
        mine,
      );
      assert.ok(
        theirs.every((id) => !nodes.b.broker.tunnels.has(id)),
        "node-a's tunnels stay node-a's",
      );
      // alive again: node-a sends clients there
      await until(() => nodes.a.cluster!.node.nodes().find((n) => n.name === 'node-b')?.alive === true, 3000);
      await assert.rejects(run(A), (e: unknown) => e instanceof BrokerError && e.code === 'CLIENT_REDIRECT');
      // and when node-b drains too, node-a hears of it at once and has nowhere to send anyone
      await cli.setNodeDraining('node-b', true);
      await until(() => nodes.a.cluster!.node.nodes().find((n) => n.name === 'node-b')?.draining === true, 1500);
      await assert.rejects(run(A), (e: unknown) => e instanceof BrokerError && e.code === 'CLIENT_BUSY');
    } finally {
      await cli.close();
    }
  });
});
