#!/usr/bin/env node
/* global process, console, URL */
// Runs the test suite with node:test. Node 20's --test takes no glob patterns, so this lists the files:
// every *.test.ts under test/ (or under the folders given as arguments), one file at a time so namespace
// and browser tests never compete for the two cores.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const roots = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const extra = process.argv.slice(2).filter((a) => a.startsWith('-'));
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(p);
  }
};
for (const r of roots.length ? roots : ['test']) {
  if (statSync(r).isDirectory()) walk(r);
  else files.push(r);
}
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
// Beside the usual reporter (spec on a terminal, tap otherwise, as node picks), skip-reporter.mjs writes each
// skipped test or suite with its reason to a file, listed at the end: a suite that skips (no root, no
// PostgreSQL) shows as such instead of hiding behind "# skipped 0". Unless the caller chose reporters itself.
const ownReporters = extra.some((a) => a.startsWith('--test-reporter'));
const skipFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'tsp-tests-')), 'skipped.jsonl');
const reporters = ownReporters
  ? []
  : [
      `--test-reporter=${process.stdout.isTTY ? 'spec' : 'tap'}`,
      '--test-reporter-destination=stdout',
      `--test-reporter=${fileURLToPath(new URL('skip-reporter.mjs', import.meta.url))}`,
      `--test-reporter-destination=${skipFile}`,
    ];
// TSP_STORE_CHECKS: a store call that bypasses the batch it runs in throws (store/kysely/runner.ts); brokers the
// tests start inherit it
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', ...reporters, ...extra, ...files],
  { stdio: 'inherit', env: { ...process.env, TSP_STORE_CHECKS: '1' } },
);
let skipped = [];
try {
  skipped = readFileSync(skipFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
} catch {
  // no file: the reporter never ran (own reporters) or nothing was written
}
rmSync(path.dirname(skipFile), { recursive: true, force: true });
if (skipped.length > 0) {
  console.error(`\n${skipped.length} skipped (tests or whole suites), and why:`);
  for (const s of skipped) console.error(`  - ${s.file}: ${s.name}: ${s.reason}`);
}
// CI must run everything: .ci/run installs what each suite needs (root, PostgreSQL, chromium, ...).
if (process.env.CI === 'true' && skipped.length > 0) {
  console.error(
    `\nrun-tests: ${skipped.length} skipped under CI (CI=true), where every test must run: ` +
      'install what the reasons above name in .ci/run, or make the test not need it',
  );
  process.exit(r.status || 1);
}
process.exit(r.status ?? 1);
