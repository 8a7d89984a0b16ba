/** @module broker/broker: policy. Who may get what: authentication against the store, offer decisions
 *  (tunnel type, NAT detection, addresses, keepalive), allocation, and the tunnel lifecycle (activation on
 *  accept, replacement, expiry, restore after a restart). It is the SessionHandler the transports feed.
 *
 *  Lifecycle of a tunnel (rows in the store, entries in the data plane):
 *    create  -> allocate (sticky per account, leased for anonymous) -> tunnels row 'offered' -> offer sent
 *    accept  -> replaced tunnels ended -> row 'established' (committed) -> data plane add -> ack sent
 *    end     -> data plane remove -> row 'ended' with reason and counters -> anonymous lease released
 *  An offer that is never accepted (reject, timeout, TCP close, restart) is ended as 'not_accepted'. */

import { EventEmitter } from 'node:events';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock, Timer } from '../clock.js';
import { prefix24 } from '../address.js';
import type { Config } from '../config/schema.js';
import { enabledMechanisms } from '../config/schema.js';
import { BrokerError, isBrokerError } from '../errors.js';
import type { DataPlane, TunnelCounters, TunnelId, TunnelSpec, TunnelType } from '../dataplane/types.js';
import {
  ServerSession,
  type Mechanism,
  type ServerSessionOptions,
  type SessionEvent,
} from '../protocol/server-session.js';
import type { TspVersion } from '../protocol/constants.js';
import type { Offer, TunnelRequest } from '../protocol/xml.js';
import type { CounterUpdate, EndReason, Store, TunnelRecord } from '../store/types.js';
import type { SessionContext, SessionHandler } from '../transport/session-host.js';
import { dummyPasswordHash, verifyPassword } from './credentials.js';
import { FailureLimiter } from './rate-limit.js';
import { TunnelBlocks, type BlockKey } from './blocks.js';
import { linkAddresses, type Pools } from './pools.js';

export interface BrokerDeps {
  config: Config;
  store: Store;
  dataplane: DataPlane;
  clock: Clock;
  log: Logger;
  pools: Pools;
  /** Local IPv4 the kernel routes toward a peer (for offers when listening on 0.0.0.0). */
  localAddressToward: (peer: string) => Promise<string>;
  /** DIGEST nonce source; tests pin it. Default: 64 random bits in hex. */
  newNonce?: () => string;
}

/** What the broker knows about one session beyond the protocol state. */
interface SessionInfo {
  accountId: number | null;
  username: string | null;
  mechanism: Mechanism | undefined;
  /** Account being authenticated (looked up before the session verifies). */
  candidate?: { id: number; username: string; limits: import('../store/types.js').AccountLimits };
  limits: import('../store/types.js').AccountLimits;
  offeredTunnelId?: number;
  offeredSpec?: TunnelSpec;
  offeredRecord?: TunnelRecord;
  leaseId?: string;
  result?: string;
  /** The last authentication was refused by the failure limiter without a check. */
  throttled?: boolean;
}

interface LiveTunnel {
  record: TunnelRecord;
  spec: TunnelSpec;
  /** Idle time counts from here when the data plane has seen no packet yet (activation or restore). */
  activeSinceMs: number;
  /** Counters persisted before the current data-plane entry existed (a restart resets the data plane). */
  base: { rxPackets: number; rxBytes: number; txPackets: number; txBytes: number };
  /** rx + tx packets at the last counter write: a sweep writes only tunnels that moved since. */
  persistedPackets: number;
}

type CountersById = Map<number, TunnelCounters>;

/** Audit actions, possibly taken by another process, that end live tunnels (Broker.followAudit). */
const FOLLOWED_ACTIONS = ['account.disable', 'account.delete', 'tunnel.kill'] as const;

export interface SessionOutcome {
  transport: 'udp' | 'tcp';
  mechanism: string;
  result: string;
}

export class Broker extends EventEmitter implements SessionHandler {
  private readonly sessions = new WeakMap<SessionContext, SessionInfo>();
  private readonly live = new Map<number, LiveTunnel>();
  private readonly limiter: FailureLimiter;
  private sweepTimer: Timer | undefined;
  /** Newest audit event id seen per followed action (followAudit). */
  private readonly auditSeen = new Map<string, number>();
  private readonly cfg: Config;
  private readonly log: Logger;
  /** Async work in flight (so close() can wait for it). */
  private readonly inflight = new Set<Promise<unknown>>();
  /** Anonymous tunnels held (offered or live) by tunnel id, with the source and /24 they count against. */
  private readonly anonymous = new Map<number, { source: string; prefix: string }>();
  private readonly anonymousBySource = new Map<string, number>();
  private readonly anonymousByPrefix = new Map<string, number>();
  /** Accounts and anonymous sources an operator blocked when killing their tunnel (in memory, broker/blocks.ts). */
  readonly blocks: TunnelBlocks;

  constructor(private readonly deps: BrokerDeps) {
    super();
    this.cfg = deps.config;
    this.log = deps.log;
    this.limiter = new FailureLimiter(deps.clock, deps.config.auth.maxFailures, deps.config.auth.failureWindowS * 1000);
    this.blocks = new TunnelBlocks(deps.clock);
  }

  /** What CAPABILITY lists: it depends on the configuration alone (a VERSION is answered without a session). */
  get capabilities(): Pick<ServerSessionOptions, 'tunnelTypes' | 'mechanisms'> {
    return { tunnelTypes: this.cfg.tunnels.types, mechanisms: enabledMechanisms(this.cfg) };
  }

  /** Builds a server session with this configuration's capabilities. */
  newSession = (transport: 'udp' | 'tcp', nowMs: number, afterVersion?: TspVersion): ServerSession =>
    new ServerSession({
      transport,
      ...this.capabilities,
      realm: this.cfg.auth.realm,
      quirk200: this.cfg.auth.digestMd5Quirk200,
      negotiationTimeoutMs: this.cfg.limits.negotiationTimeoutS * 1000,
      newNonce: this.deps.newNonce ?? (() => randomBytes(8).toString('hex')),
      nowMs,
      ...(afterVersion ? { afterVersion } : {}),
    });

  // ------------------------------------------------------------------ lifecycle

  /** Puts the tunnels the store says are live back into the data plane (a restart, even kill -9, does not
   *  drop clients that keep sending), ends offers that were never accepted, and starts the expiry sweep. */
  async start(): Promise<void> {
    const now = this.deps.clock.now();
    // Read every page before changing any row: ending offers would shift the later pages under the offset.
    const rows: TunnelRecord[] = [];
    for (let offset = 0; ; offset += 1000) {
      const page = await this.deps.store.listTunnels({ state: 'live', limit: 1000, offset });
      rows.push(...page.items);
      if (page.items.length < 1000) break;
    }
    for (const t of rows) {
      if (t.state === 'offered') {
        await this.endRecord(t, 'not_accepted');
        continue;
      }
      // The data plane starts from zero: the persisted counters become the base its counters add to.
      const base = { rxPackets: t.rxPackets, rxBytes: t.rxBytes, txPackets: t.txPackets, txBytes: t.txBytes };
      try {
        this.activate(t, now, base);
      } catch (err) {
        // One row the data plane refuses must not keep every other client down.
        this.log.error({ err, tunnel: t.id }, 'cannot restore tunnel into the data plane: ending it');
        await this.endRecord(t, 'shutdown');
      }
    }
    if (this.live.size) this.log.info({ tunnels: this.live.size }, 'restored live tunnels into the data plane');
    for (const action of FOLLOWED_ACTIONS)
      this.auditSeen.set(action, (await this.deps.store.listAudit({ action, limit: 1 })).items[0]?.id ?? 0);
    const everyMs = Math.min(5000, (this.cfg.tunnels.idleMinS * 1000) / 4);
    this.sweepTimer = this.deps.clock.setInterval(() => void this.track(this.sweep()), everyMs, { unref: true });
  }

  /** Stops the sweep and waits for work in flight. Live tunnels stay 'established' in the store, so the next
   *  start restores them. */
  async close(): Promise<void> {
    this.sweepTimer?.cancel();
    this.sweepTimer = undefined;
    await Promise.allSettled([...this.inflight]);
    await this.persistCounters().catch(() => {});
  }

  liveTunnels(): TunnelRecord[] {
    const byId = this.countersById();
    return [...this.live.values()].map((t) => {
      const { id: _id, ...totals } = this.totals(t, byId.get(t.record.id));
      return { ...t.record, ...totals };
    });
  }

  /** The data plane's counters of every tunnel, read in one call. */
  private countersById(): CountersById {
    return new Map(this.deps.dataplane.readCounters().map((c) => [c.id as number, c]));
  }

  /** A tunnel's totals: what was stored before this data-plane entry plus what the data plane counted. */
  private totals(t: LiveTunnel, c: TunnelCounters | undefined): CounterUpdate {
    return {
      id: t.record.id,
      rxPackets: t.base.rxPackets + (c?.rxPackets ?? 0),
      rxBytes: t.base.rxBytes + (c?.rxBytes ?? 0),
      txPackets: t.base.txPackets + (c?.txPackets ?? 0),
      txBytes: t.base.txBytes + (c?.txBytes ?? 0),
      lastSeenAt: (c?.lastRxMs || t.record.lastSeenAt) ?? null,
    };
  }

  /** Ends a live tunnel on an operator's order. */
  async killTunnel(id: number, actor: string, opts: { blockMinutes?: number } = {}): Promise<void> {
    const t = this.live.get(id);
    if (!t) throw new BrokerError('STORE_NOT_FOUND', `tunnel ${id} is not live`);
    await this.endLive(id, 'admin');
    // kill and block: the account (or an anonymous tunnel's source address) gets no tunnel until it expires
    let blocked: { blockMinutes: number; blockedUntil: string } | undefined;
    if (opts.blockMinutes) {
      const key = blockKeyOf(t.record.accountId, t.record.clientIpv4);
      const until = this.blocks.block(key, opts.blockMinutes);
      blocked = { blockMinutes: opts.blockMinutes, blockedUntil: new Date(until).toISOString() };
      this.log.info({ tunnel: id, ...key, ...blocked, actor }, 'tunnel killed and its owner blocked');
    }
    await this.deps.store.addAudit({
      at: this.deps.clock.now(),
      actor,
      action: 'tunnel.kill',
      target: String(id),
      detail: { username: t.record.username, ...(blocked ?? {}) },
    });
  }

  /** Ends the live tunnels of an account (disabled or deleted account). */
  async endAccountTunnels(accountId: number, reason: EndReason): Promise<number> {
    const ids = [...this.live.values()].filter((t) => t.record.accountId === accountId).map((t) => t.record.id);
    for (const id of ids) await this.endLive(id, reason);
    return ids.length;
  }

  // ------------------------------------------------------------------ session events

  onEvents(ctx: SessionContext, events: readonly SessionEvent[]): void {
    let info = this.sessions.get(ctx);
    if (!info) {
      info = { accountId: null, username: null, mechanism: undefined, limits: {} };
      this.sessions.set(ctx, info);
    }
    for (const e of events) this.onEvent(ctx, info, e);
  }

  private onEvent(ctx: SessionContext, info: SessionInfo, e: SessionEvent): void {
    const slog = () =>
      this.log.child({ session: ctx.id, transport: ctx.transport, peer: `${ctx.peer.address}:${ctx.peer.port}` });
    switch (e.type) {
      case 'version':
        return;
      case 'deleteRequested':
        this.track(this.onDelete(ctx, info), ctx);
        return;
      case 'infoRequested':
        this.track(this.onInfo(ctx, info), ctx);
        return;
      case 'versionRefused':
        info.result = 'version_refused';
        return;
      case 'verifyPlain':
        this.track(this.verifyPlain(ctx, info, e.username, e.password, e.sourceValidated), ctx);
        return;
      case 'lookupDigest':
        this.track(this.lookupDigest(ctx, info, e.username), ctx);
        return;
      case 'authenticated':
        info.mechanism = e.mechanism;
        if (e.mechanism !== 'ANONYMOUS' && info.candidate) {
          info.accountId = info.candidate.id;
          info.username = info.candidate.username;
          info.limits = info.candidate.limits;
          this.limiter.clear(userKey(info.username, ctx.peer.address));
        }
        return;
      case 'authFailed':
        info.result = 'auth_failed';
        info.mechanism = (e.mechanism as Mechanism) ?? info.mechanism;
        // an attempt refused by the limiter itself is not one more failure: retrying must not lengthen a backoff
        if (!info.throttled) this.countFailure(ctx, e.username, e.sourceValidated);
        slog().warn(
          { account: e.username, mechanism: e.mechanism, reason: e.reason, sourceValidated: e.sourceValidated },
          'authentication failed',
        );
        this.emit('authFailure', { mechanism: e.mechanism });
        return;
      case 'replyWithheld':
        this.emit('replyWithheld', { reason: e.reason });
        return;
      case 'tunnelRequested':
        this.track(this.decide(ctx, info, e.request), ctx);
        return;
      case 'offerAccepted':
        this.track(this.accept(ctx, info), ctx);
        return;
      case 'offerWithdrawn':
        this.track(this.withdraw(info, e.reason));
        return;
      case 'protocolError':
        info.result ??= `error_${e.status}`;
        slog().info({ account: info.username, code: e.code, status: e.status, reason: e.message }, 'request refused');
        return;
      case 'closed':
        // a session that established a tunnel was reported at the accept; the rest are reported here
        if (e.established || info.result === 'established') return;
        this.reportOutcome(ctx, info, info.result ?? (e.reason === 'timeout' ? 'timeout' : 'closed'), e.reason);
        return;
    }
  }

  /** A session's processing threw, or its work failed: the transport has closed it. */
  onCrash(ctx: SessionContext, err: unknown): void {
    this.log.error(
      { err, session: ctx.id, transport: ctx.transport, peer: `${ctx.peer.address}:${ctx.peer.port}` },
      'session failed and was closed',
    );
    this.emit('sessionCrash', { transport: ctx.transport });
  }

  private reportOutcome(ctx: SessionContext, info: SessionInfo, result: string, how?: string): void {
    const line = {
      session: ctx.id,
      transport: ctx.transport,
      peer: `${ctx.peer.address}:${ctx.peer.port}`,
      account: info.username ?? (info.mechanism === 'ANONYMOUS' ? '(anonymous)' : null),
      mechanism: info.mechanism ?? null,
      result,
      ...(how && how !== 'done' ? { ended: how } : {}),
      ...(info.offeredRecord ? { tunnel: info.offeredRecord.id, type: info.offeredRecord.type } : {}),
      ms: this.deps.clock.now() - ctx.startedMs,
    };
    if (result === 'established') this.log.info(line, 'session established a tunnel');
    else this.log.info(line, 'session ended without a tunnel');
    this.emit('session', {
      transport: ctx.transport,
      mechanism: info.mechanism ?? 'none',
      result,
    } satisfies SessionOutcome);
  }

  /** Keeps async work in view (close() waits for it). A failure in a session's work closes that session (the
   *  host logs and counts it through onCrash) instead of leaving it waiting for an answer. */
  private track(p: Promise<unknown>, ctx?: SessionContext): void {
    const q = p.catch((err: unknown) => {
      if (ctx && !ctx.ended) ctx.abort(err);
      else this.log.error({ err, ...(ctx ? { session: ctx.id } : {}) }, 'unhandled error in session handling');
    });
    this.inflight.add(q);
    void q.finally(() => this.inflight.delete(q));
  }

  // ------------------------------------------------------------------ authentication

  /** Failures count where they cannot be aimed at someone else (docs/security.md): against the username
   *  together with the source's /24, and against the source, and only when the source has shown it receives
   *  our datagrams (TCP, or a DIGEST-MD5 response with our nonce). A failure from a source that may be spoofed
   *  (PLAIN over UDP, a DIGEST response with a nonce we never sent it) counts only against that source's
   *  unvalidated attempts, which nothing else is refused for. */
  private countFailure(ctx: SessionContext, username: string | null, sourceValidated: boolean): void {
    if (!sourceValidated) {
      this.limiter.fail(`unvalidated:${ctx.peer.address}`);
      return;
    }
    this.limiter.fail(`src:${ctx.peer.address}`);
    if (username) this.limiter.fail(userKey(username, ctx.peer.address));
  }

  private throttled(ctx: SessionContext, username: string, sourceValidated: boolean): boolean {
    return (
      this.limiter.isBlocked(`src:${ctx.peer.address}`) ||
      this.limiter.isBlocked(userKey(username, ctx.peer.address)) ||
      (!sourceValidated && this.limiter.isBlocked(`unvalidated:${ctx.peer.address}`))
    );
  }

  private async verifyPlain(
    ctx: SessionContext,
    info: SessionInfo,
    username: string,
    password: string,
    sourceValidated: boolean,
  ): Promise<void> {
    const now = () => this.deps.clock.now();
    if (this.throttled(ctx, username, sourceValidated)) {
      info.throttled = true;
      return ctx.step((s) => s.plainResult(false, 'too many failures (rate limited)', now()));
    }
    const a = await this.deps.store.getAccountSecrets(username);
    const usable = a !== undefined && !a.disabled;
    // an unknown or disabled user is checked against a dummy hash: same time, so timing names no account
    const ok = (await verifyPassword(usable ? a.passwordHash : await dummyPasswordHash(), password)) && usable;
    // a web-only account keeps no TSP login: after the same hash check, it fails as an unknown user does
    if (!a || a.digestHa1 === null) return ctx.step((s) => s.plainResult(false, 'unknown user', now()));
    if (a.disabled) return ctx.step((s) => s.plainResult(false, 'account disabled', now()));
    if (ok) info.candidate = { id: a.id, username: a.username, limits: a.limits };
    ctx.step((s) => s.plainResult(ok, ok ? '' : 'wrong password', now()));
  }

  private async lookupDigest(ctx: SessionContext, info: SessionInfo, username: string): Promise<void> {
    const now = () => this.deps.clock.now();
    // the DIGEST source is validated by the response itself (its nonce), so only the validated keys apply here
    if (this.throttled(ctx, username, true)) {
      info.throttled = true;
      return ctx.step((s) => s.digestSecret(undefined, 'too many failures (rate limited)', now()));
    }
    const a = await this.deps.store.getAccountSecrets(username);
    const ha1 = a?.digestHa1; // null for a web-only account: it fails exactly as an unknown user does
    if (!a || !ha1) return ctx.step((s) => s.digestSecret(undefined, 'unknown user', now()));
    if (a.disabled) return ctx.step((s) => s.digestSecret(undefined, 'account disabled', now()));
    if (a.digestRealm !== this.cfg.auth.realm)
      return ctx.step((s) =>
        s.digestSecret(undefined, `credential kept for realm ${a.digestRealm}; set the password again`, now()),
      );
    info.candidate = { id: a.id, username: a.username, limits: a.limits };
    ctx.step((s) => s.digestSecret(Buffer.from(ha1, 'hex'), '', now()));
  }

  // ------------------------------------------------------------------ offers

  /** The concrete type for a request, per docs/protocol.md §8.1, or a BrokerError. */
  chooseType(
    req: TunnelRequest,
    transport: 'udp' | 'tcp',
    observedIpv4: string,
    allowed: readonly TunnelType[],
  ): TunnelType {
    const refuse = (why: string) => new BrokerError('TSP_UNSUPPORTED_TUNNEL', why);
    if (req.proxy) throw refuse('proxy tunnels (to a third-party IPv4) are not offered');
    // a client that does not say its address is treated as behind NAT: v6udpv4 crosses NAT, v6v4 rarely does
    const nat = req.clientIpv4 === undefined || req.clientIpv4 !== observedIpv4;
    const can = (t: TunnelType) => allowed.includes(t);
    switch (req.type) {
      case 'v6udpv4':
        if (transport !== 'udp') throw refuse('v6udpv4 needs TSP over UDP: the data path is the same UDP flow');
        if (!can('v6udpv4')) throw refuse('v6udpv4 is not offered here');
        return 'v6udpv4';
      case 'v6anyv4':
        if (!nat && can('v6v4')) return 'v6v4';
        if (transport === 'udp' && can('v6udpv4')) return 'v6udpv4';
        throw refuse(nat ? 'client is behind NAT and TSP came over TCP: v6udpv4 is impossible' : 'no tunnel type fits');
      case 'v6v4':
        if (!can('v6v4')) throw refuse('v6v4 is not offered here');
        if (nat && this.cfg.tunnels.v6v4BehindNat === 'refuse')
          throw refuse(
            `client reports ${req.clientIpv4 ?? 'no address'} but comes from ${observedIpv4}: protocol 41 does not cross NAT`,
          );
        return 'v6v4';
      default:
        throw refuse(`${req.type ?? 'no'} tunnels are not offered`);
    }
  }

  private keepaliveFor(req: TunnelRequest): number {
    const k = this.cfg.tunnels.keepalive;
    const wish = req.keepaliveInterval && req.keepaliveInterval > 0 ? req.keepaliveInterval : k.default;
    return Math.min(k.max, Math.max(k.min, wish));
  }

  private async decide(ctx: SessionContext, info: SessionInfo, req: TunnelRequest): Promise<void> {
    let reserved: { record: TunnelRecord; spec: TunnelSpec; leaseId?: string } | undefined;
    let result: { offer: Offer } | { error: BrokerError };
    try {
      if (info.offeredRecord) await this.withdraw(info, 'superseded');
      reserved = await this.reserve(ctx, info, req);
      result = { offer: this.offerFor(reserved.record) };
    } catch (err) {
      if (!isBrokerError(err)) this.log.error({ err, session: ctx.id }, 'offer failed');
      result = { error: isBrokerError(err) ? err : new BrokerError('INTERNAL', 'offer failed', { cause: err }) };
    }
    if (ctx.session.awaiting !== 'offer') {
      // the session timed out, closed or restarted while we allocated: give it all back
      if (reserved) await this.endRecord(reserved.record, 'not_accepted');
      return;
    }
    if (reserved) {
      info.offeredRecord = reserved.record;
      info.offeredSpec = reserved.spec;
      info.leaseId = reserved.leaseId;
    }
    ctx.step((s) => s.offerDecision(result, this.deps.clock.now()));
  }

  private async reserve(
    ctx: SessionContext,
    info: SessionInfo,
    req: TunnelRequest,
  ): Promise<{ record: TunnelRecord; spec: TunnelSpec; leaseId?: string }> {
    const cfg = this.cfg;
    const allowed = info.limits.tunnelTypes?.length
      ? cfg.tunnels.types.filter((t) => info.limits.tunnelTypes!.includes(t))
      : cfg.tunnels.types;
    const type = this.chooseType(req, ctx.transport, ctx.peer.address, allowed);
    const anonymous = info.accountId === null;
    let prefixLen: number | undefined;
    if (req.router) {
      if (anonymous) throw new BrokerError('TSP_PREFIX_FOR_ANONYMOUS', 'router mode needs an account');
      if (req.router.prefixLength === undefined)
        throw new BrokerError('TSP_PREFIX_LENGTH_MISSING', 'router request without a prefix length');
      const min = Math.max(cfg.pools.prefixLen.min, info.limits.minPrefixLen ?? 0);
      const max = Math.min(cfg.pools.prefixLen.max, info.limits.maxPrefixLen ?? 128);
      prefixLen = req.router.prefixLength;
      if (prefixLen < min || prefixLen > max)
        throw new BrokerError(
          'TSP_PREFIX_LENGTH_UNSUPPORTED',
          `prefix length /${prefixLen} is outside /${min}../${max}`,
        );
    }
    if (anonymous) this.checkAnonymousQuota(ctx.peer.address);
    this.refuseIfBlocked(ctx, blockKeyOf(info.accountId, ctx.peer.address), info.username);
    const leaseId = anonymous ? `anon-${randomUUID()}` : undefined;
    const owner = anonymous ? { leaseId: leaseId! } : { accountId: info.accountId! };
    const store = this.deps.store;
    const serverIpv4 = await this.serverIpv4For(ctx); // before the transaction: it may ask the kernel
    // the allocations and the offered tunnel row commit together (one transaction), or none of them does
    let stage: 'link' | 'delegation' | 'tunnel' = 'link';
    let record: TunnelRecord;
    try {
      record = await store.batch(async () => {
        stage = 'link';
        const link = await store.allocate({ pool: 'link', poolPrefix: this.deps.pools.link, prefixLen: 64, owner });
        stage = 'delegation';
        const delegated =
          prefixLen === undefined
            ? undefined
            : await store.allocate({ pool: 'delegation', poolPrefix: this.deps.pools.delegation, prefixLen, owner });
        stage = 'tunnel';
        const { serverIpv6, clientIpv6 } = linkAddresses(link.prefix);
        return store.createTunnel(
          {
            accountId: info.accountId,
            leaseId: leaseId ?? null,
            type,
            transport: ctx.transport,
            clientIpv4: ctx.peer.address,
            clientPort: type === 'v6udpv4' ? ctx.peer.port : 0,
            serverIpv4,
            serverIpv6,
            clientIpv6,
            prefix: delegated?.prefix ?? null,
            prefixLen: delegated?.prefixLen ?? null,
            keepaliveInterval: this.keepaliveFor(req),
            lifetimeS: cfg.tunnels.lifetimeS,
          },
          this.deps.clock.now(),
        );
      });
    } catch (err) {
      if (isBrokerError(err) && err.code === 'POOL_EXHAUSTED') {
        if (stage === 'link') {
          this.log.error({ pool: this.deps.pools.link, session: ctx.id }, 'link pool exhausted: no tunnel offered');
        } else if (stage === 'delegation') {
          this.log.error(
            { pool: this.deps.pools.delegation, prefixLen, session: ctx.id },
            'delegation pool exhausted for this length',
          );
          throw new BrokerError('TSP_PREFIX_LENGTH_UNAVAILABLE', `no /${prefixLen} left in the delegation pool`, {
            cause: err,
          });
        }
      }
      throw err;
    }
    const full = { ...record, username: info.username };
    if (anonymous) this.holdAnonymous(full);
    return { record: full, spec: specOf(full), ...(leaseId ? { leaseId } : {}) };
  }

  /** Anonymous tunnels are bounded per source IPv4 and per /24, and may use only the part of the link pool not
   *  kept for accounts (pools.accountReserve): one host cannot empty the pool (answer 301). */
  private checkAnonymousQuota(source: string): void {
    const l = this.cfg.limits;
    const full = (why: string) => {
      this.log.warn({ peer: source, reason: why }, 'anonymous tunnel refused');
      return new BrokerError('POOL_EXHAUSTED', why);
    };
    if ((this.anonymousBySource.get(source) ?? 0) >= l.anonymousPerSource)
      throw full(`this address holds ${l.anonymousPerSource} anonymous tunnels (limits.anonymousPerSource)`);
    if ((this.anonymousByPrefix.get(prefix24(source)) ?? 0) >= l.anonymousPerPrefix24)
      throw full(`this /24 holds ${l.anonymousPerPrefix24} anonymous tunnels (limits.anonymousPerPrefix24)`);
    const linkLen = Number(this.deps.pools.link.split('/')[1]);
    const capacity = 2 ** Math.min(64 - linkLen, 52);
    const share = Math.floor(capacity * (1 - this.cfg.pools.accountReserve));
    if (this.anonymous.size >= share)
      throw full(`anonymous tunnels hold their share of the link pool (${share} of ${capacity}, pools.accountReserve)`);
  }

  /** An operator's kill-and-block holds: answer 301 (no tunnel) until it expires. */
  private refuseIfBlocked(ctx: SessionContext, key: BlockKey, username: string | null): void {
    const until = this.blocks.blockedUntil(key);
    if (until === null) return;
    const left = Math.ceil((until - this.deps.clock.now()) / 1000);
    this.log.warn({ session: ctx.id, account: username, ...key, secondsLeft: left }, 'tunnel refused: blocked');
    throw new BrokerError('TUNNEL_BLOCKED', `blocked by an operator for ${left} more seconds`);
  }

  private holdAnonymous(t: TunnelRecord): void {
    if (t.accountId !== null || this.anonymous.has(t.id)) return;
    const k = { source: t.clientIpv4, prefix: prefix24(t.clientIpv4) };
    this.anonymous.set(t.id, k);
    this.anonymousBySource.set(k.source, (this.anonymousBySource.get(k.source) ?? 0) + 1);
    this.anonymousByPrefix.set(k.prefix, (this.anonymousByPrefix.get(k.prefix) ?? 0) + 1);
  }

  /** Idempotent: every path that ends a tunnel row calls it. */
  private releaseAnonymous(id: number): void {
    const k = this.anonymous.get(id);
    if (!k) return;
    this.anonymous.delete(id);
    const dec = (m: Map<string, number>, key: string) => {
      const n = (m.get(key) ?? 1) - 1;
      if (n > 0) m.set(key, n);
      else m.delete(key);
    };
    dec(this.anonymousBySource, k.source);
    dec(this.anonymousByPrefix, k.prefix);
  }

  private async serverIpv4For(ctx: SessionContext): Promise<string> {
    if (this.cfg.serverIpv4) return this.cfg.serverIpv4;
    if (this.cfg.listen.address !== '0.0.0.0') return this.cfg.listen.address;
    if (ctx.localAddress && ctx.localAddress !== '0.0.0.0') return ctx.localAddress;
    return this.deps.localAddressToward(ctx.peer.address);
  }

  offerFor(t: TunnelRecord): Offer {
    const offer: Offer = {
      type: t.type,
      lifetimeS: t.lifetimeS,
      serverIpv4: t.serverIpv4,
      serverIpv6: t.serverIpv6,
      clientIpv4: t.clientIpv4,
      clientIpv6: t.clientIpv6,
      keepalive: { interval: t.keepaliveInterval, address: t.serverIpv6 },
      dnsServer: this.cfg.pools.dnsServer ?? t.serverIpv6,
    };
    if (t.prefix && t.prefixLen !== null) offer.prefix = { address: t.prefix, length: t.prefixLen };
    return offer;
  }

  private async withdraw(info: SessionInfo, reason: string): Promise<void> {
    const record = info.offeredRecord;
    if (!record) return;
    info.offeredRecord = undefined;
    info.offeredSpec = undefined;
    this.log.debug({ tunnel: record.id, reason }, 'offer withdrawn');
    await this.endRecord(record, 'not_accepted');
  }

  // ------------------------------------------------------------------ activation and teardown

  private async accept(ctx: SessionContext, info: SessionInfo): Promise<void> {
    const record = info.offeredRecord;
    const now = () => this.deps.clock.now();
    if (!record) return ctx.step((s) => s.acceptDone(new BrokerError('TSP_UNEXPECTED', 'no offer to accept'), now()));
    try {
      // one live tunnel per account, and one per client endpoint: the newest session wins
      const key = endpointKey(record);
      const replaced = [...this.live.values()].filter(
        (t) =>
          (this.cfg.tunnels.replaceExisting && record.accountId !== null && t.record.accountId === record.accountId) ||
          endpointKey(t.record) === key,
      );
      const at = now();
      const byId = replaced.length ? this.countersById() : undefined;
      const ends = replaced.map((t) => ({ record: t.record, counters: this.totals(t, byId?.get(t.record.id)) }));
      for (const t of replaced) this.forgetLive(t, 'replaced');
      // the replaced tunnels' ends and this one's start commit together, before the ack goes out
      await this.deps.store.batch(async () => {
        for (const e of ends) await this.persistEnd(e.record, 'replaced', e.counters);
        await this.deps.store.establishTunnel(record.id, at);
      });
      const established: TunnelRecord = { ...record, state: 'established', establishedAt: at };
      this.activate(established, at, { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 });
      info.offeredRecord = undefined;
      info.result = 'established';
      this.reportOutcome(ctx, { ...info, offeredRecord: established }, 'established');
      ctx.step((s) => s.acceptDone(undefined, now()));
    } catch (err) {
      this.log.error({ err, tunnel: record.id }, 'activation failed');
      await this.endRecord(record, 'not_accepted').catch(() => {});
      info.offeredRecord = undefined;
      ctx.step((s) =>
        s.acceptDone(
          isBrokerError(err) ? err : new BrokerError('INTERNAL', 'activation failed', { cause: err }),
          now(),
        ),
      );
    }
  }

  private activate(t: TunnelRecord, now: number, base: LiveTunnel['base']): void {
    const spec = specOf(t);
    this.deps.dataplane.addTunnel(spec);
    this.holdAnonymous(t); // a restored anonymous tunnel counts again
    const persistedPackets = base.rxPackets + base.txPackets;
    this.live.set(t.id, { record: t, spec, activeSinceMs: now, base, persistedPackets });
  }

  /** `byId`: counters already read by the caller (a sweep ending many tunnels reads them once). */
  private async endLive(id: number, reason: EndReason, byId?: CountersById): Promise<void> {
    const t = this.live.get(id);
    if (!t) return;
    const counters = this.totals(t, (byId ?? this.countersById()).get(id));
    this.forgetLive(t, reason); // at once, so a second end of the same tunnel finds nothing to do
    await this.deps.store.batch(() => this.persistEnd(t.record, reason, counters));
  }

  /** Takes a tunnel out of the data plane and the live set, and says so. No store writes. */
  private forgetLive(t: LiveTunnel, reason: EndReason): void {
    this.deps.dataplane.removeTunnel(t.record.id as TunnelId);
    this.live.delete(t.record.id);
    this.releaseAnonymous(t.record.id);
    this.log.info(
      {
        tunnel: t.record.id,
        account: t.record.username,
        client: t.record.type === 'v6v4' ? t.record.clientIpv4 : `${t.record.clientIpv4}:${t.record.clientPort}`,
        reason,
      },
      'tunnel ended',
    );
    this.emit('tunnelEnded', { id: t.record.id, reason });
  }

  /** The store side of an end: final counters, state and reason, the anonymous lease released. Store calls
   *  only, and idempotent, so it may run inside a batch that retries. */
  private async persistEnd(t: TunnelRecord, reason: EndReason, counters?: CounterUpdate): Promise<void> {
    if (counters) await this.deps.store.updateCounters([counters]);
    await this.deps.store.endTunnel(t.id, reason, this.deps.clock.now());
    if (t.leaseId) await this.deps.store.releaseLease(t.leaseId);
  }

  /** Ends a tunnel row that never became live (an offer), in one transaction. */
  private async endRecord(t: TunnelRecord, reason: EndReason): Promise<void> {
    this.releaseAnonymous(t.id);
    await this.deps.store.batch(() => this.persistEnd(t, reason));
  }

  private async onDelete(ctx: SessionContext, info: SessionInfo): Promise<void> {
    const mine = [...this.live.values()].filter((t) =>
      info.accountId !== null
        ? t.record.accountId === info.accountId
        : endpointKey(t.record) === `${ctx.peer.address}:${ctx.peer.port}`,
    );
    for (const t of mine) await this.endLive(t.record.id, 'deleted');
    ctx.step((s) =>
      s.deleteDone(
        mine.length ? undefined : new BrokerError('STORE_NOT_FOUND', 'no live tunnel to delete'),
        this.deps.clock.now(),
      ),
    );
  }

  private async onInfo(ctx: SessionContext, info: SessionInfo): Promise<void> {
    const t = [...this.live.values()].find((x) => info.accountId !== null && x.record.accountId === info.accountId);
    ctx.step((s) => s.infoDone(t ? this.offerFor(t.record) : undefined, this.deps.clock.now()));
  }

  // ------------------------------------------------------------------ expiry

  /** Ends tunnels whose client fell silent for idleIntervals keepalive intervals (at least idleMinS), or whose
   *  lifetime passed; persists counters. Runs every few seconds. */
  async sweep(): Promise<void> {
    const now = this.deps.clock.now();
    const counters = this.countersById();
    const expired: [number, EndReason][] = [];
    for (const t of this.live.values()) {
      const c = counters.get(t.record.id);
      const lastRx = Math.max(c?.lastRxMs ?? 0, t.activeSinceMs);
      let idleLimitS = Math.max(this.cfg.tunnels.idleIntervals * t.record.keepaliveInterval, this.cfg.tunnels.idleMinS);
      // an anonymous tunnel holds pool space for nobody in particular: its idle time is bounded whatever it asked
      if (t.record.accountId === null) idleLimitS = Math.min(idleLimitS, this.cfg.tunnels.anonymousIdleMaxS);
      const idleLimitMs = idleLimitS * 1000;
      if (now - lastRx > idleLimitMs) expired.push([t.record.id, 'idle']);
      else if (t.record.establishedAt !== null && now > t.record.establishedAt + t.record.lifetimeS * 1000)
        expired.push([t.record.id, 'lifetime']);
    }
    for (const [id, reason] of expired) await this.endLive(id, reason, counters);
    await this.followAudit();
    await this.persistCounters(counters);
  }

  /** Changes made by another process (`tsp-broker user disable|delete` and `tunnel kill` open the store
   *  directly) reach the data plane here. The audit trail says what changed since the last sweep: one small
   *  query per action instead of a look at every live tunnel. */
  private async followAudit(): Promise<void> {
    for (const action of FOLLOWED_ACTIONS) {
      const seen = this.auditSeen.get(action) ?? 0;
      const page = await this.deps.store.listAudit({ action, limit: 100 });
      this.auditSeen.set(action, Math.max(seen, page.items[0]?.id ?? 0));
      const targets = new Set(page.items.filter((e) => e.id > seen && e.target).map((e) => e.target!));
      for (const target of targets) {
        if (action === 'tunnel.kill') {
          await this.endLive(Number(target), 'admin'); // the store has it ended already; this catches up
          continue;
        }
        const account = await this.deps.store.getAccountSecrets(target);
        if (account && !account.disabled) continue; // enabled again since
        const ids = [...this.live.values()].filter((t) => t.record.username === target).map((t) => t.record.id);
        for (const id of ids) await this.endLive(id, 'account_disabled');
      }
    }
  }

  /** Writes the totals of the tunnels whose packet counts moved since their last write: a sweep over 10,000
   *  idle tunnels writes nothing (each UPDATE blocks the event loop on SQLite). */
  private async persistCounters(byId: CountersById = this.countersById()): Promise<void> {
    const updates: CounterUpdate[] = [];
    const written: [LiveTunnel, number][] = [];
    for (const t of this.live.values()) {
      const u = this.totals(t, byId.get(t.record.id));
      const packets = u.rxPackets + u.txPackets;
      if (packets === t.persistedPackets) continue;
      updates.push(u);
      written.push([t, packets]);
    }
    if (updates.length === 0) return;
    await this.deps.store.updateCounters(updates);
    for (const [t, packets] of written) t.persistedPackets = packets;
  }
}

/** The /24 of an IPv4 address (the address itself when it is not IPv4). */
/** A block names the account, or for an anonymous tunnel the client's source IPv4. */
function blockKeyOf(accountId: number | null, source: string): BlockKey {
  return accountId !== null ? { accountId } : { source };
}

/** The failure-limiter key of a username: per source /24, so failures from elsewhere never lock it here. */
function userKey(username: string, source: string): string {
  return `user:${username}|${prefix24(source)}`;
}

function endpointKey(t: Pick<TunnelRecord, 'type' | 'clientIpv4' | 'clientPort'>): string {
  return `${t.clientIpv4}:${t.type === 'v6v4' ? 0 : t.clientPort}`;
}

export function specOf(t: TunnelRecord): TunnelSpec {
  const spec: TunnelSpec = {
    id: t.id as TunnelId,
    type: t.type,
    client: { address: t.clientIpv4, port: t.type === 'v6v4' ? 0 : t.clientPort },
    serverIpv6: t.serverIpv6,
    clientIpv6: t.clientIpv6,
  };
  if (t.prefix && t.prefixLen !== null) spec.delegated = { address: t.prefix, length: t.prefixLen };
  return spec;
}
