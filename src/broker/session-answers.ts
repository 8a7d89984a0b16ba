/** @module broker/session-answers: one session's answers (transport/answer.ts Answerer), and what the service
 *  learnt about it on the way: the account a credential check found (bound when the protocol reports
 *  `authenticated`), what it was offered, the outcome to log. The decisions are BrokerService's (service.ts)
 *  and the modules it uses. Apart from service.ts to keep that file readable. */

import type { Logger } from 'pino';
import { BrokerError, isBrokerError } from '../errors.js';
import type { Mechanism, SessionEvent } from '../protocol/server/session.js';
import type { Offer, TunnelRequest } from '../protocol/xml.js';
import type { TunnelRecord } from '../store/types.js';
import type { Answerer, OfferAnswer, SessionPeer } from '../transport/answer.js';
import type { Candidate } from './authenticate.js';
import { isPending } from './pending-offer.js';
import { isStatic } from './static-tunnel-rules.js';
import type { BrokerService, Offered, ServiceDeps, Who } from './service.js';

/** A tunnel's id for a log line: null for a pending offer's (it has a row only once accepted). */
const tunnelId = (t: TunnelRecord): number | null => (isPending(t) ? null : t.id);

/** One session's answers, and what the service learnt about it on the way. */
export class SessionAnswers implements Answerer {
  private who: Who = { accountId: null, username: null, limits: {} };
  private mechanism: Mechanism | undefined;
  private candidate: Candidate | undefined;
  private offered: Offered | undefined;
  private result: string | undefined;
  /** The last authentication was refused by the failure limiter without a check. */
  private throttled = false;

  constructor(
    private readonly svc: BrokerService,
    private readonly peer: SessionPeer,
  ) {}

  private get deps(): ServiceDeps {
    return this.svc.deps;
  }

  async verifyPlain(username: string, password: string, sourceValidated: boolean) {
    const a = await this.deps.auth.verifyPlain(this.peer.peer.address, username, password, sourceValidated);
    this.throttled = a.throttled ?? false;
    this.candidate = a.candidate;
    return { ok: a.ok, reason: a.reason };
  }

  async lookupDigest(username: string) {
    const a = await this.deps.auth.lookupDigest(this.peer.peer.address, username);
    this.throttled = a.throttled ?? false;
    this.candidate = a.candidate;
    return { secret: a.secret, reason: a.reason };
  }

  async requestTunnel(req: TunnelRequest): Promise<OfferAnswer> {
    try {
      if (this.offered) await this.withdraw('superseded');
      const id = this.who.accountId;
      const family = this.peer.peer.address.includes(':') ? 6 : 4;
      const elsewhere = this.deps.redirect?.(id !== null && this.deps.tunnels.ofAccount(id).length > 0, family);
      if (elsewhere) return elsewhere;
      const asked = this.deps.reverseDns.wishOf(req.router?.dnsServers, this.who.accountId);
      this.offered = await this.svc.reserve(this.peer, this.who, req);
      if (this.offered.record.prefix !== null && this.who.accountId !== null)
        await this.deps.reverseDns.afterOffer(this.who.accountId, asked).catch(async (err: unknown) => {
          await this.withdraw('reverse DNS delegation failed');
          throw err;
        });
      return { offer: this.svc.offerFor(this.offered.record) };
    } catch (err) {
      if (!isBrokerError(err)) this.deps.log.error({ err, session: this.peer.id }, 'offer failed');
      return { error: isBrokerError(err) ? err : new BrokerError('INTERNAL', 'offer failed', { cause: err }) };
    }
  }

  async offerUnwanted(): Promise<void> {
    const offered = this.offered;
    this.offered = undefined;
    if (offered) await this.deps.tunnels.endOffer(offered.record, 'not_accepted', offered.reservation);
  }

  async accept(): Promise<BrokerError | undefined> {
    const offered = this.offered;
    if (!offered) return new BrokerError('TSP_UNEXPECTED', 'no offer to accept');
    this.offered = undefined;
    const { record, reservation } = offered;
    try {
      // one live tunnel per client endpoint, and per account when tunnels.replaceExisting: the newest wins
      const replaceAccount = this.deps.config.tunnels.replaceExisting;
      const live = await this.deps.tunnels.establish(record, { replaceAccount }, reservation);
      this.result = 'established';
      this.report('established', undefined, live);
      return undefined;
    } catch (err) {
      this.deps.log.error({ err, tunnel: tunnelId(record) }, 'activation failed');
      await this.deps.tunnels.endOffer(record, 'not_accepted', reservation).catch(() => {});
      return isBrokerError(err) ? err : new BrokerError('INTERNAL', 'activation failed', { cause: err });
    }
  }

  async withdraw(reason: string): Promise<void> {
    const offered = this.offered;
    if (!offered) return;
    this.offered = undefined;
    this.deps.log.debug({ tunnel: tunnelId(offered.record), reason }, 'offer withdrawn');
    await this.deps.tunnels.endOffer(offered.record, 'not_accepted', offered.reservation);
  }

  async deleteTunnels(): Promise<BrokerError | undefined> {
    const { accountId } = this.who;
    const tunnels = this.deps.tunnels;
    // an anonymous session deletes the tunnel at its own endpoint (as the session sees it: its port)
    const at = tunnels.atEndpoint(`${this.peer.peer.address}:${this.peer.peer.port}`);
    // a static 6in4 tunnel is not a session's to delete (its account removes it in the web UI or API)
    const mine = accountId !== null ? tunnels.ofAccount(accountId) : at && !isStatic(at) ? [at] : [];
    const ids = mine.filter((t) => !isStatic(t)).map((t) => t.id);
    await tunnels.endAll(ids.map((id) => [id, 'deleted']));
    return ids.length ? undefined : new BrokerError('STORE_NOT_FOUND', 'no live tunnel to delete');
  }

  async info(): Promise<Offer | undefined> {
    const { accountId } = this.who;
    const t = accountId === null ? undefined : this.deps.tunnels.ofAccount(accountId).find((x) => !isStatic(x));
    return t ? this.svc.offerFor(t) : undefined;
  }

  note(e: SessionEvent): void {
    switch (e.type) {
      case 'versionRefused':
        this.result = 'version_refused';
        return;
      case 'authenticated':
        this.mechanism = e.mechanism;
        // a UDP session restarted by VERSION= may authenticate again: anonymous now means no account
        if (e.mechanism === 'ANONYMOUS') this.who = { accountId: null, username: null, limits: {} };
        if (e.mechanism !== 'ANONYMOUS' && this.candidate) {
          const c = this.candidate;
          this.who = { accountId: c.id, username: c.username, limits: c.limits };
          this.deps.auth.succeeded(this.peer.peer.address, c.username);
        }
        return;
      case 'authFailed':
        return this.authFailed(e);
      case 'replyWithheld':
        this.svc.events.emit('replyWithheld', { reason: e.reason });
        return;
      case 'protocolError':
        this.result ??= `error_${e.status}`;
        this.log().info(
          { account: this.who.username, code: e.code, status: e.status, reason: e.message },
          'request refused',
        );
        return;
      case 'redirected':
        this.result = 'redirected';
        this.log().info({ account: this.who.username, brokers: e.brokers }, 'session redirected to other brokers');
        return;
      case 'closed':
        // a session that established a tunnel was reported at the accept; the rest are reported here
        if (e.established || this.result === 'established') return;
        this.report(this.result ?? (e.reason === 'timeout' ? 'timeout' : 'closed'), e.reason);
        return;
      default:
        return;
    }
  }

  private authFailed(e: Extract<SessionEvent, { type: 'authFailed' }>): void {
    this.result = 'auth_failed';
    this.mechanism = (e.mechanism as Mechanism) ?? this.mechanism;
    // an attempt refused by the limiter itself is not one more failure: retrying must not lengthen a backoff
    if (!this.throttled) this.deps.auth.failed(this.peer.peer.address, e.username, e.sourceValidated);
    this.log().warn(
      { account: e.username, mechanism: e.mechanism, reason: e.reason, sourceValidated: e.sourceValidated },
      'authentication failed',
    );
    this.svc.events.emit('authFailure', { mechanism: e.mechanism });
  }

  private log(): Logger {
    const p = this.peer;
    return this.deps.log.child({ session: p.id, transport: p.transport, peer: `${p.peer.address}:${p.peer.port}` });
  }

  private report(result: string, how?: string, tunnel: TunnelRecord | undefined = this.offered?.record): void {
    const p = this.peer;
    const line = {
      session: p.id,
      transport: p.transport,
      peer: `${p.peer.address}:${p.peer.port}`,
      account: this.who.username ?? (this.mechanism === 'ANONYMOUS' ? '(anonymous)' : null),
      mechanism: this.mechanism ?? null,
      result,
      ...(how && how !== 'done' ? { ended: how } : {}),
      ...(tunnel ? { tunnel: tunnelId(tunnel), type: tunnel.type } : {}),
      ms: this.deps.clock.now() - p.startedMs,
    };
    if (result === 'established') this.deps.log.info(line, 'session established a tunnel');
    else this.deps.log.info(line, 'session ended without a tunnel');
    this.svc.events.emit('session', { transport: p.transport, mechanism: this.mechanism ?? 'none', result });
  }
}
