/** What `tsp-broker serve` prints, as an operator sees it: a human log format on a terminal (or with
 *  --log-format human), JSON lines with ISO times otherwise; and at start-up the database, the admin UI's URL,
 *  and while no admin account exists the exact command that creates one, which works from another directory.
 *  Each broker is a separate process in a temporary directory; TSP_BROKER_CONFIG never names the real /etc. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const CLI = path.resolve('src/cli/tsp-broker.ts');
const TSX = import.meta.resolve('tsx');
const SCRIPT = '/usr/bin/script'; // util-linux: runs a command under a pseudo-terminal
const root = mkdtempSync(path.join(os.tmpdir(), 'tsp-serve-out-'));
after(() => rmSync(root, { recursive: true, force: true }));

function dirIn(name: string): string {
  const d = path.join(root, name);
  mkdirSync(d, { recursive: true });
  return d;
}

const SERVE = ['serve', '--listen', '127.0.0.1', '--port', '0', '--admin-port', '0', '--dataplane', 'memory'];
/** ANSI colour sequences, as pino-pretty writes them on a terminal. */
const ANSI = new RegExp(String.fromCharCode(27) + '\\[[0-9;]*m', 'g');

/** Runs `cmd` until its output matches `until`, then stops it with SIGTERM; returns everything it printed. */
async function runUntil(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, until: RegExp) {
  const proc = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out; stdout: ${out}\nstderr: ${err}`)), 30_000);
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (until.test(out.replace(ANSI, '').replace(/\r/g, ''))) {
          clearTimeout(t);
          resolve();
        }
      });
      proc.on('exit', (code) => reject(new Error(`exited ${code}; stdout: ${out}\nstderr: ${err}`)));
    });
    await new Promise((r) => setTimeout(r, 300)); // anything printed right after
  } finally {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
  }
  return { out, err };
}

const HUMAN_LINE = /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN|ERROR|DEBUG): /;

test('--log-format human; the start-up names the database, the admin URL and the command that makes an admin', async () => {
  const cwd = dirIn('checkout');
  const env = { TSP_BROKER_CONFIG: path.join(root, 'none.json') };
  const { out } = await runUntil(
    process.execPath,
    ['--import', TSX, CLI, ...SERVE, '--log-format', 'human'],
    cwd,
    env,
    /no admin account yet.*\n/,
  );
  const lines = out.trimEnd().split('\n');
  for (const l of lines) assert.match(l, HUMAN_LINE, `every line is human: ${l}`);
  assert.match(out, /INFO: tsp-broker listening udp=\d+ tcp=\d+ address=127\.0\.0\.1 dataplane=memory /);
  const db = path.join(cwd, 'data', 'tsp-broker.db');
  assert.ok(out.includes(`INFO: database: ${db}; no configuration file (${env.TSP_BROKER_CONFIG})`), out);
  assert.ok(existsSync(db), 'serve creates the default database');
  const port = /INFO: admin UI at http:\/\/127\.0\.0\.1:(\d+)\/\n/.exec(out)?.[1];
  assert.ok(port && Number(port) > 0, out);
  const command = /WARN: no admin account yet: create one \(any name for admin\) with: (.+)$/m.exec(out)?.[1];
  assert.ok(command, out);
  assert.match(command, new RegExp(` user add admin --admin --web-only --db ${db}$`));

  // the command as printed, from another directory, creates the admin in the same database
  const add = spawnSync('sh', ['-c', `${command} --password-stdin`], {
    cwd: dirIn('elsewhere'),
    input: 'admin-password-1\n',
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
  assert.equal(add.status, 0, add.stderr);
  assert.match(add.stdout, /created web-only admin account admin/);
  assert.doesNotMatch(add.stdout, /new database/);

  // JSON without a terminal (the default): ISO times, and no admin command once an admin exists
  const json = await runUntil(process.execPath, ['--import', TSX, CLI, ...SERVE], cwd, env, /admin UI at .*\n/);
  const records = json.out
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as { time: string; level: number; msg: string });
  for (const r of records) assert.match(r.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(records.some((r) => /^admin UI at http:\/\/127\.0\.0\.1:\d+\/$/.test(r.msg)));
  assert.ok(!records.some((r) => r.msg.includes('no admin account')), 'an admin exists now');
});

test(
  'on a terminal the human format is the default; a wildcard admin address is said so; the command names the config',
  { skip: existsSync(SCRIPT) ? false : 'needs script(1) from util-linux for a pseudo-terminal' },
  async () => {
    const etc = dirIn('etc');
    const conf = path.join(etc, 'config.json');
    writeFileSync(conf, JSON.stringify({ store: { path: 'state/broker.db' }, admin: { address: '0.0.0.0' } }));
    const cmd = [process.execPath, '--import', TSX, CLI, ...SERVE].map((a) => `'${a}'`).join(' ');
    const { out } = await runUntil(
      SCRIPT,
      ['-qfec', cmd, '/dev/null'],
      dirIn('tty'),
      { TSP_BROKER_CONFIG: conf, TERM: 'xterm' },
      /no admin account yet.*\n/,
    );
    assert.match(out, ANSI, 'coloured on a terminal');
    const plain = out.replace(ANSI, '').replace(/\r/g, '');
    for (const l of plain.trimEnd().split('\n')) assert.match(l, HUMAN_LINE, l);
    assert.match(
      plain,
      /admin UI listening on every IPv4 address \(0\.0\.0\.0\) port \d+: http:\/\/127\.0\.0\.1:\d+\/ from this machine/,
    );
    assert.ok(plain.includes(`configuration: ${conf}`), plain);
    assert.match(plain, new RegExp(`user add admin --admin --web-only --config ${conf}\\n`), 'no --db needed');
    assert.ok(existsSync(path.join(etc, 'state', 'broker.db')));
  },
);
