/** Allocation race-free across nodes: three processes, each a node opening the same PostgreSQL store
 *  (test/helpers/allocate-worker.ts), start at one signal and allocate at once: link /64s and router /56s for
 *  new accounts (each process its own accounts) and anonymous leases (from each node's own chunks). No two
 *  owners may get the same or overlapping blocks, every account gets both, and the database agrees with what
 *  the processes were told. Needs TSP_TEST_PG_URL. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import ipaddr from 'ipaddr.js';
import { PG_SKIP, createTempDatabase, type TempDatabase } from '../../helpers/pg.js';
import { openPostgresStore } from '../../../src/store/open.js';

const WORKER = path.resolve('test/helpers/allocate-worker.ts');
const TSX = import.meta.resolve('tsx');
const PER_NODE = 20;
const LEASES = 30;

interface Got {
  owner: string;
  pool: string;
  prefix: string;
  prefixLen: number;
}

function range(p: Got): [bigint, bigint] {
  const bytes = ipaddr.IPv6.parse(p.prefix).toByteArray();
  const start = bytes.reduce((n, b) => (n << 8n) | BigInt(b), 0n);
  return [start, start + (1n << BigInt(128 - p.prefixLen)) - 1n];
}

describe('allocation from several node processes at once', { skip: PG_SKIP }, () => {
  let db: TempDatabase;
  const ids: number[] = [];
  before(async () => {
    db = await createTempDatabase('tsp_alloc_procs');
    const store = await openPostgresStore({ url: db.url });
    try {
      for (let i = 0; i < 3 * PER_NODE; i++)
        ids.push(
          (
            await store.createAccount({
              username: `u${i}`,
              role: 'user',
              passwordHash: 'x',
              digestHa1: null,
              digestRealm: null,
            })
          ).id,
        );
    } finally {
      await store.close();
    }
  });
  after(() => db?.drop());

  test('no two owners share a block; every account gets its /64 and its /56', async () => {
    const workers = [0, 1, 2].map((n) => {
      const mine = ids.slice(n * PER_NODE, (n + 1) * PER_NODE).join(',');
      const p = spawn(process.execPath, ['--import', TSX, WORKER, db.url, `node-${n}`, mine, String(LEASES)], {
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: 120_000,
      });
      let out = '';
      let err = '';
      p.stdout.on('data', (b: Buffer) => (out += b.toString()));
      p.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const done = new Promise<Got[]>((resolve, reject) =>
        p.on('close', (code) =>
          code === 0 ? resolve(JSON.parse(out) as Got[]) : reject(new Error(`worker ${n}: ${err}`)),
        ),
      );
      return { p, done };
    });
    // every process has its store open (migrations done) before the signal: give them time, then go together
    await new Promise((r) => setTimeout(r, 4000));
    for (const w of workers) w.p.stdin.end('go\n');
    const got = (await Promise.all(workers.map((w) => w.done))).flat();
    assert.equal(got.length, 3 * PER_NODE * 2 + 3 * LEASES);
    for (const pool of ['link', 'delegation']) {
      const blocks = got.filter((g) => g.pool === pool).map((g) => ({ g, r: range(g) }));
      blocks.sort((a, b) => (a.r[0] < b.r[0] ? -1 : 1));
      for (let i = 1; i < blocks.length; i++)
        assert.ok(
          blocks[i]!.r[0] > blocks[i - 1]!.r[1],
          `${blocks[i - 1]!.g.owner} ${blocks[i - 1]!.g.prefix}/${blocks[i - 1]!.g.prefixLen} overlaps ${blocks[i]!.g.owner} ${blocks[i]!.g.prefix}/${blocks[i]!.g.prefixLen}`,
        );
    }
    for (const id of ids)
      assert.deepEqual(
        got.filter((g) => g.owner === `account ${id}`).map((g) => `${g.pool}/${g.prefixLen}`),
        ['link/64', 'delegation/56'],
      );
    const rows = await db.query<{ n: string }>(
      'select count(*)::text as n from allocations where account_id is not null',
    );
    assert.equal(rows[0]!.n, String(3 * PER_NODE * 2), 'the database holds what the processes were told');
  });
});
