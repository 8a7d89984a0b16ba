/** Several broker nodes on one PostgreSQL (cluster/, docs/cluster.md), in-process (MemoryDataPlane), on
 *  loopback: node-a on 127.0.36.1 and node-b on 127.0.36.2, the same port. tspc's own negotiate() is the
 *  client. What an operator and a client see: both nodes registered and alive, a drained node redirecting
 *  (TSP 1200 with the other node's address) and the client getting its tunnel there, one account on two nodes
 *  (the older tunnel ends on the other node at once), a kill made on one node reaching the node that carries
 *  the tunnel, capacity, and a restart restoring only the node's own tunnels. The sweep is off (the clock
 *  below runs no long interval), so only the nodes' messages can end a tunnel on another node. Needs
 *  TSP_TEST_PG_URL. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import ipaddr from 'ipaddr.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { eventually } from '../../helpers/clients.js';
import { PG_SKIP, createTempDatabase, type TempDatabase } from '../../helpers/pg.js';
import { resolveConfig, type RawConfig } from '../../../src/client/config.js';
import { negotiate } from '../../../src/client/negotiate.js';
import { silentLog } from '../../../src/client/log.js';
import { systemClock, type Clock } from '../../../src/clock.js';
import { BrokerError } from '../../../src/errors.js';
import { openPostgresStore } from '../../../src/store/open.js';
import { killTunnelInStore } from '../../../src/broker/tunnel-admin.js';

const A = '127.0.36.1';
const B = '127.0.36.2';

/** Node's clock with the sweep (every 5 s here) switched off; the 1 s heartbeat runs. */
const noSweep: Clock = {
  ...systemClock,
  setInterval: (fn, ms, o) => (ms >= 5000 ? { cancel: () => undefined } : systemClock.setInterval(fn, ms, o)),
};

async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, A, resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe('cluster of two nodes', { skip: PG_SKIP }, () => {
  let db: TempDatabase;
  let port: number;
  const nodes: Record<string, TestBroker> = {};
  const start = async (name: 'a' | 'b', extra: Record<string, unknown> = {}) => {
    nodes[name] = await startTestBroker(
      {
        listen: { address: name === 'a' ? A : B, port },
        store: { driver: 'postgres', url: db.url },
        cluster: { nodeId: `node-${name}`, heartbeatS: 1, deadAfterS: 3, ...extra },
        tunnels: { idleMinS: 60 },
      } as never,
      { clock: noSweep },
    );
  };
  before(async () => {
    db = await createTempDatabase('tsp_cluster_test');
    port = await freePort();
    await start('a');
    await start('b');
    await nodes.a!.addUser('alice', 'correct horse');
    await nodes.a!.addUser('bob', 'battery staple');
  });
  after(async () => {
    for (const n of Object.values(nodes)) await n.stop().catch(() => undefined);
    await db?.drop();
  });

  const run = (server: string, raw: RawConfig = {}) => {
    const { config } = resolveConfig({
      server: `${server}:${port}`,
      tunnel_mode: 'v6udpv4',
      auth_method: 'plain',
      userid: 'alice',
      passwd: 'correct horse',
      ...raw,
    });
    return negotiate(config, config.server, silentLog);
  };
  const rowOf = async (id: number) =>
    (
      await db.query<{ node: string; state: string; end_reason: string | null }>(
        'select node, state, end_reason from tunnels where id = $1',
        [id],
      )
    )[0]!;

  test('both nodes are registered and alive, each with the address its clients reach it on', async () => {
    await eventually(() => nodes.a!.cluster!.node.nodes().length === 2, 5000);
    const seen = nodes.a!.cluster!.node.nodes();
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
    const cli = await openPostgresStore({ url: db.url });
    try {
      assert.equal(await cli.setNodeDraining('node-a', true), true);
      assert.equal(await cli.setNodeDraining('node-x', true), false, 'no such node');
    } finally {
      await cli.close();
    }
    await eventually(() => nodes.a!.cluster!.node.draining, 2000);
    await assert.rejects(run(A), (e: unknown) => {
      assert.ok(e instanceof BrokerError && e.code === 'CLIENT_REDIRECT', String(e));
      assert.deepEqual((e as { brokers?: string[] }).brokers, [B]);
      return true;
    });
    const n = await run(B);
    await eventually(() => nodes.b!.broker.liveTunnels().some((t) => t.username === 'alice'), 3000);
    const t = nodes.b!.broker.liveTunnels().find((x) => x.username === 'alice')!;
    assert.equal((await rowOf(t.id)).node, 'node-b', 'the tunnel row names the node that carries it');
    assert.equal(n.offer.serverIpv4, B);
    assert.equal(nodes.a!.broker.liveTunnels().length, 0, 'nothing was reserved on the drained node');
  });

  test('the same account on the other node: the older tunnel ends on its node at once, the addresses stay', async () => {
    const cli = await openPostgresStore({ url: db.url });
    await cli.setNodeDraining('node-a', false).finally(() => cli.close());
    await eventually(() => !nodes.a!.cluster!.node.draining, 2000);
    const onB = nodes.b!.broker.liveTunnels().find((t) => t.username === 'alice')!;
    const n = await run(A);
    assert.equal(ipaddr.parse(n.offer.clientIpv6).toString(), onB.clientIpv6, 'the same link addresses on node-a');
    await eventually(() => nodes.a!.broker.liveTunnels().some((t) => t.username === 'alice'), 3000);
    // well before any sweep (off here): the message did it
    await eventually(() => !nodes.b!.broker.tunnels.has(onB.id), 1500);
    assert.deepEqual(await rowOf(onB.id), { node: 'node-b', state: 'ended', end_reason: 'replaced' });
  });

  test('a kill made on one node (or by the CLI) reaches the node that carries the tunnel', async () => {
    const onA = nodes.a!.broker.liveTunnels().find((t) => t.username === 'alice')!;
    await nodes.b!.broker.killTunnel(onA.id, 'admin');
    await eventually(() => !nodes.a!.broker.tunnels.has(onA.id), 1500);
    assert.equal((await rowOf(onA.id)).end_reason, 'admin');
    // the CLI's path: the store opened on its own
    await run(A, { userid: 'bob', passwd: 'battery staple' });
    await eventually(() => nodes.a!.broker.liveTunnels().some((t) => t.username === 'bob'), 3000);
    const bob = nodes.a!.broker.liveTunnels().find((t) => t.username === 'bob')!;
    const cli = await openPostgresStore({ url: db.url });
    await killTunnelInStore(cli, bob.id, 'cli', Date.now()).finally(() => cli.close());
    await eventually(() => !nodes.a!.broker.tunnels.has(bob.id), 1500);
  });

  test('over capacity, new sessions go to a node with room; a returning account stays', async () => {
    await nodes.b!.stop();
    await start('b', { capacity: 1 });
    await run(B, { userid: 'bob', passwd: 'battery staple' });
    await eventually(() => nodes.b!.broker.tunnels.size === 1, 3000);
    await assert.rejects(run(B), (e: unknown) => e instanceof BrokerError && e.code === 'CLIENT_REDIRECT');
    await run(B, { userid: 'bob', passwd: 'battery staple' }); // bob's own tunnel is here: replaced, not moved
    await eventually(() => nodes.b!.broker.liveTunnels().filter((t) => t.username === 'bob').length === 1, 3000);
  });

  test('a node silent past deadAfterS is dead and no redirect target; restarted, it restores its own tunnels only', async () => {
    await run(A);
    await eventually(() => nodes.a!.broker.tunnels.size === 1, 3000);
    const mine = nodes.b!.broker.liveTunnels().map((t) => t.id);
    const theirs = nodes.a!.broker.liveTunnels().map((t) => t.id);
    assert.ok(mine.length > 0 && theirs.length > 0);
    await nodes.b!.stop();
    await eventually(() => nodes.a!.cluster!.node.nodes().find((n) => n.name === 'node-b')?.alive === false, 6000);
    const cli = await openPostgresStore({ url: db.url });
    try {
      await cli.setNodeDraining('node-a', true);
      await eventually(() => nodes.a!.cluster!.node.draining, 2000);
      // drained, and the only other node is dead: nowhere to go
      await assert.rejects(run(A), (e: unknown) => e instanceof BrokerError && e.code === 'CLIENT_BUSY');
      await start('b');
      assert.deepEqual(
        nodes.b!.broker.liveTunnels().map((t) => t.id),
        mine,
      );
      assert.ok(
        theirs.every((id) => !nodes.b!.broker.tunnels.has(id)),
        "node-a's tunnels stay node-a's",
      );
      // alive again: node-a sends clients there
      await eventually(() => nodes.a!.cluster!.node.nodes().find((n) => n.name === 'node-b')?.alive === true, 3000);
      await assert.rejects(run(A), (e: unknown) => e instanceof BrokerError && e.code === 'CLIENT_REDIRECT');
      // and when node-b drains too, node-a hears of it at once and has nowhere to send anyone
      await cli.setNodeDraining('node-b', true);
      await eventually(() => nodes.a!.cluster!.node.nodes().find((n) => n.name === 'node-b')?.draining === true, 1500);
      await assert.rejects(run(A), (e: unknown) => e instanceof BrokerError && e.code === 'CLIENT_BUSY');
    } finally {
      await cli.close();
    }
  });
});
