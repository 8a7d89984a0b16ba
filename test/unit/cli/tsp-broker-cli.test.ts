/** The tsp-broker command as a user runs it: a separate process, exit codes, what it prints. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultConfig } from '../../../src/config/schema.js';
import { runSession } from '../../helpers/tsp.js';
import { eventually } from '../../helpers/clients.js';

const CLI = path.resolve('src/cli/tsp-broker.ts');
/** tsx resolved from this checkout: the commands run in a temporary folder, where a bare 'tsx' is unknown. */
const TSX = import.meta.resolve('tsx');
const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const db = path.join(dir, 'broker.db');

function cli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, ['--import', TSX, CLI, ...args], {
    input,
    encoding: 'utf8',
    cwd: dir,
    env: { ...process.env, TSP_BROKER_CONFIG: path.join(dir, 'no-standard-config.json') }, // never the real /etc
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('config defaults prints the documented defaults as JSON', () => {
  const r = cli(['config', 'defaults']);
  assert.equal(r.status, 0);
  assert.deepEqual(JSON.parse(r.stdout), JSON.parse(JSON.stringify(defaultConfig())));
  assert.match(cli(['--version']).stdout, /^\d+\.\d+\.\d+\n$/, '--version prints the package version');
});

test('a bad configuration names the key and the problem and exits 2', () => {
  const f = path.join(dir, 'bad.json');
  writeFileSync(f, JSON.stringify({ listen: { port: 'x' }, tunnels: { lifetime: 5 } }));
  const r = cli(['serve', '--config', f]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /listen\.port: /);
  assert.match(r.stderr, /tunnels\.lifetime: unknown key/);
  const flag = cli(['serve', '--port', '99999', '--db', db]);
  assert.equal(flag.status, 2);
  assert.match(flag.stderr, /listen\.port: /);
});

test('user add, list, passwd, disable, enable, delete', () => {
  assert.match(
    cli(['user', 'add', 'alice', '--password-stdin', '--db', db], 'correct horse\n').stdout,
    /created user account alice/,
  );
  const dup = cli(['user', 'add', 'alice', '--password-stdin', '--db', db], 'correct horse\n');
  assert.equal(dup.status, 1);
  assert.match(dup.stderr, /alice/);
  assert.equal(cli(['user', 'add', 'bad name', '--password-stdin', '--db', db], 'correct horse\n').status, 2);
  assert.match(cli(['user', 'add', 'short', '--password-stdin', '--db', db], 'abc\n').stderr, /at least 8/);
  assert.match(
    cli(['user', 'add', 'root', '--admin', '--password-stdin', '--db', db], 'correct horse\n').stdout,
    /created admin account root/,
  );
  const list = cli(['user', 'list', '--json', '--db', db]);
  const users = JSON.parse(list.stdout) as { username: string; role: string; disabled: boolean }[];
  assert.deepEqual(
    users.map((u) => [u.username, u.role, u.disabled]),
    [
      ['alice', 'user', false],
      ['root', 'admin', false],
    ],
  );
  assert.ok(!list.stdout.includes('argon2') && !list.stdout.toLowerCase().includes('ha1'), 'no secrets in the listing');
  assert.equal(cli(['user', 'passwd', 'alice', '--password-stdin', '--db', db], 'battery staple\n').status, 0);
  assert.equal(cli(['user', 'disable', 'alice', '--db', db]).status, 0);
  assert.match(cli(['user', 'list', '--db', db]).stdout, /alice\tuser\tdisabled/);
  assert.equal(cli(['user', 'enable', 'alice', '--db', db]).status, 0);
  assert.equal(cli(['user', 'delete', 'alice', '--db', db]).status, 0);
  const gone = cli(['user', 'passwd', 'alice', '--password-stdin', '--db', db], 'whatever12\n');
  assert.equal(gone.status, 1);
  assert.match(gone.stderr, /no account named alice/);
});

test('the database is private: created 0600 in a 0700 directory; a group-readable one is refused with exit 2', () => {
  const own = path.join(dir, 'private', 'broker.db');
  assert.equal(cli(['user', 'add', 'perm-amy', '--password-stdin', '--db', own], 'correct horse\n').status, 0);
  assert.equal((statSync(own).mode & 0o777).toString(8), '600');
  assert.equal((statSync(path.dirname(own)).mode & 0o777).toString(8), '700');

  chmodSync(own, 0o644);
  for (const args of [
    ['user', 'list', '--db', own],
    ['tunnel', 'list', '--db', own],
    ['serve', '--db', own, '--port', '0', '--dataplane', 'memory', '--no-admin'],
  ]) {
    const r = cli(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /mode 0644/);
    assert.ok(r.stderr.includes(`chmod 600 ${own}`), r.stderr);
  }
  const flag = cli(['user', 'list', '--db', own, '--allow-group-readable']);
  assert.equal(flag.status, 0, flag.stderr);
  assert.match(flag.stdout, /perm-amy/);
  const conf = path.join(dir, 'shared-ok.json');
  writeFileSync(conf, JSON.stringify({ store: { path: own, allowGroupReadable: true } }));
  assert.equal(cli(['user', 'list', '--config', conf]).status, 0);
  writeFileSync(conf, JSON.stringify({ store: { path: own, allowGroupReadable: 'yes' } }));
  const bad = cli(['user', 'list', '--config', conf]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /store\.allowGroupReadable: /);
});

test('serve starts a broker that completes TSP negotiations over UDP and TCP; tunnel list shows them', async () => {
  cli(['user', 'add', 'bob', '--password-stdin', '--db', db, '--realm', 'lab'], 'hunter2222\n');
  const proc = spawn(
    process.execPath,
    [
      '--import',
      TSX,
      CLI,
      'serve',
      '--listen',
      '127.0.0.1',
      '--port',
      '0',
      '--db',
      db,
      '--realm',
      'lab',
      '--dataplane',
      'memory',
      '--no-admin',
    ],
    {
      cwd: dir,
      env: { ...process.env, TSP_BROKER_CONFIG: path.join(dir, 'no-standard-config.json') },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: string[] = [];
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no listening line; got ${lines.join('')}`)), 20_000);
      proc.stdout.on('data', (d: Buffer) => {
        lines.push(d.toString());
        const m = /"udp":(\d+)/.exec(lines.join(''));
        if (m) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      });
      proc.on('exit', (code) => reject(new Error(`serve exited ${code}: ${lines.join('')}`)));
    });
    const udp = await runSession({
      transport: 'udp',
      port,
      auth: { mechanism: 'DIGEST-MD5', username: 'bob', password: 'hunter2222' },
    });
    assert.equal(udp.createStatus, 200);
    udp.udp?.close();
    const tcp = await runSession({ transport: 'tcp', port, auth: { mechanism: 'ANONYMOUS' }, type: 'v6v4' });
    assert.equal(tcp.createStatus, 200);
    await new Promise((r) => setTimeout(r, 300));
    tcp.tcp?.close();
    const list = cli(['tunnel', 'list', '--db', db]);
    assert.equal(list.status, 0);
    assert.match(list.stdout, /\tbob\tv6udpv4\t127\.0\.0\.1:\d+\t/);
    assert.match(list.stdout, /\t\(anonymous\)\tv6v4\t127\.0\.0\.1\t/);
    const id = (
      JSON.parse(cli(['tunnel', 'list', '--json', '--db', db]).stdout) as { id: number; type: string }[]
    ).find((t) => t.type === 'v6udpv4')!.id;
    assert.equal(cli(['tunnel', 'kill', String(id), '--db', db]).status, 0);
    const again = cli(['tunnel', 'kill', String(id), '--db', db]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already ended \(admin\)/);
    assert.equal(cli(['tunnel', 'kill', 'x', '--db', db]).status, 2);
    assert.doesNotMatch(cli(['tunnel', 'list', '--db', db]).stdout, /\tbob\t/, 'no longer live');
    // the running broker follows the audit trail and drops the tunnel from its data plane at the next sweep
    assert.ok(await eventually(() => /"reason":"admin","msg":"tunnel ended"/.test(lines.join('')), 10_000));
    assert.match(lines.join(''), /"client":"127\.0\.0\.1:\d+","reason":"admin"/, 'v6udpv4: address and port');
    // a v6v4 tunnel has no port: its end names the client's address alone
    const v6v4 = (
      JSON.parse(cli(['tunnel', 'list', '--json', '--db', db]).stdout) as { id: number; type: string }[]
    ).find((t) => t.type === 'v6v4')!.id;
    assert.equal(cli(['tunnel', 'kill', String(v6v4), '--db', db]).status, 0);
    assert.ok(await eventually(() => /"client":"127\.0\.0\.1","reason":"admin"/.test(lines.join('')), 10_000));
    const log = lines.join('');
    assert.match(log, /"msg":"session established a tunnel"/);
    assert.match(log, /"account":"bob"/);
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
  assert.match(lines.join(''), /tsp-broker stopped/);
});
