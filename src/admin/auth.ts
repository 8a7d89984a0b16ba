/** @module admin/auth: who is calling the admin server. A request is authenticated by an API token
 *  (`Authorization: Bearer tspb_…`, always the admin role) or by the web session cookie (the account's role,
 *  re-read on every request, so a disabled or deleted account is out at once).
 *
 *  Web sessions live in the store (table web_sessions), so a broker restart keeps operators signed in; the
 *  cookie holds 32 random bytes and the store only their SHA-256. Sessions end after SESSION_LIFETIME_MS
 *  (absolute, no sliding) or at logout.
 *
 *  CSRF: each session has a random token. State-changing forms carry it as `_csrf`, cookie-authenticated API
 *  writes as the `X-CSRF-Token` header; bearer-token requests carry no cookie and are exempt. The login form,
 *  before any session exists, gets a token the server issues: random, with an expiry, and signed (HMAC-SHA256)
 *  with a key kept in the store's settings (so every node sharing the store accepts it). GET /login sets it in
 *  a cookie and renders it in the form; POST /login needs both, equal and with a valid signature, so a value
 *  the client made up is refused.
 *
 *  Password throttling: failed password checks are counted per source address and per username
 *  (broker/rate-limit.ts), for sign-in and for a self-service password change (a wrong current password) alike;
 *  past the limit both are refused without checking the password until the window has passed (lockout).
 *
 *  Audit rows of sign-in failures and lockouts are size-capped and budgeted per source (admin/audit-budget.ts). */

import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { BrokerError } from '../errors.js';
import type { Account, Store } from '../store/types.js';
import type { Clock } from '../clock.js';
import { FailureLimiter } from '../broker/rate-limit.js';
import { hashPassword, verifyPassword } from '../broker/credentials.js';
import type { TokenService } from './tokens.js';
import { parseCookies, safeEqual } from './http.js';
import { AUDIT_TARGET_MAX, UnauthenticatedAudit, truncate } from './audit-budget.js';

export const SESSION_COOKIE = 'tspb_session';
export const LOGIN_CSRF_COOKIE = 'tspb_login_csrf';
/** Sessions end 12 hours after sign-in: a working day, then sign in again. */
export const SESSION_LIFETIME_MS = 12 * 3600_000;
/** Failed logins allowed per username in LOGIN_WINDOW_MS before that username is locked out. */
export const LOGIN_FAILURES_PER_USER = 5;
/** Failed logins allowed per source address in the window (several operators may share a NAT). */
export const LOGIN_FAILURES_PER_SOURCE = 20;
export const LOGIN_WINDOW_MS = 15 * 60_000;
/** How long a sign-in form's CSRF token stays valid (also its cookie's Max-Age). */
export const LOGIN_CSRF_LIFETIME_MS = 3600_000;
/** Settings key of the HMAC key that signs sign-in CSRF tokens. */
const LOGIN_CSRF_KEY_SETTING = 'admin.login_csrf_key';

export type Principal =
  | { kind: 'token'; role: 'admin'; actor: string; tokenName: string }
  | { kind: 'session'; role: Account['role']; actor: string; account: Account; csrfToken: string; sessionHash: string };

function sha256(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}

export interface AuthenticatorHooks {
  /** Called for each audit row of an unauthenticated event that was over budget and not written. */
  onAuditSuppressed?: () => void;
  log?: Logger;
}

/** The limiter key of a username: case-folded, and never longer than a username can be. */
function userKey(username: string): string {
  return `user:${truncate(username, AUDIT_TARGET_MAX).toLowerCase()}`;
}

export class Authenticator {
  private readonly perUser: FailureLimiter;
  private readonly perSource: FailureLimiter;
  private readonly unauthenticatedAudit: UnauthenticatedAudit;
  private csrfKey: Promise<Buffer> | undefined;
  private lastSweepMs = 0;

  constructor(
    private readonly store: Store,
    private readonly tokens: TokenService,
    private readonly clock: Clock,
    hooks: AuthenticatorHooks = {},
  ) {
    this.perUser = new FailureLimiter(clock, LOGIN_FAILURES_PER_USER, LOGIN_WINDOW_MS);
    this.perSource = new FailureLimiter(clock, LOGIN_FAILURES_PER_SOURCE, LOGIN_WINDOW_MS);
    this.unauthenticatedAudit = new UnauthenticatedAudit(store, clock, {
      ...(hooks.onAuditSuppressed ? { onSuppressed: hooks.onAuditSuppressed } : {}),
      ...(hooks.log ? { log: hooks.log } : {}),
    });
  }

  // ---------------------------------------------------------------- sign-in form CSRF

  private loginCsrfKey(): Promise<Buffer> {
    const key = (this.csrfKey ??= this.store
      .setSettingIfAbsent(LOGIN_CSRF_KEY_SETTING, randomBytes(32).toString('base64url'))
      .then((k) => Buffer.from(k, 'base64url')));
    // a failed read is tried again on the next request instead of being remembered
    key.catch(() => {
      if (this.csrfKey === key) this.csrfKey = undefined;
    });
    return key;
  }

  private async signLoginCsrf(body: string): Promise<string> {
    return createHmac('sha256', await this.loginCsrfKey())
      .update(`login-csrf.${body}`)
      .digest('base64url');
  }

  /** A new sign-in CSRF token: random, expiring after LOGIN_CSRF_LIFETIME_MS, signed by the server. */
  async issueLoginCsrf(): Promise<string> {
    const expires = (this.clock.now() + LOGIN_CSRF_LIFETIME_MS).toString(36);
    const body = `${randomBytes(16).toString('base64url')}.${expires}`;
    return `${body}.${await this.signLoginCsrf(body)}`;
  }

  /** Throws API_CSRF unless the cookie and the form field carry the same token, issued by this server (or a
   *  node sharing its store) and not expired. */
  async checkLoginCsrf(cookie: string | undefined, field: string | undefined): Promise<void> {
    const fail = () => new BrokerError('API_CSRF', 'the sign-in form expired: reload the page');
    if (!cookie || !field || cookie.length > 256 || !safeEqual(cookie, field)) throw fail();
    const m = /^([A-Za-z0-9_-]{22})\.([0-9a-z]{1,12})\.([A-Za-z0-9_-]{43})$/.exec(cookie);
    if (!m) throw fail();
    if (!safeEqual(m[3]!, await this.signLoginCsrf(`${m[1]!}.${m[2]!}`))) throw fail();
    if (parseInt(m[2]!, 36) <= this.clock.now()) throw fail();
  }

  // ---------------------------------------------------------------- password throttling

  /** Runs a check of `username`'s password from `source` (`check` throws AUTH_FAILED when it is wrong) under
   *  the sign-in limits: refused with API_RATE_LIMITED while the account or the source is locked out, and a
   *  wrong password counts as a failure of both (and is audited as auth.fail). Used by the self-service
   *  password change, so a stolen session cannot be used to guess the password faster than sign-in allows. */
  async throttledPasswordCheck<T>(
    actor: string,
    username: string,
    source: string,
    check: () => Promise<T>,
  ): Promise<T> {
    const sourceKey = `src:${source}`;
    if (this.perUser.isBlocked(userKey(username)) || this.perSource.isBlocked(sourceKey))
      throw new BrokerError(
        'API_RATE_LIMITED',
        `too many wrong passwords for this account or from this address: try again in ${LOGIN_WINDOW_MS / 60_000} minutes`,
      );
    try {
      const out = await check();
      this.perUser.clear(userKey(username));
      return out;
    } catch (err) {
      if (err instanceof BrokerError && err.code === 'AUTH_FAILED') {
        this.perUser.fail(userKey(username));
        this.perSource.fail(sourceKey);
        await this.store.addAudit({
          at: this.clock.now(),
          actor,
          action: 'auth.fail',
          target: username,
          detail: { reason: 'wrong current password' },
        });
      }
      throw err;
    }
  }

  // ---------------------------------------------------------------- requests and sign-in

  /** The caller, or undefined when the request carries no valid credential. A malformed or unknown bearer
   *  token is an error (API_UNAUTHORIZED), not a fallback to the cookie. */
  async identify(req: FastifyRequest): Promise<Principal | undefined> {
    const authz = req.headers.authorization;
    if (authz !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authz);
      const v = m ? await this.tokens.verify(m[1]!) : ({ refused: 'invalid' } as const);
      if ('refused' in v) throw new BrokerError('API_UNAUTHORIZED', `${v.refused} API token`);
      return { kind: 'token', role: 'admin', actor: `token:${v.record.name}`, tokenName: v.record.name };
    }
    const cookie = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    if (!cookie) return undefined;
    const sessionHash = sha256(cookie);
    const session = await this.store.getWebSession(sessionHash, this.clock.now());
    if (!session) return undefined;
    const account = await this.store.getAccount(session.accountId);
    if (!account || account.disabled) return undefined;
    const actor = `${account.role === 'admin' ? 'admin' : 'user'}:${account.username}`;
    return { kind: 'session', role: account.role, actor, account, csrfToken: session.csrfToken, sessionHash };
  }

  /** Checks a password login and, on success, opens a session. Throws API_RATE_LIMITED while locked out and
   *  AUTH_FAILED for a wrong username or password (the same error for both). Audits both outcomes. */
  async login(username: string, password: string, source: string): Promise<{ cookie: string; account: Account }> {
    const now = this.clock.now();
    const sourceKey = `src:${source}`;
    if (this.perUser.isBlocked(userKey(username)) || this.perSource.isBlocked(sourceKey)) {
      await this.unauthenticatedAudit.add(source, {
        at: now,
        actor: `web:${source}`,
        action: 'auth.locked',
        target: username,
        detail: null,
      });
      throw new BrokerError('API_RATE_LIMITED', 'too many failed sign-ins: try again later');
    }
    // no account has a longer name: do not make the store look for one (the check below still runs)
    const secrets = username.length <= AUDIT_TARGET_MAX ? await this.store.getAccountSecrets(username) : undefined;
    // verify against a throwaway hash when the user does not exist, so timing does not reveal usernames
    const ok = await verifyPassword(secrets?.passwordHash ?? (await dummyPasswordHash()), password);
    if (!secrets || !ok || secrets.disabled) {
      this.perUser.fail(userKey(username));
      this.perSource.fail(sourceKey);
      const reason = !secrets ? 'unknown user' : !ok ? 'wrong password' : 'account disabled';
      await this.unauthenticatedAudit.add(source, {
        at: now,
        actor: `web:${source}`,
        action: 'auth.fail',
        target: username,
        detail: { reason },
      });
      throw new BrokerError('AUTH_FAILED', 'wrong username or password');
    }
    this.perUser.clear(userKey(username));
    const { passwordHash: _p, digestHa1: _d, digestRealm: _r, ...account } = secrets;
    const cookie = randomSecret();
    await this.store.createWebSession(sha256(cookie), {
      accountId: account.id,
      csrfToken: randomSecret(),
      createdAt: now,
      expiresAt: now + SESSION_LIFETIME_MS,
    });
    await this.store.addAudit({
      at: now,
      actor: `web:${source}`,
      action: 'auth.login',
      target: username,
      detail: { role: account.role },
    });
    if (now - this.lastSweepMs > 3600_000) {
      this.lastSweepMs = now;
      await this.store.deleteExpiredWebSessions(now);
    }
    return { cookie, account };
  }

  async logout(p: Principal): Promise<void> {
    if (p.kind !== 'session') return;
    await this.store.deleteWebSession(p.sessionHash);
    await this.store.addAudit({
      at: this.clock.now(),
      actor: p.actor,
      action: 'auth.logout',
      target: p.account.username,
      detail: null,
    });
  }

  /** Checks the CSRF token of a state-changing request. Bearer-token callers are exempt (no ambient cookie). */
  checkCsrf(p: Principal, presented: string | undefined): void {
    if (p.kind === 'token') return;
    if (!presented || !safeEqual(presented, p.csrfToken))
      throw new BrokerError('API_CSRF', 'CSRF token missing or invalid');
  }
}

/** argon2id of a random password nobody knows, made once: verifying against it costs what a real check costs. */
let dummyHash: Promise<string> | undefined;
function dummyPasswordHash(): Promise<string> {
  return (dummyHash ??= hashPassword(randomSecret()));
}
