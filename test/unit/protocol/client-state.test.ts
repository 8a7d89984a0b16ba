/** The client state table (src/protocol/client/state.ts) walked whole: every state against every input; a
 *  transition missing from the table is CLIENT_PROTOCOL (the server broke the protocol). No sockets. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLIENT_STATES,
  advance,
  isFinal,
  type ClientInput,
  type ClientState,
} from '../../../src/protocol/client/state.js';
import { BrokerError } from '../../../src/errors.js';

const INPUTS: ClientInput[] = [
  'version',
  'versionRefused',
  'chooseAnonymous',
  'choosePlain',
  'choosePlainAtOnce',
  'chooseDigest',
  'plainAck',
  'challenge',
  'rspauth',
  'success',
  'offer',
  'acceptAck',
  'fail',
];

const EXPECTED: Record<ClientState, Partial<Record<ClientInput, ClientState>>> = {
  start: { version: 'sentVersion', fail: 'failed' },
  sentVersion: {
    versionRefused: 'refused',
    chooseAnonymous: 'authAnonymous',
    choosePlain: 'authPlain',
    choosePlainAtOnce: 'plainCred',
    chooseDigest: 'authDigest',
    fail: 'failed',
  },
  authAnonymous: { success: 'requested', fail: 'failed' },
  authPlain: { plainAck: 'plainCred', fail: 'failed' },
  plainCred: { success: 'requested', fail: 'failed' },
  authDigest: { challenge: 'md5Response', fail: 'failed' },
  md5Response: { rspauth: 'md5Poll', fail: 'failed' },
  md5Poll: { success: 'requested', fail: 'failed' },
  requested: { offer: 'accepted', fail: 'failed' },
  accepted: { acceptAck: 'established', fail: 'failed' },
  established: {},
  refused: {},
  failed: {},
};

test('client table: every state against every input', () => {
  assert.deepEqual([...CLIENT_STATES].sort(), Object.keys(EXPECTED).sort());
  for (const from of CLIENT_STATES)
    for (const input of INPUTS) {
      const want = EXPECTED[from][input];
      if (want !== undefined) assert.equal(advance(from, input), want, `${input} while ${from}`);
      else
        assert.throws(
          () => advance(from, input),
          (e: unknown) =>
            e instanceof BrokerError && e.code === 'CLIENT_PROTOCOL' && e.message === `${input} while ${from}`,
          `${input} while ${from} is refused`,
        );
    }
});

test('client table: every state before the end can fail; the final states take nothing', () => {
  for (const s of CLIENT_STATES) {
    if (isFinal(s)) assert.deepEqual(EXPECTED[s], {}, s);
    else assert.equal(advance(s, 'fail'), 'failed', s);
  }
  assert.deepEqual(CLIENT_STATES.filter(isFinal), ['established', 'refused', 'failed']);
});
