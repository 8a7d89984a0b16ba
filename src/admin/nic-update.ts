/** @module admin/nic-update: the dyndns2 update endpoint for static 6in4 tunnels (broker/static-tunnels.ts),
 *  `GET /nic/update?hostname=NAME&myip=ADDR`, as ddclient, routers' built-in clients and curl speak it. It is
 *  served on both listeners (the self-service one is what routers reach).
 *
 *  Credentials: HTTP basic auth with the account's username and, as password, either the account's password
 *  or the tunnel's update key (`tspu_…`, made in the web UI or the API; shown once, its SHA-256 kept).
 *  `hostname` is the tunnel's host name (one per account); `myip` the new endpoint, or absent: the request's
 *  source address. With staticTunnels.endpointFromSource (the default) `myip` must be that source address
 *  (`badip` otherwise): nothing else proves the account uses it. `myip=V4,V6` (ddclient 3.10 and later) is
 *  read as V4. Other dyndns2 parameters (system, wildcard, mx, backmx, offline) are ignored.
 *
 *  Answers are text/plain, one line, HTTP 200 as dyndns2 clients expect unless said otherwise:
 *    good ADDR     the endpoint moved to ADDR (the data plane follows at once)
 *    nochg ADDR    it was ADDR already
 *    badauth       no or wrong credentials, or a disabled account (HTTP 401 when the request has none)
 *    notfqdn       hostname missing or not a host name
 *    nohost        the account has no static tunnel of that name
 *    numhost       more than one host name (an account has one tunnel)
 *    abuse         a limit: requests per source and minute (staticTunnels.updatesPerMinute), endpoint changes
 *                  per tunnel and hour (staticTunnels.changesPerHour), failed sign-ins (the web sign-in's
 *                  limits), ADDR is another account's protocol-41 endpoint, or an operator's kill-and-block
 *                  holds the account
 *    badip ADDR    HTTP 400: ADDR is no public unicast IPv4 address, is the broker's own, or (endpointFromSource)
 *                  is not the request's source
 *    911           the broker failed (HTTP 500; try later)
 *  Every change is audited by StaticTunnels (`static.endpoint`, via 'nic'); failed credentials as `auth.fail`,
 *  bounded like sign-in failures by an UnauthenticatedAudit budget of this endpoint's own. Failed credentials
 *  count with the sign-in's numbers (LOGIN_FAILURES_*) in limiters of this endpoint's own. */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isBrokerError } from '../errors.js';
import { FailureLimiter, WindowCounter } from '../broker/rate-limit.js';
import { dummyPasswordHash, verifyPassword } from '../broker/credentials.js';
import { hashUpdateKey, isHostname, UPDATE_KEY_PREFIX } from '../broker/static-tunnel-rules.js';
import type { AccountSecrets, StaticTunnel } from '../store/types.js';
import type { AdminContext } from './context.js';
import { safeEqual } from './http.js';
import { LOGIN_FAILURES_PER_SOURCE, LOGIN_FAILURES_PER_USER, LOGIN_WINDOW_MS } from './auth.js';
import { AUDIT_TARGET_MAX, UnauthenticatedAudit } from './audit-budget.js';

export const NIC_UPDATE_PATH = '/nic/update';

interface Answer {
  status: number;
  body: string;
}

const answer = (body: string, status = 200): Answer => ({ status, body });

/** The user and password of a Basic Authorization header, or undefined. */
export function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]{1,1024})\s*$/i.exec(header ?? '');
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? undefined : { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** A query parameter as one string ('' when absent; the first when repeated). */
function param(q: unknown, name: string): string | undefined {
  const v = (q as Record<string, unknown> | undefined)?.[name];
  const s = Array.isArray(v) ? v[0] : v;
  return typeof s === 'string' ? s : undefined;
}

/** The IPv4 part of `myip`: ddclient 3.10 and later may send `V4,V6` (or `V6,V4`); IPv6 parts are ignored
 *  (a 6in4 endpoint is IPv4). With no IPv4 part, the first part, so that the answer names it (badip). */
function ipv4Of(myip: string | undefined): string | undefined {
  if (myip === undefined) return undefined;
  const parts = myip.split(',').map((p) => p.trim());
  return parts.find((p) => p !== '' && !p.includes(':')) ?? parts[0];
}

/** The request's source as IPv4 text (an IPv4-mapped IPv6 address unwrapped). */
function sourceOf(req: FastifyRequest): string {
  return req.ip.startsWith('::ffff:') ? req.ip.slice(7) : req.ip;
}

class NicUpdate {
  private readonly perSource: WindowCounter;
  private readonly failedUser: FailureLimiter;
  private readonly failedSource: FailureLimiter;

  private readonly audit: UnauthenticatedAudit;

  constructor(private readonly ctx: AdminContext) {
    const c = ctx.config.staticTunnels;
    this.audit = new UnauthenticatedAudit(ctx.store, ctx.clock, {
      onSuppressed: () => ctx.metrics.auditSuppressed.inc(),
    });
    this.perSource = new WindowCounter(ctx.clock, c.updatesPerMinute, 60_000);
    this.failedUser = new FailureLimiter(ctx.clock, LOGIN_FAILURES_PER_USER, LOGIN_WINDOW_MS);
    this.failedSource = new FailureLimiter(ctx.clock, LOGIN_FAILURES_PER_SOURCE, LOGIN_WINDOW_MS);
  }

  private log(req: FastifyRequest, what: Record<string, unknown>, msg: string): void {
    req.log.warn({ peer: sourceOf(req), ...what }, msg);
  }

  async handle(req: FastifyRequest): Promise<Answer> {
    const source = sourceOf(req);
    if (!this.perSource.take(source)) {
      // one line per source and minute, however hard it floods
      if (this.perSource.refusedNow(source) === 1)
        this.log(req, { limit: 'staticTunnels.updatesPerMinute' }, 'dyndns2 updates refused: too many requests');
      return answer('abuse');
    }
    const creds = basicCredentials(req.headers.authorization);
    if (!creds) return answer('badauth', 401);
    const hostnames = (param(req.query, 'hostname') ?? '').split(',').filter((h) => h !== '');
    if (hostnames.length > 1) return answer('numhost');
    const hostname = hostnames[0] ?? '';
    if (!isHostname(hostname)) return answer('notfqdn');
    const myip = ipv4Of(param(req.query, 'myip')) || source;
    // the address is echoed only when it is made of address characters: no second line, no markup
    const badip = () => answer(/^[0-9A-Fa-f.:]{1,45}$/.test(myip) ? `badip ${myip}` : 'badip', 400);
    if (this.ctx.broker.statics.refusal(myip) !== null) return badip();
    if (this.ctx.config.staticTunnels.endpointFromSource && myip !== source) {
      this.log(
        req,
        { myip, limit: 'staticTunnels.endpointFromSource' },
        'dyndns2 update refused: myip is not the source',
      );
      return badip();
    }

    const auth = await this.authenticate(req, creds, source);
    if (auth === 'locked') return answer('abuse');
    if (auth === undefined) return answer('badauth');
    const st = auth.tunnel;
    if (!st || st.hostname !== hostname.toLowerCase()) return answer('nohost');
    const actor = `user:${st.username}`;
    try {
      const result = await this.ctx.broker.statics.setEndpoint(actor, st, myip, 'nic', { counted: true });
      return answer(`${result} ${myip}`);
    } catch (err) {
      // another account's endpoint, or an operator's kill-and-block: in dyndns2, abuse is "blocked", and a
      // client retries after its error interval (so the tunnel is back at the first try after a block ends)
      if (isBrokerError(err) && err.code === 'API_RATE_LIMITED') return answer('abuse'); // logged by StaticTunnels
      if (isBrokerError(err) && (err.code === 'STATIC_TUNNEL_HOLDS' || err.code === 'STATIC_TUNNEL_BLOCKED')) {
        this.log(req, { account: st.username, endpoint: myip, reason: err.message }, 'dyndns2 update refused');
        return answer('abuse');
      }
      throw err;
    }
  }

  /** The account and its static tunnel when the password is the tunnel's update key or the account's password;
   *  'locked' while the source, or for a password the username, is over the sign-in failure limits; undefined
   *  otherwise. An update key is checked first and works whatever the username's lock says: a stranger's
   *  wrong passwords must not lock a router out, and nobody guesses 192 random bits. Only a correct password
   *  clears the username's failures. */
  private async authenticate(
    req: FastifyRequest,
    creds: { user: string; password: string },
    source: string,
  ): Promise<{ account: AccountSecrets; tunnel: StaticTunnel | undefined } | 'locked' | undefined> {
    const userKey = `user:${creds.user.slice(0, AUDIT_TARGET_MAX).toLowerCase()}`;
    const sourceKey = `src:${source}`;
    const store = this.ctx.store;
    const account = creds.user.length <= AUDIT_TARGET_MAX ? await store.getAccountSecrets(creds.user) : undefined;
    const tunnel = account ? await store.staticTunnelOf(account.id) : undefined;
    const byKey =
      creds.password.startsWith(UPDATE_KEY_PREFIX) &&
      !!tunnel?.updateKeyHash &&
      safeEqual(hashUpdateKey(creds.password), tunnel.updateKeyHash);
    if (byKey && account && !account.disabled) return { account, tunnel };
    if (this.failedUser.isBlocked(userKey) || this.failedSource.isBlocked(sourceKey)) return 'locked';
    const ok = byKey || (await verifyPassword(account?.passwordHash ?? (await dummyPasswordHash()), creds.password));
    if (account && ok && !account.disabled) {
      this.failedUser.clear(userKey);
      return { account, tunnel };
    }
    this.failedUser.fail(userKey);
    this.failedSource.fail(sourceKey);
    const reason = !account ? 'unknown user' : !ok ? 'wrong password or update key' : 'account disabled';
    this.log(req, { account: creds.user.slice(0, AUDIT_TARGET_MAX), reason }, 'dyndns2 update: authentication failed');
    await this.audit.add(source, {
      at: this.ctx.clock.now(),
      actor: `nic:${source}`,
      action: 'auth.fail',
      target: creds.user.slice(0, AUDIT_TARGET_MAX),
      detail: { reason, via: 'nic' },
    });
    return undefined;
  }
}

export function registerNicUpdate(app: FastifyInstance, ctx: AdminContext): void {
  const nic = new NicUpdate(ctx);
  app.get(NIC_UPDATE_PATH, { config: { role: 'public' } }, async (req: FastifyRequest, reply: FastifyReply) => {
    let a: Answer;
    try {
      a = await nic.handle(req);
    } catch (err) {
      req.log.error({ err }, 'dyndns2 update failed');
      a = answer('911', 500);
    }
    if (a.status === 401) reply.header('www-authenticate', 'Basic realm="tsp-broker dyndns2 update"');
    return reply.code(a.status).type('text/plain; charset=utf-8').send(`${a.body}\n`);
  });
}
