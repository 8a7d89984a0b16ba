/** Web-only accounts as an operator meets them: `tsp-broker user add --web-only` keeps no DIGEST-MD5 secret in
 *  the database file, `user passwd` keeps it that way, a DIGEST-MD5 or PLAIN TSP login fails exactly as for an
 *  unknown user, and the web UI login still works. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { startTestBroker } from '../../helpers/broker.js';
import { runSession } from '../../helpers/tsp.js';
import { buildAdminApp } from '../../../src/admin/server.js';
import { login } from '../../admin/session.js';

const CLI = path.resolve('src/cli/tsp-broker.ts');
const TSX = import.meta.resolve('tsx');
const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-web-only-'));
after(() => rmSync(dir, { recursive: true, force: true }));
/** startTestBroker's database in `dir`, and its realm. */
const db = path.join(dir, 'broker.db');
const REALM = 'tsp-fake';

function cli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, ['--import', TSX, CLI, ...args, '--db', db, '--realm', REALM], {
    input,
    encoding: 'utf8',
    cwd: dir,
    env: { ...process.env, TSP_BROKER_CONFIG: path.join(dir, 'no-standard-config.json') }, // never the real /etc
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function storedDigest(username: string): { digest_ha1: string | null; digest_realm: string | null } | undefined {
  const raw = new BetterSqlite3(db, { readonly: true });
  try {
    return raw.prepare('select digest_ha1, digest_realm from accounts where username = ?').get(username) as
      { digest_ha1: string | null; digest_realm: string | null } | undefined;
  } finally {
    raw.close();
  }
}

test('a web-only admin stores no DIGEST-MD5 secret, fails DIGEST-MD5 like an unknown user, and signs in to the web', async () => {
  const add = cli(['user', 'add', 'webadmin', '--admin', '--web-only', '--password-stdin'], 'web-password-1\n');
  assert.equal(add.status, 0, add.stderr);
  assert.match(add.stdout, /created web-only admin account webadmin/);
  assert.equal(cli(['user', 'add', 'tunneler', '--password-stdin'], 'tsp-password-1\n').status, 0);
  assert.deepEqual({ ...storedDigest('webadmin') }, { digest_ha1: null, digest_realm: null });
  assert.match(String(storedDigest('tunneler')?.digest_ha1), /^[0-9a-f]{32}$/);

  assert.equal(cli(['user', 'passwd', 'webadmin', '--password-stdin'], 'web-password-2\n').status, 0);
  assert.deepEqual({ ...storedDigest('webadmin') }, { digest_ha1: null, digest_realm: null }, 'passwd keeps it');
  const list = cli(['user', 'list']);
  assert.match(list.stdout, /\twebadmin\tadmin\tactive\t[^\t]+\tweb-only\n/);
  assert.match(list.stdout, /\ttunneler\tuser\tactive\t[^\t]+\ttsp\+web\n/);

  const b = await startTestBroker({ auth: { realm: REALM, plain: true } }, { dir });
  try {
    const port = b.ports.udp;
    const digest = async (username: string, password: string) => {
      const r = await runSession({ transport: 'udp', port, auth: { mechanism: 'DIGEST-MD5', username, password } });
      r.udp?.close();
      return r;
    };
    const web = await digest('webadmin', 'web-password-2');
    const unknown = await digest('nobody-at-all', 'web-password-2');
    assert.match(web.authStatus, /^300 /);
    assert.equal(web.authStatus, unknown.authStatus, 'the same answer as for an unknown user');
    assert.equal(web.createStatus, 0);
    assert.equal((await digest('tunneler', 'tsp-password-1')).createStatus, 200, 'a TSP account still works');
    // PLAIN (auth.plain on) checks the argon2id hash, which a web-only account has: it must still be refused
    const plain = async (username: string, password: string) => {
      const r = await runSession({ transport: 'udp', port, auth: { mechanism: 'PLAIN', username, password } });
      r.udp?.close();
      return r;
    };
    const webPlain = await plain('webadmin', 'web-password-2');
    assert.match(webPlain.authStatus, /^300 /);
    assert.equal(webPlain.authStatus, (await plain('nobody-at-all', 'web-password-2')).authStatus);
    assert.equal(webPlain.createStatus, 0);
    assert.equal((await plain('tunneler', 'tsp-password-1')).createStatus, 200, 'PLAIN works for a TSP account');

    const app = await buildAdminApp(b);
    try {
      const session = await login(app, 'webadmin', 'web-password-2');
      const me = await app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie: session.cookie } });
      assert.equal(me.statusCode, 200);
      assert.match(me.body, /"username":"webadmin"/);
      const list = await app.inject({ method: 'GET', url: '/api/v1/accounts', headers: { cookie: session.cookie } });
      const items = (list.json() as { items: { username: string; webOnly: boolean }[] }).items;
      assert.deepEqual(
        items.map((x) => [x.username, x.webOnly]),
        [
          ['tunneler', false],
          ['webadmin', true],
        ],
        'the API says which accounts are web-only',
      );
    } finally {
      await app.close();
    }
  } finally {
    await b.stop();
  }

  // converting: --tsp gives it a secret for the realm, --web-only drops it again
  assert.equal(cli(['user', 'passwd', 'webadmin', '--tsp', '--password-stdin'], 'web-password-3\n').status, 0);
  assert.equal(storedDigest('webadmin')?.digest_realm, REALM);
  assert.equal(cli(['user', 'passwd', 'webadmin', '--web-only', '--password-stdin'], 'web-password-4\n').status, 0);
  assert.deepEqual({ ...storedDigest('webadmin') }, { digest_ha1: null, digest_realm: null });
});
