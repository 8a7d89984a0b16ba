/** @module test/fuzz/targets/server-session: ServerSession (src/protocol/server/session.ts) under random client
 *  bytes, TCP splits, timer firings and broker answers, over UDP and TCP.
 *
 *  Input: records (test/fuzz/records.ts). Settings: nonce, mechanisms, tunnel types, negotiation timeout, start
 *  time, the 2.0.0 DIGEST quirk, how UDP sessions start, and the schedule's seed. Messages: UDP datagrams
 *  (header included) or TCP writes. The schedule (a PRNG seeded from the settings) re-splits and merges TCP
 *  writes, duplicates and reorders datagrams, fires timeout() at wakeAtMs, before it and long after it,
 *  answers the broker's questions right away, later or never, with right and wrong values, and calls answers
 *  nobody asked for (or that a forgotten session asked for).
 *
 *  UDP runs one of two ways: a session from the first datagram on (afterVersion unset), or as the adapter
 *  does it (src/transport/udp.ts): a datagram from a peer without a live session goes to classifyFirstDatagram,
 *  VERSION is answered without state, AUTHENTICATE opens a session with `afterVersion`, and a done session is
 *  forgotten so the next datagram starts over.
 *
 *  Invariants checked on every Step: no call throws; send is Buffer[]; a UDP datagram starts with the 0xF
 *  nibble, echoes the header of a datagram we sent and is at most 1472 bytes; an unvalidated UDP session
 *  sends at most 3x the bytes it received (28 bytes of IPv4+UDP counted on each datagram); a TCP write is not
 *  empty; wakeAtMs is a finite time not before now, and after timeout(now) it is later than now (no busy
 *  loop); a half-open session always has a deadline; a TCP session reports `closed` at most once. Once a Step
 *  said done, broker answers send nothing and nothing throws. At the end, firing every wakeup in turn ends the
 *  session or leaves it with no deadline in a bounded number of steps; then timeout(), close() and (TCP) more
 *  bytes are tried on the done session: they must not throw, and the adapters never make these calls after
 *  done, so what they send is checked last, apart (see KNOWN).
 *
 *  To adapt to a change of the ServerSession API, edit `sessionOptions` (options) and `Harness.answer`
 *  (broker methods). */

import { BrokerError, type ErrorCode } from '../../../src/errors.js';
import type { TspVersion } from '../../../src/protocol/constants.js';
import {
  ServerSession,
  type Mechanism,
  type ServerSessionOptions,
  type SessionEvent,
  type Step,
} from '../../../src/protocol/server/session.js';
import { classifyFirstDatagram } from '../../../src/protocol/framing/udp.js';
import { digestSecret } from '../../../src/protocol/sasl/digest-md5.js';
import type { Offer } from '../../../src/protocol/xml.js';
import { InvariantError, Rng, call, fnv1a, messageShape, type KnownIssue, type Target } from '../engine.js';
import { Settings, decodeRecords, mutateRecords, shrinkRecords } from '../records.js';

/** The realm, user and password of the recordings (tsp-fake, bob/hunter2). */
export const REALM = 'tsp-fake';
export const USER = 'bob';
export const PASSWORD = 'hunter2';
/** The nonces of the recorded DIGEST-MD5 sessions, so the recorded responses verify. */
export const RECORDED_NONCES = ['762f53ae1752548c', '26fa61742497e7f3', 'be16918c7aab36ba'] as const;

const MAX_UDP_REPLY = 1472;
/** IPv4 and UDP headers, counted on every datagram by the anti-amplification rule (RFC 9000 §8.1). */
const WIRE_OVERHEAD = 28;
const AMPLIFICATION = 3;
const NEWEST: TspVersion = '2.0.2';
/** FUZZ_TRACE=1 prints every call and Step (npm run fuzz -- --replay FILE). */
const TRACE = !!process.env.FUZZ_TRACE;
const MECHANISM_SETS: readonly (readonly Mechanism[])[] = [
  ['DIGEST-MD5', 'PLAIN', 'ANONYMOUS'],
  ['DIGEST-MD5', 'ANONYMOUS'],
  ['PLAIN'],
  ['ANONYMOUS'],
  ['DIGEST-MD5'],
  [],
];
const TUNNEL_SETS: readonly ('v6v4' | 'v6udpv4')[][] = [['v6v4', 'v6udpv4'], ['v6v4'], ['v6udpv4'], []];
const TIMEOUTS = [30_000, 30_000, 1_000, 300, 1, 0];

const BASE_OFFER: Offer = {
  type: 'v6udpv4',
  lifetimeS: 604800,
  serverIpv4: '192.0.2.1',
  serverIpv6: '2001:db8:f00::1',
  clientIpv4: '192.0.2.2',
  clientIpv6: '2001:db8:f00::2',
  keepalive: { interval: 30, address: '2001:db8:f00::1' },
  dnsServer: '2001:db8:f00::1',
};
const OFFERS: readonly Offer[] = [
  BASE_OFFER,
  { ...BASE_OFFER, type: 'v6v4' },
  { ...BASE_OFFER, prefix: { address: '2001:db8:1200::', length: 56 } },
  { ...BASE_OFFER, keepalive: { interval: 0, address: '::' }, dnsServer: undefined },
  // a broker bug: writeOffer refuses it, the session must answer 310, not throw
  { ...BASE_OFFER, clientIpv4: 'not-an-ip' },
  { ...BASE_OFFER, serverIpv6: 'zz::1' },
];
const ERROR_CODES: readonly ErrorCode[] = [
  'POOL_EXHAUSTED',
  'TSP_UNSUPPORTED_TUNNEL',
  'TSP_PREFIX_LENGTH_UNSUPPORTED',
  'TSP_PREFIX_FOR_ANONYMOUS',
  'STORE_FAILED',
  'STORE_NOT_FOUND',
  'TSP_BUSY',
  'INTERNAL',
  'CLIENT_IO',
];

type Ask = Extract<
  SessionEvent['type'],
  'verifyPlain' | 'lookupDigest' | 'tunnelRequested' | 'offerAccepted' | 'deleteRequested' | 'infoRequested'
>;
const ASKS: readonly Ask[] = [
  'verifyPlain',
  'lookupDigest',
  'tunnelRequested',
  'offerAccepted',
  'deleteRequested',
  'infoRequested',
];
interface Question {
  type: Ask;
  username?: string;
  password?: string;
  /** The session that asked (a forgotten one, for late answers). */
  t?: Tracked;
}

/** One ServerSession and what the harness knows of it. */
interface Tracked {
  s: ServerSession;
  done: boolean;
  closedEvents: number;
  wakeAtMs: number | undefined;
  wireIn: number;
  wireOut: number;
}

/** Options every session of one input shares, from its settings. */
export interface SessionConfig {
  transport: 'udp' | 'tcp';
  /** UDP: sessions start the adapter's way, after a stateless VERSION answer. */
  statelessVersion: boolean;
  base: Omit<ServerSessionOptions, 'nowMs' | 'afterVersion'>;
  startMs: number;
}

/** The one place that reads the settings into ServerSession options: adapt here when they change. */
export function sessionConfig(transport: 'udp' | 'tcp', s: Settings, rng: Rng): SessionConfig {
  const nonceChoice = s.u8() % (RECORDED_NONCES.length + 1);
  const mechanisms = s.choose(MECHANISM_SETS);
  const tunnelTypes = s.choose(TUNNEL_SETS);
  const negotiationTimeoutMs = s.choose(TIMEOUTS);
  const startMs = s.choose([0, 1, 1_700_000_000_000, 2 ** 31, Number.MAX_SAFE_INTEGER / 4]);
  const flags = s.u8();
  return {
    transport,
    statelessVersion: transport === 'udp' && (flags & 1) === 1,
    startMs,
    base: {
      transport,
      tunnelTypes,
      mechanisms,
      realm: REALM,
      quirk200: (flags & 2) === 2,
      negotiationTimeoutMs,
      newNonce: () =>
        nonceChoice < RECORDED_NONCES.length
          ? RECORDED_NONCES[nonceChoice]!
          : `${rng.u32().toString(16).padStart(8, '0')}${rng.u32().toString(16).padStart(8, '0')}`,
    },
  };
}

function sessionOptions(c: SessionConfig, nowMs: number, afterVersion: TspVersion | undefined): ServerSessionOptions {
  return { ...c.base, nowMs, ...(afterVersion !== undefined ? { afterVersion } : {}) };
}

class Harness {
  /** The live session; undefined (UDP, adapter way) until a datagram opens one. */
  t: Tracked | undefined;
  now: number;
  /** Version the last stateless VERSION answer agreed on (the adapter's hint for the next session). */
  private versionHint: TspVersion | undefined;
  readonly questions: Question[] = [];
  /** `seq:timestamp` of every datagram we sent (replies must echo one). */
  private readonly headers = new Set<string>();
  readonly features: string[] = [];
  sessions = 0;

  constructor(
    readonly c: SessionConfig,
    readonly rng: Rng,
  ) {
    this.now = c.startMs;
    if (!c.statelessVersion) this.open(undefined);
  }

  get transport(): 'udp' | 'tcp' {
    return this.c.transport;
  }

  private open(afterVersion: TspVersion | undefined): Tracked {
    const opt = sessionOptions(this.c, this.now, afterVersion);
    const s = call('constructor', () => new ServerSession(opt));
    this.sessions++;
    this.t = { s, done: false, closedEvents: 0, wakeAtMs: undefined, wireIn: 0, wireOut: 0 };
    this.features.push(`open:${s.currentState}:${afterVersion ?? ''}`);
    return this.t;
  }

  private checkDatagram(op: string, b: Buffer): void {
    const bad = (what: string): never => {
      throw new InvariantError(`${op}: ${what}`, op);
    };
    if (!Buffer.isBuffer(b)) bad('send holds a non-Buffer');
    if (b.length < 8) bad(`UDP datagram of ${b.length} bytes, shorter than the header`);
    if (b[0]! >> 4 !== 0xf) bad(`UDP datagram does not start with the 0xF nibble (0x${b[0]!.toString(16)})`);
    if (b.length > MAX_UDP_REPLY) bad(`UDP datagram of ${b.length} bytes exceeds ${MAX_UDP_REPLY}`);
    if (!this.headers.has(`${b.readUInt32BE(0) & 0x0fffffff}:${b.readUInt32BE(4)}`))
      bad('UDP reply header echoes no datagram we sent');
  }

  /** Runs one call into a session and checks the Step it returns. */
  step(op: string, t: Tracked, fn: () => Step): Step {
    const wasDone = t.done;
    const state0 = t.s.currentState;
    if (TRACE) console.error(`@${this.now} #${this.sessions} ${state0} ${op}`);
    const step = call(op, fn);
    if (TRACE)
      console.error(
        `  -> ${t.s.currentState} done=${step.done} wake=${step.wakeAtMs} send=${JSON.stringify(step.send.map((b) => b.toString('latin1')))} events=${JSON.stringify(step.events.map((e) => e.type))}`,
      );
    const bad = (what: string): never => {
      throw new InvariantError(`${op}: ${what}`, op);
    };
    if (!step || typeof step !== 'object') bad('no Step returned');
    if (!Array.isArray(step.send)) bad('send is not an array');
    if (!Array.isArray(step.events)) bad('events is not an array');
    if (typeof step.done !== 'boolean') bad('done is not a boolean');
    for (const b of step.send) {
      if (this.transport === 'udp') {
        this.checkDatagram(op, b);
        t.wireOut += b.length + WIRE_OVERHEAD;
      } else if (!Buffer.isBuffer(b)) bad('send holds a non-Buffer');
      else if (b.length === 0) bad('empty TCP write');
    }
    if (this.transport === 'udp' && !t.s.sourceValidated && t.wireOut > AMPLIFICATION * t.wireIn)
      bad(`unvalidated session sent ${t.wireOut} bytes for ${t.wireIn} received (over ${AMPLIFICATION}x)`);
    if (wasDone && step.send.length) bad(`sent ${step.send.length} message(s) after done`);
    if (step.wakeAtMs !== undefined) {
      if (!Number.isFinite(step.wakeAtMs)) bad(`wakeAtMs ${step.wakeAtMs} is not finite`);
      if (step.wakeAtMs < this.now) bad('wakeAtMs is before now');
      if (op === 'timeout' && !step.done && step.wakeAtMs <= this.now)
        bad('timeout(now) asks to be woken at now again (busy loop)');
    }
    if (!step.done && !wasDone && t.s.isHalfOpen && step.wakeAtMs === undefined)
      bad(`half-open session (${t.s.currentState}) without a deadline`);
    for (const e of step.events) {
      if (e.type === 'closed') t.closedEvents++;
      if ((ASKS as readonly string[]).includes(e.type)) {
        const q: Question = { type: e.type as Ask, t };
        if (e.type === 'verifyPlain') Object.assign(q, { username: e.username, password: e.password });
        if (e.type === 'lookupDigest') q.username = e.username;
        this.questions.push(q);
      }
      this.features.push(
        `${op}>${e.type}${'reason' in e ? `:${messageShape(e.reason)}` : ''}${'code' in e ? `:${e.code}` : ''}${'status' in e ? `:${e.status}` : ''}`,
      );
    }
    if (this.transport === 'tcp' && t.closedEvents > 1) bad('closed reported twice');
    const state = t.s.currentState;
    this.features.push(`${state0}>${op}>${state}${step.done ? ':done' : ''}${wasDone ? ':after' : ''}`);
    for (const b of step.send)
      this.features.push(
        `${state}<${(this.transport === 'udp' ? b.subarray(8) : b).subarray(0, 4).toString('latin1')}`,
      );
    t.wakeAtMs = step.wakeAtMs;
    t.done ||= step.done;
    return step;
  }

  /** Bytes from the client: to the live session, or (UDP, adapter way) through classifyFirstDatagram. */
  receive(bytes: Uint8Array): void {
    if (TRACE) console.error(`  <- ${JSON.stringify(Buffer.from(bytes).toString('latin1'))}`);
    if (this.transport === 'udp' && bytes.length >= 8) {
      const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
      this.headers.add(`${b.readUInt32BE(0) & 0x0fffffff}:${b.readUInt32BE(4)}`);
    }
    let t = this.t;
    if (t === undefined || (t.done && this.c.statelessVersion)) {
      if (!this.c.statelessVersion) return;
      // the adapter's way: a peer without a live session
      this.t = undefined;
      const first = call('classifyFirstDatagram', () => classifyFirstDatagram(bytes, this.c.base));
      this.features.push(`first:${first.kind}`);
      if (first.kind === 'drop') return;
      if (first.kind === 'version') {
        this.checkDatagram('classifyFirstDatagram', first.reply);
        if (first.reply.length > 3 * (bytes.length + WIRE_OVERHEAD))
          throw new InvariantError('stateless VERSION reply over 3x the request', 'classifyFirstDatagram');
        this.versionHint = first.version;
        return;
      }
      t = this.open(this.versionHint ?? NEWEST);
      this.versionHint = undefined;
    }
    if (t.done) return; // an adapter forgets a done session: it gets no more bytes
    t.wireIn += bytes.length + WIRE_OVERHEAD;
    const tt = t;
    this.step('receive', tt, () => tt.s.receive(bytes, this.now));
  }

  /** Fires the live session's timer: at wakeAtMs, or at some other time (early, late, far later). */
  tick(): void {
    const t = this.t;
    if (!t || t.done) return;
    const r = this.rng;
    const w = t.wakeAtMs;
    let at: number;
    if (w !== undefined && r.chance(0.6)) at = w + (r.chance(0.8) ? 0 : r.range(1, 5_000));
    else if (w !== undefined && r.chance(0.5)) at = Math.max(this.now, w - r.range(1, 400));
    else at = this.now + r.pick([0, 1, 299, 300, 301, 1_999, 2_000, 29_999, 30_000, 30_001, 3_600_000]);
    this.now = Math.max(this.now, at);
    this.step('timeout', t, () => t.s.timeout(this.now));
  }

  /** Answers one question the way a broker might: right, wrong, an error or a broken offer. */
  answer(q: Question): void {
    const t = q.t ?? this.t;
    if (!t) return;
    const r = this.rng;
    const s = t.s;
    const now = this.now;
    const err = () => new BrokerError(r.pick(ERROR_CODES), 'fuzz says no');
    switch (q.type) {
      case 'verifyPlain': {
        const ok = r.chance(0.15) ? r.chance(0.5) : q.username === USER && q.password === PASSWORD;
        this.step('plainResult', t, () => s.plainResult(ok, ok ? '' : 'wrong password', now));
        return;
      }
      case 'lookupDigest': {
        const u = q.username ?? USER;
        const x = r.chance(0.8)
          ? digestSecret(u, REALM, PASSWORD)
          : r.pick([
              undefined,
              Buffer.alloc(16),
              Buffer.alloc(0),
              Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]),
              Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 0, 10, 11, 12, 13, 14, 15, 16]),
              digestSecret(u, 'other-realm', PASSWORD),
            ]);
        this.step('digestSecret', t, () => s.digestSecret(x, x ? '' : 'unknown user', now));
        return;
      }
      case 'tunnelRequested': {
        const result = r.chance(0.8) ? { offer: r.pick(OFFERS) } : { error: err() };
        this.step('offerDecision', t, () => s.offerDecision(result, now));
        return;
      }
      case 'offerAccepted': {
        const e = r.chance(0.85) ? undefined : err();
        this.step('acceptDone', t, () => s.acceptDone(e, now));
        return;
      }
      case 'deleteRequested': {
        const e = r.chance(0.8) ? undefined : err();
        this.step('deleteDone', t, () => s.deleteDone(e, now));
        return;
      }
      case 'infoRequested': {
        const o = r.chance(0.8) ? r.pick(OFFERS) : undefined;
        this.step('infoDone', t, () => s.infoDone(o, now));
        return;
      }
    }
  }

  /** An answer nobody asked for (or asked long ago), or close() (the peer went away). */
  stray(): void {
    const t = this.t;
    if (!t) return;
    if (this.rng.chance(0.1)) {
      if (!t.done) this.step('close', t, () => t.s.close(this.now));
      return;
    }
    this.answer({ type: this.rng.pick(ASKS), username: USER, password: PASSWORD, t });
  }

  /** Answers pending questions: each now (mostly), later, or never. */
  answerSome(pNow: number): void {
    for (let i = 0; i < this.questions.length;) {
      const roll = this.rng.u32() / 4294967296;
      if (roll < pNow) this.answer(this.questions.splice(i, 1)[0]!);
      else if (roll < pNow + 0.02)
        this.questions.splice(i, 1); // never answered
      else i++;
    }
  }
}

/** The datagrams or writes to feed, re-cut by the schedule. */
function schedule(transport: 'udp' | 'tcp', msgs: Uint8Array[], rng: Rng): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (transport === 'tcp') {
    for (let i = 0; i < msgs.length; i++) {
      let w = msgs[i]!;
      while (i + 1 < msgs.length && rng.chance(0.25)) w = Buffer.concat([w, msgs[++i]!]); // one write
      if (w.length > 1 && rng.chance(0.3)) {
        // split at random points, byte by byte now and then
        const every = rng.chance(0.1);
        const cuts = every ? w.length - 1 : rng.range(1, Math.min(4, w.length - 1));
        const at = new Set<number>();
        for (let k = 0; k < cuts; k++) at.add(every ? k + 1 : rng.range(1, w.length - 1));
        let prev = 0;
        for (const c of [...at].sort((a, b) => a - b)) {
          out.push(w.subarray(prev, c));
          prev = c;
        }
        out.push(w.subarray(prev));
      } else out.push(w);
    }
    return out;
  }
  for (let i = 0; i < msgs.length; i++) {
    const d = msgs[i]!;
    if (i + 1 < msgs.length && rng.chance(0.05)) {
      out.push(msgs[i + 1]!, d); // reordered
      i++;
      continue;
    }
    out.push(d);
    if (rng.chance(0.1)) out.push(d); // retransmitted as is
    if (d.length >= 8 && rng.chance(0.05)) {
      const again = Buffer.from(d);
      again.writeUInt32BE((again.readUInt32BE(4) + rng.range(1, 3000)) >>> 0, 4); // with a new timestamp
      out.push(again);
    }
  }
  return out;
}

function run(transport: 'udp' | 'tcp', input: Uint8Array): string[] {
  const recs = decodeRecords(input);
  const settingsBytes = recs[0] ?? new Uint8Array(0);
  const rng = new Rng(fnv1a(settingsBytes));
  const h = new Harness(sessionConfig(transport, new Settings(settingsBytes), rng), rng);
  const pAnswer = rng.pick([1, 0.9, 0.7, 0.4]);
  for (const chunk of schedule(transport, recs.slice(1), rng)) {
    if (rng.chance(0.15)) h.tick();
    if (rng.chance(0.04)) h.stray();
    h.receive(chunk);
    h.now += rng.chance(0.7) ? rng.below(20) : rng.below(2_000);
    h.answerSome(pAnswer);
    if (h.t?.done && !h.c.statelessVersion) break; // the adapter is done with this peer
  }
  const t = h.t;
  if (!t) return h.features;
  if (!t.done && rng.chance(0.2)) h.step('close', t, () => t.s.close(h.now));
  // the end: answer what is left, then fire every wakeup until the session ends or needs none
  h.answerSome(0.95);
  for (let i = 0; i < 64 && !t.done && t.wakeAtMs !== undefined; i++) {
    h.now = Math.max(h.now, t.wakeAtMs);
    h.step('timeout', t, () => t.s.timeout(h.now));
    h.answerSome(1);
  }
  if (!t.done && t.wakeAtMs !== undefined)
    throw new InvariantError('64 wakeups and the session neither ends nor rests', 'timeout');
  h.features.push(`end:${t.s.currentState}:${t.done}`);
  if (!t.done) return h.features;
  // late broker answers reach a done session: nothing may be sent
  for (const a of ASKS) h.answer({ type: a, username: USER, password: PASSWORD, t });
  // calls the adapters never make after done: they must not throw; what they send is checked apart (KNOWN)
  const after: string[] = [];
  const probe = (op: string, fn: () => Step) => {
    const st = call(op, fn);
    if (st.send.length) after.push(op);
  };
  probe('timeout', () => t.s.timeout(h.now + 60_000));
  if (transport === 'tcp') probe('receive', () => t.s.receive(Buffer.from('VERSION=2.0.2\r\n'), h.now + 60_000));
  probe('close', () => t.s.close(h.now + 60_000));
  if (after.length)
    throw new InvariantError(`a done session still sends from ${after.join(', ')}`, `${after[0]}-after-done`);
  return h.features;
}

/** Tokens of the client side of TSP. */
const DICTIONARY = [
  'VERSION=',
  'VERSION=2.0.2\r\n',
  'VERSION=2.0.1\r\n',
  'VERSION=2.0.0\r\n',
  'VERSION=1.0\r\n',
  'AUTHENTICATE ',
  'AUTHENTICATE ANONYMOUS\r\n\0',
  'AUTHENTICATE PLAIN\r\n\0',
  'AUTHENTICATE DIGEST-MD5\r\n\0',
  'AUTHENTICATE PASSDSS-3DES-1\r\n',
  'ANONYMOUS',
  'PLAIN',
  'DIGEST-MD5',
  '\0bob\0hunter2\r\n',
  'Content-length: ',
  'content-length:',
  'Content-length: 35\r\n<tunnel action="accept"></tunnel>\r\n',
  'Content-length: 35\r\n<tunnel action="reject"></tunnel>\r\n',
  'Content-length: 35\r\n<tunnel action="delete"></tunnel>\r\n',
  'Content-length: 33\r\n<tunnel action="info"></tunnel>\r\n',
  '<tunnel action="create" type="v6anyv4" proxy="no">',
  '<tunnel action="accept"></tunnel>',
  '<tunnel',
  '</tunnel>',
  ' action="',
  ' type="',
  'v6v4',
  'v6udpv4',
  'v6anyv4',
  'v4v6',
  '<client>',
  '</client>',
  '<address type="ipv4">',
  '<address type="ipv6">',
  '</address>',
  '<keepalive interval="30">',
  '<router><prefix length="56"/></router>',
  '<prefix length="',
  '192.0.2.2',
  '::',
  'Y2hhcnNldD11dGYtOC',
  '==',
  '\xf0\x00\x00\xf0',
  '\xf0\x00\x00\xf1\x00\x00\x00\x01',
  '\x0f\xff\xff\xff',
  '\xff\xff\xff\xff',
].map((s) => Buffer.from(s, 'latin1'));

/** Findings in server-session.ts not fixed yet: counted and saved once, never failing a run; drop an entry
 *  once fixed. (Empty: 'done-session-still-sends' and 'late-answer-after-done', found by this fuzzer, are fixed;
 *  their vectors replay as regressions.) */
const KNOWN: readonly KnownIssue[] = [];

function target(transport: 'udp' | 'tcp'): Target {
  return {
    name: `server-${transport}`,
    description: `ServerSession over ${transport.toUpperCase()}: client bytes, ${transport === 'tcp' ? 'splits, ' : 'retransmissions, stateless VERSION, '}timers and broker answers`,
    exec: (input) => run(transport, input),
    dictionary: DICTIONARY,
    maxLength: 16_384,
    mutate: (input, m) => mutateRecords(input, m, transport === 'udp' ? 1600 : 4096),
    shrink: shrinkRecords,
    known: KNOWN,
  };
}

export const serverUdp = target('udp');
export const serverTcp = target('tcp');
