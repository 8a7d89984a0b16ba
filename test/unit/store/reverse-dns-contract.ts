/** Reverse-DNS delegation rows (schema version 7) on every dialect: a wish is stored and marked pending, what
 *  was published is recorded, a failed update stays pending, and a deleted account's row outlives it with no
 *  account, so the broker can still withdraw what it published (broker/reverse-dns.ts). `open()` returns a new
 *  handle on the same database each time (shared with the Store contract: these accounts are named rdns-*). */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KyselyStore } from '../../../src/store/kysely-store.js';
import { REVERSE_PENDING } from '../../../src/store/types.js';

export function reverseDnsContract(name: string, open: () => Promise<KyselyStore>): void {
  describe(`reverse DNS delegations: ${name}`, () => {
    let store: KyselyStore;
    before(async () => {
      store = await open();
    });
    after(async () => {
      await store.close();
    });
    const account = (username: string) =>
      store.createAccount({ username, role: 'user', passwordHash: 'x', digestHa1: null, digestRealm: null });

    it('stores a wish as pending, records what was published, and keeps a failure pending', async () => {
      const a = await account('rdns-a');
      assert.equal(await store.getReverseDelegation(a.id), undefined);
      const row = await store.setReverseServers(a.id, ['ns1.example.net', 'ns2.example.net'], 1000);
      assert.deepEqual(
        { servers: row.servers, published: row.published, error: row.error, accountId: row.accountId },
        { servers: ['ns1.example.net', 'ns2.example.net'], published: [], error: REVERSE_PENDING, accountId: a.id },
      );
      assert.ok((await store.pendingReverseDelegations(100)).some((r) => r.id === row.id));

      await store.markReverseDelegation(row.id, ['0.0.1.0.8.b.d.0.1.0.0.2.ip6.arpa'], null, 2000);
      const done = await store.getReverseDelegation(a.id);
      assert.deepEqual(done?.published, ['0.0.1.0.8.b.d.0.1.0.0.2.ip6.arpa']);
      assert.equal(done?.error, null);
      assert.ok(!(await store.pendingReverseDelegations(100)).some((r) => r.id === row.id));

      // a second wish updates the same row and is pending again; a failure keeps it pending with the reason
      const again = await store.setReverseServers(a.id, [], 3000);
      assert.equal(again.id, row.id);
      assert.deepEqual(again.servers, []);
      assert.equal(again.error, REVERSE_PENDING, 'a new wish is pending until its update goes through');
      assert.deepEqual(again.published, ['0.0.1.0.8.b.d.0.1.0.0.2.ip6.arpa'], 'published names are kept');
      await store.markReverseDelegation(row.id, again.published, 'server answered REFUSED', 4000);
      const failed = (await store.pendingReverseDelegations(100)).find((r) => r.id === row.id);
      assert.equal(failed?.error, 'server answered REFUSED');
    });

    it("keeps a deleted account's row without its account, until it is deleted itself", async () => {
      const b = await account('rdns-b');
      const row = await store.setReverseServers(b.id, ['ns.example.org'], 1000);
      await store.markReverseDelegation(row.id, ['1.0.8.b.d.0.1.0.0.2.ip6.arpa'], null, 1500);
      await store.deleteAccount(b.id);
      const orphan = (await store.pendingReverseDelegations(100)).find((r) => r.id === row.id);
      assert.deepEqual(
        { accountId: orphan?.accountId, published: orphan?.published },
        { accountId: null, published: ['1.0.8.b.d.0.1.0.0.2.ip6.arpa'] },
      );
      await store.deleteReverseDelegation(row.id);
      assert.ok(!(await store.pendingReverseDelegations(100)).some((r) => r.id === row.id));
    });
  });
}
