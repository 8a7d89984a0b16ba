/** Link blocks in shared-64 mode (pools.linkMode 'shared-64': a /126 per tunnel owner, broker/pools.ts
 *  linkLeaseLength), on every dialect: what the store hands out becomes a server and a client /128 each
 *  (linkAddresses), and those must be inside the pool and never given to two owners, from chunks (anonymous
 *  leases) and from the buddy allocator (accounts) alike; an account keeps its block; a released block is given
 *  again; a full pool refuses with POOL_EXHAUSTED, which TSP answers 301. `open()` returns a new handle on the
 *  same database each time (shared with the Store contract: these tests use pools under fd0d::/16). */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import ipaddr from 'ipaddr.js';
import { BrokerError } from '../../../src/errors.js';
import { linkAddresses, linkLeaseLength } from '../../../src/broker/pools.js';
import type { KyselyStore } from '../../../src/store/kysely-store.js';
import type { AllocateRequest, Allocation } from '../../../src/store/types.js';
import { overlaps, parsePrefix } from '../../../src/store/prefix.js';
import { CHUNK_BITS } from '../../../src/store/lease-chunks.js';

const LEASE = linkLeaseLength('shared-64');

export function sharedLinkContract(name: string, open: () => Promise<KyselyStore>): void {
  describe(`shared-64 link blocks: ${name}`, () => {
    let store: KyselyStore;
    before(async () => {
      store = await open();
    });
    after(async () => {
      await store.close();
    });

    const anonymous = (poolPrefix: string, leaseId: string): AllocateRequest => ({
      pool: 'link',
      poolPrefix,
      prefixLen: LEASE,
      owner: { leaseId },
    });
    const ofAccount = (poolPrefix: string, accountId: number, prefixLen = LEASE): AllocateRequest => ({
      pool: 'link',
      poolPrefix,
      prefixLen,
      owner: { accountId },
    });
    const account = async (username: string) =>
      (
        await store.createAccount({
          username,
          role: 'user',
          passwordHash: `$argon2id$v=19$m=19456,t=2,p=1$${username}`,
          digestHa1: 'a'.repeat(32),
          digestRealm: 'tsp-broker',
        })
      ).id;

    it('many owners share each /64: every server and client /128 is inside the pool and given once', async () => {
      const pool = 'fd0d:1::/64';
      const got: Allocation[] = [];
      // more than one chunk's worth of anonymous leases, and accounts between them
      for (let i = 0; i < 300; i++) got.push(await store.allocate(anonymous(pool, `shared-anon-${i}`)));
      for (let i = 0; i < 5; i++) got.push(await store.allocate(ofAccount(pool, await account(`shared64-a${i}`))));
      assert.ok(got.every((a) => a.prefixLen === 126));
      const addresses = got.flatMap((a) => Object.values(linkAddresses(a.prefix)));
      const p = parsePrefix(pool);
      for (const address of addresses)
        assert.ok(overlaps(parsePrefix(`${address}/128`), p), `${address} is inside the pool ${pool}`);
      assert.equal(new Set(addresses.map(canonical)).size, addresses.length, 'no address is given twice');
      assertDisjoint(got);
      for (let i = 0; i < 300; i++) assert.equal(await store.releaseLease(`shared-anon-${i}`), 1);
    });

    it('an account keeps its /126 across requests and handles; another length replaces it (a mode switch)', async () => {
      const pool = 'fd0d:2::/48';
      const id = await account('shared64-sticky');
      const first = await store.allocate(ofAccount(pool, id));
      assert.deepEqual(await store.allocate(ofAccount(pool, id)), first, 'the same block again');
      const other = await open();
      try {
        assert.deepEqual(await other.allocate(ofAccount(pool, id)), first, 'the same block after a restart');
      } finally {
        await other.close();
      }
      // per-account-64 -> shared-64 on one database: a /64 still held by a live anonymous tunnel is not cut up
      const held = await store.allocate({ ...anonymous(pool, 'shared-switch-held'), prefixLen: 64 });
      const id2 = await account('shared64-switch');
      const old = await store.allocate(ofAccount(pool, id2, 64));
      const renumbered = await store.allocate(ofAccount(pool, id2));
      assert.equal(renumbered.prefixLen, 126, "the account's /64 became a /126");
      assert.notDeepEqual(renumbered, old);
      const blockOf = (a: Allocation) => parsePrefix(`${a.prefix}/${a.prefixLen}`);
      assert.ok(!overlaps(blockOf(renumbered), blockOf(held)), 'nothing new inside a block still held');
      assert.equal(await store.releaseLease('shared-switch-held'), 1);
    });

    it('a full pool refuses with POOL_EXHAUSTED (TSP 301); a released /126 is given again', async () => {
      const pool = 'fd0d:3::/124'; // four /126s: too few for chunks, so the buddy allocator serves them
      const got: Allocation[] = [];
      for (let i = 0; i < 4; i++) got.push(await store.allocate(anonymous(pool, `shared-full-${i}`)));
      assertDisjoint(got);
      const refusal = await store.allocate(anonymous(pool, 'shared-full-4')).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(refusal instanceof BrokerError && refusal.code === 'POOL_EXHAUSTED', String(refusal));
      assert.deepEqual(refusal.tspStatus, { code: 301, text: 'No more tunnels available' });
      assert.equal(await store.releaseLease('shared-full-2'), 1);
      const again = await store.allocate(anonymous(pool, 'shared-full-5'));
      assert.equal(again.prefix, got[2]!.prefix, 'the only free /126 is the released one');
      for (const l of [0, 1, 3, 5]) assert.equal(await store.releaseLease(`shared-full-${l}`), 1);
    });

    it("a mode change gives back the node's empty chunks cut for the other length, and only those", async () => {
      const pool = 'fd0d:4::/40';
      const chunks = (len: number) =>
        store.transaction((trx) =>
          trx
            .selectFrom('allocations')
            .selectAll()
            .where('pool_prefix', '=', pool)
            .where('lease_id', 'like', 'chunk:%')
            .where('prefix_len', '=', len - CHUNK_BITS)
            .execute(),
        );
      // the broker in per-account-64 mode (and some /126 leases, as the other mode cuts them)
      const old = await open();
      try {
        for (let i = 0; i < 300; i++) await old.allocate({ ...anonymous(pool, `switch-64-${i}`), prefixLen: 64 });
        for (let i = 0; i < 20; i++) await old.allocate(anonymous(pool, `switch-126-${i}`));
      } finally {
        await old.close();
      }
      const before64 = await chunks(64);
      const before126 = await chunks(LEASE);
      assert.ok(before64.length >= 2 && before126.length >= 1, `${before64.length} and ${before126.length} chunks`);
      // started again in shared-64 mode, with one /64 tunnel still live: its chunk stays
      const restarted = await open();
      try {
        const kept = await restarted.transaction((trx) =>
          trx
            .selectFrom('allocations')
            .select(['lease_id', 'chunk_id'])
            .where('chunk_id', '=', before64[0]!.id)
            .limit(1)
            .executeTakeFirstOrThrow(),
        );
        for (let i = 0; i < 300; i++)
          if (`switch-64-${i}` !== kept.lease_id) await restarted.releaseLease(`switch-64-${i}`);
        // the current mode's chunks empty too: kept all the same, for the leases to come
        for (let i = 0; i < 20; i++) assert.equal(await restarted.releaseLease(`switch-126-${i}`), 1);
        assert.equal(await restarted.releaseOtherChunks(pool, LEASE), before64.length - 1);
        assert.deepEqual(
          (await chunks(64)).map((c) => c.id),
          [kept.chunk_id],
          'the chunk a live lease names is kept',
        );
        assert.equal((await chunks(LEASE)).length, before126.length, "the current mode's chunks are kept");
        assert.equal(await restarted.releaseOtherChunks(pool, LEASE), 0, 'nothing more to give back');
        assert.equal(await restarted.releaseLease(kept.lease_id!), 1);
      } finally {
        await restarted.close();
      }
    });
  });
}

function canonical(address: string): string {
  return ipaddr.parse(address).toString();
}

function assertDisjoint(blocks: Allocation[]): void {
  const ps = blocks.map((b) => parsePrefix(`${b.prefix}/${b.prefixLen}`));
  ps.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  for (let i = 1; i < ps.length; i++) assert.ok(!overlaps(ps[i - 1]!, ps[i]!), 'disjoint blocks');
}
