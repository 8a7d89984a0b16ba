/** Fuzzing in the test suite (docs/fuzzing.md): every saved regression vector replays, every corpus seed runs
 *  clean, and each target is fuzzed briefly with a fixed seed. A failure here names the input (base64) and the
 *  command that saves it as a regression vector. Known issues (Target.known) replay as todo. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Fuzzer, runOne, type Failure } from './engine.js';
import { loadCorpus, loadRegressions } from './files.js';
import { TARGETS } from './targets/index.js';

/** Fixed, so a run is the same every time up to where its time budget ends it. */
const SEED = 0x75b5_2026;
/** Per target: the whole file stays well under 20 s on the 2-core machines. */
const BUDGET_MS = 1_800;
const MAX_INPUTS = 60_000;
const SLOW_MS = 1_000;

const explain = (f: Failure & { input?: Uint8Array }) =>
  [
    `${f.kind} in ${f.target}: ${f.message}`,
    f.input ? `input (base64): ${Buffer.from(f.input).toString('base64')}` : '',
    `save it as a regression vector: npm run fuzz -- --target ${f.target} --seed ${SEED}`,
    f.stack,
  ].join('\n');

for (const target of TARGETS) {
  const regressions = loadRegressions(target.name);
  for (const r of regressions) {
    const name = `${target.name}: regression ${r.file.split(/[/\\]/).pop()} replays clean`;
    if (r.known)
      test(name, { todo: `known issue ${r.known}` }, () => {
        const f = runOne(target, r.input, SLOW_MS).failure;
        assert.equal(f, undefined, f && explain(f));
      });
    else
      test(name, () => {
        const f = runOne(target, r.input, SLOW_MS).failure;
        assert.equal(f, undefined, f && `${explain({ ...f, input: r.input })}\n\nsaved as:\n${r.note}`);
      });
  }

  test(`${target.name}: fuzzed with seed ${SEED} for ${BUDGET_MS} ms, no new failure`, () => {
    const seeds = [...loadCorpus(target.name), ...regressions.map((r) => r.input)];
    assert.ok(seeds.length > 0, `test/fuzz/corpus/${target.name} has seeds`);
    const fuzzer = new Fuzzer(target, {
      seed: SEED,
      seeds,
      slowMs: SLOW_MS,
      minimiseBudget: { execs: 500, ms: 1000 },
    });
    const end = performance.now() + BUDGET_MS;
    fuzzer.run((n) => n >= MAX_INPUTS || performance.now() >= end);
    const fresh = fuzzer.stats.failures.filter((f) => !f.known);
    assert.deepEqual(fresh.map(explain), []);
    assert.ok(fuzzer.stats.execs > seeds.length, 'mutated inputs ran');
  });
}
