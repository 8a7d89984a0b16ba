/* global process, console */
// Builds the packet-path addon (native/) with node-gyp; run by `npm install` (package.json "install"). In a
// checkout it also builds native/bench/ (tsp_bench.node: the packet generator and enterNetns), best effort.
// Offline-friendly: when the running Node ships its headers (e.g. /usr/include/node), node-gyp is pointed at
// them instead of downloading a tarball. TSP_SKIP_NATIVE_BUILD=1 skips the build (the broker then runs with
// dataplane.driver 'memory' or 'auto'); otherwise a failed build fails the install, loudly. node-gyp's
// output (some 45 lines of `gyp info` and compiler progress) is kept back unless the build fails, when all
// of it is printed; TSP_VERBOSE_BUILD=1 shows it as it happens.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
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

/** One node-gyp run; `extra` are gyp variables (`--tsp_bench=0`). Returns its status and, unless verbose, its log. */
function nodeGyp(extra) {
  if (process.env.TSP_VERBOSE_BUILD === '1') {
    const result = spawnSync(process.execPath, [...args, ...extra], { stdio: 'inherit' });
    return { status: result.status ?? 1, log: '', failure: result.signal ?? `exit status ${result.status}` };
  }
  // One pipe for both streams, so the log keeps node-gyp's order of messages and compiler errors.
  const result = spawnSync('/bin/sh', ['-c', '"$@" 2>&1', 'sh', process.execPath, ...args, ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) console.error(`build-native: ${result.error.message}`);
  return {
    status: result.status ?? 1,
    log: result.stdout ?? '',
    failure: result.signal ?? `exit status ${result.status}`,
  };
}

// The optional targets are built with the addon where they can be: the bench and test tools (native/bench/,
// tsp_bench.node) where their sources exist (a checkout, not the npm package), the eBPF loader (tsp_ebpf.node)
// where libbpf's headers are. They must never cost the broker its addon: if the build with them fails, it is
// retried without the loader, then without both, and only a failure of the production addon fails the install.
const hasBench = existsSync(path.join(root, 'native', 'bench', 'bench_addon.cc'));
const hasLibbpf = existsSync('/usr/include/bpf/libbpf.h');
let result = nodeGyp([]);
const fallbacks = [...(hasLibbpf ? [['--tsp_ebpf=0']] : []), ...(hasBench ? [['--tsp_ebpf=0', '--tsp_bench=0']] : [])];
for (const extra of fallbacks) {
  if (result.status === 0) break;
  process.stderr.write(result.log);
  console.error(`build-native: the build failed (${result.failure}; log above); retrying with ${extra.join(' ')}`);
  result = nodeGyp(extra);
  if (result.status === 0) console.error(`build-native: built with ${extra.join(' ')}: the optional addons were not`);
}
if (result.status !== 0) {
  process.stderr.write(result.log);
  console.error(
    `build-native: node-gyp failed (${result.failure}); the whole log is above. ` +
      'TSP_SKIP_NATIVE_BUILD=1 installs without the addon (control plane only).',
  );
  process.exit(result.status || 1);
}

// The eBPF fast path's programs (native/src/bpf/fastpath.bpf.c -> native/build/bpf/fastpath.bpf.o), for
// `dataplane.driver` ebpf: built where clang and libbpf's headers are. Their absence is not an error: the
// broker then runs the native driver (`auto` says why); README.md says what to install.
buildBpfObject();

function buildBpfObject() {
  const source = path.join(root, 'native', 'src', 'bpf', 'fastpath.bpf.c');
  const output = path.join(root, 'native', 'build', 'bpf', 'fastpath.bpf.o');
  if (!existsSync(source)) return;
  if (!hasLibbpf) {
    console.log('build-native: eBPF fast path not built (no libbpf headers: apt-get install libbpf-dev clang)');
    return;
  }
  // Debian keeps <asm/...> under the multiarch directory, which clang -target bpf does not search by itself.
  const multiarch = spawnSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).stdout?.trim();
  const includes = multiarch ? [`-I/usr/include/${multiarch}`] : [];
  mkdirSync(path.dirname(output), { recursive: true });
  const clang = spawnSync('clang', ['-O2', '-g', '-target', 'bpf', '-Wall', ...includes, '-c', source, '-o', output], {
    encoding: 'utf8',
  });
  if (clang.error || clang.status !== 0) {
    const why = clang.error ? clang.error.message : clang.stderr.trim();
    console.log(`build-native: eBPF fast path not built (clang: ${why}); the native driver is unaffected`);
    return;
  }
  console.log('build-native: eBPF fast path built (native/build/bpf/fastpath.bpf.o)');
}
