/** @module test/fuzz/targets/client-session: ClientSession (src/protocol/client-session.ts) fed random and
 *  mutated server replies, over UDP and TCP.
 *
 *  Input: records (test/fuzz/records.ts). Settings: transport, version, auth method, mode, router prefix,
 *  keepalive, cnonce, the NUL after AUTHENTICATE, start time and the schedule's seed. Messages: server replies
 *  (UDP datagrams with their header, or TCP bytes). The schedule rewrites most UDP headers to echo the
 *  outstanding request (so mutated bodies get past the sequence check), re-cuts TCP bytes, and fires timeout()
 *  at and around wakeAtMs; close() now and then.
 *
 *  Invariants: no call throws; send is Buffer[] (UDP: 0xF nibble, ≤ 1472 bytes, an 8-byte header at least;
 *  TCP: no empty write); a `failed` event carries a BrokerError with a CLIENT_ code; at most one final event
 *  (established, failed, versionRefused) and a done Step only after one; after done, nothing is sent; after
 *  timeout(now), wakeAtMs is later than now; wakeAtMs is finite. */

import { BrokerError } from '../../../src/errors.js';
import {
  ClientSession,
  type AuthMethod,
  type ClientSessionOptions,
  type ClientStep,
  type RequestedMode,
} from '../../../src/protocol/client/session.js';
import type { TspVersion } from '../../../src/protocol/constants.js';
import { InvariantError, Rng, call, errorFeature, fnv1a, type Target } from '../engine.js';
import { Settings, decodeRecords, mutateRecords, shrinkRecords } from '../records.js';

/** The cnonces of the recorded DIGEST-MD5 sessions, so the recorded rspauth values check out. */
export const RECORDED_CNONCES = ['1795700979', '1795700988', '1795701015'] as const;
const VERSIONS: readonly TspVersion[] = ['2.0.2', '2.0.1', '2.0.0'];
const METHODS: readonly AuthMethod[] = ['anonymous', 'plain', 'digest-md5', 'any'];
const MODES: readonly RequestedMode[] = ['v6udpv4', 'v6v4', 'v6anyv4'];
const TRACE = !!process.env.FUZZ_TRACE;
const FINAL = new Set(['established', 'failed', 'versionRefused']);

/** The one place that builds a ClientSession from the settings. */
export function clientOptions(s: Settings): ClientSessionOptions {
  const transport = s.u8() & 1 ? 'tcp' : 'udp';
  const version = s.choose(VERSIONS);
  const method = s.choose(METHODS);
  const mode = s.choose(MODES);
  const router = s.u8();
  const keepalive = s.u8();
  const cnonce = s.choose(RECORDED_CNONCES);
  const nul = s.u8() % 4 !== 3;
  const nowMs = s.choose([1_700_000_000_000, 0, 999, 2 ** 32 + 500]);
  return {
    transport,
    version,
    auth: { method, username: 'bob', password: 'hunter2' },
    serverString: '192.0.2.1:3653',
    request: {
      mode,
      clientIpv4: '192.0.2.2',
      ...(keepalive % 3 === 0 ? {} : { keepaliveInterval: keepalive % 3 === 1 ? 30 : keepalive }),
      ...(router % 4 === 1 ? { prefixLength: router % 2 ? 56 : (router >> 2) % 129 } : {}),
    },
    cnonce,
    nulAfterAuthenticate: nul,
    ...(s.u8() % 5 === 4 ? { firstSequence: 0x0fffffff } : {}),
    tcpReadTimeoutMs: 15_000,
    nowMs,
  };
}

function run(input: Uint8Array): string[] {
  const recs = decodeRecords(input);
  const settingsBytes = recs[0] ?? new Uint8Array(0);
  const opt = clientOptions(new Settings(settingsBytes));
  const rng = new Rng(fnv1a(settingsBytes));
  const udp = opt.transport === 'udp';
  const c = call('constructor', () => new ClientSession(opt));
  let now = opt.nowMs;
  let wake: number | undefined;
  let done = false;
  let finals = 0;
  let lastHeader: Buffer | undefined;
  const features: string[] = [];
  let lastState = c.currentState as string;

  const step = (op: string, fn: () => ClientStep): void => {
    const wasDone = done;
    if (TRACE) console.error(`@${now} ${c.currentState} ${op}`);
    const st = call(op, fn);
    if (TRACE)
      console.error(
        `  -> ${c.currentState} done=${st.done} wake=${st.wakeAtMs} send=${JSON.stringify(st.send.map((b) => b.toString('latin1')))} events=${JSON.stringify(st.events.map((e) => (e.type === 'failed' ? `failed:${e.error.code}:${e.error.message}` : e.type)))}`,
      );
    const bad = (what: string): never => {
      throw new InvariantError(`${op}: ${what}`, op);
    };
    if (!Array.isArray(st.send) || !Array.isArray(st.events)) bad('send or events is not an array');
    for (const b of st.send) {
      if (!Buffer.isBuffer(b)) bad('send holds a non-Buffer');
      if (udp) {
        if (b.length < 8 || b[0]! >> 4 !== 0xf) bad('UDP datagram without a TSP header');
        if (b.length > 1472) bad(`UDP datagram of ${b.length} bytes`);
        lastHeader = b.subarray(0, 8);
      } else if (b.length === 0) bad('empty TCP write');
    }
    if (wasDone && st.send.length) bad('sent after done');
    if (wasDone && st.events.length) bad('events after done');
    for (const e of st.events) {
      if (FINAL.has(e.type)) finals++;
      if (e.type === 'failed') {
        if (!(e.error instanceof BrokerError)) bad('failed without a BrokerError');
        if (!e.error.code.startsWith('CLIENT_')) bad(`failed with ${e.error.code}, not a CLIENT_ code`);
        features.push(`failed:${e.status === undefined ? '' : Math.floor(e.status / 100)}:${errorFeature(e.error)}`);
      } else features.push(`${op}>${e.type}`);
    }
    if (finals > 1) bad('more than one final event');
    if (st.done && finals === 0) bad('done without a final event');
    if (st.wakeAtMs !== undefined) {
      if (!Number.isFinite(st.wakeAtMs)) bad('wakeAtMs not finite');
      if (op === 'timeout' && !st.done && st.wakeAtMs <= now) bad('timeout(now) asks to be woken at now again');
    }
    wake = st.wakeAtMs;
    done ||= st.done;
    features.push(`${lastState}>${op}>${c.currentState}`);
    lastState = c.currentState;
  };

  const tick = () => {
    let t: number;
    if (wake !== undefined && rng.chance(0.7)) t = wake + (rng.chance(0.8) ? 0 : rng.range(1, 40_000));
    else t = now + rng.pick([0, 1, 1_999, 2_000, 15_000, 60_000]);
    now = Math.max(now, t);
    step('timeout', () => c.timeout(now));
  };

  step('start', () => c.start(now));
  const msgs = recs.slice(1);
  for (let i = 0; i < msgs.length; i++) {
    let m = msgs[i]!;
    if (udp) {
      if (lastHeader && m.length >= 8 && rng.chance(0.8)) m = Buffer.concat([lastHeader, m.subarray(8)]);
      else if (lastHeader && m.length < 8 && rng.chance(0.5)) m = Buffer.concat([lastHeader, m]);
    } else {
      while (i + 1 < msgs.length && rng.chance(0.2)) m = Buffer.concat([m, msgs[++i]!]);
    }
    if (rng.chance(0.15)) tick();
    now += rng.below(50);
    if (!udp && m.length > 1 && rng.chance(0.3)) {
      const cut = rng.range(1, m.length - 1);
      step('receive', () => c.receive(m.subarray(0, cut), now));
      step('receive', () => c.receive(m.subarray(cut), now));
    } else {
      if (TRACE) console.error(`  <- ${JSON.stringify(Buffer.from(m).toString('latin1'))}`);
      step('receive', () => c.receive(m, now));
    }
    if (rng.chance(0.02)) step('closed', () => c.closed(now));
  }
  // the end: every wakeup fired on time ends the session (UDP: at most 8 transmissions; TCP: the read timeout)
  for (let i = 0; i < 32 && !done && wake !== undefined; i++) {
    now = Math.max(now, wake);
    step('timeout', () => c.timeout(now));
  }
  if (!done && wake !== undefined) throw new InvariantError('32 wakeups and the client neither ends nor rests');
  step('closed', () => c.closed(now));
  features.push(`end:${c.currentState}`);
  return features;
}

const DICTIONARY = [
  'CAPABILITY ',
  'CAPABILITY TUNNEL=V6V4 TUNNEL=V6UDPV4 AUTH=DIGEST-MD5 AUTH=PLAIN AUTH=ANONYMOUS\r\n',
  'TUNNEL=',
  'AUTH=',
  'V6V4',
  'V6UDPV4',
  'DIGEST-MD5',
  'ANONYMOUS',
  'PLAIN',
  '200 Success\r\n',
  '300 Authentication failed\r\n',
  '302 Unsupported client version\r\n',
  '303 ',
  '530 ',
  '1000 ',
  '1001 ',
  'Content-length: ',
  'Content-length: 13\r\n200 Success\r\n',
  '<tunnel action="info" type="v6udpv4" lifetime="604800">',
  '<tunnel action="info" type="v6v4" lifetime="',
  '<broker><address type="ipv4">192.0.2.9</address></broker>',
  '<server>',
  '</server>',
  '<client>',
  '</client>',
  '<address type="ipv4">192.0.2.1</address>',
  '<address type="ipv6">2001:db8::1</address>',
  '<address type="ipv6">',
  '<router><prefix length="56">2001:0db8:1200:0000:0000:0000:0000:0000</prefix></router>',
  '<dns_server>',
  '<keepalive interval="',
  '</tunnel>',
  'cmVhbG09InRzcC1mYWtlIixub25jZT0i',
  'cnNwYXV0aD1',
  '==',
  '\xf0\x00\x00\xf0',
].map((s) => Buffer.from(s, 'latin1'));

export const clientSession: Target = {
  name: 'client',
  description: 'ClientSession (tspc) over UDP and TCP: server replies mutated, re-cut, timers',
  exec: run,
  dictionary: DICTIONARY,
  maxLength: 16_384,
  mutate: (input, m) => mutateRecords(input, m, 2048),
  shrink: shrinkRecords,
};
