/* global process, console */
// Compiles src/ to dist/ (ESM JavaScript with source maps, tsconfig.build.json) so an installed broker starts
// without compiling TypeScript at run time; bin/*.js use dist/ when it is newer than every file in src/ and
// fall back to running src/ through tsx otherwise (bin/launch.js). Run by `npm install` (after the addon),
// `npm run build` and `npm pack` (prepack, with --required). Quiet unless tsc fails, then prints its output.
// In an installed package there is no src/: dist/ came in the tarball and there is nothing to do.
// Without TypeScript (an install that omitted dev dependencies) it says so and leaves bin/ on tsx, unless
// --required (prepack), where that is an error. TSP_SKIP_DIST_BUILD=1 skips the build.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const required = process.argv.includes('--required');
const dist = path.join(root, 'dist');

if (!existsSync(path.join(root, 'src'))) process.exit(0);
if (process.env.TSP_SKIP_DIST_BUILD === '1' && !required) {
  console.log('build-dist: skipped (TSP_SKIP_DIST_BUILD=1); bin/ runs src/ through tsx');
  process.exit(0);
}

let tsc;
try {
  tsc = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  if (required) {
    console.error('build-dist: typescript is not installed (npm install with dev dependencies first)');
    process.exit(1);
  }
  console.log('build-dist: typescript not installed, dist/ not built; bin/ runs src/ through tsx');
  process.exit(0);
}

// The stamp's time is when the build started: a source saved while tsc runs makes dist/ stale, never fresh.
const started = new Date();
rmSync(dist, { recursive: true, force: true });
const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'pipe'],
  encoding: 'utf8',
  maxBuffer: 64 * 1024 * 1024,
});
if (result.status !== 0) {
  process.stderr.write(result.stdout ?? '');
  process.stderr.write(result.stderr ?? '');
  if (result.error) console.error(`build-dist: ${result.error.message}`);
  console.error(
    'build-dist: tsc -p tsconfig.build.json failed (output above); dist/ removed, bin/ runs src/ through tsx',
  );
  rmSync(dist, { recursive: true, force: true });
  process.exit(result.status || 1);
}
mkdirSync(dist, { recursive: true });
const stamp = path.join(dist, '.build-stamp');
writeFileSync(stamp, `built from src/ by scripts/build-dist.mjs at ${started.toISOString()}\n`);
utimesSync(stamp, started, started);
