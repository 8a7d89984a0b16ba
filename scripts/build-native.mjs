/* global process, console */
// Builds the packet-path addon (native/) with node-gyp; run by `npm install` (package.json "install").
// Offline-friendly: when the running Node ships its headers (e.g. /usr/include/node), node-gyp is pointed at
// them instead of downloading a tarball. TSP_SKIP_NATIVE_BUILD=1 skips the build (the broker then runs with
// dataplane.driver 'memory' or 'auto'); otherwise a failed build fails the install, loudly. node-gyp's
// output (some 45 lines of `gyp info` and compiler progress) is kept back unless the build fails, when all
// of it is printed; TSP_VERBOSE_BUILD=1 shows it as it happens.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
if (process.env.TSP_SKIP_NATIVE_BUILD === '1') {
  console.log('build-native: skipped (TSP_SKIP_NATIVE_BUILD=1)');
  process.exit(0);
}

function nodeGypScript() {
  try {
    return createRequire(path.join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return process.env.npm_config_node_gyp; // the copy bundled with npm
  }
}

const script = nodeGypScript();
if (!script) {
  console.error('build-native: node-gyp not found (npm install it, or install with dev dependencies)');
  process.exit(1);
}
const args = [script, 'rebuild', `--directory=${path.join(root, 'native')}`];
const prefix = path.resolve(path.dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}
if (process.env.TSP_VERBOSE_BUILD === '1') {
  const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}
// One pipe for both streams, so the log keeps node-gyp's order of messages and compiler errors.
const result = spawnSync('/bin/sh', ['-c', '"$@" 2>&1', 'sh', process.execPath, ...args], {
  stdio: ['ignore', 'pipe', 'inherit'],
  maxBuffer: 64 * 1024 * 1024,
});
if (result.status !== 0) {
  process.stderr.write(result.stdout ?? '');
  if (result.error) console.error(`build-native: ${result.error.message}`);
  console.error(
    `build-native: node-gyp failed (${result.signal ?? `exit status ${result.status}`}); the whole log is above. ` +
      'TSP_SKIP_NATIVE_BUILD=1 installs without the addon (control plane only).',
  );
  process.exit(result.status || 1);
}
