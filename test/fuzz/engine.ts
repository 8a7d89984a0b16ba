/** @module test/fuzz/engine: a small seeded mutation fuzzer (docs/fuzzing.md). Deterministic: the same seed
 *  and the same corpus give the same inputs. Byte-level mutations (flip, set, insert, delete, duplicate,
 *  splice between corpus entries, interesting values, protocol tokens, number rewriting), a cheap feedback
 *  signal (targets report behaviour "features"; an input that shows a new one joins the corpus), failure
 *  signatures, and a minimiser. No I/O here: scripts/fuzz.ts and test/fuzz/fuzz.test.ts own the files. */

import { isBrokerError } from '../../src/errors.js';

// ---------------------------------------------------------------- PRNG

/** sfc32: small, fast, 128 bits of state, good enough for fuzzing; seeded through splitmix32. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    let s = seed >>> 0;
    const split = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = split();
    this.b = split();
    this.c = split();
    this.d = split();
    for (let i = 0; i < 12; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** Uniform in [0, n) for n ≥ 1. */
  below(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 4294967296) * n);
  }
  /** Uniform in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
  /** Small numbers far more often than large ones (lengths, counts). */
  small(max: number): number {
    return Math.min(max, this.below(2 ** this.range(1, Math.max(1, Math.ceil(Math.log2(max + 1))))));
  }
}

/** FNV-1a over bytes: seeds a target's schedule from (part of) its input. */
export function fnv1a(bytes: Uint8Array, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}

// ---------------------------------------------------------------- targets

/** What a target's exec reports: behaviour features (any short strings) that steer the corpus. */
export type Features = Iterable<string> | undefined | void;

export interface Target {
  name: string;
  /** One line for `--list` and the docs. */
  description: string;
  /** Runs one input. Throws on a bug (an InvariantError, or whatever escaped the code under test); must be a
   *  pure function of the input, so a saved input replays the same way. */
  exec(input: Uint8Array): Features;
  /** Protocol tokens the mutator inserts and overwrites with. */
  dictionary: readonly Uint8Array[];
  /** Longest input the mutator makes. */
  maxLength: number;
  /** Structure-aware mutation; default: mutateBytes over the whole input. */
  mutate?(input: Uint8Array, m: Mutator): Uint8Array;
  /** Structure-aware minimisation candidates, tried before the byte-level ones. */
  shrink?(input: Uint8Array): Iterable<Uint8Array>;
  /** Failures that are known and tracked elsewhere: counted and saved once, never failing a run. */
  known?: readonly KnownIssue[];
}

export interface KnownIssue {
  id: string;
  description: string;
  matches(f: Failure): boolean;
}

/** A broken invariant of the code under test (as opposed to an exception it threw). */
export class InvariantError extends Error {
  constructor(
    message: string,
    /** The call that produced the bad step, e.g. `timeout`. */
    readonly op = '',
  ) {
    super(message);
    this.name = 'InvariantError';
  }
}

/** An exception thrown by the code under test, with the call it escaped from. */
export class EscapedError extends Error {
  constructor(
    readonly op: string,
    readonly error: unknown,
  ) {
    super(`${op}() threw ${describeError(error)}`, { cause: error });
    this.name = 'EscapedError';
  }
}

/** Runs fn; anything it throws is wrapped with the name of the call (targets use it around every call into the
 *  code under test, so a failure says which call broke). */
export function call<T>(op: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw new EscapedError(op, e);
  }
}

/** Parsers may throw only our documented errors (BrokerError and subclasses): anything else escapes. */
export function allowBrokerErrors<T>(op: string, fn: () => T): { ok: true; value: T } | { ok: false; error: Error } {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    if (isBrokerError(e)) return { ok: false, error: e };
    throw new EscapedError(op, e);
  }
}

/** The shape of a message: its first word (or `*` when that is not a plain word of a few letters)
 *  (messages quote input bytes, and a feature per distinct message would make every input look new). */
export function messageShape(text: string, words = 1): string {
  return text
    .split(/\s+/, words)
    .map((w) => (/^([a-z]{2,9}|[=<>])$/.test(w) ? w : '*'))
    .join(' ');
}

/** A bounded behaviour feature for an error: its code, the shape of its message, and the magnitude of the
 *  message's last number (how far a parser got: `at offset 213` counts as 2^7). */
export function errorFeature(e: Error): string {
  const n = /(\d+)\D*$/.exec(e.message);
  const magnitude = n ? Math.floor(Math.log2(Math.min(Number(n[1]), 2 ** 30) + 1)) : '';
  return `${isBrokerError(e) ? e.code : e.name}:${messageShape(e.message)}:${magnitude}`;
}

export function describeError(e: unknown): string {
  if (isBrokerError(e)) return `${e.name} ${e.code}: ${e.message}`;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return `non-error ${typeof e}: ${String(e)}`;
}

export interface Failure {
  target: string;
  kind: 'throw' | 'invariant' | 'hang' | 'slow';
  /** The call that failed (receive, timeout, parseXml, ...), when known. */
  op: string;
  message: string;
  stack: string;
  /** Stable across runs and line moves: kind, call, error class or code, and the first frame in src/. */
  signature: string;
  /** The KnownIssue id this failure matches, if any. */
  known?: string;
  /** The error object itself, for known-issue matching. */
  error?: unknown;
}

/** The first stack frame inside src/ (file and function, no line numbers), or the first frame at all. */
function firstSrcFrame(stack: string): string {
  const frames = stack.split('\n').filter((l) => /^\s+at /.test(l));
  const pick = frames.find((l) => /[/\\]src[/\\]/.test(l)) ?? frames[0] ?? '';
  const fn = /at (?:new )?([\w$.<>[\] ]+?) \(/.exec(pick)?.[1] ?? '?';
  const file = /([\w.-]+\.[mc]?[jt]s):\d+/.exec(pick)?.[1] ?? '?';
  return `${file}:${fn}`;
}

export function toFailure(target: Target, e: unknown): Failure {
  let kind: Failure['kind'] = 'throw';
  let op = '';
  let inner: unknown = e;
  if (e instanceof EscapedError) {
    op = e.op;
    inner = e.error;
  } else if (e instanceof InvariantError) {
    kind = 'invariant';
    op = e.op;
  }
  const stack = inner instanceof Error ? (inner.stack ?? String(inner)) : String(inner);
  const what = isBrokerError(inner)
    ? `${inner.name}:${inner.code}`
    : inner instanceof InvariantError
      ? `invariant:${inner.message.replace(/\d+/g, 'N').slice(0, 80)}`
      : inner instanceof Error
        ? inner.name
        : typeof inner;
  const f: Failure = {
    target: target.name,
    kind,
    op,
    message: e instanceof Error ? e.message : String(e),
    stack,
    signature: `${target.name}|${kind}|${op}|${what}|${kind === 'invariant' ? '' : firstSrcFrame(stack)}`,
    error: inner,
  };
  const k = target.known?.find((x) => x.matches(f));
  if (k) f.known = k.id;
  return f;
}

/** One execution: a failure, or the features it showed. Slow inputs are failures too. */
export function runOne(
  target: Target,
  input: Uint8Array,
  slowMs: number,
): { failure?: Failure; features?: Features; ms: number } {
  const t0 = performance.now();
  try {
    const features = target.exec(input);
    const ms = performance.now() - t0;
    if (ms > slowMs)
      return {
        ms,
        failure: {
          target: target.name,
          kind: 'slow',
          op: '',
          message: `one input took ${ms.toFixed(0)} ms (limit ${slowMs} ms)`,
          stack: '',
          signature: `${target.name}|slow`,
        },
      };
    return { ms, features };
  } catch (e) {
    return { ms: performance.now() - t0, failure: toFailure(target, e) };
  }
}

// ---------------------------------------------------------------- mutation

const ascii = (s: string): Uint8Array => Buffer.from(s, 'latin1');

/** Values that tend to break parsers: boundaries, separators, numbers around limits. */
const INTERESTING_BYTES = [
  0x00, 0x01, 0x09, 0x0a, 0x0d, 0x20, 0x22, 0x27, 0x2c, 0x3c, 0x3d, 0x3e, 0x5c, 0x7f, 0x80, 0xff,
];
const INTERESTING_NUMBERS = [
  '0',
  '1',
  '-1',
  '00',
  '127',
  '128',
  '129',
  '255',
  '256',
  '1472',
  '2048',
  '2049',
  '8192',
  '8193',
  '65535',
  '65536',
  '2147483647',
  '2147483648',
  '4294967295',
  '4294967296',
  '999999999999',
  '9999999999999',
  '1e21',
  '0x10',
  'NaN',
  'Infinity',
  '',
];

/** Tokens every target shares (line ends, NULs, XML and SASL syntax). Targets add their own. */
export const COMMON_TOKENS: readonly Uint8Array[] = [
  '\r\n',
  '\n',
  '\0',
  '\r\n\0',
  '"',
  "'",
  '=',
  ',',
  '<',
  '>',
  '</',
  '/>',
  '<!--',
  '-->',
  '<?xml version="1.0"?>',
  '<!DOCTYPE x>',
  '<![CDATA[',
  '&amp;',
  '&#0;',
  '&#x110000;',
  '&#xD800;',
  '&#99999999999;',
  '&unknown;',
  '&',
  '\\',
  '\\"',
  '\u00e9',
].map(ascii);

export interface Mutator {
  rng: Rng;
  /** Byte-level mutation of one buffer (1–n stacked operations). */
  bytes(data: Uint8Array, maxLength: number): Uint8Array;
  /** Another corpus entry, for splicing. */
  other(): Uint8Array;
  dictionary: readonly Uint8Array[];
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

/** One byte-level operation. */
function mutateOnce(d: Uint8Array, m: Mutator, maxLength: number): Uint8Array {
  const rng = m.rng;
  const n = d.length;
  const at = () => rng.below(n + 1);
  switch (rng.below(14)) {
    case 0: {
      if (!n) return Uint8Array.of(rng.below(256));
      const out = Uint8Array.from(d);
      const i = rng.below(n);
      out[i] = out[i]! ^ (1 << rng.below(8));
      return out;
    }
    case 1: {
      if (!n) return d;
      const out = Uint8Array.from(d);
      out[rng.below(n)] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.below(256);
      return out;
    }
    case 2: {
      const i = at();
      const ins = new Uint8Array(rng.range(1, 4)).map(() =>
        rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.below(256),
      );
      return concat([d.subarray(0, i), ins, d.subarray(i)]);
    }
    case 3: {
      if (!n) return d;
      const i = rng.below(n);
      const len = Math.min(n - i, 1 + rng.small(n));
      return concat([d.subarray(0, i), d.subarray(i + len)]);
    }
    case 4: {
      // duplicate a range in place (repeated tokens, long lines)
      if (!n) return d;
      const i = rng.below(n);
      const len = Math.min(n - i, 1 + rng.small(64));
      const times = rng.chance(0.1) ? rng.range(2, 200) : 1;
      const chunk = d.subarray(i, i + len);
      return concat([d.subarray(0, i + len), ...Array.from({ length: times }, () => chunk), d.subarray(i + len)]);
    }
    case 5:
    case 6: {
      // insert a protocol token
      const i = at();
      return concat([d.subarray(0, i), rng.pick(m.dictionary), d.subarray(i)]);
    }
    case 7: {
      // overwrite with a protocol token
      const t = rng.pick(m.dictionary);
      const i = at();
      return concat([d.subarray(0, i), t, d.subarray(Math.min(n, i + t.length))]);
    }
    case 8: {
      // splice: our head with another input's tail, or another input's piece inserted
      const o = m.other();
      if (rng.chance(0.5)) return concat([d.subarray(0, at()), o.subarray(rng.below(o.length + 1))]);
      const s = rng.below(o.length + 1);
      const e = s + rng.small(o.length - s);
      const i = at();
      return concat([d.subarray(0, i), o.subarray(s, e), d.subarray(i)]);
    }
    case 9: {
      // rewrite an ASCII number (lengths, sequence numbers, versions, prefix lengths)
      const text = Buffer.from(d).toString('latin1');
      const runs = [...text.matchAll(/\d+/g)];
      if (!runs.length) return d;
      const r = rng.pick(runs);
      const v = rng.chance(0.5) ? rng.pick(INTERESTING_NUMBERS) : String(Math.max(0, Number(r[0]) + rng.range(-3, 3)));
      return concat([d.subarray(0, r.index), ascii(v), d.subarray(r.index + r[0].length)]);
    }
    case 10: {
      // truncate
      return d.subarray(0, at());
    }
    case 11: {
      // flip the case of ASCII letters in a range
      if (!n) return d;
      const out = Uint8Array.from(d);
      const i = rng.below(n);
      const len = Math.min(n - i, 1 + rng.small(16));
      for (let k = i; k < i + len; k++) {
        const c = out[k]!;
        if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) out[k] = c ^ 0x20;
      }
      return out;
    }
    case 12: {
      // move a chunk elsewhere
      if (n < 2) return d;
      const i = rng.below(n);
      const len = Math.min(n - i, 1 + rng.small(32));
      const chunk = d.subarray(i, i + len);
      const rest = concat([d.subarray(0, i), d.subarray(i + len)]);
      const j = rng.below(rest.length + 1);
      return concat([rest.subarray(0, j), chunk, rest.subarray(j)]);
    }
    default: {
      // a run of one byte (fills buffers up to their limits)
      const i = at();
      const len = rng.chance(0.2) ? rng.range(1000, Math.max(1000, maxLength)) : rng.range(1, 64);
      return concat([
        d.subarray(0, i),
        new Uint8Array(len).fill(rng.pick([0x41, 0x20, 0x00, 0x0a, 0x3d])),
        d.subarray(i),
      ]);
    }
  }
}

export function mutateBytes(d: Uint8Array, m: Mutator, maxLength: number): Uint8Array {
  let out = d;
  const ops = 1 + m.rng.small(7);
  for (let k = 0; k < ops; k++) out = mutateOnce(out, m, maxLength);
  return out.length > maxLength ? out.subarray(0, maxLength) : out;
}

// ---------------------------------------------------------------- minimisation

/** Shrinks a failing input while it keeps failing with the same signature: the target's structural candidates
 *  first, then removal of ever smaller chunks, then bytes made simpler. Bounded by execs and time. */
export function minimise(
  target: Target,
  input: Uint8Array,
  signature: string,
  budget = { execs: 4000, ms: 5000 },
  slowMs = 1000,
  beforeExec?: (input: Uint8Array) => void,
): Uint8Array {
  const t0 = performance.now();
  let execs = 0;
  let best = input;
  const out = () => execs >= budget.execs || performance.now() - t0 > budget.ms;
  const stillFails = (c: Uint8Array): boolean => {
    execs++;
    beforeExec?.(c);
    const r = runOne(target, c, slowMs);
    return r.failure?.signature === signature;
  };
  let progress = true;
  while (progress && !out()) {
    progress = false;
    if (target.shrink) {
      for (const c of target.shrink(best)) {
        if (out()) break;
        if (c.length <= best.length && stillFails(c)) {
          best = c;
          progress = true;
          break;
        }
      }
      if (progress) continue;
    }
    for (let chunk = Math.max(1, best.length >> 1); chunk >= 1 && !out(); chunk >>= 1) {
      for (let i = 0; i + chunk <= best.length && !out();) {
        const c = concat([best.subarray(0, i), best.subarray(i + chunk)]);
        if (stillFails(c)) {
          best = c;
          progress = true;
        } else i += chunk;
      }
    }
  }
  return best;
}

// ---------------------------------------------------------------- the loop

/** A failure with the (minimised) input that shows it. */
export type Found = Failure & { input: Uint8Array };

export interface FuzzStats {
  target: string;
  execs: number;
  ms: number;
  corpus: number;
  features: number;
  failures: Found[];
  /** Known failures seen, by id (each also reported once in failures). */
  known: Record<string, number>;
}

export interface FuzzerOptions {
  seed: number;
  /** Starting corpus (at least one entry; an empty input is added when none is given). */
  seeds: readonly Uint8Array[];
  slowMs?: number;
  maxCorpus?: number;
  /** Called before each execution with the input (the watchdog's copy for hangs). */
  beforeExec?: (input: Uint8Array) => void;
  /** Failure signatures already saved: reported as seen, not again. */
  knownSignatures?: Iterable<string>;
  minimiseBudget?: { execs: number; ms: number };
}

/** A fuzzer for one target that keeps its corpus and feature set between run() calls. */
export class Fuzzer {
  readonly corpus: Uint8Array[];
  private readonly features = new Set<string>();
  private readonly seen: Set<string>;
  private readonly rng: Rng;
  private readonly slowMs: number;
  private readonly maxCorpus: number;
  readonly stats: FuzzStats;

  constructor(
    readonly target: Target,
    private readonly opt: FuzzerOptions,
  ) {
    this.rng = new Rng(opt.seed ^ fnv1a(Buffer.from(target.name)));
    this.slowMs = opt.slowMs ?? 1000;
    this.maxCorpus = opt.maxCorpus ?? 4096;
    this.seen = new Set(opt.knownSignatures ?? []);
    this.corpus = opt.seeds.length ? [...opt.seeds] : [new Uint8Array(0)];
    this.stats = { target: target.name, execs: 0, ms: 0, corpus: 0, features: 0, failures: [], known: {} };
    // the seeds' own features, so only new behaviour grows the corpus; a failing seed is a failure like any
    for (const s of this.corpus) this.execute(s);
  }

  private mutator(): Mutator {
    const rng = this.rng;
    const m: Mutator = {
      rng,
      dictionary: [...COMMON_TOKENS, ...this.target.dictionary],
      other: () => rng.pick(this.corpus),
      bytes: (d, max) => mutateBytes(d, m, max),
    };
    return m;
  }

  /** Runs one input, records what it showed; returns the failure, if any. */
  private execute(input: Uint8Array): Found | undefined {
    this.opt.beforeExec?.(input);
    // Errors are the code under test's normal answer to bad input, and capturing their stacks was an eighth of
    // the time: inputs run without stacks, and a failing one runs again with them for its signature.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    let r: ReturnType<typeof runOne>;
    try {
      r = runOne(this.target, input, this.slowMs);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.stats.execs++;
    if (r.failure?.kind === 'slow') {
      // a slow input counts only if it is slow every time: a loaded machine pauses a nice'd process too
      for (let k = 0; k < 2 && r.failure; k++) {
        const again = runOne(this.target, input, this.slowMs);
        if (!again.failure) r = again;
      }
    }
    if (r.failure) {
      const again = r.failure.kind === 'slow' ? r : runOne(this.target, input, this.slowMs);
      return this.onFailure(input, again.failure ?? r.failure);
    }
    let fresh = false;
    for (const f of r.features ?? []) {
      if (!this.features.has(f)) {
        this.features.add(f);
        fresh = true;
      }
    }
    if (fresh && this.stats.execs > this.corpus.length) {
      if (this.corpus.length < this.maxCorpus) this.corpus.push(input);
      else this.corpus[this.rng.below(this.corpus.length)] = input;
    }
    return undefined;
  }

  private onFailure(input: Uint8Array, f: Failure): Found | undefined {
    if (f.known) this.stats.known[f.known] = (this.stats.known[f.known] ?? 0) + 1;
    if (this.seen.has(f.signature)) return undefined;
    this.seen.add(f.signature);
    const minimal =
      f.kind === 'slow' || f.kind === 'hang'
        ? input
        : minimise(this.target, input, f.signature, this.opt.minimiseBudget, this.slowMs, this.opt.beforeExec);
    this.opt.beforeExec?.(minimal);
    const again = runOne(this.target, minimal, this.slowMs).failure ?? f;
    const failure: Found = { ...again, input: minimal };
    this.stats.failures.push(failure);
    return failure;
  }

  /** Fuzzes until `until()` says stop (checked every few inputs). Returns failures found in this call. */
  run(until: (execs: number) => boolean): Found[] {
    const found: Found[] = [];
    const m = this.mutator();
    const t0 = performance.now();
    let n = 0;
    while (!((n & 15) === 0 && until(n))) {
      const parent = this.rng.pick(this.corpus);
      const child = this.target.mutate ? this.target.mutate(parent, m) : mutateBytes(parent, m, this.target.maxLength);
      const f = this.execute(child);
      if (f) found.push(f);
      n++;
    }
    this.stats.ms += performance.now() - t0;
    this.stats.corpus = this.corpus.length;
    this.stats.features = this.features.size;
    return found;
  }
}
