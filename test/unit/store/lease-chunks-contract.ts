/** Anonymous leases from the node's chunks (src/store/lease-chunks.ts), on every dialect: one row a lease, never
 *  two leases on one address whatever memory believes, memory rebuilt from the rows by a new handle, rolled-back
 *  leases and released ones usable again, and empty chunks given back to the pool. `open()` returns a new handle
 *  on the same database each time (shared with the Store contract: these tests use pools under fd0c::/16). */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BrokerError } from '../../../src/errors.js';
import type { KyselyStore } from '../../../src/store/kysely-store.js';
import type { AllocateRequest, Allocation } from '../../../src/store/types.js';
import { overlaps, parsePrefix } from '../../../src/store/prefix.js';
import { CHUNK_BITS } from '../../../src/store/lease-chunks.js';

const SLOTS = 1 << CHUNK_BITS;

export function leaseChunksContract(name: string, open: () => Promise<KyselyStore>): void {
  describe(`anonymous leases from the node's chunks: ${name}`, () => {
    let store: KyselyStore;
    before(async () => {
      store = await open();
    });
    after(async () => {
      await store.close();
    });

    const lease = (poolPrefix: string, prefixLen: number, leaseId: string): AllocateRequest => ({
      pool: 'link',
      poolPrefix,
      prefixLen,
      owner: { leaseId },
    });
    const take = async (s: KyselyStore, pool: string, len: number, tag: string, n: number) => {
      const out: Allocation[] = [];
      for (let i = 0; i < n; i++) out.push(await s.allocate(lease(pool, len, `${tag}-${i}`)));
      return out;
    };
    /** The pool's rows: chunks (lease_id 'chunk:…') and leases cut from them. */
    const rows = (pool: string) =>
      store.transaction(async (trx) => {
        const all = await trx.selectFrom('allocations').selectAll().where('pool_prefix', '=', pool).execute();
        return {
          chunks: all.filter((r) => r.lease_id?.startsWith('chunk:')),
          inChunks: all.filter((r) => r.chunk_id !== null),
        };
      });

    it('cuts leases from a chunk: one row each, disjoint, inside the pool, counted as leases and not as chunks', async () => {
      const pool = 'fd0c:1::/40';
      const got = await take(store, pool, 64, 'cut', 300);
      assertDisjointIn(got, pool);
      const r = await rows(pool);
      assert.ok(r.chunks.length >= 1, 'the node claimed a chunk');
      assert.ok(r.inChunks.length >= 200, `most leases come from chunks (${r.inChunks.length} of 300)`);
      for (const l of r.inChunks) {
        const chunk = r.chunks.find((c) => Number(c.id) === Number(l.chunk_id));
        assert.ok(chunk, 'a lease names a chunk of the pool');
        assert.equal(Number(chunk.prefix_len), 64 - CHUNK_BITS);
        assert.ok(overlaps(parsePrefix(`${l.prefix}/64`), parsePrefix(`${chunk.prefix}/${chunk.prefix_len}`)));
      }
      assert.equal(usageOf(await store.poolUsage(), pool), 300);
      for (let i = 0; i < 300; i++) assert.equal(await store.releaseLease(`cut-${i}`), 1);
      assert.equal(usageOf(await store.poolUsage(), pool), 0);
    });

    it('never gives an address twice: a new handle reads the chunks back, and two handles share them', async () => {
      const pool = 'fd0c:2::/40';
      const first = await take(store, pool, 64, 'reopen-a', 40);
      const other = await open();
      try {
        const both = await Promise.all([take(other, pool, 64, 'reopen-b', 40), take(store, pool, 64, 'reopen-c', 40)]);
        assertDisjointIn([...first, ...both.flat()], pool);
        assert.equal(usageOf(await other.poolUsage(), pool), 120);
      } finally {
        await other.close();
      }
    });

    it("reads the node's chunks back: a new handle leases from them instead of claiming more", async () => {
      const pool = 'fd0c:5::/40';
      await take(store, pool, 64, 'readback-a', 20);
      const before = (await rows(pool)).chunks.length;
      assert.ok(before >= 1);
      const other = await open();
      try {
        const [lease] = await take(other, pool, 64, 'readback-b', 1);
        const r = await rows(pool);
        assert.equal(r.chunks.length, before, 'no chunk claimed');
        assert.ok(
          r.inChunks.some((l) => l.prefix === lease!.prefix),
          'the new lease is cut from a chunk',
        );
      } finally {
        await other.close();
      }
    });

    it('fills a pool to its last lease after leases were rolled back and released', async () => {
      // 2^12 /128s: the smallest pool that has chunks (16 of them). A slot lost by memory would leave the pool
      // short, since a chunk's room is the node's alone.
      const pool = 'fd0c:3::/116';
      const size = 1 << 12;
      class Abandon extends Error {}
      for (let i = 0; i < 20; i++) {
        await assert.rejects(
          store.batch(async (tx) => {
            await tx.allocate(lease(pool, 128, `undo-${i}`));
            throw new Abandon('changed my mind');
          }),
          (e: unknown) => e instanceof Abandon || (e instanceof BrokerError && e.cause instanceof Abandon),
        );
      }
      const early = await take(store, pool, 128, 'fill-early', 300);
      for (let i = 0; i < early.length; i++) await store.releaseLease(`fill-early-${i}`);
      const got: Allocation[] = [];
      for (let i = 0; i < size + 1; i++) {
        try {
          got.push(await store.allocate(lease(pool, 128, `fill-${i}`)));
        } catch (e) {
          if (e instanceof BrokerError && e.code === 'POOL_EXHAUSTED') break;
          throw e;
        }
      }
      assert.equal(got.length, size, 'every address of the pool, and then POOL_EXHAUSTED');
      assertDisjointIn(got, pool);
      // slots freed behind the cursor of the chunk it stopped in are found again
      for (let i = size - 5; i < size; i++) assert.equal(await store.releaseLease(`fill-${i}`), 1);
      for (let i = 0; i < 5; i++) await store.allocate(lease(pool, 128, `refill-${i}`));
    });

    it('reserves leases in memory: no row until the tunnel naming one is written, never one address twice', async () => {
      const pool = 'fd0c:6::/40';
      const req = (leaseId: string) => lease(pool, 64, leaseId);
      // the first call starts reading the node's chunks back; until they are, only allocate() serves leases
      assert.equal(store.reserveLease(req('res-early')), undefined);
      await take(store, pool, 64, 'res-rows', 1);
      // and the pool's first chunk is claimed in a transaction of its own after that lease: wait for it, bounded
      const reserve = async (leaseId: string) => {
        let r = store.reserveLease(req(leaseId));
        for (let i = 0; i < 100 && r === undefined; i++) {
          await new Promise((done) => setTimeout(done, 10));
          r = store.reserveLease(req(leaseId));
        }
        assert.ok(r, `a reservation for ${leaseId}`);
        return r;
      };
      const [r1, r2, r3] = [await reserve('res-1'), await reserve('res-2'), await reserve('res-3')];
      const leased = await take(store, pool, 64, 'res-rows-more', 20);
      const all = [r1, r2, r3, ...leased].map((b) => ({ ...b, id: 0, accountId: null, createdAt: 0 }));
      assertDisjointIn(all as Allocation[], pool);
      assert.equal(usageOf(await store.poolUsage(), pool), 21, 'reservations are not rows');
      const tunnel = (r: { leaseId: string; prefix: string }) => ({
        accountId: null,
        leaseId: r.leaseId,
        type: 'v6udpv4' as const,
        transport: 'udp' as const,
        clientIpv4: '192.0.2.60',
        clientPort: 40_000,
        serverIpv4: '198.51.100.60',
        serverIpv6: `${r.prefix}1`,
        clientIpv6: `${r.prefix}2`,
        prefix: null,
        prefixLen: null,
        keepaliveInterval: 30,
        lifetimeS: 3600,
      });
      const t1 = await store.createTunnel(tunnel(r1), 10, { established: 20, reservation: r1 });
      assert.deepEqual([t1.state, t1.createdAt, t1.establishedAt], ['established', 10, 20]);
      assert.deepEqual(
        [(await store.getTunnel(t1.id))?.state, usageOf(await store.poolUsage(), pool)],
        ['established', 22],
        'the tunnel and its lease row, written together',
      );
      // a transaction that fails after writing a reservation's rows writes nothing, and the reservation holds
      class Abandon extends Error {}
      await assert.rejects(
        store.batch(async (tx) => {
          await tx.createTunnel(tunnel(r3), 30, { established: 31, reservation: r3 });
          throw new Abandon('the accept failed');
        }),
        (e: unknown) => e instanceof Abandon || (e instanceof BrokerError && e.cause instanceof Abandon),
      );
      assert.equal(usageOf(await store.poolUsage(), pool), 22);
      const t3 = await store.createTunnel(tunnel(r3), 30, { established: 32, reservation: r3 });
      assert.equal(t3.establishedAt, 32);
      // one given back is not written; given back twice, or after its row, is nothing
      store.releaseReservation(r2);
      store.releaseReservation(r2);
      await assert.rejects(
        store.createTunnel(tunnel(r2), 40, { established: 41, reservation: r2 }),
        (e: unknown) => e instanceof BrokerError && e.code === 'STORE_CONFLICT',
      );
      store.releaseReservation(r1);
      assert.equal(usageOf(await store.poolUsage(), pool), 23, 'no row of the one given back');
      assert.equal(await store.releaseLease('res-1'), 1, "a written reservation's lease is released as any other");
    });

    it('gives an empty chunk back to the pool when enough room is free in the others', async () => {
      const pool = 'fd0c:4::/40';
      const n = 3 * SLOTS;
      await take(store, pool, 64, 'retire', n);
      const before = (await rows(pool)).chunks.length;
      assert.ok(before >= 3, `${before} chunks for ${n} leases`);
      for (let i = 0; i < n; i++) await store.releaseLease(`retire-${i}`);
      // the give-back is a transaction of its own after the release commits: wait for it, bounded
      let after = before;
      for (let i = 0; i < 100 && after >= before; i++) {
        await new Promise((r) => setTimeout(r, 20));
        after = (await rows(pool)).chunks.length;
      }
      assert.ok(after < before, `chunks given back: ${before} -> ${after}`);
      assert.equal(usageOf(await store.poolUsage(), pool), 0);
      // the room is the pool's again: an account-sized block where a chunk was
      const whole = await store.allocate({
        pool: 'link',
        poolPrefix: pool,
        prefixLen: 41,
        owner: { leaseId: 'retire-big' },
      });
      assert.equal(whole.prefixLen, 41);
    });
  });
}

function assertDisjointIn(blocks: Allocation[], pool: string): void {
  const p = parsePrefix(pool);
  const ps = blocks.map((b) => parsePrefix(`${b.prefix}/${b.prefixLen}`));
  for (const b of ps) assert.ok(overlaps(b, p) && b.len >= p.len, 'inside the pool');
  const starts = new Set(ps.map((b) => `${b.start}/${b.len}`));
  assert.equal(starts.size, ps.length, 'no block given twice');
  ps.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  for (let i = 1; i < ps.length; i++) assert.ok(!overlaps(ps[i - 1]!, ps[i]!), 'disjoint');
}

function usageOf(usage: { poolPrefix: string; blocks: number }[], pool: string): number {
  return usage.find((u) => u.poolPrefix === pool)?.blocks ?? 0;
}
