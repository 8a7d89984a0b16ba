/** @module protocol/server-state: the server session's states and transitions, as data (docs/style.md §2).
 *  Only ServerSession (server-session.ts) advances it; a transition missing from the table is a protocol
 *  error answered with the phase's status.
 *
 *   start --version--> auth --authAnonymous--> command
 *                        |--authPlain--> plainCred --credentialsOk--> command
 *                        '--authDigest--> md5Resp --responseOk--> md5Poll (UDP: empty poll / 200)
 *                                                               \-> md5Pause (TCP: 200 written after a pause)
 *   md5Poll|md5Pause --digestDone--> command
 *   command --create--> offered --accept--> established;  offered --reject|withdraw--> command
 *   offered|established --create--> offered (a new offer supersedes);  any --fail--> closed
 *   (docs/protocol.md §3.2; every state before established expires after the negotiation timeout) */

import { RemoteProtocolError } from '../errors.js';

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
  | 'withdraw'
  | 'delete'
  | 'info'
  | 'fail';

const NEXT: Record<State, Partial<Record<Input, State>>> = {
  start: { version: 'auth', fail: 'closed' },
  auth: { authAnonymous: 'command', authPlain: 'plainCred', authDigest: 'md5Resp', fail: 'closed' },
  plainCred: { credentialsOk: 'command', fail: 'closed' },
  md5Resp: { responseOkUdp: 'md5Poll', responseOkTcp: 'md5Pause', fail: 'closed' },
  md5Poll: { digestDone: 'command', fail: 'closed' },
  md5Pause: { digestDone: 'command', fail: 'closed' },
  command: { create: 'command', offerMade: 'offered', delete: 'command', info: 'command', fail: 'closed' },
  offered: { accept: 'established', reject: 'command', withdraw: 'command', create: 'command', fail: 'closed' },
  established: { create: 'established', offerMade: 'offered', delete: 'command', info: 'established', fail: 'closed' },
  closed: {},
};

export function advance(from: State, input: Input): State {
  const to = NEXT[from][input];
  if (to === undefined) throw new RemoteProtocolError('TSP_UNEXPECTED', `${input} while ${from}`);
  return to;
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
