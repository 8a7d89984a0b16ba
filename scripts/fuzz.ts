/** npm run fuzz -- [--minutes N] [--target NAME[,NAME]] [--seed S] [--slice-seconds N] [--hang-ms N] [--no-save]
 *  npm run fuzz -- --list
 *  npm run fuzz -- --replay FILE [--target NAME]   (one saved input; FUZZ_TRACE=1 prints each call and Step)
 *  npm run fuzz -- --import-recordings DIR     (rebuilds test/fuzz/corpus from recorded gogoc sessions)
 *
 *  Fuzzes the protocol core in-process (docs/fuzzing.md): the targets take turns in slices on one worker
 *  thread (one core; run it under `nice`), which keeps each target's corpus between slices. An input that
 *  takes longer than --hang-ms (default 1000) every time it runs is a failure; one that never returns is a
 *  hang: the main thread, the watchdog, ends the worker after 5x that (at least 5 s) without progress, saves
 *  the input, and a new worker goes on. A new failure is minimised and written to
 *  test/fuzz/regressions/<target>/<hash>.bin with a .txt beside it; the test suite replays them. Exit status 1
 *  when a new failure was found, else 0. */

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Fuzzer, runOne, type Failure, type Found, type FuzzStats } from '../test/fuzz/engine.js';
import { loadCorpus, loadRegressions, saveCorpusEntry, saveRegression } from '../test/fuzz/files.js';
import { TARGETS, targetByName } from '../test/fuzz/targets/index.js';

const MAX_INPUT = 1 << 20;

interface WorkerInit {
  seed: number;
  ctrl: SharedArrayBuffer;
  data: SharedArrayBuffer;
  hangMs: number;
}
type ToWorker = { cmd: 'run'; target: string; ms: number };
type FromWorker = { type: 'slice'; stats: FuzzStats; failures: Found[] };

// ---------------------------------------------------------------- worker

function workerMain(init: WorkerInit): void {
  // [0] executions, [1] input length, [2] target index, [3] 1 while inputs run (0 while loading)
  const ctrl = new Int32Array(init.ctrl);
  const data = new Uint8Array(init.data);
  const fuzzers = new Map<string, Fuzzer>();
  const fuzzerFor = (name: string): Fuzzer => {
    let f = fuzzers.get(name);
    if (!f) {
      const target = targetByName(name)!;
      const regressions = loadRegressions(name);
      f = new Fuzzer(target, {
        seed: init.seed,
        seeds: [...loadCorpus(name), ...regressions.map((r) => r.input)],
        slowMs: init.hangMs,
        knownSignatures: regressions.flatMap((r) => (r.signature ? [r.signature] : [])),
        beforeExec: (input) => {
          const n = Math.min(input.length, MAX_INPUT);
          data.set(input.subarray(0, n));
          Atomics.store(ctrl, 1, n);
          Atomics.store(ctrl, 3, 1);
          Atomics.add(ctrl, 0, 1);
        },
      });
      fuzzers.set(name, f);
    }
    return f;
  };
  parentPort!.on('message', (m: ToWorker) => {
    Atomics.store(
      ctrl,
      2,
      TARGETS.findIndex((t) => t.name === m.target),
    );
    Atomics.store(ctrl, 3, 0); // loading the corpus is not running an input: the watchdog waits
    const f = fuzzerFor(m.target);
    const before = f.stats.failures.length;
    const end = performance.now() + m.ms;
    f.run(() => performance.now() >= end);
    Atomics.store(ctrl, 3, 0);
    const reply: FromWorker = {
      type: 'slice',
      stats: { ...f.stats, failures: [] },
      failures: f.stats.failures.slice(before),
    };
    // errors do not cross threads intact: send what the files need
    reply.failures = reply.failures.map((x) => ({ ...x, error: undefined }));
    parentPort!.postMessage(reply);
  });
}

// ---------------------------------------------------------------- main

interface Args {
  minutes: number;
  targets: string[];
  seed: number;
  sliceMs: number;
  hangMs: number;
  save: boolean;
}

function parseArgs(argv: string[]): Args | undefined {
  const a: Args = {
    minutes: 1,
    targets: TARGETS.map((t) => t.name),
    seed: (Date.now() ^ (process.pid << 16)) >>> 0,
    sliceMs: 10_000,
    hangMs: 1000,
    save: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--minutes') a.minutes = Number(v());
    else if (k === '--target') a.targets = v().split(',');
    else if (k === '--seed') a.seed = Number(v()) >>> 0;
    else if (k === '--slice-seconds') a.sliceMs = Number(v()) * 1000;
    else if (k === '--hang-ms') a.hangMs = Number(v());
    else if (k === '--no-save') a.save = false;
    else if (k === '--list') {
      for (const t of TARGETS) console.log(`${t.name.padEnd(12)} ${t.description}`);
      return undefined;
    } else if (k === '--replay') {
      replay(v(), argv[i + 1] === '--target' ? argv[i + 2] : undefined);
      return undefined;
    } else if (k === '--import-recordings') {
      importRecordings(v());
      return undefined;
    } else throw new Error(`unknown option ${k} (see the top of scripts/fuzz.ts)`);
  }
  for (const t of a.targets) if (!targetByName(t)) throw new Error(`no target ${t}; --list shows them`);
  if (!(a.minutes > 0)) throw new Error('--minutes must be a positive number');
  return a;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (!args) return 0;
  const ctrl = new SharedArrayBuffer(16);
  const data = new SharedArrayBuffer(MAX_INPUT);
  const c = new Int32Array(ctrl);
  const totals = new Map<
    string,
    { execs: number; ms: number; corpus: number; features: number; known: Record<string, number> }
  >();
  const seenSignatures = new Set(args.targets.flatMap((t) => loadRegressions(t).flatMap((r) => r.signature ?? [])));
  let newFailures = 0;
  const base = new Map<string, FuzzStats>(); // a worker's stats so far, per target (reset on a new worker)
  console.log(
    `fuzzing ${args.targets.join(', ')} for ${args.minutes} min, seed ${args.seed}, slices of ${args.sliceMs / 1000} s, hang limit ${args.hangMs} ms`,
  );

  const record = (f: Failure, input: Uint8Array, how: string) => {
    if (seenSignatures.has(f.signature)) return;
    seenSignatures.add(f.signature);
    if (!f.known) newFailures++;
    const file = args.save ? saveRegression(f, input, how) : '(not saved: --no-save)';
    console.log(
      `\n${f.known ? `KNOWN (${f.known})` : 'NEW FAILURE'} in ${f.target}: ${f.message}\n  ${file}\n${f.stack.split('\n').slice(0, 8).join('\n')}\n`,
    );
  };

  const tsxApi = import.meta.resolve('tsx/esm/api');
  let restarts = 0;
  const startWorker = () => {
    const seed = (args.seed + restarts * 0x9e3779b9) >>> 0;
    const code = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`;
    base.clear();
    return new Worker(code, { eval: true, workerData: { seed, ctrl, data, hangMs: args.hangMs } satisfies WorkerInit });
  };
  let worker = startWorker();

  // No input finished for this long: an endless loop. Slower inputs that do finish are caught in the worker
  // (and confirmed by running them again); a nice'd process starved on a loaded machine recovers sooner.
  const hangAfterMs = Math.max(5 * args.hangMs, 5000);
  const t0 = Date.now();
  const deadline = t0 + args.minutes * 60_000;
  let turn = 0;
  while (Date.now() < deadline) {
    const target = args.targets[turn++ % args.targets.length]!;
    const ms = Math.min(args.sliceMs, deadline - Date.now());
    if (ms < 50) break;
    const result = await new Promise<
      FromWorker | { type: 'hang'; input: Uint8Array } | { type: 'error'; error: Error }
    >((resolve) => {
      let last = Atomics.load(c, 0);
      let lastChange = Date.now();
      const timer = setInterval(() => {
        const now = Atomics.load(c, 0);
        if (now !== last || Atomics.load(c, 3) === 0) {
          last = now;
          lastChange = Date.now();
        } else if (Date.now() - lastChange > hangAfterMs) {
          const len = Atomics.load(c, 1);
          done();
          resolve({ type: 'hang', input: new Uint8Array(data, 0, len).slice() });
        }
      }, 100);
      const onMessage = (m: FromWorker) => {
        done();
        resolve(m);
      };
      const onError = (error: Error) => {
        done();
        resolve({ type: 'error', error });
      };
      const done = () => {
        clearInterval(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.postMessage({ cmd: 'run', target, ms } satisfies ToWorker);
    });
    const tot = totals.get(target) ?? { execs: 0, ms: 0, corpus: 0, features: 0, known: {} };
    totals.set(target, tot);
    if (result.type === 'slice') {
      const prev = base.get(target);
      const s = result.stats;
      tot.execs += s.execs - (prev?.execs ?? 0);
      tot.ms += s.ms - (prev?.ms ?? 0);
      tot.corpus = s.corpus;
      tot.features = s.features;
      for (const [k, n] of Object.entries(s.known)) tot.known[k] = (tot.known[k] ?? 0) + n - (prev?.known[k] ?? 0);
      base.set(target, s);
      for (const f of result.failures) record(f, f.input, `npm run fuzz -- --seed ${args.seed} (target ${target})`);
      const el = Math.round((Date.now() - t0) / 1000);
      const known = Object.values(tot.known).reduce((x, y) => x + y, 0);
      console.log(
        `[${String(Math.floor(el / 60)).padStart(2, '0')}:${String(el % 60).padStart(2, '0')}] ${target.padEnd(10)} ` +
          `${fmt(tot.execs).padStart(12)} inputs ${fmt((tot.execs / tot.ms) * 1000).padStart(8)}/s  corpus ${s.corpus}  features ${s.features}` +
          (known ? `  known failures ${known}` : ''),
      );
    } else {
      // a hang, or the worker died: record it and go on with a new worker
      const f: Failure =
        result.type === 'hang'
          ? {
              target,
              kind: 'hang',
              op: '',
              message: `an input ran longer than ${hangAfterMs} ms without returning`,
              stack: '',
              signature: `${target}|hang`,
            }
          : {
              target,
              kind: 'throw',
              op: 'worker',
              message: `the fuzz worker died: ${result.error.message}`,
              stack: result.error.stack ?? '',
              signature: `${target}|worker|${result.error.name}`,
            };
      const len = Atomics.load(c, 1);
      record(
        f,
        result.type === 'hang' ? result.input : new Uint8Array(data, 0, len).slice(),
        `npm run fuzz -- --seed ${args.seed}`,
      );
      await worker.terminate();
      restarts++;
      worker = startWorker();
    }
  }
  await worker.terminate();

  console.log('\ntarget          inputs     inputs/s   corpus  features  known failures');
  let all = 0;
  let allMs = 0;
  for (const [name, t] of totals) {
    all += t.execs;
    allMs += t.ms;
    const known = Object.entries(t.known)
      .map(([k, n]) => `${k} x${n}`)
      .join(', ');
    console.log(
      `${name.padEnd(12)} ${fmt(t.execs).padStart(11)} ${fmt((t.execs / t.ms) * 1000).padStart(11)} ${String(t.corpus).padStart(8)} ${String(t.features).padStart(9)}  ${known}`,
    );
  }
  console.log(
    `${'total'.padEnd(12)} ${fmt(all).padStart(11)} ${fmt((all / allMs) * 1000).padStart(11)}   (${((Date.now() - t0) / 1000).toFixed(0)} s wall, seed ${args.seed}, ${newFailures} new failure(s))`,
  );
  return newFailures ? 1 : 0;
}

/** Runs one saved input (a regression or corpus .bin; the target is its folder's name) and says what happens.
 *  FUZZ_TRACE=1 prints the session targets' calls and Steps. */
function replay(file: string, targetName?: string): void {
  const name = targetName ?? path.basename(path.dirname(path.resolve(file)));
  const target = targetByName(name);
  if (!target) throw new Error(`no target ${name}: put the file under a folder named after one, or pass --target`);
  const r = runOne(target, new Uint8Array(readFileSync(file)), 1000);
  if (!r.failure) console.log(`${name}: passes (${r.ms.toFixed(1)} ms)`);
  else
    console.log(
      `${name}: ${r.failure.known ? `known (${r.failure.known})` : 'FAILS'}: ${r.failure.message}\n${r.failure.stack}`,
    );
}

// ---------------------------------------------------------------- corpus from recordings

/** Rebuilds the seed corpus from recorded gogoc sessions (a folder of their .json files): the client's bytes
 *  for the server targets (each recording over its own transport and over the other), the server's bytes for
 *  the client target, the XML bodies, and the SASL lines decoded. */
function importRecordings(dir: string): void {
  // imported here so the fuzzer itself never depends on the recordings' location
  type Msg = {
    from: 'client' | 'server';
    transport: 'udp' | 'tcp';
    header?: { seq: string; timestamp: number };
    attempt?: number;
    payload: string;
  };
  type Rec = { name: string; client_config: Record<string, string>; messages: Msg[] };
  const recs: Rec[] = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Rec);
  const latin1 = (s: string) => Buffer.from(s, 'latin1');
  const records = (rs: Uint8Array[]) =>
    Buffer.concat(rs.flatMap((r) => [Uint8Array.of(r.length >> 8, r.length & 0xff), r]));
  const header = (seq: number, ts: number) => {
    const h = Buffer.alloc(8);
    h.writeUInt32BE(seq >>> 0, 0);
    h.writeUInt32BE(ts >>> 0, 4);
    return h;
  };
  const datagram = (m: Msg) => Buffer.concat([header(Number(m.header!.seq), m.header!.timestamp), latin1(m.payload)]);
  const decoded = (m: Msg) => Buffer.from(m.payload.trim(), 'base64').toString('latin1');
  const isB64 = (m: Msg) => /^[A-Za-z0-9+/]{20,}=*\r\n$/.test(m.payload);
  const NONCES = ['762f53ae1752548c', '26fa61742497e7f3', 'be16918c7aab36ba'];
  const CNONCES = ['1795700979', '1795700988', '1795701015'];
  let n = 0;
  const save = (t: string, b: Uint8Array) => {
    saveCorpusEntry(t, b);
    n++;
  };
  for (const r of recs) {
    const client = r.messages.filter((m) => m.from === 'client');
    const server = r.messages.filter((m) => m.from === 'server');
    const udp = r.messages[0]!.transport === 'udp';
    const challenge = server.find(isB64);
    const nonce = challenge ? /nonce="([^"]+)"/.exec(decoded(challenge))?.[1] : undefined;
    const nonceIdx = Math.max(0, NONCES.indexOf(nonce ?? ''));
    const settings = Uint8Array.of(nonceIdx, 0, 0, 0, 0, 0, 0, 0);
    // server targets: its own transport, and the other one
    const payloads = client.filter((m) => !m.attempt).map((m) => latin1(m.payload));
    const udpMsgs = udp
      ? client.map(datagram)
      : payloads.map((p, i) => Buffer.concat([header(0xf00000f0 + i, 1000 + i), p]));
    save('server-udp', records([settings, ...udpMsgs]));
    // and as the UDP adapter runs it: VERSION answered without state, a session from AUTHENTICATE on
    save('server-udp', records([Uint8Array.of(nonceIdx, 0, 0, 0, 0, 1, 0, 0), ...udpMsgs]));
    save('server-tcp', records([settings, ...payloads]));
    // client target: the server's replies, with settings that match the recording's configuration
    const c = r.client_config;
    const response = client.find(isB64);
    const cnonce = response ? /cnonce="(\d+)"/.exec(decoded(response))?.[1] : undefined;
    const clientSettings = Uint8Array.of(
      udp ? 0 : 1,
      0,
      Math.max(0, ['anonymous', 'plain', 'digest-md5', 'any'].indexOf(c.auth_method ?? '')),
      Math.max(0, ['v6udpv4', 'v6v4', 'v6anyv4'].indexOf(c.tunnel_mode ?? '')),
      c.host_type === 'router' ? 1 : 0,
      c.keepalive === 'yes' ? 1 : 0,
      Math.max(0, CNONCES.indexOf(cnonce ?? '')),
      0,
      0,
      0,
    );
    save('client', records([clientSettings, ...server.map((m) => (udp ? datagram(m) : latin1(m.payload)))]));
    // parsers
    for (const m of r.messages) {
      const xml = m.payload.indexOf('<tunnel');
      if (xml >= 0) save('xml', latin1(m.payload.slice(xml)));
      if (isB64(m)) save('sasl', latin1(decoded(m)));
      if (m.from === 'client' && m.payload.startsWith('\0')) save('sasl', latin1(m.payload.replace(/\r\n$/, '')));
    }
  }
  save('sasl', latin1('bob\0hunter2\0tsp-fake\0be16918c7aab36ba\x001795701015\x00192.0.2.1:3653'));
  console.log(`wrote ${n} corpus files (duplicates share a file) under test/fuzz/corpus/`);
}

if (isMainThread) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(2);
    },
  );
} else workerMain(workerData as WorkerInit);
