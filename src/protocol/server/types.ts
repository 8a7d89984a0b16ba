/** @module protocol/server/types: what a server session is built with and what it returns (docs/style.md §1). */

import type { BrokerError } from '../../errors.js';
import type { TspVersion } from '../constants.js';
import type { BrokerAddress } from '../redirect.js';
import type { Offer, TunnelRequest } from '../xml.js';
import type { Capabilities } from './version.js';

export type Mechanism = 'ANONYMOUS' | 'PLAIN' | 'DIGEST-MD5';

export interface ServerSessionOptions extends Capabilities {
  /** Picks the session's framing (framing/udp.ts or framing/tcp.ts); nothing else in the session looks at it. */
  transport: 'udp' | 'tcp';
  realm: string;
  /** Accept the TSP 2.0.0 truncated-HA1 DIGEST-MD5 form (docs/protocol.md §5.6) from 2.0.0 clients. Off by
   *  default: it is weaker than the password (config auth.digestMd5Quirk200). */
  quirk200?: boolean;
  negotiationTimeoutMs: number;
  /** UDP: the session begins after a VERSION this version that was answered without state
   *  (classifyFirstDatagram()), so its first datagram is the client's AUTHENTICATE. Undefined: it begins at
   *  VERSION. */
  afterVersion?: TspVersion;
  /** Fresh DIGEST nonce (≥ 64 random bits, hex); injected so tests can pin the recorded one. */
  newNonce: () => string;
  nowMs: number;
}

export type SessionEvent =
  | { type: 'version'; version: TspVersion }
  | { type: 'versionRefused'; version: string }
  | { type: 'verifyPlain'; username: string; password: string; sourceValidated: boolean }
  | { type: 'lookupDigest'; username: string }
  | { type: 'authenticated'; mechanism: Mechanism; username: string | null }
  /** `sourceValidated`: the peer has shown it receives our datagrams (TCP, or a DIGEST-MD5 response that
   *  carries the nonce we sent). A failure from an unvalidated source may come from a spoofed address. */
  | { type: 'authFailed'; mechanism: string; username: string | null; reason: string; sourceValidated: boolean }
  | { type: 'tunnelRequested'; request: TunnelRequest }
  | { type: 'offerAccepted' }
  | { type: 'offerWithdrawn'; reason: 'rejected' | 'timeout' | 'closed' | 'superseded' | 'restarted' }
  | { type: 'deleteRequested' }
  | { type: 'infoRequested' }
  | { type: 'protocolError'; code: string; status: number; message: string }
  /** The broker sent the client elsewhere (status 1200 with these brokers) instead of an offer. */
  | { type: 'redirected'; brokers: string[] }
  /** A UDP reply was not sent: it would break the anti-amplification budget, or its request was repeated more
   *  than MAX_REPLY_RESENDS times. */
  | { type: 'replyWithheld'; reason: 'amplification' | 'resends' }
  | { type: 'closed'; reason: 'done' | 'timeout' | 'error' | 'peer'; established: boolean };

export interface Step {
  /** Each element is one UDP datagram (header included) or one TCP write. */
  send: Buffer[];
  events: SessionEvent[];
  /** Call timeout() at or after this time. Undefined: no timer needed. */
  wakeAtMs?: number;
  /** The adapter may forget this session (UDP) or end the connection after writing (TCP). */
  done: boolean;
}

/** The broker's answer to a tunnel request: an offer, a refusal, or other brokers to ask (a redirect). */
export type OfferResult = { offer: Offer } | { error: BrokerError } | { redirect: readonly BrokerAddress[] };

/** The broker's answer a session waits for. */
export type Pending = 'plain' | 'digest' | 'offer' | 'accept' | 'delete' | 'info';

export type { Offer, TunnelRequest };
