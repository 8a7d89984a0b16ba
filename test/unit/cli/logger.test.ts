/** The broker's log output as a collector reads it from a pipe: every line whole and in order, a line logged
 *  while the process then sits idle arrives without anything else happening, and the lines logged just before
 *  the process exits (process.exit, an uncaught exception) are there, in both formats (src/cli/logger.ts
 *  gathers a turn's lines into one write). Each case is a separate process writing to a pipe. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const TSX = import.meta.resolve('tsx');
const LOGGER = pathToFileURL(path.resolve('src/cli/logger.ts')).href;
const root = mkdtempSync(path.join(os.tmpdir(), 'tsp-logger-'));
after(() => rmSync(root, { recursive: true, force: true }));

interface Run {
  out: string;
  err: string;
  code: number | null;
}

/** Runs `body` with `log` (format `format`, stdout a pipe) in a process of its own; stops it once its output
 *  matches `until` (if given), else waits for it to exit. Bounded by 20 s. */
async function runChild(format: 'json' | 'human', body: string, until?: RegExp): Promise<Run> {
  const file = path.join(root, `child-${Math.random().toString(36).slice(2)}.mts`);
  writeFileSync(
    file,
    `import { createLogger } from ${JSON.stringify(LOGGER)};\n` +
      `const log = createLogger({ level: 'info', format: ${JSON.stringify(format)} }, { fd: 1, isTTY: false });\n` +
      body,
  );
  const proc = spawn(process.execPath, ['--import', TSX, file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  try {
    return await new Promise<Run>((resolve) => {
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (until?.test(out)) {
          resolve({ out, err, code: null });
          proc.kill('SIGKILL');
        }
      });
      proc.on('close', (code) => resolve({ out, err, code }));
    });
  } finally {
    clearTimeout(timer);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  }
}

function jsonLines(out: string): { msg: string; n?: number; level: number }[] {
  assert.ok(out.endsWith('\n'), `output ends with a whole line: ${JSON.stringify(out.slice(-80))}`);
  return out
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as { msg: string; n?: number; level: number });
}

test('every line arrives whole and in order, across many turns of the event loop and within one', async () => {
  const r = await runChild(
    'json',
    `for (let i = 0; i < 2000; i++) log.info({ n: i, pad: 'x'.repeat(i % 97) }, 'line');
     for (let i = 2000; i < 2300; i++) await new Promise((r) => setImmediate(() => { log.info({ n: i }, 'line'); r(undefined); }));`,
  );
  assert.equal(r.code, 0, r.err);
  const lines = jsonLines(r.out);
  assert.deepEqual(
    lines.map((l) => l.n),
    Array.from({ length: 2300 }, (_, i) => i),
  );
});

test('a line logged while the process then sits idle reaches the reader without anything else happening', async () => {
  const r = await runChild(
    'json',
    `log.warn('waiting for clients');
     setTimeout(() => undefined, 60_000);`,
    /waiting for clients.*\n/,
  );
  assert.equal(jsonLines(r.out)[0]!.msg, 'waiting for clients');
});

test('the lines logged just before process.exit are written, in both formats', async () => {
  for (const format of ['json', 'human'] as const) {
    const r = await runChild(
      format,
      `log.info('first');
       await new Promise((r) => setImmediate(r));
       log.info('second');
       log.error({ code: 'STORE_FAILED' }, 'cannot go on');
       process.exit(3);`,
    );
    assert.equal(r.code, 3, r.err);
    const lines = r.out.replace(/\r/g, '').split('\n');
    assert.equal(lines.length, 4, `three whole lines (${format}): ${r.out}`);
    assert.match(lines[0]!, /first/);
    assert.match(lines[1]!, /second/);
    assert.match(lines[2]!, /cannot go on/);
    assert.match(lines[2]!, /STORE_FAILED/);
    assert.equal(lines[3], '');
  }
});

test('flushLogs puts the waiting lines before what is printed next on stderr (one journal stream)', async () => {
  // stdout and stderr on one pipe, as under systemd: the CLI's last words on a fatal error read last
  const file = path.join(root, 'fatal.mts');
  writeFileSync(
    file,
    `import { createLogger, flushLogs } from ${JSON.stringify(LOGGER)};\n` +
      `const log = createLogger({ level: 'info', format: 'json' }, { fd: 1, isTTY: false });\n` +
      `log.error({ code: 'STORE_FAILED' }, 'cannot open the database');\n` +
      `flushLogs();\n` +
      `console.error('tsp-broker: cannot open the database');\n` +
      `process.exit(1);\n`,
  );
  const proc = spawn('/bin/sh', ['-c', 'exec "$0" --import "$1" "$2" 2>&1', process.execPath, TSX, file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise((r) => proc.on('close', r));
  assert.equal(code, 1);
  const lines = out.trimEnd().split('\n');
  assert.equal(lines.length, 2, out);
  assert.equal((JSON.parse(lines[0]!) as { msg: string }).msg, 'cannot open the database');
  assert.equal(lines[1], 'tsp-broker: cannot open the database');
});

test('the lines logged in the turn that throws an uncaught exception are written before the process dies', async () => {
  const r = await runChild(
    'json',
    `setTimeout(() => {
       log.info({ tunnel: 7 }, 'tunnel established');
       throw new Error('boom in a timer');
     }, 10);`,
  );
  assert.equal(r.code, 1);
  assert.match(r.err, /boom in a timer/);
  assert.deepEqual(
    jsonLines(r.out).map((l) => l.msg),
    ['tunnel established'],
  );
});
