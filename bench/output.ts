/** @module bench/output: the broker the benchmarks start (built into dist/ first, as installed) and waiting for
 *  what a spawned server prints (the benchmarks start real processes). */
import { spawnSync, type ChildProcess } from 'node:child_process';

/** Compiles src/ into dist/ (scripts/build-dist.mjs --required: never a skipped build, so never a stale dist/). */
export function buildDist(): void {
  if (spawnSync(process.execPath, ['scripts/build-dist.mjs', '--required'], { stdio: 'inherit' }).status !== 0)
    throw new Error('npm run build failed');
}

/** Resolves with the first match of `pattern` in `proc`'s standard output and all it printed up to then;
 *  rejects if it exits first or prints no match within `timeoutMs`. Later output is read and dropped. */
export function waitForOutput(
  proc: ChildProcess,
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<{ match: RegExpExecArray; out: string }> {
  let out = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start: ${out.slice(-2000)}`)), timeoutMs);
    const onExit = (code: number | null) => reject(new Error(`server exited ${code}: ${out.slice(-2000)}`));
    proc.on('exit', onExit);
    proc.stdout!.on('data', (d: Buffer) => {
      if (out.length < 1_000_000) out += d.toString();
      const match = pattern.exec(out);
      if (!match) return;
      clearTimeout(t);
      proc.off('exit', onExit);
      proc.stdout!.removeAllListeners('data');
      proc.stdout!.resume();
      resolve({ match, out });
    });
  });
}
