/** packaging/tsp-broker.service against the CLI it starts: the unit runs `tsp-broker serve` as the tsp-broker user
 *  with only CAP_NET_ADMIN and CAP_NET_RAW, reads /etc/tsp-broker/config.json and keeps the database in
 *  /var/lib/tsp-broker. The shipped configuration is checked and served with those paths moved into a temporary
 *  directory, and `systemd-analyze verify` checks the unit's syntax when systemd is installed (docs/install.md). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const unitFile = path.join(root, 'packaging/tsp-broker.service');
const BIN = path.join(root, 'bin/tsp-broker.js');

/** The unit's [Service] section: every value of each key, in order (systemd allows repeated keys). */
function serviceSection(text: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    if (section !== 'Service') continue;
    const eq = line.indexOf('=');
    assert.ok(eq > 0, `not a key=value line: ${line}`);
    const key = line.slice(0, eq).trim();
    keys.set(key, [...(keys.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return keys;
}

const unit = serviceSection(readFileSync(unitFile, 'utf8'));
const one = (key: string): string => {
  const values = unit.get(key);
  assert.ok(values && values.length === 1, `${key} is set exactly once (got ${JSON.stringify(values)})`);
  return values[0]!;
};
const words = (key: string): string[] => (unit.get(key) ?? []).flatMap((v) => v.split(/\s+/)).filter(Boolean);

/** ExecStart split into argv (the unit uses no quoting), and the value after each `--flag`. */
const execStart = one('ExecStart').split(/\s+/);
const flag = (name: string): string | undefined => {
  const i = execStart.indexOf(name);
  return i < 0 ? undefined : execStart[i + 1];
};

test('the unit runs serve as its own user with two capabilities and FHS paths', () => {
  assert.equal(one('User'), 'tsp-broker');
  assert.equal(one('Group'), 'tsp-broker');
  assert.deepEqual(words('AmbientCapabilities').sort(), ['CAP_NET_ADMIN', 'CAP_NET_RAW']);
  assert.deepEqual(words('CapabilityBoundingSet').sort(), ['CAP_NET_ADMIN', 'CAP_NET_RAW']);
  assert.equal(one('StateDirectory'), 'tsp-broker');
  assert.equal(one('ConfigurationDirectory'), 'tsp-broker');
  assert.equal(one('WorkingDirectory'), '/var/lib/tsp-broker');
  assert.equal(one('Restart'), 'on-failure');
  for (const [key, value] of [
    ['NoNewPrivileges', 'yes'],
    ['ProtectSystem', 'strict'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
    ['DevicePolicy', 'closed'],
  ] as const) {
    assert.equal(one(key), value, key);
  }
  assert.deepEqual(unit.get('DeviceAllow'), ['/dev/net/tun rw']);
  // The data plane's sockets (UDP, raw protocol 41), `ip` over netlink, the journal: and nothing else.
  assert.deepEqual(words('RestrictAddressFamilies').sort(), ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX']);
  // io_uring for TUN writes is outside @system-service: the filter must let it through.
  for (const call of ['io_uring_setup', 'io_uring_enter']) assert.ok(words('SystemCallFilter').includes(call), call);

  assert.equal(path.basename(execStart[0]!), 'tsp-broker');
  assert.ok(path.isAbsolute(execStart[0]!), 'ExecStart names an absolute path');
  assert.equal(execStart[1], 'serve');
  assert.equal(flag('--config'), `/etc/${one('ConfigurationDirectory')}/config.json`);
});

test("ExecStart's flags are serve's flags", () => {
  const help = spawnSync(process.execPath, [BIN, 'serve', '--help'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(help.status, 0, help.stderr);
  for (const arg of execStart.slice(2).filter((a) => a.startsWith('--'))) {
    assert.match(help.stdout, new RegExp(`${arg}\\b`), `serve --help lists ${arg}`);
  }
});

/** packaging/config.json with /etc/tsp-broker and /var/lib/tsp-broker moved under a temporary directory. */
function relocatedConfig(): { dir: string; state: string; config: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-unit-'));
  const state = path.join(dir, 'var/lib/tsp-broker');
  const etc = path.join(dir, 'etc/tsp-broker');
  mkdirSync(state, { recursive: true, mode: 0o700 });
  mkdirSync(etc, { recursive: true });
  const text = readFileSync(path.join(root, 'packaging/config.json'), 'utf8')
    .replaceAll('/var/lib/tsp-broker', state)
    .replaceAll('/etc/tsp-broker', etc);
  const config = path.join(etc, path.basename(flag('--config')!));
  writeFileSync(config, text);
  return { dir, state, config };
}

test('the shipped configuration passes config check and keeps the database in the state directory', () => {
  const { state, config } = relocatedConfig();
  const r = spawnSync(process.execPath, [BIN, 'config', 'check', '--config', config], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const resolved = JSON.parse(r.stdout) as { store: { driver: string; path: string }; dataplane: { driver: string } };
  assert.equal(resolved.store.driver, 'sqlite');
  assert.equal(path.dirname(resolved.store.path), state);
  assert.equal(resolved.dataplane.driver, 'native');
});

test("serve starts from the unit's command line (paths relocated, memory data plane) and stops on SIGTERM", async () => {
  const { state, config } = relocatedConfig();
  const args = [...execStart.slice(1).map((a) => (a === flag('--config') ? config : a))];
  args.push('--dataplane', 'memory', '--port', '0', '--no-admin');
  const child = spawn(process.execPath, [BIN, ...args], { cwd: state, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  while (!out.includes('tsp-broker listening') && child.exitCode === null && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(out, /tsp-broker listening/, out);
  child.kill('SIGTERM');
  assert.equal(await exited, 0, out);
  const db = path.join(state, 'tsp-broker.db');
  assert.ok(existsSync(db), 'the database is in the state directory');
  assert.equal(statSync(db).mode & 0o077, 0, 'and private');
});

const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
test(
  'systemd-analyze verify accepts the unit',
  {
    skip: analyze.status === 0 ? false : 'systemd-analyze is not installed (apt-get install systemd; .ci/run does)',
  },
  () => {
    // verify insists that ExecStart's program exists: point it at this checkout's bin/tsp-broker.js.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsp-unit-verify-'));
    const copy = path.join(dir, 'tsp-broker.service');
    writeFileSync(copy, readFileSync(unitFile, 'utf8').replace(execStart[0]!, BIN));
    const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8', timeout: 60_000 });
    const ours = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes('tsp-broker'));
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(ours, [], 'no warnings about the unit (unknown keys, syscall groups, paths)');
  },
);
