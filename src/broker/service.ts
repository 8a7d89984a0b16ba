/** @module broker/service: answers a session's questions and returns values. It never touches a session or a
 *  socket: transport/answer.ts asks it (by the session's events) and feeds its answers back into the session.
 *
 *  Per session it keeps what it learnt in a SessionAnswers: the account a credential check found (bound when
 *  the protocol reports `authenticated`), the tunnel row it offered, the outcome to log. The decisions
 *  themselves live elsewhere: credentials in authenticate.ts, the offer rules in offer-policy.ts (pure), the
 *  live tunnels in tunnels.ts. An offer that is never accepted (reject, timeout, TCP close, restart) is ended
 *  as 'not_accepted'. */

import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { BrokerError, isBrokerError } from '../errors.js';
import type { Mechanism, SessionEvent } from '../protocol/server/session.js';
import type { Offer, TunnelRequest } from '../protocol/xml.js';
import type { RedirectDecision } from '../protocol/redirect.js';
import type { AccountLimits, Store, TunnelRecord } from '../store/types.js';
import { clientPortFor, type TunnelType } from '../tunnel-model.js';
import type { Answerer, OfferAnswer, SessionPeer, SessionService } from '../transport/answer.js';
import type { AnonymousHoldings } from './anonymous.js';
import type { Authenticator, Candidate } from './authenticate.js';
import type { BlockKey, TunnelBlocks } from './blocks.js';
import { Events } from './events.js';
import {
  allowedTypes,
  anonymousRefusal,
  chooseType,
  delegatedLength,
  sessionSourceRefusal,
  keepaliveFor,
  offerFor,
  serverIpv4From,
  serverIpv6From,
} from './offer-policy.js';
import type { Pools } from './pools.js';
import { anonymousPool, claimAddresses, poolError, type ClaimStage } from './claims.js';
import { isStatic, staticRefusal } from './static-tunnel-rules.js';
import type { ReverseDns } from './reverse-dns.js';
import type { TunnelRegistry } from './tunnels.js';
import { anonymousLeaseId } from './lease-id.js';

export interface SessionOutcome {
  transport: 'udp' | 'tcp';
  mechanism: string;
  result: string;
}

export interface ServiceEventMap {
  session: SessionOutcome;
  authFailure: { mechanism: string };
  replyWithheld: { reason: 'amplification' | 'resends' };
  sessionCrash: { transport: 'udp' | 'tcp' };
}

export interface ServiceDeps {
  config: Config;
  store: Pick<Store, 'batch' | 'allocate' | 'createTunnel'>;
  tunnels: TunnelRegistry;
  anonymous: AnonymousHoldings;
  blocks: TunnelBlocks;
  auth: Authenticator;
  pools: Pools;
  reverseDns: ReverseDns;
  clock: Clock;
  log: Logger;
  /** The local address the kernel routes toward a peer, of the peer's family (for offers when listening on
   *  0.0.0.0 or ::). */
  localAddressToward: (peer: string) => Promise<string>;
  /** Where a new session goes instead of an offer here, or a refusal (cluster/node.ts); undefined: offer here.
   *  `returning`: the account has a live tunnel here already (its new one replaces it: no added load). */
  redirect?: (returning: boolean, family: 4 | 6) => RedirectDecision | undefined;
}

/** Who a session is, once authenticated. */
interface Who {
  accountId: number | null;
  username: string | null;
  limits: AccountLimits;
}

export class BrokerService implements SessionService {
  readonly events = new Events<ServiceEventMap>();

  constructor(readonly deps: ServiceDeps) {}

  open(peer: SessionPeer): Answerer {
    return new SessionAnswers(this, peer);
  }

  crashed(peer: SessionPeer, err: unknown): void {
    this.deps.log.error(
      { err, session: peer.id, transport: peer.transport, peer: `${peer.peer.address}:${peer.peer.port}` },
      'session failed and was closed',
    );
    this.events.emit('sessionCrash', { transport: peer.transport });
  }

  failed(peer: SessionPeer, err: unknown): void {
    this.deps.log.error({ err, session: peer.id }, 'unhandled error in session handling');
  }

  offerFor(t: TunnelRecord): Offer {
    return offerFor(t, this.deps.config.pools.dnsServer ?? undefined);
  }

  /** Applies the offer policy, then allocates the link block (and delegated prefix) and writes the offered
   *  tunnel row in one transaction: all of it, or none. */
  async reserve(peer: SessionPeer, who: Who, req: TunnelRequest): Promise<TunnelRecord> {
    const cfg = this.deps.config;
    const type = chooseType(
      req,
      peer.transport,
      peer.peer.address,
      allowedTypes(cfg.tunnels.types, who.limits),
      cfg.tunnels.v6v4BehindNat,
    );
    const loop = sessionSourceRefusal(peer.peer.address, {
      ipv6: [this.deps.pools.link, this.deps.pools.delegation],
      ipv4: cfg.pools.ipv4,
    });
    if (loop) throw new BrokerError('TSP_UNSUPPORTED_TUNNEL', loop);
    this.refuseIfStaticHolds(who, type, peer.peer.address);
    const anonymous = who.accountId === null;
    const prefixLen = delegatedLength(req, anonymous, cfg.pools.prefixLen, who.limits);
    const v4v6 = type === 'v4v6';
    if (v4v6 && prefixLen !== undefined)
      throw new BrokerError('TSP_PREFIX_LENGTH_UNSUPPORTED', 'v4v6 tunnels are offered without a delegated prefix');
    if (anonymous) this.checkAnonymousQuota(peer.peer.address, type);
    this.refuseIfBlocked(
      peer,
      who.accountId !== null ? { accountId: who.accountId } : { source: peer.peer.address },
      who.username,
    );
    const leaseId = anonymous ? anonymousLeaseId() : undefined;
    const claim = {
      owner: leaseId ? { leaseId } : { accountId: who.accountId! },
      prefixLen,
      // an account with a live tunnel keeps its link block even if pools.linkMode now wants another length: a
      // different length would free it under that tunnel; it moves at its first offer with no live tunnel
      keepHeld: who.accountId !== null && this.deps.tunnels.ofAccount(who.accountId).length > 0,
    };
    // before the transaction: it may ask the kernel. The session's addresses are the tunnel's outer ones.
    const server = v4v6
      ? (serverIpv6From(cfg, peer.localAddress) ?? (await this.deps.localAddressToward(peer.peer.address)))
      : (serverIpv4From(cfg, peer.localAddress) ?? (await this.deps.localAddressToward(peer.peer.address)));
    const { store, pools } = this.deps;
    let stage: ClaimStage | 'tunnel' = 'link';
    const at = (s: ClaimStage) => (stage = s);
    // An anonymous offer need not wait for the disk (BatchOptions.provisional: the accept's sync covers it); its
    // lease is its session's alone. An account's offer waits: its blocks are told only once they are on disk.
    const want = { ...claim, v4v6, server, client: peer.peer.address };
    try {
      const record = await store.batch(
        async () => {
          const addresses = await claimAddresses(store, pools, want, at);
          stage = 'tunnel';
          return store.createTunnel(
            {
              accountId: who.accountId,
              leaseId: leaseId ?? null,
              type,
              transport: peer.transport,
              ...addresses,
              clientPort: clientPortFor(type, peer.peer.port),
              keepaliveInterval: keepaliveFor(req, cfg.tunnels.keepalive),
              lifetimeS: cfg.tunnels.lifetimeS,
            },
            this.deps.clock.now(),
          );
        },
        { provisional: anonymous },
      );
      const full = { ...record, username: who.username };
      this.deps.anonymous.hold(full);
      return full;
    } catch (err) {
      throw poolError(err, stage, {
        log: this.deps.log,
        pools: { ...this.deps.pools, ipv4: cfg.pools.ipv4 },
        session: peer.id,
        prefixLen,
      });
    }
  }

  private checkAnonymousQuota(source: string, type: TunnelType): void {
    const cfg = this.deps.config;
    const why = anonymousRefusal(
      this.deps.anonymous.held(source, type),
      cfg.limits,
      anonymousPool(type, this.deps.pools),
      cfg.pools.accountReserve,
    );
    if (why === null) return;
    this.deps.log.warn({ peer: source, reason: why }, 'anonymous tunnel refused');
    throw new BrokerError('POOL_EXHAUSTED', why);
  }

  /** A static 6in4 tunnel's account and endpoint are its own (broker/static-tunnels.ts): 301 while it is live. */
  private refuseIfStaticHolds(who: Who, type: TunnelType, source: string): void {
    const why = staticRefusal(this.deps.tunnels, who, type, source);
    if (why === undefined) return;
    this.deps.log.warn({ account: who.username, peer: source, reason: why }, 'tunnel refused');
    throw new BrokerError('STATIC_TUNNEL_HOLDS', why);
  }

  /** An operator's kill-and-block holds: answer 301 (no tunnel) until it expires. */
  private refuseIfBlocked(peer: SessionPeer, key: BlockKey, username: string | null): void {
    const until = this.deps.blocks.blockedUntil(key);
    if (until === null) return;
    const left = Math.ceil((until - this.deps.clock.now()) / 1000);
    this.deps.log.warn({ session: peer.id, account: username, ...key, secondsLeft: left }, 'tunnel refused: blocked');
    throw new BrokerError('TUNNEL_BLOCKED', `blocked by an operator for ${left} more seconds`);
  }
}

/** One session's answers, and what the service learnt about it on the way. */
class SessionAnswers implements Answerer {
  private who: Who = { accountId: null, username: null, limits: {} };
  private mechanism: Mechanism | undefined;
  private candidate: Candidate | undefined;
  private offered: TunnelRecord | undefined;
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
      if (this.offered.prefix !== null && this.who.accountId !== null)
        await this.deps.reverseDns.afterOffer(this.who.accountId, asked).catch(async (err: unknown) => {
          await this.withdraw('reverse DNS delegation failed');
          throw err;
        });
      return { offer: this.svc.offerFor(this.offered) };
    } catch (err) {
      if (!isBrokerError(err)) this.deps.log.error({ err, session: this.peer.id }, 'offer failed');
      return { error: isBrokerError(err) ? err : new BrokerError('INTERNAL', 'offer failed', { cause: err }) };
    }
  }

  async offerUnwanted(): Promise<void> {
    const record = this.offered;
    this.offered = undefined;
    if (record) await this.deps.tunnels.endOffer(record, 'not_accepted');
  }

  async accept(): Promise<BrokerError | undefined> {
    const record = this.offered;
    if (!record) return new BrokerError('TSP_UNEXPECTED', 'no offer to accept');
    this.offered = undefined;
    try {
      // one live tunnel per client endpoint, and per account when tunnels.replaceExisting: the newest wins
      const live = await this.deps.tunnels.establish(record, {
        replaceAccount: this.deps.config.tunnels.replaceExisting,
      });
      this.result = 'established';
      this.report('established', undefined, live);
      return undefined;
    } catch (err) {
      this.deps.log.error({ err, tunnel: record.id }, 'activation failed');
      await this.deps.tunnels.endOffer(record, 'not_accepted').catch(() => {});
      return isBrokerError(err) ? err : new BrokerError('INTERNAL', 'activation failed', { cause: err });
    }
  }

  async withdraw(reason: string): Promise<void> {
    const record = this.offered;
    if (!record) return;
    this.offered = undefined;
    this.deps.log.debug({ tunnel: record.id, reason }, 'offer withdrawn');
    await this.deps.tunnels.endOffer(record, 'not_accepted');
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

  private report(result: string, how?: string, tunnel: TunnelRecord | undefined = this.offered): void {
    const p = this.peer;
    const line = {
      session: p.id,
      transport: p.transport,
      peer: `${p.peer.address}:${p.peer.port}`,
      account: this.who.username ?? (this.mechanism === 'ANONYMOUS' ? '(anonymous)' : null),
      mechanism: this.mechanism ?? null,
      result,
      ...(how && how !== 'done' ? { ended: how } : {}),
      ...(tunnel ? { tunnel: tunnel.id, type: tunnel.type } : {}),
      ms: this.deps.clock.now() - p.startedMs,
    };
    if (result === 'established') this.deps.log.info(line, 'session established a tunnel');
    else this.deps.log.info(line, 'session ended without a tunnel');
    this.svc.events.emit('session', { transport: p.transport, mechanism: this.mechanism ?? 'none', result });
  }
}
