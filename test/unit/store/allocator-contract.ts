/** The allocator's contract (src/store/allocator.ts): its functions run on a transaction the caller holds, so one
 *  transaction can draw several blocks that commit, or roll back, together. Runs on every dialect, over the
 *  handles KyselyStore.transaction() gives. `open()` returns a new handle on the same database each time (as for
 *  the Store contract, which shares that database: these tests use pools of their own, under fd0a::/16). */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BrokerError } from '../../../src/errors.js';
import * as allocator from '../../../src/store/allocator.js';
import type { KyselyStore } from '../../../src/store/kysely-store.js';
import type { AllocateRequest, Allocation } from '../../../src/store/types.js';
import { overlaps, parsePrefix } from '../../../src/store/prefix.js';

export function allocatorContract(name: string, open: () => Promise<KyselyStore>): void {
  describe(`allocator over a caller's transaction: ${name}`, () => {
    let store: KyselyStore;
    before(async () => {
      store = await open();
    });
    after(async () => {
      await store.close();
    });

    const req = (poolPrefix: string, prefixLen: number, leaseId: string): AllocateRequest => ({
      pool: 'delegation',
      poolPrefix,
      prefixLen,
      owner: { leaseId },
    });

    it('commits several claims drawn in one transaction together, disjoint', async () => {
      const pool = 'fd0a:1::/60';
      const got = await store.transaction(async (trx) => {
        const out: Allocation[] = [];
        for (const [i, len] of [64, 62, 63, 64].entries()) {
          out.push(await allocator.allocate(trx, req(pool, len, `trx-many-${i}`), 1000));
        }
        return out;
      });
      assertDisjoint(got);
      for (const [i, a] of got.entries()) {
        assert.deepEqual(
          await store.transaction((trx) => allocator.findAllocation(trx, { leaseId: `trx-many-${i}` }, 'delegation')),
          a,
        );
      }
      assert.equal(usageOf(await store.poolUsage(), pool), 4);
    });

    it('leaves nothing claimed when the transaction that drew two blocks rolls back', async () => {
      const pool = 'fd0a:2::/63';
      class Abandon extends Error {}
      const drawn: Allocation[] = [];
      await assert.rejects(
        store.transaction(async (trx) => {
          drawn.push(await allocator.allocate(trx, req(pool, 64, 'trx-undo-1'), 1000));
          drawn.push(await allocator.allocate(trx, req(pool, 64, 'trx-undo-2'), 1000));
          throw new Abandon('changed my mind');
        }),
        (e: unknown) => e instanceof Abandon || (e instanceof BrokerError && e.cause instanceof Abandon),
      );
      assert.equal(drawn.length, 2, 'both claims succeeded inside the transaction');
      assert.equal(usageOf(await store.poolUsage(), pool), 0);
      assert.equal(await store.releaseLease('trx-undo-1'), 0);
      // Both blocks (and their split rows) are free again: the whole /63 can be claimed as one block.
      const whole = await store.allocate(req(pool, 63, 'trx-undo-whole'));
      assert.equal(`${whole.prefix}/${whole.prefixLen}`, pool);
    });

    it('fails a claim on an exhausted pool cleanly: the transaction stays usable and keeps its other claims', async () => {
      const pool = 'fd0a:3::/63';
      const { kept, refusal } = await store.transaction(async (trx) => {
        const first = await allocator.allocate(trx, req(pool, 63, 'trx-full-1'), 1000);
        const error = await allocator.allocate(trx, req(pool, 64, 'trx-full-2'), 1000).then(
          () => undefined,
          (e: unknown) => e,
        );
        // The refused claim left no row behind that would make this one fail or see a conflict.
        await allocator.releaseLease(trx, 'trx-full-1');
        const second = await allocator.allocate(trx, req(pool, 64, 'trx-full-3'), 1000);
        return { kept: [first, second], refusal: error };
      });
      assert.ok(refusal instanceof BrokerError && refusal.code === 'POOL_EXHAUSTED', String(refusal));
      assert.equal(await store.releaseLease('trx-full-1'), 0, 'released in the transaction');
      assert.equal(await store.releaseLease('trx-full-2'), 0, 'the refused claim left no allocation');
      assert.equal(
        (await store.transaction((trx) => allocator.findAllocation(trx, { leaseId: 'trx-full-3' }, 'delegation')))
          ?.prefix,
        kept[1]?.prefix,
      );
      assert.equal(usageOf(await store.poolUsage(), pool), 1);
      const other = await store.allocate(req(pool, 64, 'trx-full-4'));
      assertDisjoint([kept[1] as Allocation, other]);
    });

    it('never gives one block twice when transactions on two handles draw several blocks each at once', async () => {
      const other = await open();
      try {
        const pool = 'fd0a:4::/59'; // 32 /64s
        const draw = (s: KyselyStore, tag: string) =>
          s.transaction(async (trx) => {
            const out: Allocation[] = [];
            for (let i = 0; i < 4; i++) out.push(await allocator.allocate(trx, req(pool, 64, `${tag}-${i}`), 1000));
            return out;
          });
        const results = (
          await Promise.all(Array.from({ length: 8 }, (_, i) => draw(i % 2 === 0 ? store : other, `trx-race-${i}`)))
        ).flat();
        assert.equal(results.length, 32);
        assertDisjoint(results);
        assert.equal(usageOf(await other.poolUsage(), pool), 32);
        await assert.rejects(
          draw(store, 'trx-race-full'),
          (e: unknown) => e instanceof BrokerError && e.code === 'POOL_EXHAUSTED',
        );
        assert.equal(usageOf(await store.poolUsage(), pool), 32, 'the refused transaction took nothing');
      } finally {
        await other.close();
      }
    });

    it('joins an open batch: store calls and allocator calls in it commit or roll back as one', async () => {
      const pool = 'fd0a:5::/64';
      await assert.rejects(
        store.batch(async (tx) => {
          // a KyselyStore's batch hands over a KyselyStore
          await (tx as KyselyStore).transaction((trx) => allocator.allocate(trx, req(pool, 64, 'trx-batch-1'), 1000));
          await tx.allocate(req(pool, 64, 'trx-batch-2'));
        }),
        (e: unknown) => e instanceof BrokerError && e.code === 'POOL_EXHAUSTED',
      );
      assert.equal(usageOf(await store.poolUsage(), pool), 0);
    });
  });
}

function assertDisjoint(blocks: Allocation[]): void {
  const ps = blocks.map((b) => ({ ...parsePrefix(`${b.prefix}/${b.prefixLen}`), text: `${b.prefix}/${b.prefixLen}` }));
  for (let i = 0; i < ps.length; i++) {
    for (let j = i + 1; j < ps.length; j++) {
      const a = ps[i] as (typeof ps)[number];
      const b = ps[j] as (typeof ps)[number];
      assert.ok(!overlaps(a, b), `${a.text} overlaps ${b.text}`);
    }
  }
}

function usageOf(usage: { poolPrefix: string; blocks: number }[], pool: string): number {
  return usage.find((u) => u.poolPrefix === pool)?.blocks ?? 0;
}
