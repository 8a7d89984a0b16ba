/** The server state table (src/protocol/server/state.ts) walked whole: every state against every input, the
 *  guards (a request a state does not allow is TSP_UNEXPECTED with the reason the peer is told), and the
 *  predicates the session and the transports read. No session, no sockets. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  STATES,
  accepts,
  advance,
  guard,
  isHalfOpen,
  readsLines,
  type Input,
  type State,
} from '../../../src/protocol/server/state.js';
import { RemoteProtocolError } from '../../../src/errors.js';

const INPUTS: Input[] = [
  'version',
  'versionRefused',
  'authAnonymous',
  'authPlain',
  'authDigest',
  'credentialsOk',
  'responseOkUdp',
  'responseOkTcp',
  'digestDone',
  'create',
  'offerMade',
  'accept',
  'reject',
  'delete',
  'info',
  'fail',
  'expire',
  'close',
  'restart',
];

const halfOpenEnds = { fail: 'closed', expire: 'closed', close: 'closed', restart: 'start' } as const;

/** The expected table, written out again: a change to the real one must change this too. */
const EXPECTED: Record<State, Partial<Record<Input, State>>> = {
  start: { version: 'auth', versionRefused: 'closed', fail: 'closed', expire: 'closed', close: 'closed' },
  auth: { authAnonymous: 'command', authPlain: 'plainCred', authDigest: 'md5Resp', ...halfOpenEnds },
  plainCred: { credentialsOk: 'command', ...halfOpenEnds },
  md5Resp: { responseOkUdp: 'md5Poll', responseOkTcp: 'md5Pause', ...halfOpenEnds },
  md5Poll: { digestDone: 'command', ...halfOpenEnds },
  md5Pause: { digestDone: 'command', ...halfOpenEnds },
  command: { create: 'command', offerMade: 'offered', delete: 'command', info: 'command', ...halfOpenEnds },
  offered: { accept: 'established', reject: 'command', create: 'command', ...halfOpenEnds },
  established: {
    create: 'established',
    offerMade: 'offered',
    delete: 'command',
    info: 'established',
    fail: 'closed',
    close: 'closed',
    restart: 'start',
  },
  closed: { close: 'closed', restart: 'start' },
};

test('server table: every state against every input, transitions and refusals', () => {
  assert.deepEqual([...STATES].sort(), Object.keys(EXPECTED).sort());
  for (const from of STATES)
    for (const input of INPUTS) {
      const want = EXPECTED[from][input];
      assert.equal(accepts(from, input), want !== undefined, `${input} while ${from}`);
      if (want !== undefined) assert.equal(advance(from, input), want, `${input} while ${from}`);
      else
        assert.throws(
          () => advance(from, input),
          (e: unknown) => e instanceof RemoteProtocolError && e.code === 'TSP_UNEXPECTED',
          `${input} while ${from} is refused`,
        );
    }
});

test('server table: guards name what the peer did wrong, and leave the state alone', () => {
  const refusal = (from: State, input: Input) => {
    try {
      guard(from, input);
      return 'allowed';
    } catch (e) {
      return (e as RemoteProtocolError).message;
    }
  };
  assert.equal(refusal('command', 'accept'), 'accept without an offer');
  assert.equal(refusal('established', 'accept'), 'accept without an offer');
  assert.equal(refusal('command', 'reject'), 'reject without an offer');
  assert.equal(refusal('offered', 'delete'), 'delete while an offer is pending');
  assert.equal(refusal('offered', 'info'), 'info while an offer is pending');
  assert.equal(refusal('offered', 'accept'), 'allowed');
  assert.equal(refusal('offered', 'reject'), 'allowed');
  assert.equal(refusal('command', 'delete'), 'allowed');
  assert.equal(refusal('established', 'info'), 'allowed');
  assert.equal(refusal('auth', 'create'), 'create while auth', 'no reason written: the generic one');
});

test('server table: the end is reachable from every state, and only close and restart leave closed', () => {
  for (const from of STATES) assert.equal(advance(from, 'close'), 'closed', from);
  for (const from of STATES.filter((s) => s !== 'closed')) assert.equal(advance(from, 'fail'), 'closed', from);
  for (const from of STATES.filter((s) => s !== 'start')) assert.equal(advance(from, 'restart'), 'start', from);
  assert.deepEqual(
    INPUTS.filter((i) => accepts('closed', i)),
    ['close', 'restart'],
  );
});

test('server predicates: half-open until established, lines until the command phase', () => {
  assert.deepEqual(
    STATES.filter((s) => !isHalfOpen(s)),
    ['established', 'closed'],
  );
  assert.deepEqual(
    STATES.filter((s) => readsLines(s)),
    ['start', 'auth', 'plainCred', 'md5Resp', 'md5Poll'],
  );
  // expire is the negotiation timeout: exactly the half-open states take it
  assert.deepEqual(
    STATES.filter((s) => accepts(s, 'expire')),
    STATES.filter((s) => isHalfOpen(s)),
  );
});
