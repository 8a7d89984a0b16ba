/** The addon's C++ unit tests (native/test/*.cc: classification, the source check, echo, hairpin,
 *  longest prefix match, the receive loop over in-memory I/O, the table's change log and reads by id). They need no root, no sockets and no Node
 *  headers: this file compiles the engine and the test with the system's C++ compiler into
 *  native/build/test/ (again only when a source is newer than the binary) and runs the binary; a failed check
 *  fails this test with the binary's output. Skipped only when there is no C++ compiler (the addon could not
 *  have been built either). */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const native = fileURLToPath(new URL('../../../native/', import.meta.url));
const binary = path.join(native, 'build', 'test', 'engine_test');
const compiler = process.env.CXX ?? 'c++';
const hasCompiler = spawnSync(compiler, ['--version'], { stdio: 'ignore' }).status === 0;

/** What the binary is built from: the engine's sources and headers, io/io.h (the interfaces), the test. */
function sources(): { compile: string[]; all: string[] } {
  const list = (dir: string, ext: RegExp) =>
    readdirSync(path.join(native, dir))
      .filter((f) => ext.test(f))
      .map((f) => path.join(native, dir, f));
  const compile = [...list('test', /\.cc$/), ...list('src/engine', /\.cc$/)];
  return {
    compile,
    all: [...compile, ...list('src/engine', /\.h$/), ...list('test', /\.h$/), path.join(native, 'src/io/io.h')],
  };
}

function build(): void {
  const { compile, all } = sources();
  const built = existsSync(binary) ? statSync(binary).mtimeMs : 0;
  if (all.every((f) => statSync(f).mtimeMs < built)) return;
  mkdirSync(path.dirname(binary), { recursive: true });
  const args = ['-std=c++17', '-O1', '-g', '-Wall', '-Wextra', `-I${path.join(native, 'src')}`];
  const result = spawnSync(compiler, [...args, ...compile, '-lpthread', '-o', binary], { encoding: 'utf8' });
  assert.equal(result.status, 0, `compiling the engine tests failed:\n${result.stdout}${result.stderr}`);
}

describe('native engine (C++ unit tests)', () => {
  it(
    'builds and passes native/test/engine_test',
    { skip: hasCompiler ? false : `no C++ compiler (${compiler})` },
    () => {
      build();
      const run = spawnSync(binary, [], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(run.status, 0, `native/test/engine_test failed:\n${run.stdout}${run.stderr}`);
      assert.match(run.stdout, /\d+ tests, \d+ checks, 0 failed/);
    },
  );
});
