/** A separate process that allocates, for test/unit/cluster/allocation-processes.test.ts: it opens the PostgreSQL
 *  store as its own node, waits for "go" on stdin (so every process starts at once), then allocates for each
 *  account id given a link /64 and a /56 (router mode's two claims), and anonymous /64 leases, in two loops at
 *  once, as fast as it can, and prints what it got as JSON. */

import { openPostgresStore } from '../../src/store/open.js';

const [url, node, ids, leases] = process.argv.slice(2) as [string, string, string, string];
const store = await openPostgresStore({ url, nodeId: node, maxConnections: 4 });
await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
const got: { owner: string; pool: string; prefix: string; prefixLen: number }[] = [];
// two loops at once in each process (three processes): accounts' claims, and anonymous leases
await Promise.all([
  (async () => {
    for (const accountId of ids.split(',').map(Number))
      for (const [pool, poolPrefix, prefixLen] of [
        ['link', '2001:db8:f00::/48', 64],
        ['delegation', '2001:db8:f000::/40', 56],
      ] as const) {
        const a = await store.allocate({ pool, poolPrefix, prefixLen, owner: { accountId } });
        got.push({ owner: `account ${accountId}`, pool, prefix: a.prefix, prefixLen: a.prefixLen });
      }
  })(),
  (async () => {
    for (let i = 0; i < Number(leases); i++) {
      const leaseId = `${node}-lease-${i}`;
      const a = await store.allocate({
        pool: 'link',
        poolPrefix: '2001:db8:f00::/48',
        prefixLen: 64,
        owner: { leaseId },
      });
      got.push({ owner: leaseId, pool: 'link', prefix: a.prefix, prefixLen: a.prefixLen });
    }
  })(),
]);
await store.close();
process.stdout.write(JSON.stringify(got));
