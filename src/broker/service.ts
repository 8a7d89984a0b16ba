/** @module broker/service: answers a session's questions and returns values. It never touches a session or a
 *  socket: transport/answer.ts asks it (by the session's events) and feeds its answers back into the session.
 *
 *  Per session it keeps what it learnt in a SessionAnswers (session-answers.ts): the account a credential check
 *  found, what it offered, the outcome to log. The decisions themselves live elsewhere: credentials in
 *  authenticate.ts, the offer rules in offer-policy.ts (pure), the live tunnels in tunnels.ts. An offer writes
 *  its claims and an 'offered' row, which ends 'not_accepted' if the offer is never accepted (reject, timeout,
 *  TCP close, restart); an offer whose link block is an anonymous lease the node's chunks hold, or the block an
 *  account holds already, is made with nothing written, its rows written by the accept (pending-offer.ts). */

import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { BrokerError } from '../errors.js';
import type { Offer, TunnelRequest } from '../protocol/xml.js';
import type { RedirectDecision } from '../protocol/redirect.js';
import type { AccountLimits, LeaseReservation, NewTunnel, Store, TunnelRecord } from '../store/types.js';
import { clientPortFor, type TunnelType } from '../tunnel-model.js';
import type { Answerer, SessionPeer, SessionService } from '../transport/answer.js';
import type { AnonymousHoldings } from './anonymous.js';
import type { Authenticator } from './authenticate.js';
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
import { linkAddresses, type Pools } from './pools.js';
import { pendingRecord } from './pending-offer.js';
import { anonymousPool, claimAddresses, poolError, type ClaimStage } from './claims.js';
import { staticRefusal } from './static-tunnel-rules.js';
import type { ReverseDns } from './reverse-dns.js';
import type { TunnelRegistry } from './tunnels.js';
import { SessionAnswers } from './session-answers.js';
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
  store: Pick<Store, 'batch' | 'allocate' | 'createTunnel' | 'reserveLease' | 'heldBlock'>;
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

/** What a session was offered: a row written at the offer, or a pending offer (pending-offer.ts: its record's id
 *  is a stand-in) with, for an anonymous lease, the reservation its accept writes. */
export interface Offered {
  record: TunnelRecord;
  reservation?: LeaseReservation;
}

/** Who a session is, once authenticated. */
export interface Who {
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
   *  tunnel row in one transaction: all of it, or none; or, when the link block is in the node's chunk memory
   *  (anonymous) or on disk already (an account's), a pending offer with nothing written (pending-offer.ts). */
  async reserve(peer: SessionPeer, who: Who, req: TunnelRequest): Promise<Offered> {
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
    const row = (addresses: Awaited<ReturnType<typeof claimAddresses>>): NewTunnel => ({
      accountId: who.accountId,
      leaseId: leaseId ?? null,
      type,
      transport: peer.transport,
      ...addresses,
      clientPort: clientPortFor(type, peer.peer.port),
      keepaliveInterval: keepaliveFor(req, cfg.tunnels.keepalive),
      lifetimeS: cfg.tunnels.lifetimeS,
    });
    // nothing to write before the accept (pending-offer.ts): an anonymous lease the node's chunks hold in memory,
    // or the link block an account keeps between its tunnels
    const linkOnly = !v4v6 && prefixLen === undefined;
    const link = { pool: 'link', poolPrefix: pools.link, prefixLen: pools.linkLeaseLen } as const;
    const reservation =
      linkOnly && leaseId !== undefined ? store.reserveLease({ ...link, owner: { leaseId } }) : undefined;
    const held =
      linkOnly && who.accountId !== null
        ? await store.heldBlock({ ...link, owner: { accountId: who.accountId }, keepHeld: claim.keepHeld })
        : undefined;
    const block = reservation ?? held;
    if (block !== undefined) {
      const inner = { ...linkAddresses(block.prefix), prefix: null, prefixLen: null };
      const tunnel = row({ ...inner, serverIpv4: server, clientIpv4: peer.peer.address });
      const record = pendingRecord(tunnel, this.deps.clock.now(), who.username);
      this.deps.anonymous.hold(record);
      return reservation ? { record, reservation } : { record };
    }
    let stage: ClaimStage | 'tunnel' = 'link';
    const at = (s: ClaimStage) => (stage = s);
    // An anonymous offer need not wait for the disk (BatchOptions.provisional: the accept's sync covers it); its
    // lease is its session's alone. An account's offer waits: its blocks are told only once they are on disk.
    const want = { ...claim, v4v6, server, client: peer.peer.address };
    try {
      const record = await store.batch(
        async (tx) => {
          const addresses = await claimAddresses(tx, pools, want, at);
          stage = 'tunnel';
          return tx.createTunnel(row(addresses), this.deps.clock.now());
        },
        { provisional: anonymous },
      );
      const full = { ...record, username: who.username };
      this.deps.anonymous.hold(full);
      return { record: full };
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
