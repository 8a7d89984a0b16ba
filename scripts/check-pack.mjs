#!/usr/bin/env node
/* global process, console, setTimeout */
// Checks what an operator gets from `npm pack` (a CI step in .ci/run, not part of npm test: a global install
// fetches and builds the dependencies, which takes minutes). Packs this checkout, checks the tarball's contents,
// installs it with `npm install -g` into a temporary prefix the way docs/install.md says, and runs the installed
// `tsp-broker`: `config defaults`, then `serve --no-admin --dataplane memory --port 0` until it logs that it is
// listening, then SIGTERM, which must end it with status 0. npm's warnings are printed, not fatal: outside our
// lockfile (a global install honours neither its overrides nor a shrinkwrap) npm reports cookie@2's engines
// (used only by fastify's inject(), never at run time) and lists the install scripts it ran. Cleans up after
// itself unless TSP_KEEP_PACK=1.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tsp-pack-'));
const fail = (message, output = '') => {
  if (output) process.stderr.write(`${output}\n`);
  console.error(`check-pack: ${message} (files kept in ${tmp})`);
  process.exit(1);
};
const run = (command, args, options = {}) => {
  const r = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.status !== 0) fail(`${command} ${args.join(' ')} exited ${r.status ?? r.signal}`, output);
  return { stdout: r.stdout ?? '', output };
};
const step = (what) => console.log(`check-pack: ${what}`);

step('npm pack');
const packed = run('npm', ['pack', '--silent', '--pack-destination', tmp], { cwd: root });
const tarball = path.join(tmp, packed.stdout.trim().split('\n').pop());

const listing = run('tar', ['tzf', tarball]).stdout.split('\n');
const has = (p) => listing.includes(`package/${p}`);
for (const p of [
  'package.json',
  'bin/tsp-broker.js',
  'bin/tspc.js',
  'bin/launch.js',
  'dist/cli/tsp-broker.js',
  'dist/cli/tspc.js',
  'dist/.build-stamp',
  'native/binding.gyp',
  'native/src/addon/addon.cc',
  'scripts/build-native.mjs',
  'packaging/tsp-broker.service',
  'packaging/config.json',
  'docs/install.md',
]) {
  if (!has(p)) fail(`the package lacks ${p}`);
}
const unwanted = listing.filter((p) =>
  /^package\/(src|test|bench|native\/(build|bench|test)|node_modules|data)\//.test(p),
);
if (unwanted.length > 0) fail(`the package holds files it should not:\n${unwanted.slice(0, 20).join('\n')}`);

step(`npm install -g ${path.basename(tarball)} into a temporary prefix`);
const prefix = path.join(tmp, 'prefix');
const install = run(
  'npm',
  [
    'install',
    '--global',
    '--prefix',
    prefix,
    '--allow-scripts=better-sqlite3,esbuild',
    '--no-audit',
    '--no-fund',
    tarball,
  ],
  { cwd: tmp, env: { ...process.env, DO_NOT_TRACK: '1' } },
);
const warnings = install.output.split('\n').filter((l) => /\bwarn\b/i.test(l));
if (warnings.length > 0) console.log(`check-pack: npm install -g warned:\n${warnings.join('\n')}`);

const bin = path.join(prefix, 'bin', 'tsp-broker');
step('tsp-broker config defaults');
const defaults = JSON.parse(run(bin, ['config', 'defaults'], { cwd: tmp }).stdout);
if (defaults.listen?.port !== 3653) fail('config defaults printed something unexpected');

step('tsp-broker serve --no-admin --dataplane memory --port 0');
const db = path.join(tmp, 'state', 'tsp-broker.db');
const child = spawn(bin, ['serve', '--no-admin', '--dataplane', 'memory', '--port', '0', '--db', db], {
  cwd: tmp,
  stdio: ['ignore', 'pipe', 'pipe'],
});
let log = '';
child.stdout.on('data', (d) => (log += d));
child.stderr.on('data', (d) => (log += d));
const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
const deadline = Date.now() + 60_000;
while (!log.includes('tsp-broker listening') && child.exitCode === null && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 100));
}
if (!log.includes('tsp-broker listening')) {
  child.kill('SIGKILL');
  fail('serve did not start listening within 60 s', log);
}
child.kill('SIGTERM');
const status = await exited;
if (status !== 0) fail(`serve exited ${status} on SIGTERM`, log);

if (process.env.TSP_KEEP_PACK !== '1') rmSync(tmp, { recursive: true, force: true });
step('ok: the package installs, its CLI runs, serve starts and stops');
