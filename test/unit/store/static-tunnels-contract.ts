/** The StaticTunnelStore contract (store/static-types.ts), run on SQLite and, with TSP_TEST_PG_URL, on
 *  PostgreSQL: one static tunnel per account, host names unique without regard to case, the tunnels a start
 *  makes live (an endpoint, an enabled account), changes field by field, and the row gone with its account.
 *  Shares the database of the other contracts: its own usernames and host names. */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BrokerError } from '../../../src/errors.js';
import type { Store } from '../../../src/store/types.js';
import { newTunnel } from '../../helpers/rows.js';

export function staticTunnelsContract(name: string, open: () => Promise<Store>): void {
  describe(`StaticTunnelStore contract: ${name}`, () => {
    let store: Store;
    before(async () => {
      store = await open();
    });
    after(async () => {
      await store.close();
    });
    const account = (username: string) =>
      store.createAccount({
        username,
        role: 'user',
        passwordHash: `$argon2id$v=19$m=19456,t=2,p=1$${username}`,
        digestHa1: 'a'.repeat(32),
        digestRealm: 'tsp-broker',
      });
    const conflict = (e: unknown) => e instanceof BrokerError && e.code === 'STORE_CONFLICT';

    it('keeps one per account, host names unique in any case, found in any case', async () => {
      const a = await account('static-a');
      const b = await account('static-b');
      const st = await store.createStaticTunnel(
        { accountId: a.id, hostname: 'Home.Static-A', endpoint: null, delegatePrefix: true },
        1000,
      );
      assert.deepEqual(
        { ...st, id: 0 },
        {
          id: 0,
          accountId: a.id,
          username: 'static-a',
          hostname: 'home.static-a',
          endpoint: null,
          delegatePrefix: true,
          updateKeyHash: null,
          createdAt: 1000,
          updatedAt: 1000,
        },
      );
      await assert.rejects(
        store.createStaticTunnel({ accountId: a.id, hostname: 'other', endpoint: null, delegatePrefix: false }, 1),
        conflict,
      );
      await assert.rejects(
        store.createStaticTunnel(
          { accountId: b.id, hostname: 'HOME.static-a', endpoint: null, delegatePrefix: false },
          1,
        ),
        conflict,
      );
      assert.equal((await store.findStaticTunnel('HOME.STATIC-A'))?.id, st.id);
      assert.equal((await store.staticTunnelOf(a.id))?.id, st.id);
      assert.equal(await store.staticTunnelOf(b.id), undefined);
    });

    it('changes what it is given; a start finds those with an endpoint and an enabled account', async () => {
      const c = await account('static-c');
      const d = await account('static-d');
      const e = await account('static-e');
      const sc = await store.createStaticTunnel(
        { accountId: c.id, hostname: 'c', endpoint: '192.0.2.1', delegatePrefix: false },
        1,
      );
      await store.createStaticTunnel({ accountId: d.id, hostname: 'd', endpoint: null, delegatePrefix: false }, 1);
      await store.createStaticTunnel(
        { accountId: e.id, hostname: 'e', endpoint: '192.0.2.3', delegatePrefix: false },
        1,
      );
      await store.setDisabled(e.id, true);
      const active = (await store.activeStaticTunnels()).filter((s) => s.username.startsWith('static-'));
      assert.deepEqual(
        active.map((s) => s.hostname),
        ['c'],
      );
      await store.updateStaticTunnel(sc.id, { updateKeyHash: 'f'.repeat(64) }, 50);
      await store.updateStaticTunnel(sc.id, { endpoint: '192.0.2.9' }, 60);
      const got = await store.staticTunnelOf(c.id);
      assert.equal(got?.endpoint, '192.0.2.9');
      assert.equal(got?.updateKeyHash, 'f'.repeat(64), 'an endpoint change keeps the key');
      assert.equal(got?.updatedAt, 60);
      await assert.rejects(
        store.updateStaticTunnel(987654, { endpoint: '192.0.2.1' }, 1),
        (x: unknown) => x instanceof BrokerError && x.code === 'STORE_NOT_FOUND',
      );
    });

    it("moves a tunnel row's endpoint; deleting the account takes its static tunnel", async () => {
      const f = await account('static-f');
      const t = await store.createTunnel(
        newTunnel({ accountId: f.id, type: 'v6v4', transport: 'static', clientPort: 0 }),
        1,
      );
      await store.moveTunnelEndpoint(t.id, '203.0.113.44');
      const row = await store.getTunnel(t.id);
      assert.equal(row?.clientIpv4, '203.0.113.44');
      assert.equal(row?.transport, 'static');
      await store.endTunnel(t.id, 'deleted', 2);
      const st = await store.createStaticTunnel(
        { accountId: f.id, hostname: 'f', endpoint: null, delegatePrefix: false },
        1,
      );
      await store.deleteAccount(f.id);
      assert.equal(await store.findStaticTunnel('f'), undefined);
      assert.equal(await store.deleteStaticTunnel(st.id), false);
    });
  });
}
