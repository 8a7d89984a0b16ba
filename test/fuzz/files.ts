/** @module test/fuzz/files: the fuzz corpus (test/fuzz/corpus/<target>/*.bin, seeds copied from the recorded
 *  gogoc sessions) and the regression vectors (test/fuzz/regressions/<target>/<hash>.bin, each with a
 *  <hash>.txt saying what failed), read by the test suite and written by scripts/fuzz.ts. */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import type { Failure } from './engine.js';

export const FUZZ_DIR = path.dirname(fileURLToPath(import.meta.url));
export const CORPUS_DIR = path.join(FUZZ_DIR, 'corpus');
export const REGRESSIONS_DIR = path.join(FUZZ_DIR, 'regressions');

function binFiles(dir: string): string[] {
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.bin'))
        .sort()
        .map((f) => path.join(dir, f))
    : [];
}

export function loadCorpus(target: string): Uint8Array[] {
  return binFiles(path.join(CORPUS_DIR, target)).map((f) => new Uint8Array(readFileSync(f)));
}

export interface Regression {
  file: string;
  input: Uint8Array;
  /** Lines of the .txt beside it: `signature: ...`, `known: ...`, then the message and stack. */
  signature: string | undefined;
  known: string | undefined;
  note: string;
}

export function loadRegressions(target: string): Regression[] {
  return binFiles(path.join(REGRESSIONS_DIR, target)).map((file) => {
    const txt = file.replace(/\.bin$/, '.txt');
    const note = existsSync(txt) ? readFileSync(txt, 'utf8') : '';
    const field = (k: string) => new RegExp(`^${k}: (.*)$`, 'm').exec(note)?.[1];
    return {
      file,
      input: new Uint8Array(readFileSync(file)),
      signature: field('signature'),
      known: field('known'),
      note,
    };
  });
}

export function hashOf(input: Uint8Array): string {
  return createHash('sha256').update(input).digest('hex').slice(0, 16);
}

/** Writes <hash>.bin and <hash>.txt under regressions/<target>/; returns the .bin path. */
export function saveRegression(f: Failure, input: Uint8Array, how: string): string {
  const dir = path.join(REGRESSIONS_DIR, f.target);
  mkdirSync(dir, { recursive: true });
  const base = path.join(dir, hashOf(input));
  writeFileSync(`${base}.bin`, input);
  const lines = [
    `target: ${f.target}`,
    `signature: ${f.signature}`,
    ...(f.known ? [`known: ${f.known}`] : []),
    `kind: ${f.kind}`,
    `found: ${how}`,
    `input (base64): ${Buffer.from(input).toString('base64')}`,
    '',
    f.message,
    '',
    f.stack,
    '',
  ];
  writeFileSync(`${base}.txt`, lines.join('\n'));
  return `${base}.bin`;
}

export function saveCorpusEntry(target: string, input: Uint8Array): string {
  const dir = path.join(CORPUS_DIR, target);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${hashOf(input)}.bin`);
  writeFileSync(file, input);
  return file;
}
