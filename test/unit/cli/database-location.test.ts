/** Which database a `tsp-broker` command opens, whatever the current directory: commands that read an existing
 *  database never create one and say where they looked; the standard configuration file (here TSP_BROKER_CONFIG,
 *  never the real /etc) is found without --config; an explicit --config wins and must exist; a relative
 *  store.path in a configuration file is relative to that file. Each command is a separate process. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const CLI = path.resolve('src/cli/tsp-broker.ts');
const TSX = import.meta.resolve('tsx');
const root = mkdtempSync(path.join(os.tmpdir(), 'tsp-dbloc-'));
after(() => rmSync(root, { recursive: true, force: true }));

function dirIn(name: string): string {
  const d = path.join(root, name);
  mkdirSync(d, { recursive: true });
  return d;
}

/** Runs the command in `cwd` with TSP_BROKER_CONFIG set to `standard` (a file that may not exist). */
function cli(cwd: string, standard: string, args: string[], input?: string) {
  const r = spawnSync(process.execPath, ['--import', TSX, CLI, ...args], {
    input,
    encoding: 'utf8',
    cwd,
    env: { ...process.env, TSP_BROKER_CONFIG: standard },
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('commands that read a database never create one: they say where they looked and exit 2', () => {
  const cwd = dirIn('elsewhere');
  const none = path.join(root, 'no-such-config.json');
  for (const args of [
    ['user', 'list'],
    ['user', 'passwd', 'alice', '--password-stdin'],
    ['user', 'disable', 'alice'],
    ['user', 'enable', 'alice'],
    ['user', 'delete', 'alice'],
    ['tunnel', 'list'],
    ['tunnel', 'kill', '1'],
    ['token', 'list'],
    ['token', 'create', 'ci'],
    ['token', 'revoke', 'ci'],
  ]) {
    const r = cli(cwd, none, args, 'long-enough-1\n');
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.includes(`no database found at ${path.join(cwd, 'data', 'tsp-broker.db')}`), r.stderr);
    assert.ok(r.stderr.includes(`no configuration file at ${none}`), r.stderr);
    assert.match(r.stderr, /--config FILE or --db PATH/);
    assert.equal(existsSync(path.join(cwd, 'data')), false, `${args.join(' ')} created ./data`);
  }
  const db = cli(cwd, none, ['user', 'list', '--db', 'missing.db']);
  assert.equal(db.status, 2);
  assert.ok(db.stderr.includes(`no database found at ${path.join(cwd, 'missing.db')} (--db missing.db)`), db.stderr);
  assert.equal(existsSync(path.join(cwd, 'missing.db')), false);
});

test('the standard configuration file is found from any directory; its relative store.path is relative to it', () => {
  const etc = dirIn('etc/tsp-broker');
  const standard = path.join(etc, 'config.json');
  writeFileSync(standard, JSON.stringify({ store: { path: 'state/broker.db' } }));
  const file = path.join(etc, 'state', 'broker.db');

  const add = cli(dirIn('a'), standard, ['user', 'add', 'alice', '--password-stdin'], 'correct horse\n');
  assert.equal(add.status, 0, add.stderr);
  assert.match(add.stdout, new RegExp(`created a new database at ${file}\n`));
  assert.match(add.stdout, /created user account alice/);
  assert.ok(existsSync(file), 'relative to the configuration file');
  assert.equal(existsSync(path.join(root, 'a', 'state')), false, 'not relative to the current directory');

  const again = cli(dirIn('a'), standard, ['user', 'add', 'bob', '--password-stdin'], 'correct horse\n');
  assert.doesNotMatch(again.stdout, /new database/, 'said only when it is new');
  const list = cli(dirIn('b'), standard, ['user', 'list']);
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /\talice\t/);
  assert.match(list.stdout, /\tbob\t/);
  assert.equal(cli(dirIn('c'), standard, ['config', 'check']).stdout.includes(`"path": "${file}"`), true);

  // a configuration that sets no store.path: the default, relative to the current directory, and it says so
  const bare = path.join(etc, 'bare.json');
  writeFileSync(bare, JSON.stringify({ auth: { mode: 'hybrid' } }));
  const r = cli(dirIn('d'), bare, ['tunnel', 'list']);
  assert.equal(r.status, 2);
  assert.ok(r.stderr.includes(`${bare} sets no store.path`), r.stderr);
});

test('--config wins over the standard file; a missing --config file is an error', () => {
  const standard = path.join(dirIn('std'), 'config.json');
  writeFileSync(standard, JSON.stringify({ store: { path: 'std.db' } }));
  const mine = path.join(dirIn('mine'), 'broker.json');
  writeFileSync(mine, JSON.stringify({ store: { path: 'mine.db' } }));
  const add = cli(root, standard, ['user', 'add', 'carol', '--password-stdin', '--config', mine], 'correct horse\n');
  assert.equal(add.status, 0, add.stderr);
  assert.ok(existsSync(path.join(root, 'mine', 'mine.db')));
  assert.equal(existsSync(path.join(root, 'std', 'std.db')), false);

  const missing = cli(root, standard, ['user', 'list', '--config', path.join(root, 'nope.json')]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /cannot read .*nope\.json/);
});
