/** @module protocol/client/state: the client session's states and transitions, as data (docs/style.md §2). Only
 *  ClientSession (client/session.ts) advances it, and only through advance(); a transition missing from the
 *  table is the server breaking the protocol (CLIENT_PROTOCOL).
 *
 *    start --VERSION--> sentVersion --302--> refused           (event versionRefused: caller retries lower)
 *                            | CAPABILITY: mode advertised? mechanism in common?
 *            +---------------+----------------------+-------------------------------+
 *            | ANONYMOUS     | PLAIN                | DIGEST-MD5                    |
 *            v               v                      v                               |
 *     authAnonymous     authPlain --ack (UDP)--> plainCred      authDigest --challenge--> md5Response
 *            |               (TCP: both at once) ---^  |                                    | rspauth checked
 *            |                                         |                                    v
 *            +--200--> requested <--------200----------+<-----200 (UDP: after an empty poll)-- md5Poll
 *                          | offer (200 + XML, checked against the request)
 *                          v
 *                      accepted --UDP: header-only ack | TCP: at once--> established
 *    Any state before established: fail -> failed (300, another status, no reply, a redirect, a broken reply). */

import { BrokerError } from '../../errors.js';

export type ClientState =
  | 'start'
  | 'sentVersion'
  | 'authAnonymous'
  | 'authPlain'
  | 'plainCred'
  | 'authDigest'
  | 'md5Response'
  | 'md5Poll'
  | 'requested'
  | 'accepted'
  | 'established'
  | 'refused'
  | 'failed';

export type ClientInput =
  | 'version'
  | 'versionRefused'
  | 'chooseAnonymous'
  | 'choosePlain'
  | 'choosePlainAtOnce'
  | 'chooseDigest'
  | 'plainAck'
  | 'challenge'
  | 'rspauth'
  | 'success'
  | 'offer'
  | 'acceptAck'
  | 'fail';

const NEXT: Record<ClientState, Partial<Record<ClientInput, ClientState>>> = {
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

export function advance(from: ClientState, input: ClientInput): ClientState {
  const to = NEXT[from][input];
  if (to === undefined) throw new BrokerError('CLIENT_PROTOCOL', `${input} while ${from}`);
  return to;
}

/** States in which nothing more happens: the session is over. */
export function isFinal(s: ClientState): boolean {
  return s === 'established' || s === 'refused' || s === 'failed';
}

/** Every state and input, for tests that walk the whole table. */
export const CLIENT_STATES = Object.keys(NEXT) as ClientState[];
