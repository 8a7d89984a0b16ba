/** `tsp-broker token create|list|revoke` run as a real process on the database of a running broker: the token it
 *  prints works on the REST API at once, is listed without its value, and stops working when revoked. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';

const run = promisify(execFile);
let b: TestBroker;

before(async () => {
  b = await startTestBroker({ admin: { enabled: true, port: 0 } });
});
after(async () => {
  await b?.stop();
});

async function cli(...args: string[]): Promise<{ stdout: string; code: number; stderr: string }> {
  try {
    const r = await run(
      process.execPath,
      ['--import', 'tsx', 'src/cli/tsp-broker.ts', ...args, '--db', b.config.store.path],
      {
        timeout: 30_000,
      },
    );
    return { stdout: r.stdout, stderr: r.stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

test('token create, list and revoke from the command line', async () => {
  const created = await cli('token', 'create', 'deploy');
  assert.equal(created.code, 0, created.stderr);
  const token = created.stdout.trim();
  assert.match(token, /^tspb_[A-Za-z0-9_-]{43}$/);
  const url = `http://127.0.0.1:${b.admin!.port}/api/v1/tokens`;
  const listed = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(listed.status, 200);
  assert.deepEqual(
    ((await listed.json()) as { name: string; createdBy: string }[]).map((t) => [t.name, t.createdBy]),
    [['deploy', 'cli']],
  );

  const list = await cli('token', 'list', '--json');
  assert.equal(list.code, 0);
  assert.ok(!list.stdout.includes(token), 'values are never listed');
  assert.equal((JSON.parse(list.stdout) as { name: string }[])[0]?.name, 'deploy');

  assert.equal((await cli('token', 'revoke', 'deploy')).code, 0);
  assert.equal((await fetch(url, { headers: { authorization: `Bearer ${token}` } })).status, 401);
  const again = await cli('token', 'revoke', 'deploy');
  assert.equal(again.code, 1);
  assert.match(again.stderr, /no token named deploy/);
  assert.equal((await cli('token', 'create', 'bad name')).code, 2, 'a bad name is a usage error');
  const audit = await b.store.listAudit({ actor: 'cli' });
  assert.deepEqual(
    audit.items.map((e) => e.action),
    ['token.revoke', 'token.create'],
  );
});

test('token create --expires-days: listed with its expiry and last use, refused once expired', async () => {
  const created = await cli('token', 'create', 'nightly', '--expires-days', '7');
  assert.equal(created.code, 0, created.stderr);
  const token = created.stdout.trim();
  const url = `http://127.0.0.1:${b.admin!.port}/api/v1/pools`;
  assert.equal((await fetch(url, { headers: { authorization: `Bearer ${token}` } })).status, 200);

  const json = await cli('token', 'list', '--json');
  const row = (JSON.parse(json.stdout) as { name: string; expiresAt: number | null; lastUsedAt: number | null }[]).find(
    (t) => t.name === 'nightly',
  );
  assert.ok(row && row.expiresAt !== null && row.lastUsedAt !== null, json.stdout);
  assert.ok(Math.abs(row.expiresAt - (Date.now() + 7 * 86_400_000)) < 60_000, 'expires in seven days');
  const table = await cli('token', 'list');
  assert.match(table.stdout, /^NAME\tCREATED BY\tCREATED\tLAST USED\tEXPIRES$/m);
  const line = table.stdout.split('\n').find((l) => l.startsWith('nightly\t')) ?? '';
  const [, , , lastUsed, expires] = line.split('\t');
  assert.equal(lastUsed, new Date(row.lastUsedAt).toISOString(), 'last use shown');
  assert.equal(expires, new Date(row.expiresAt).toISOString());

  // a token whose seven days are over (made as if eight days ago): refused, and listed as expired
  const { TokenService } = await import('../../src/admin/tokens.js');
  const { ManualClock } = await import('../../src/clock.js');
  const past = new TokenService(b.store, new ManualClock(Date.now() - 8 * 86_400_000));
  const { token: old } = await past.create('test', 'stale', { expiresInDays: 7 });
  const refused = await fetch(url, { headers: { authorization: `Bearer ${old}` } });
  assert.equal(refused.status, 401);
  assert.deepEqual(await refused.json(), { code: 'API_UNAUTHORIZED', message: 'expired API token' });
  assert.match((await cli('token', 'list')).stdout, /^stale\t.*\(expired\)$/m);

  for (const bad of ['0', '-1', 'soon', '3651']) {
    const r = await cli('token', 'create', `bad${bad.replace(/\W/g, '')}`, '--expires-days', bad);
    assert.equal(r.code, 2, `--expires-days ${bad}: ${r.stderr}`);
  }
});
