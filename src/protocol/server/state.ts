/** @module protocol/server/state: the server session's states and transitions, as data (docs/style.md §2).
 *  It is the only writer of the session's state: ServerSession (server/session.ts) asks it to advance and never
 *  assigns a state itself. Guards are rows too: a request the current state does not allow (an accept without
 *  an offer) is missing from the table, and advance() or guard() throws the protocol error answered for it.
 *
 *   start --version--> auth --authAnonymous--> command
 *                        |--authPlain--> plainCred --credentialsOk--> command
 *                        '--authDigest--> md5Resp --responseOkUdp--> md5Poll (UDP: empty poll / 200)
 *                                                 '--responseOkTcp--> md5Pause (TCP: 200 written after a pause)
 *   md5Poll|md5Pause --digestDone--> command
 *   command --create--> command (waits for the offer) --offerMade--> offered
 *   offered --accept--> established;  offered --reject--> command;  offered --create--> command
 *   established --create--> established --offerMade--> offered (a new offer supersedes)
 *   command|established --delete--> command;  command|established --info--> (same)
 *   start --versionRefused--> closed (302)
 *   any but closed --fail--> closed (an error reply);  half-open --expire--> closed (negotiation timeout)
 *   any --close--> closed (the transport ended);  any but start --restart--> start (UDP: VERSION= again)
 *  (docs/protocol.md §3.2; every state before established expires after the negotiation timeout) */

import { RemoteProtocolError } from '../../errors.js';

export type State =
  | 'start'
  | 'auth'
  | 'plainCred'
  | 'md5Resp'
  | 'md5Poll'
  | 'md5Pause'
  | 'command'
  | 'offered'
  | 'established'
  | 'closed';

export type Input =
  | 'version'
  | 'versionRefused'
  | 'authAnonymous'
  | 'authPlain'
  | 'authDigest'
  | 'credentialsOk'
  | 'responseOkUdp'
  | 'responseOkTcp'
  | 'digestDone'
  | 'create'
  | 'offerMade'
  | 'accept'
  | 'reject'
  | 'delete'
  | 'info'
  | 'fail'
  | 'expire'
  | 'close'
  | 'restart';

/** Inputs every state before the end takes the same way. */
const ENDS = { fail: 'closed', close: 'closed', restart: 'start' } as const;
/** ... and those before an accepted tunnel (half-open states). */
const HALF_OPEN = { ...ENDS, expire: 'closed' } as const;

const NEXT: Record<State, Partial<Record<Input, State>>> = {
  start: { version: 'auth', versionRefused: 'closed', fail: 'closed', close: 'closed', expire: 'closed' },
  auth: { authAnonymous: 'command', authPlain: 'plainCred', authDigest: 'md5Resp', ...HALF_OPEN },
  plainCred: { credentialsOk: 'command', ...HALF_OPEN },
  md5Resp: { responseOkUdp: 'md5Poll', responseOkTcp: 'md5Pause', ...HALF_OPEN },
  md5Poll: { digestDone: 'command', ...HALF_OPEN },
  md5Pause: { digestDone: 'command', ...HALF_OPEN },
  command: { create: 'command', offerMade: 'offered', delete: 'command', info: 'command', ...HALF_OPEN },
  offered: { accept: 'established', reject: 'command', create: 'command', ...HALF_OPEN },
  established: {
    create: 'established',
    offerMade: 'offered',
    delete: 'command',
    info: 'established',
    ...ENDS,
  },
  closed: { close: 'closed', restart: 'start' },
};

/** What the peer is told when a request is missing from the current state's row (docs/protocol.md §7). */
const REFUSED: Partial<Record<Input, string>> = {
  accept: 'accept without an offer',
  reject: 'reject without an offer',
  delete: 'delete while an offer is pending',
  info: 'info while an offer is pending',
};

/** The state `input` leads to from `from`; throws TSP_UNEXPECTED when the table has no such transition. */
export function advance(from: State, input: Input): State {
  const to = NEXT[from][input];
  if (to === undefined) throw new RemoteProtocolError('TSP_UNEXPECTED', REFUSED[input] ?? `${input} while ${from}`);
  return to;
}

/** Checks that `input` may happen in `from` without taking it yet: a request whose transition waits for the
 *  broker's answer (accept, delete, info) is refused at once when the table has no row for it. */
export function guard(from: State, input: Input): void {
  advance(from, input);
}

export function accepts(from: State, input: Input): boolean {
  return NEXT[from][input] !== undefined;
}

/** States in which the session has not reached an accepted tunnel: bounded in number and time. */
export function isHalfOpen(s: State): boolean {
  return s !== 'established' && s !== 'closed';
}

/** States that read bare lines (as opposed to Content-length messages). */
export function readsLines(s: State): boolean {
  return s === 'start' || s === 'auth' || s === 'plainCred' || s === 'md5Resp' || s === 'md5Poll';
}

/** Every state, for tests that walk the whole table. */
export const STATES = Object.keys(NEXT) as State[];
