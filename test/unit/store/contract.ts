/** The Store contract suite (docs/style.md §5): every Store implementation runs it, and only that counts as done.
 *  `open()` must return a new handle on the same database each time it is called (the suite reopens it and runs
 *  two handles side by side); the database is empty before the first call. Tests share that database, so each
 *  uses its own usernames, lease ids, pool prefixes and audit actors, and asserts only on what it created. */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BrokerError, type ErrorCode } from '../../../src/errors.js';
import type { AllocateRequest, Allocation, NewAccount, Store } from '../../../src/store/types.js';
import { overlaps, parsePrefix, type Prefix } from '../../../src/store/prefix.js';
import { newTunnel } from '../../helpers/rows.js';

export function storeContract(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    before(async () => {
      store = await open();
    });
    after(async () => {
      await store.close();
    });

    describe('settings', () => {
      it('keeps the first value set and tells every starter that value', async () => {
        assert.equal(await store.getSetting('pool.link'), undefined);
        const other = await open();
        try {
          const [a, b] = await Promise.all([
            store.setSettingIfAbsent('pool.link', 'fd11::/48'),
            other.setSettingIfAbsent('pool.link', 'fd22::/48'),
          ]);
          assert.equal(a, b);
          assert.equal(await store.setSettingIfAbsent('pool.link', 'fd33::/48'), a);
          assert.equal(await other.getSetting('pool.link'), a);
        } finally {
          await other.close();
        }
      });
    });

    describe('schema', () => {
      it('reopens an existing database without losing data or failing on applied migrations', async () => {
        const acc = await store.createAccount(newAccount('reopen-user'));
        for (let i = 0; i < 2; i++) {
          const again = await open();
          try {
            assert.deepEqual(await again.getAccount(acc.id), acc);
          } finally {
            await again.close();
          }
        }
      });
    });

    describe('batch', () => {
      it('commits every call of a batch together, and none of them when it fails', async () => {
        const lease = 'batch-lease-1';
        const done = await store.batch(async (tx) => {
          const a = await tx.createAccount(newAccount('batch-ok'));
          const block = await tx.allocate({
            pool: 'link',
            poolPrefix: 'fd00:ba7c::/48',
            prefixLen: 64,
            owner: { leaseId: lease },
          });
          await tx.batch(async (inner) => inner.setDisabled(a.id, true)); // a nested batch joins the outer one
          // the batch's store reads the batch's own writes, before they commit
          assert.equal((await tx.getAccount(a.id))?.disabled, true);
          return { a, block };
        });
        assert.equal((await store.getAccount(done.a.id))?.disabled, true);
        assert.equal(await store.releaseLease(lease), 1);

        await assert.rejects(
          store.batch(async (tx) => {
            await tx.createAccount(newAccount('batch-undone'));
            await tx.allocate({
              pool: 'link',
              poolPrefix: 'fd00:ba7d::/64',
              prefixLen: 64,
              owner: { leaseId: 'batch-lease-2' },
            });
            await tx.allocate({
              pool: 'link',
              poolPrefix: 'fd00:ba7d::/64',
              prefixLen: 64,
              owner: { leaseId: 'batch-lease-3' },
            });
          }),
          (e: BrokerError) => e.code === 'POOL_EXHAUSTED',
        );
        assert.equal(await store.getAccountSecrets('batch-undone'), undefined, 'the account was rolled back');
        assert.equal(await store.releaseLease('batch-lease-2'), 0, 'so was the first allocation');
        const again = await store.allocate({
          pool: 'link',
          poolPrefix: 'fd00:ba7d::/64',
          prefixLen: 64,
          owner: { leaseId: 'batch-lease-4' },
        });
        assert.equal(again.prefix, 'fd00:ba7d::', 'the block is free again');
      });

      it('keeps other writers out until it commits, and they go on afterwards', async () => {
        const results = await Promise.all([
          store.batch(async (tx) => {
            const a = await tx.createAccount(newAccount('batch-first'));
            await tx.setDisabled(a.id, true);
            return a.id;
          }),
          store.createAccount(newAccount('batch-second')),
        ]);
        assert.equal((await store.getAccount(results[0]))?.disabled, true);
        assert.equal((await store.getAccount(results[1].id))?.username, 'batch-second');
      });

      it("refuses a batch's store once its batch has ended", async () => {
        let kept: Store | undefined;
        await store.batch(async (tx) => {
          kept = tx;
          await tx.createAccount(newAccount('batch-kept'));
        });
        await assert.rejects(kept!.createAccount(newAccount('batch-late')), /after its batch ended/);
        await assert.rejects(kept!.getAccountSecrets('batch-kept'), /after its batch ended/);
        assert.equal(await store.getAccountSecrets('batch-late'), undefined);
        assert.equal((await store.getAccountSecrets('batch-kept'))?.username, 'batch-kept');
      });

      const checks = process.env.TSP_STORE_CHECKS === '1' || 'needs TSP_STORE_CHECKS=1, which npm test sets';
      it(
        'refuses a call on the store itself from inside a batch (TSP_STORE_CHECKS)',
        { skip: checks !== true && checks },
        async () => {
          // such a call would run outside the batch's transaction (on SQLite a write waits behind the batch for good)
          await assert.rejects(
            store.batch(async () => {
              await store.createAccount(newAccount('batch-bypassed'));
            }),
            /was called on the store inside a batch/,
          );
          assert.equal(await store.getAccountSecrets('batch-bypassed'), undefined);
        },
      );
    });

    describe('accounts', () => {
      it('creates, reads, updates and deletes an account', async () => {
        const created = await store.createAccount({
          ...newAccount('crud-alice'),
          role: 'admin',
          limits: { maxPrefixLen: 60 },
        });
        assert.equal(created.username, 'crud-alice');
        assert.equal(created.role, 'admin');
        assert.equal(created.disabled, false);
        assert.deepEqual(created.limits, { maxPrefixLen: 60 });
        assert.ok(created.createdAt > 0 && created.updatedAt === created.createdAt);
        assert.deepEqual(await store.getAccount(created.id), created);

        const secrets = await store.getAccountSecrets('crud-alice');
        assert.equal(secrets?.passwordHash, '$argon2id$v=19$m=19456,t=2,p=1$crud-alice');
        assert.equal(secrets?.digestHa1, 'a'.repeat(32));
        assert.equal(secrets?.digestRealm, 'tsp-broker');
        assert.equal(secrets?.id, created.id);
        assert.equal(await store.getAccountSecrets('CRUD-ALICE'), undefined, 'usernames match exactly');

        await store.setPassword(created.id, {
          passwordHash: '$argon2id$new',
          digestHa1: 'b'.repeat(32),
          digestRealm: 'r2',
        });
        await store.setDisabled(created.id, true);
        await store.setLimits(created.id, { tunnelTypes: ['v6udpv4'], minPrefixLen: 56 });
        const updated = await store.getAccountSecrets('crud-alice');
        assert.equal(updated?.passwordHash, '$argon2id$new');
        assert.equal(updated?.digestHa1, 'b'.repeat(32));
        assert.equal(updated?.digestRealm, 'r2');
        assert.equal(updated?.disabled, true);
        assert.deepEqual(updated?.limits, { tunnelTypes: ['v6udpv4'], minPrefixLen: 56 });
        assert.ok((updated?.updatedAt ?? 0) >= created.updatedAt);
        await store.setDisabled(created.id, false);
        assert.equal((await store.getAccount(created.id))?.disabled, false);

        await store.deleteAccount(created.id);
        assert.equal(await store.getAccount(created.id), undefined);
        assert.equal(await store.getAccountSecrets('crud-alice'), undefined);
      });

      it('refuses a duplicate username with STORE_CONFLICT, also when two handles race', async () => {
        await store.createAccount(newAccount('dup-bob'));
        await rejectsWith(store.createAccount(newAccount('dup-bob')), 'STORE_CONFLICT');
        const other = await open();
        try {
          const results = await Promise.allSettled([
            store.createAccount(newAccount('dup-carol')),
            other.createAccount(newAccount('dup-carol')),
          ]);
          assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
          const failure = results.find((r) => r.status === 'rejected');
          assert.equal((failure?.reason as BrokerError).code, 'STORE_CONFLICT');
        } finally {
          await other.close();
        }
      });

      it('keeps no DIGEST-MD5 secret for a web-only account, across password changes, until given one', async () => {
        const web = await store.createAccount({
          ...newAccount('web-only-wendy'),
          role: 'admin',
          digestHa1: null,
          digestRealm: null,
        });
        assert.equal(web.webOnly, true);
        assert.equal((await store.createAccount(newAccount('tsp-tom'))).webOnly, false);
        let secrets = await store.getAccountSecrets('web-only-wendy');
        assert.deepEqual([secrets?.digestHa1, secrets?.digestRealm, secrets?.webOnly], [null, null, true]);
        assert.equal(secrets?.passwordHash, '$argon2id$v=19$m=19456,t=2,p=1$web-only-wendy');

        await store.setPassword(web.id, { passwordHash: '$argon2id$second', digestHa1: null, digestRealm: null });
        secrets = await store.getAccountSecrets('web-only-wendy');
        assert.deepEqual(
          [secrets?.passwordHash, secrets?.digestHa1, secrets?.webOnly],
          ['$argon2id$second', null, true],
        );
        assert.equal((await store.listAccounts({ search: 'web-only-wendy' })).items[0]?.webOnly, true);

        await store.setPassword(web.id, {
          passwordHash: '$argon2id$third',
          digestHa1: 'c'.repeat(32),
          digestRealm: 'r',
        });
        assert.equal((await store.getAccount(web.id))?.webOnly, false);
        await store.setPassword(web.id, { passwordHash: '$argon2id$fourth', digestHa1: null, digestRealm: null });
        secrets = await store.getAccountSecrets('web-only-wendy');
        assert.deepEqual([secrets?.digestHa1, secrets?.digestRealm, secrets?.webOnly], [null, null, true]);

        await rejectsWith(store.createAccount({ ...newAccount('web-only-half'), digestHa1: null }), 'INTERNAL');
        await rejectsWith(
          store.setPassword(web.id, { passwordHash: 'x', digestHa1: 'd'.repeat(32), digestRealm: null }),
          'INTERNAL',
        );
        assert.equal(await store.getAccountSecrets('web-only-half'), undefined);
      });

      it('answers STORE_NOT_FOUND for updates and deletes of a missing id', async () => {
        const missing = 987_654;
        await rejectsWith(
          store.setPassword(missing, { passwordHash: 'x', digestHa1: 'y', digestRealm: 'z' }),
          'STORE_NOT_FOUND',
        );
        await rejectsWith(store.setDisabled(missing, true), 'STORE_NOT_FOUND');
        await rejectsWith(store.setLimits(missing, {}), 'STORE_NOT_FOUND');
        await rejectsWith(store.deleteAccount(missing), 'STORE_NOT_FOUND');
        assert.equal(await store.getAccount(missing), undefined);
      });

      it('lists accounts by case-insensitive substring, in pages, with the total', async () => {
        const names = Array.from({ length: 12 }, (_, i) => `List-Dora-${String(i).padStart(2, '0')}`);
        for (const n of names) await store.createAccount(newAccount(n));
        await store.createAccount(newAccount('list-x%y_z'));
        await store.createAccount(newAccount('list-xAyBz'));

        const first = await store.listAccounts({ search: 'list-dora', limit: 5 });
        assert.equal(first.total, 12);
        assert.deepEqual(
          first.items.map((a) => a.username),
          names.slice(0, 5),
        );
        const last = await store.listAccounts({ search: 'LIST-DORA-', offset: 10, limit: 5 });
        assert.equal(last.total, 12);
        assert.deepEqual(
          last.items.map((a) => a.username),
          names.slice(10),
        );
        // % and _ are literal characters in the search, not wildcards.
        const literal = await store.listAccounts({ search: 'x%y_z' });
        assert.deepEqual(
          literal.items.map((a) => a.username),
          ['list-x%y_z'],
        );
        assert.equal((await store.listAccounts({ search: 'no-such-user-anywhere' })).total, 0);
        const all = await store.listAccounts({});
        assert.ok(all.total >= 14 && all.items.length <= 100);
      });
    });

    describe('allocation', () => {
      it('gives an account the same block every time, also after reopening', async () => {
        const acc = await store.createAccount(newAccount('sticky-erin'));
        const req: AllocateRequest = {
          pool: 'delegation',
          poolPrefix: 'fd00:100::/40',
          prefixLen: 56,
          owner: { accountId: acc.id },
        };
        const first = await store.allocate(req);
        assertBlock(first, 'fd00:100::/40', 56);
        assert.equal(first.accountId, acc.id);
        assert.equal(first.leaseId, null);
        assert.deepEqual(await store.allocate(req), first);
        // Someone else gets a different block.
        const other = await store.createAccount(newAccount('sticky-frank'));
        const theirs = await store.allocate({ ...req, owner: { accountId: other.id } });
        assert.notEqual(theirs.prefix, first.prefix);

        const reopened = await open();
        try {
          assert.deepEqual(await reopened.allocate(req), first);
          assert.deepEqual(await reopened.findAllocation(acc.id, 'delegation'), first);
          assert.equal(await reopened.findAllocation(acc.id, 'link'), undefined);
        } finally {
          await reopened.close();
        }
      });

      it('replaces an account block of another length in the same pool', async () => {
        const acc = await store.createAccount(newAccount('relen-gina'));
        const base = { pool: 'delegation' as const, poolPrefix: 'fd00:200::/40', owner: { accountId: acc.id } };
        const a56 = await store.allocate({ ...base, prefixLen: 56 });
        const a48 = await store.allocate({ ...base, prefixLen: 48 });
        assertBlock(a48, 'fd00:200::/40', 48);
        assert.notEqual(a48.id, a56.id);
        assert.deepEqual(await store.findAllocation(acc.id, 'delegation'), a48);
        assert.equal(usageOf(await store.poolUsage(), 'fd00:200::/40'), 1, 'the /56 was released');
        // The /56 went back to the pool: a /48 over where it was can be had (the pool's other /48s are free too,
        // so fill the pool with /48s and check none is refused but the one held).
        const got = await fillWith(store, 'fd00:200::/40', 48, 'relen-fill');
        assert.equal(got.length, 255);
      });

      it('tells the block an account holds as allocate would give it, without a write', async () => {
        const acc = await store.createAccount(newAccount('held-hana'));
        const req = { pool: 'link' as const, poolPrefix: 'fd00:250::/40', prefixLen: 64, owner: { accountId: acc.id } };
        assert.equal(await store.heldBlock(req), undefined, 'none before the first allocation');
        const block = await store.allocate(req);
        assert.deepEqual(await store.heldBlock(req), block);
        assert.equal(await store.heldBlock({ ...req, prefixLen: 60 }), undefined, 'allocate would replace it');
        assert.deepEqual(await store.heldBlock({ ...req, prefixLen: 60, keepHeld: true }), block);
        assert.equal(await store.heldBlock({ ...req, poolPrefix: 'fd00:251::/40' }), undefined, 'another pool');
        assert.equal(usageOf(await store.poolUsage(), 'fd00:250::/40'), 1);
      });

      it('answers POOL_EXHAUSTED, naming pool and length, when no block is free; a release frees one', async () => {
        const pool = 'fd00:300::/62';
        const got = await fillWith(store, pool, 64, 'exhaust');
        assert.equal(got.length, 4);
        assert.deepEqual(
          got.map((a) => a.prefix).sort(),
          ['fd00:300::', 'fd00:300:0:1::', 'fd00:300:0:2::', 'fd00:300:0:3::'].sort(),
        );
        await assert.rejects(
          store.allocate({ pool: 'link', poolPrefix: pool, prefixLen: 64, owner: { leaseId: 'exhaust-more' } }),
          (e: unknown) =>
            e instanceof BrokerError &&
            e.code === 'POOL_EXHAUSTED' &&
            e.message.includes(pool) &&
            e.message.includes('/64'),
        );
        await rejectsWith(
          store.allocate({ pool: 'link', poolPrefix: pool, prefixLen: 63, owner: { leaseId: 'exhaust-63' } }),
          'POOL_EXHAUSTED',
        );
        assert.equal(await store.releaseLease('exhaust-2'), 1);
        const again = await store.allocate({
          pool: 'link',
          poolPrefix: pool,
          prefixLen: 64,
          owner: { leaseId: 'exhaust-more' },
        });
        assert.equal(again.prefix, got[2]?.prefix);
      });

      it('never lets blocks of mixed lengths overlap, allocated concurrently in random order', async () => {
        const pool = 'fd00:400::/44';
        const lengths = shuffle(
          [...Array<number>(10).fill(48), ...Array<number>(300).fill(56), ...Array<number>(200).fill(64)],
          44,
        );
        const results = await Promise.allSettled(
          lengths.map((prefixLen, i) =>
            store.allocate({ pool: 'delegation', poolPrefix: pool, prefixLen, owner: { leaseId: `mixed-${i}` } }),
          ),
        );
        const blocks = results.map((r) => {
          assert.equal(r.status, 'fulfilled', r.status === 'rejected' ? String(r.reason) : '');
          return (r as PromiseFulfilledResult<Allocation>).value;
        });
        blocks.forEach((b, i) => assertBlock(b, pool, lengths[i] ?? -1));
        assertDisjoint(blocks);
      });

      it('fills a pool with mixed lengths to the last block, refusing only lengths that truly no longer fit', async () => {
        // A /46 holds four /48s, i.e. 1024 /56s: three /48s plus 300 /56s cannot all fit.
        const pool = 'fd00:500::/46';
        const lengths = shuffle([48, 48, 48, ...Array<number>(300).fill(56), 64, 64], 46);
        const results = await Promise.allSettled(
          lengths.map((prefixLen, i) =>
            store.allocate({ pool: 'delegation', poolPrefix: pool, prefixLen, owner: { leaseId: `fill-${i}` } }),
          ),
        );
        const blocks: Allocation[] = [];
        const refused = new Set<number>();
        results.forEach((r, i) => {
          if (r.status === 'fulfilled') blocks.push(r.value);
          else {
            assert.equal((r.reason as BrokerError).code, 'POOL_EXHAUSTED', String(r.reason));
            refused.add(lengths[i] ?? -1);
          }
        });
        assertDisjoint(blocks);
        assert.ok(refused.size > 0, 'something had to be refused');
        const taken = blocks.map((b) => parsePrefix(`${b.prefix}/${b.prefixLen}`));
        const poolP = parsePrefix(pool);
        for (const len of refused) {
          const size = 1n << BigInt(128 - len);
          for (let s = poolP.start; s < poolP.start + (1n << BigInt(128 - poolP.len)); s += size) {
            assert.ok(
              taken.some((t) => overlaps(t, { start: s, len })),
              `a /${len} was refused while ${s.toString(16)}/${len} is free`,
            );
          }
        }
      });

      it('never gives one block to two owners when two handles allocate at once', async () => {
        const other = await open();
        try {
          const pool = 'fd00:600::/56';
          const results = await Promise.all(
            Array.from({ length: 120 }, (_, i) =>
              (i % 2 === 0 ? store : other).allocate({
                pool: 'link',
                poolPrefix: pool,
                prefixLen: 64,
                owner: { leaseId: `two-${i}` },
              }),
            ),
          );
          assert.equal(new Set(results.map((a) => a.prefix)).size, 120);
          assertDisjoint(results);
          assert.equal(usageOf(await other.poolUsage(), pool), 120);
        } finally {
          await other.close();
        }
      });

      it('ends two racing sessions of one account with one allocation', async () => {
        const acc = await store.createAccount(newAccount('race-hank'));
        const other = await open();
        try {
          const req: AllocateRequest = {
            pool: 'link',
            poolPrefix: 'fd00:700::/48',
            prefixLen: 64,
            owner: { accountId: acc.id },
          };
          const results = await Promise.all([
            store.allocate(req),
            other.allocate(req),
            store.allocate(req),
            other.allocate(req),
          ]);
          assert.equal(new Set(results.map((r) => r.id)).size, 1);
          assert.equal(usageOf(await store.poolUsage(), 'fd00:700::/48'), 1);
        } finally {
          await other.close();
        }
      });

      it('allocates 1000 distinct /64s from a /48', async () => {
        // How fast is a benchmark's question (npm run bench:control), never a pass/fail test's.
        const got = await fillWith(store, 'fd00:800::/48', 64, 'speed', 1000);
        assert.equal(new Set(got.map((a) => a.prefix)).size, 1000);
      });

      it('releases every block of a lease and reports how many', async () => {
        const link = await store.allocate({
          pool: 'link',
          poolPrefix: 'fd00:900::/62',
          prefixLen: 64,
          owner: { leaseId: 'lease-ivy' },
        });
        const deleg = await store.allocate({
          pool: 'delegation',
          poolPrefix: 'fd00:901::/48',
          prefixLen: 48,
          owner: { leaseId: 'lease-ivy' },
        });
        assertBlock(link, 'fd00:900::/62', 64);
        assert.equal(deleg.prefix, 'fd00:901::');
        assert.equal(deleg.leaseId, 'lease-ivy');
        assert.equal(await store.releaseLease('lease-ivy'), 2);
        assert.equal(await store.releaseLease('lease-ivy'), 0);
        assert.equal(usageOf(await store.poolUsage(), 'fd00:901::/48'), 0);
        // The whole /48 pool is free again: a /48 (the pool itself) and then nothing else fits.
        const whole = await store.allocate({
          pool: 'delegation',
          poolPrefix: 'fd00:901::/48',
          prefixLen: 48,
          owner: { leaseId: 'lease-jay' },
        });
        assert.equal(whole.prefix, 'fd00:901::');
        await rejectsWith(
          store.allocate({
            pool: 'delegation',
            poolPrefix: 'fd00:901::/48',
            prefixLen: 64,
            owner: { leaseId: 'lease-kim' },
          }),
          'POOL_EXHAUSTED',
        );
      });

      it('canonicalises the pool text and refuses bad requests', async () => {
        const a = await store.allocate({
          pool: 'link',
          poolPrefix: 'FD00:0A00:0000::/48',
          prefixLen: 64,
          owner: { leaseId: 'canon' },
        });
        assertBlock(a, 'fd00:a00::/48', 64);
        assert.ok((await store.poolUsage()).some((u) => u.poolPrefix === 'fd00:a00::/48'));
        await rejectsWith(
          store.allocate({ pool: 'link', poolPrefix: 'fd00:a00::1/48', prefixLen: 64, owner: { leaseId: 'bad' } }),
          'CFG_INVALID',
        );
        await rejectsWith(
          store.allocate({ pool: 'link', poolPrefix: 'fd00:a00::/48', prefixLen: 40, owner: { leaseId: 'bad' } }),
          'CFG_INVALID',
        );
        await rejectsWith(
          store.allocate({ pool: 'link', poolPrefix: '10.0.0.0/8', prefixLen: 16, owner: { leaseId: 'bad' } }),
          'CFG_INVALID',
        );
      });

      it('hands out /128s from a /64 (shared link mode)', async () => {
        const got = await fillWith(store, 'fd00:b00::/64', 128, 'host', 5);
        assert.equal(got.length, 5);
        for (const a of got) assertBlock(a, 'fd00:b00::/64', 128);
        assertDisjoint(got);
      });
    });

    describe('tunnels', () => {
      it('runs a tunnel through offered, established and ended, with counters', async () => {
        const acc = await store.createAccount(newAccount('tun-lena'));
        const t = await store.createTunnel(
          newTunnel({ accountId: acc.id, prefix: '2001:DB8:0F01:0000::', prefixLen: 56 }),
          1000,
        );
        assert.equal(t.state, 'offered');
        assert.equal(t.username, 'tun-lena');
        assert.equal(t.prefix, '2001:db8:f01::');
        assert.equal(t.prefixLen, 56);
        assert.equal(t.createdAt, 1000);
        assert.deepEqual(
          [t.establishedAt, t.endedAt, t.endReason, t.lastSeenAt, t.rxPackets, t.rxBytes, t.txPackets, t.txBytes],
          [null, null, null, null, 0, 0, 0, 0],
        );
        assert.deepEqual(await store.getTunnel(t.id), t);

        await store.establishTunnel(t.id, 2000);
        await store.establishTunnel(t.id, 2500); // idempotent
        let got = await store.getTunnel(t.id);
        assert.equal(got?.state, 'established');
        assert.equal(got?.establishedAt, 2000);

        await store.updateCounters([
          { id: t.id, rxPackets: 10, rxBytes: 1000, txPackets: 20, txBytes: 2000, lastSeenAt: 3000 },
          { id: 9_999_999, rxPackets: 1, rxBytes: 1, txPackets: 1, txBytes: 1, lastSeenAt: 1 },
        ]);
        await store.updateCounters([
          { id: t.id, rxPackets: 11, rxBytes: 1100, txPackets: 2 ** 40, txBytes: 2 ** 50, lastSeenAt: null },
        ]);
        got = await store.getTunnel(t.id);
        assert.deepEqual(
          [got?.rxPackets, got?.rxBytes, got?.txPackets, got?.txBytes, got?.lastSeenAt],
          [11, 1100, 2 ** 40, 2 ** 50, 3000],
        );
        await store.updateCounters([]);

        await store.endTunnel(t.id, 'idle', 4000);
        await store.endTunnel(t.id, 'admin', 5000); // idempotent: the first end stays
        got = await store.getTunnel(t.id);
        assert.deepEqual([got?.state, got?.endedAt, got?.endReason], ['ended', 4000, 'idle']);
        await rejectsWith(store.establishTunnel(t.id, 6000), 'STORE_CONFLICT');
      });

      it('writes final counters with the end, also for a tunnel that had already ended', async () => {
        const acct = await store.createAccount(newAccount('tun-final'));
        const t = await store.createTunnel(newTunnel({ accountId: acct.id }), 1000);
        await store.updateCounters([
          { id: t.id, rxPackets: 1, rxBytes: 2, txPackets: 3, txBytes: 4, lastSeenAt: 1500 },
        ]);
        const final = { rxPackets: 10, rxBytes: 2 ** 40, txPackets: 30, txBytes: 40, lastSeenAt: null };
        await store.endTunnel(t.id, 'replaced', 2000, final);
        let got = await store.getTunnel(t.id);
        assert.deepEqual(
          [got?.state, got?.endReason, got?.endedAt, got?.rxPackets, got?.rxBytes, got?.txBytes, got?.lastSeenAt],
          ['ended', 'replaced', 2000, 10, 2 ** 40, 40, 1500],
          'a null lastSeenAt keeps the stored one',
        );
        await store.endTunnel(t.id, 'admin', 3000, { ...final, rxPackets: 11, lastSeenAt: 2500 });
        got = await store.getTunnel(t.id);
        assert.deepEqual([got?.endReason, got?.endedAt, got?.rxPackets, got?.lastSeenAt], ['replaced', 2000, 11, 2500]);
        await rejectsWith(store.endTunnel(8_888_888, 'admin', 1, final), 'STORE_NOT_FOUND');
      });

      it('answers STORE_NOT_FOUND for unknown tunnels and unknown accounts', async () => {
        assert.equal(await store.getTunnel(8_888_888), undefined);
        await rejectsWith(store.establishTunnel(8_888_888, 1), 'STORE_NOT_FOUND');
        await rejectsWith(store.endTunnel(8_888_888, 'admin', 1), 'STORE_NOT_FOUND');
        await rejectsWith(store.createTunnel(newTunnel({ accountId: 7_777_777 }), 1), 'STORE_NOT_FOUND');
      });

      it('keeps an anonymous tunnel with its lease and no username', async () => {
        const t = await store.createTunnel(
          newTunnel({ accountId: null, leaseId: 'anon-lease-1', type: 'v6v4', transport: 'tcp', clientPort: 0 }),
          10,
        );
        assert.deepEqual(
          [t.accountId, t.username, t.leaseId, t.type, t.transport, t.clientPort],
          [null, null, 'anon-lease-1', 'v6v4', 'tcp', 0],
        );
        assert.deepEqual([t.prefix, t.prefixLen], [null, null]);
        assert.deepEqual(await store.getTunnel(t.id), t, 'the record returned is the one stored');
      });

      it("records a v6v4 tunnel's client port as 0, whatever port its session came from", async () => {
        const v6v4 = await store.createTunnel(newTunnel({ type: 'v6v4', clientPort: 40001 }), 11);
        const udp = await store.createTunnel(newTunnel({ type: 'v6udpv4', clientPort: 40001 }), 11);
        assert.equal(v6v4.clientPort, 0);
        assert.deepEqual(await store.getTunnel(v6v4.id), v6v4, 'the record returned is the one stored');
        assert.equal(udp.clientPort, 40001);
      });

      it('filters tunnel lists by state, live, type and account, newest first, in pages', async () => {
        const acc = await store.createAccount(newAccount('list-tun-mia'));
        const other = await store.createAccount(newAccount('list-tun-ned'));
        const ids: number[] = [];
        for (let i = 0; i < 6; i++) {
          const t = await store.createTunnel(
            newTunnel({ accountId: acc.id, type: i % 2 === 0 ? 'v6udpv4' : 'v6v4' }),
            100 + i,
          );
          ids.push(t.id);
        }
        await store.createTunnel(newTunnel({ accountId: other.id }), 200);
        const [t0, t1, t2, t3] = ids as [number, number, number, number];
        await store.establishTunnel(t1, 110);
        await store.establishTunnel(t2, 110);
        await store.endTunnel(t2, 'replaced', 120);
        await store.endTunnel(t3, 'not_accepted', 120);
        void t0;

        const all = await store.listTunnels({ accountId: acc.id });
        assert.equal(all.total, 6);
        assert.deepEqual(
          all.items.map((t) => t.id),
          [...ids].reverse(),
        );
        assert.ok(all.items.every((t) => t.username === 'list-tun-mia'));
        const live = await store.listTunnels({ accountId: acc.id, state: 'live' });
        assert.deepEqual(
          live.items.map((t) => t.id).sort((a, b) => a - b),
          [ids[0], ids[1], ids[4], ids[5]],
        );
        // liveTunnels: every offered or established tunnel of every account, by id, with the username
        const everyLive = (await store.liveTunnels()).filter((t) => t.accountId === acc.id);
        assert.deepEqual(
          everyLive.map((t) => t.id),
          [ids[0], ids[1], ids[4], ids[5]],
        );
        assert.ok(everyLive.every((t) => t.username === 'list-tun-mia' && t.state !== 'ended'));
        // a page at a time (as a restart reads them): after an id, at most `limit`, the same tunnels in the end
        const paged: number[] = [];
        for (let afterId = ids[0]! - 1, n = 0; n < 10; n++) {
          const page = await store.liveTunnels({ afterId, limit: 2 });
          assert.ok(page.length <= 2);
          paged.push(...page.filter((t) => t.accountId === acc.id).map((t) => t.id));
          if (page.length < 2) break;
          afterId = page[page.length - 1]!.id;
        }
        assert.deepEqual(paged, [ids[0], ids[1], ids[4], ids[5]]);
        const ended = await store.listTunnels({ accountId: acc.id, state: 'ended' });
        assert.deepEqual(
          ended.items.map((t) => t.id).sort((a, b) => a - b),
          [t2, t3],
        );
        const established = await store.listTunnels({ accountId: acc.id, state: 'established' });
        assert.deepEqual(
          established.items.map((t) => t.id),
          [t1],
        );
        const v6v4 = await store.listTunnels({ accountId: acc.id, type: 'v6v4' });
        assert.deepEqual(
          v6v4.items.map((t) => t.id),
          [ids[5], ids[3], ids[1]],
        );
        const pageTwo = await store.listTunnels({ accountId: acc.id, limit: 4, offset: 4 });
        assert.equal(pageTwo.total, 6);
        assert.deepEqual(
          pageTwo.items.map((t) => t.id),
          [ids[1], ids[0]],
        );
        const liveAnywhere = await store.listTunnels({ state: 'live', limit: 100_000 });
        assert.ok(liveAnywhere.items.length <= 1000);
        assert.ok(liveAnywhere.items.every((t) => t.state !== 'ended'));
      });

      it('pages tunnel lists 100 at a time by default', async () => {
        const acc = await store.createAccount(newAccount('page-tun-olga'));
        for (let i = 0; i < 105; i++) await store.createTunnel(newTunnel({ accountId: acc.id }), 1000 + i);
        const first = await store.listTunnels({ accountId: acc.id });
        assert.equal(first.total, 105);
        assert.equal(first.items.length, 100);
        assert.equal(first.items[0]?.createdAt, 1104);
      });

      it('keeps the tunnels of a deleted account, without the account, and frees its blocks', async () => {
        const acc = await store.createAccount(newAccount('del-pete'));
        const pool = 'fd00:c00::/64';
        const block = await store.allocate({
          pool: 'link',
          poolPrefix: pool,
          prefixLen: 64,
          owner: { accountId: acc.id },
        });
        const t = await store.createTunnel(newTunnel({ accountId: acc.id }), 50);
        await store.endTunnel(t.id, 'account_disabled', 60);
        await store.deleteAccount(acc.id);

        const kept = await store.getTunnel(t.id);
        assert.deepEqual(
          [kept?.accountId, kept?.username, kept?.state, kept?.endReason],
          [null, null, 'ended', 'account_disabled'],
        );
        assert.equal(await store.findAllocation(acc.id, 'link'), undefined);
        const next = await store.allocate({
          pool: 'link',
          poolPrefix: pool,
          prefixLen: 64,
          owner: { leaseId: 'del-after' },
        });
        assert.equal(next.prefix, block.prefix, 'the only block of the pool is free again');
      });
    });

    describe('api tokens', () => {
      it('keeps an optional expiry and the last use of each token (schema version 3)', async () => {
        const hash = (c: string) => c.repeat(64);
        const never = await store.createApiToken({ name: 'tok-never', tokenHash: hash('a'), createdBy: 'cli' }, 1000);
        const soon = await store.createApiToken(
          { name: 'tok-soon', tokenHash: hash('b'), createdBy: 'admin:x', expiresAt: 1000 + 86_400_000 },
          1000,
        );
        assert.deepEqual(
          [never.expiresAt, never.lastUsedAt, soon.expiresAt, soon.createdAt],
          [null, null, 1000 + 86_400_000, 1000],
        );
        await rejectsWith(
          store.createApiToken({ name: 'tok-soon', tokenHash: hash('c'), createdBy: 'cli' }, 1),
          'STORE_CONFLICT',
        );
        await store.touchApiToken(soon.id, 5000);
        const found = await store.findApiToken(hash('b'));
        assert.deepEqual(
          { name: found?.name, lastUsedAt: found?.lastUsedAt, expiresAt: found?.expiresAt },
          { name: 'tok-soon', lastUsedAt: 5000, expiresAt: 1000 + 86_400_000 },
        );
        const listed = (await store.listApiTokens()).filter((t) => t.name.startsWith('tok-'));
        assert.deepEqual(
          listed.map((t) => [t.name, t.expiresAt, t.lastUsedAt]),
          [
            ['tok-never', null, null],
            ['tok-soon', 1000 + 86_400_000, 5000],
          ],
        );
        assert.equal(await store.deleteApiToken('tok-never'), true);
        assert.equal(await store.deleteApiToken('tok-never'), false);
        assert.equal(await store.findApiToken(hash('a')), undefined);
      });
    });

    describe('audit', () => {
      it('records events and lists them newest first, filtered and paged', async () => {
        for (let i = 0; i < 25; i++) {
          await store.addAudit({
            at: 10_000 + i,
            actor: 'admin:audit-quinn',
            action: i % 5 === 0 ? 'account.create' : 'tunnel.kill',
            target: i % 2 === 0 ? `tunnel:${i}` : null,
            detail: i % 3 === 0 ? { index: i, nested: { ok: true } } : null,
          });
        }
        await store.addAudit({ at: 20_000, actor: 'system', action: 'account.create', target: null, detail: null });

        const page1 = await store.listAudit({ actor: 'admin:audit-quinn', limit: 10 });
        assert.equal(page1.total, 25);
        assert.deepEqual(
          page1.items.map((e) => e.at),
          Array.from({ length: 10 }, (_, i) => 10_024 - i),
        );
        const page3 = await store.listAudit({ actor: 'admin:audit-quinn', limit: 10, offset: 20 });
        assert.deepEqual(
          page3.items.map((e) => e.at),
          [10_004, 10_003, 10_002, 10_001, 10_000],
        );
        const oldest = page3.items[4];
        assert.deepEqual(
          [oldest?.actor, oldest?.action, oldest?.target, oldest?.detail],
          ['admin:audit-quinn', 'account.create', 'tunnel:0', { index: 0, nested: { ok: true } }],
        );
        assert.equal(page3.items[3]?.detail, null);
        assert.equal(page3.items[3]?.target, null);

        const creates = await store.listAudit({ actor: 'admin:audit-quinn', action: 'account.create' });
        assert.equal(creates.total, 5);
        const allCreates = await store.listAudit({ action: 'account.create' });
        assert.ok(allCreates.items.some((e) => e.actor === 'system'));
        assert.ok(allCreates.items.every((e) => e.action === 'account.create'));
      });
    });

    describe('tunnel search and sort', () => {
      it('searches usernames and addresses and sorts by start, account, type and traffic, in pages', async () => {
        const zoe = await store.createAccount(newAccount('srch-zoe'));
        const amy = await store.createAccount(newAccount('srch-amy'));
        const a = await store.createTunnel(
          newTunnel({ accountId: zoe.id, type: 'v6v4', clientIpv4: '203.0.113.77', clientIpv6: 'fd00:5ea::a' }),
          500_000,
        );
        const b = await store.createTunnel(
          newTunnel({ accountId: amy.id, clientIpv6: 'fd00:5ea::b', prefix: 'fd00:5eb::', prefixLen: 56 }),
          500_001,
        );
        const c = await store.createTunnel(newTunnel({ leaseId: 'srch-anon', clientIpv6: 'fd00:5ea::c' }), 500_002);
        await store.updateCounters([
          { id: a.id, rxPackets: 1, rxBytes: 5000, txPackets: 1, txBytes: 5000, lastSeenAt: null },
          { id: b.id, rxPackets: 1, rxBytes: 100, txPackets: 1, txBytes: 100, lastSeenAt: null },
          { id: c.id, rxPackets: 1, rxBytes: 900, txPackets: 1, txBytes: 0, lastSeenAt: null },
        ]);
        const ids = async (f: Parameters<Store['listTunnels']>[0]) =>
          (await store.listTunnels({ search: 'FD00:5EA::', ...f })).items.map((t) => t.id);

        assert.deepEqual(await ids({}), [c.id, b.id, a.id], 'IPv6 substring, any case, newest first');
        assert.deepEqual(await ids({ sort: 'started', order: 'asc' }), [a.id, b.id, c.id]);
        assert.deepEqual(await ids({ sort: 'traffic' }), [a.id, c.id, b.id], 'rx + tx, most first');
        assert.deepEqual(await ids({ sort: 'traffic', order: 'asc' }), [b.id, c.id, a.id]);
        assert.deepEqual(await ids({ sort: 'account', order: 'asc' }), [c.id, b.id, a.id], 'anonymous first');
        assert.deepEqual(await ids({ sort: 'type', order: 'asc' }), [b.id, c.id, a.id], 'v6udpv4 < v6v4, ties by id');
        assert.deepEqual(await ids({ type: 'v6udpv4', sort: 'started', order: 'asc' }), [b.id, c.id]);
        const second = await store.listTunnels({ search: 'fd00:5ea::', limit: 2, offset: 2 });
        assert.deepEqual([second.total, second.items.map((t) => t.id)], [3, [a.id]], 'the second page');

        const byName = await store.listTunnels({ search: 'Srch-Z' });
        assert.deepEqual([byName.total, byName.items[0]?.id], [1, a.id], 'username substring');
        assert.deepEqual(
          (await store.listTunnels({ search: '203.0.113.77' })).items.map((t) => t.id),
          [a.id],
        );
        assert.deepEqual(
          (await store.listTunnels({ search: 'fd00:5eb' })).items.map((t) => t.id),
          [b.id],
          'prefix',
        );
        assert.equal((await store.listTunnels({ search: 'srch_%' })).total, 0, '% and _ are literal');
      });
    });

    describe('audit filters', () => {
      it('filters by actor and target substrings and a date range', async () => {
        const events = [
          { at: 900_000, actor: 'admin:filt-rosa', action: 'account.create', target: 'filt-alpha' },
          { at: 900_100, actor: 'admin:filt-rosa', action: 'tunnel.kill', target: 'tunnel:9001' },
          { at: 900_200, actor: 'token:filt-prov', action: 'account.create', target: 'filt-beta' },
          { at: 900_300, actor: 'cli', action: 'account.delete', target: 'FILT-ALPHA' },
        ];
        for (const e of events) await store.addAudit({ ...e, detail: null });
        const ats = async (q: Parameters<Store['listAudit']>[0]) =>
          (await store.listAudit({ from: 900_000, to: 900_400, ...q })).items.map((e) => e.at);

        assert.deepEqual(await ats({}), [900_300, 900_200, 900_100, 900_000], 'the range alone');
        assert.deepEqual(await ats({ actorContains: 'ROSA' }), [900_100, 900_000]);
        assert.deepEqual(await ats({ target: 'filt-alpha' }), [900_300, 900_000], 'target substring, any case');
        assert.deepEqual(await ats({ actorContains: 'filt-', action: 'account.create' }), [900_200, 900_000]);
        assert.deepEqual(await ats({ from: 900_100, to: 900_300 }), [900_200, 900_100], 'from inclusive, to not');
        assert.deepEqual(await ats({ target: '9001', actor: 'admin:filt-rosa' }), [900_100]);
        assert.equal((await store.listAudit({ actorContains: 'filt-%' })).total, 0, '% is literal');
      });
    });

    describe('traffic history', () => {
      it('sums samples per bucket and prunes them by age and count', async () => {
        const t0 = 7_000_000_200_000; // a multiple of 5 minutes, and a stretch of time no other test writes in
        for (let i = 0; i < 12; i++)
          await store.addTrafficSample({
            at: t0 + i * 60_000,
            intervalMs: 60_000,
            rxBytes: 1000 + i,
            txBytes: 10,
            rxPackets: 1,
            txPackets: 1,
          });
        const perFive = await store.trafficHistory(t0, t0 + 12 * 60_000, 5 * 60_000);
        assert.deepEqual(perFive, [
          { at: t0, rxBytes: 5010, txBytes: 50, intervalMs: 300_000 },
          { at: t0 + 300_000, rxBytes: 5035, txBytes: 50, intervalMs: 300_000 },
          { at: t0 + 600_000, rxBytes: 2021, txBytes: 20, intervalMs: 120_000 },
        ]);
        assert.deepEqual(await store.trafficHistory(t0 + 60_000, t0 + 120_000, 60_000), [
          { at: t0 + 60_000, rxBytes: 1001, txBytes: 10, intervalMs: 60_000 },
        ]);
        assert.equal(await store.pruneTrafficSamples(t0 + 2 * 60_000, 1_000_000), 2, 'by age');
        assert.equal(await store.pruneTrafficSamples(0, 4), 6, 'by count: the newest 4 stay');
        const left = await store.trafficHistory(t0, t0 + 12 * 60_000, 60_000);
        assert.deepEqual(
          left.map((r) => r.at),
          [8, 9, 10, 11].map((i) => t0 + i * 60_000),
        );
        assert.equal(await store.pruneTrafficSamples(0, 4), 0, 'nothing more to prune');
      });
    });

    // Retention deletes by time across the whole database, so these rows live at negative times no other test
    // uses: the counts below are exact, and no other test's rows are touched.
    describe('retention', () => {
      it('prunes tunnels that ended before the cutoff, in batches; recent and live ones stay', async () => {
        const acc = await store.createAccount(newAccount('ret-rita'));
        const made = async (created: number, end?: number, established = false) => {
          const t = await store.createTunnel(newTunnel({ accountId: acc.id }), created);
          if (established) await store.establishTunnel(t.id, created + 1);
          if (end !== undefined) await store.endTunnel(t.id, 'idle', end);
          return t.id;
        };
        const old = [await made(-9000, -8000), await made(-8500, -7000), await made(-7000, -6000, true)];
        const recent = await made(-9000, -4000); // created long ago, ended after the cutoff
        const offered = await made(-9000);
        const established = await made(-9000, undefined, true);
        const cutoff = -5000;

        assert.equal(await store.pruneEndedTunnels(cutoff, 2), 2);
        assert.equal(await store.pruneEndedTunnels(cutoff, 2), 1);
        assert.equal(await store.pruneEndedTunnels(cutoff, 2), 0);
        for (const id of old) assert.equal(await store.getTunnel(id), undefined, `tunnel ${id} pruned`);
        assert.equal((await store.getTunnel(recent))?.state, 'ended');
        assert.equal((await store.getTunnel(offered))?.state, 'offered');
        assert.equal((await store.getTunnel(established))?.state, 'established');
        assert.equal(await store.pruneEndedTunnels(-3000, 1000), 1, 'a later cutoff takes the next one, no live one');
        assert.equal((await store.listTunnels({ accountId: acc.id })).total, 2);
      });

      it('releases a block still leased to a pruned anonymous tunnel, and none held by a live one', async () => {
        const pool = 'fd00:7e7::/63'; // two /64s
        const lease = async (leaseId: string) =>
          store.allocate({ pool: 'link', poolPrefix: pool, prefixLen: 64, owner: { leaseId } });
        await lease('ret-lease-ended');
        await lease('ret-lease-live');
        const ended = await store.createTunnel(newTunnel({ leaseId: 'ret-lease-ended' }), -9000);
        await store.endTunnel(ended.id, 'shutdown', -8000); // as if the broker died before releasing the lease
        const live = await store.createTunnel(newTunnel({ leaseId: 'ret-lease-live' }), -9000);

        assert.equal(await store.pruneEndedTunnels(-5000, 100), 1);
        assert.equal(await store.getTunnel(ended.id), undefined);
        assert.equal((await store.getTunnel(live.id))?.state, 'offered');
        assert.equal(await store.releaseLease('ret-lease-ended'), 0, 'its block was released with it');
        await lease('ret-lease-new'); // the freed /64
        await rejectsWith(lease('ret-lease-other'), 'POOL_EXHAUSTED'); // the live tunnel's block stayed
        assert.equal(await store.releaseLease('ret-lease-live'), 1);
      });

      it('prunes audit events older than the cutoff, oldest first, in batches', async () => {
        for (let i = 0; i < 5; i++)
          await store.addAudit({ at: -9000 + i, actor: 'system:ret', action: 'ret.old', target: null, detail: null });
        await store.addAudit({ at: -4000, actor: 'system:ret', action: 'ret.new', target: null, detail: null });
        assert.equal(await store.pruneAudit(-5000, 3), 3);
        assert.deepEqual(
          (await store.listAudit({ actor: 'system:ret' })).items.map((e) => e.at),
          [-4000, -8996, -8997],
          'the oldest went first',
        );
        assert.equal(await store.pruneAudit(-5000, 3), 2);
        assert.equal(await store.pruneAudit(-5000, 3), 0);
        assert.deepEqual(
          (await store.listAudit({ actor: 'system:ret' })).items.map((e) => e.action),
          ['ret.new'],
        );
      });

      it('deletes expired web sessions in batches and keeps the others', async () => {
        const acc = await store.createAccount(newAccount('ret-sam'));
        const session = (expiresAt: number) => ({ accountId: acc.id, csrfToken: 'c', createdAt: -9000, expiresAt });
        await store.createWebSession('ret-expired-1', session(-7000));
        await store.createWebSession('ret-expired-2', session(-6000));
        await store.createWebSession('ret-valid', session(-1000));
        assert.equal(await store.deleteExpiredWebSessions(-5000, 1), 1);
        assert.equal(await store.deleteExpiredWebSessions(-5000, 1), 1);
        assert.equal(await store.deleteExpiredWebSessions(-5000, 1), 0);
        assert.ok(await store.getWebSession('ret-valid', -5000));
        assert.equal(await store.deleteExpiredWebSessions(-5000), 0);
      });
    });
  });
}

// ---- helpers

function newAccount(username: string): NewAccount {
  return {
    username,
    role: 'user',
    passwordHash: `$argon2id$v=19$m=19456,t=2,p=1$${username}`,
    digestHa1: 'a'.repeat(32),
    digestRealm: 'tsp-broker',
  };
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BrokerError, `expected a BrokerError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

/** Allocates blocks of `len` for leases `${tag}-0`, `${tag}-1`, ... until POOL_EXHAUSTED or `max` blocks. */
async function fillWith(store: Store, pool: string, len: number, tag: string, max = Infinity): Promise<Allocation[]> {
  const got: Allocation[] = [];
  for (let i = 0; i < max; i++) {
    try {
      got.push(
        await store.allocate({
          pool: 'delegation',
          poolPrefix: pool,
          prefixLen: len,
          owner: { leaseId: `${tag}-${i}` },
        }),
      );
    } catch (e) {
      if (e instanceof BrokerError && e.code === 'POOL_EXHAUSTED') break;
      throw e;
    }
  }
  return got;
}

function assertBlock(a: Allocation, pool: string, len: number): void {
  assert.equal(a.prefixLen, len);
  const block = parsePrefix(`${a.prefix}/${a.prefixLen}`); // throws if host bits are set
  const p = parsePrefix(pool);
  assert.ok(block.len >= p.len && overlaps(block, p), `${a.prefix}/${len} is outside ${pool}`);
}

function assertDisjoint(blocks: Allocation[]): void {
  const ps: (Prefix & { text: string })[] = blocks.map((b) => ({
    ...parsePrefix(`${b.prefix}/${b.prefixLen}`),
    text: `${b.prefix}/${b.prefixLen}`,
  }));
  ps.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.len - b.len));
  // Sorted by start, blocks are disjoint iff each one ends before the next one begins.
  for (let i = 1; i < ps.length; i++) {
    const prev = ps[i - 1] as Prefix & { text: string };
    const cur = ps[i] as Prefix & { text: string };
    assert.ok(!overlaps(prev, cur), `${prev.text} overlaps ${cur.text}`);
    assert.ok(prev.start + (1n << BigInt(128 - prev.len)) <= cur.start, `${prev.text} overlaps ${cur.text}`);
  }
}

function usageOf(usage: { poolPrefix: string; blocks: number }[], pool: string): number {
  return usage.find((u) => u.poolPrefix === pool)?.blocks ?? 0;
}

/** Deterministic shuffle (xorshift), so a failure can be replayed. */
function shuffle<T>(items: T[], seed: number): T[] {
  let x = seed || 1;
  for (let i = items.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = Math.abs(x) % (i + 1);
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}
