/** @module broker/authenticate: checks credentials against the store, behind the failure limiter. Answers
 *  values; knows nothing of sessions.
 *
 *  Failures count where they cannot be aimed at someone else (docs/security.md): against the username
 *  together with the source's /24, and against the source, and only when the source has shown it receives
 *  our datagrams (TCP, or a DIGEST-MD5 response with our nonce). A failure from a source that may be spoofed
 *  (PLAIN over UDP, a DIGEST response with a nonce we never sent it) counts only against that source's
 *  unvalidated attempts, which nothing else is refused for. */

import type { Clock } from '../clock.js';
import { prefix24, sourceKey } from '../address.js';
import type { Config } from '../config/schema.js';
import type { AccountLimits, Store } from '../store/types.js';
import { dummyPasswordHash, verifyPassword } from './credentials.js';
import { FailureLimiter } from './rate-limit.js';

/** The account a check found, to be bound to the session once the protocol says it authenticated. */
export interface Candidate {
  id: number;
  username: string;
  limits: AccountLimits;
}

export interface PlainAnswer {
  ok: boolean;
  reason: string;
  candidate?: Candidate;
  /** Refused by the failure limiter without a check: not one more failure. */
  throttled?: boolean;
}

export interface DigestAnswer {
  secret: Buffer | undefined;
  reason: string;
  candidate?: Candidate;
  throttled?: boolean;
}

const RATE_LIMITED = 'too many failures (rate limited)';

export class Authenticator {
  private readonly limiter: FailureLimiter;

  constructor(
    private readonly store: Pick<Store, 'getAccountSecrets'>,
    private readonly cfg: Pick<Config['auth'], 'maxFailures' | 'failureWindowS' | 'realm'>,
    clock: Clock,
  ) {
    this.limiter = new FailureLimiter(clock, cfg.maxFailures, cfg.failureWindowS * 1000);
  }

  async verifyPlain(
    source: string,
    username: string,
    password: string,
    sourceValidated: boolean,
  ): Promise<PlainAnswer> {
    if (this.throttled(source, username, sourceValidated)) return { ok: false, reason: RATE_LIMITED, throttled: true };
    const a = await this.store.getAccountSecrets(username);
    const usable = a !== undefined && !a.disabled;
    // an unknown or disabled user is checked against a dummy hash: same time, so timing names no account
    const ok = (await verifyPassword(usable ? a.passwordHash : await dummyPasswordHash(), password)) && usable;
    // a web-only account keeps no TSP login: after the same hash check, it fails as an unknown user does
    if (!a || a.digestHa1 === null) return { ok: false, reason: 'unknown user' };
    if (a.disabled) return { ok: false, reason: 'account disabled' };
    if (!ok) return { ok: false, reason: 'wrong password' };
    return { ok: true, reason: '', candidate: { id: a.id, username: a.username, limits: a.limits } };
  }

  async lookupDigest(source: string, username: string): Promise<DigestAnswer> {
    // the DIGEST source is validated by the response itself (its nonce), so only the validated keys apply here
    if (this.throttled(source, username, true)) return { secret: undefined, reason: RATE_LIMITED, throttled: true };
    const a = await this.store.getAccountSecrets(username);
    const ha1 = a?.digestHa1; // null for a web-only account: it fails exactly as an unknown user does
    if (!a || !ha1) return { secret: undefined, reason: 'unknown user' };
    if (a.disabled) return { secret: undefined, reason: 'account disabled' };
    if (a.digestRealm !== this.cfg.realm)
      return { secret: undefined, reason: `credential kept for realm ${a.digestRealm}; set the password again` };
    return {
      secret: Buffer.from(ha1, 'hex'),
      reason: '',
      candidate: { id: a.id, username: a.username, limits: a.limits },
    };
  }

  /** A failed attempt (not one the limiter itself refused). */
  failed(source: string, username: string | null, sourceValidated: boolean): void {
    if (!sourceValidated) {
      this.limiter.fail(`unvalidated:${sourceKey(source)}`);
      return;
    }
    this.limiter.fail(`src:${sourceKey(source)}`);
    if (username) this.limiter.fail(userKey(username, source));
  }

  /** A success clears the username's failures from that /24. */
  succeeded(source: string, username: string): void {
    this.limiter.clear(userKey(username, source));
  }

  private throttled(source: string, username: string, sourceValidated: boolean): boolean {
    return (
      this.limiter.isBlocked(`src:${sourceKey(source)}`) ||
      this.limiter.isBlocked(userKey(username, source)) ||
      (!sourceValidated && this.limiter.isBlocked(`unvalidated:${sourceKey(source)}`))
    );
  }
}

/** The failure-limiter key of a username: per source /24, so failures from elsewhere never lock it here. */
function userKey(username: string, source: string): string {
  return `user:${username}|${prefix24(source)}`;
}
