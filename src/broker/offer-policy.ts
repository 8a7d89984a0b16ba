/** @module broker/offer-policy: what a tunnel request gets, decided from the request, what the broker observed
 *  and the configuration alone. Pure: no store, no clock, no I/O; every rule is table-tested
 *  (test/unit/broker/offer-policy.test.ts). The service (broker/service.ts) applies it and allocates. */

import ipaddr from 'ipaddr.js';
import type { Config } from '../config/schema.js';
import { BrokerError } from '../errors.js';
import type { TunnelType } from '../dataplane/types.js';
import type { Offer, TunnelRequest } from '../protocol/xml.js';
import type { AccountLimits, TunnelRecord } from '../store/types.js';

/** The tunnel types an account may get: the configured ones, narrowed by the account's own limit. */
export function allowedTypes(configured: readonly TunnelType[], limits: AccountLimits): TunnelType[] {
  const own = limits.tunnelTypes;
  return own?.length ? configured.filter((t) => own.includes(t)) : [...configured];
}

/** The concrete type for a request (docs/protocol.md §8.1), or a BrokerError (303). `observed`: the source the
 *  request came from. Over IPv4, a client that reports another address, or none, is behind NAT. Over IPv6 only
 *  v4v6 can be offered (the others carry IPv6 inside IPv4), and v4v6 only over IPv6 (its packets go to the
 *  address TSP came from). */
export function chooseType(
  req: TunnelRequest,
  transport: 'udp' | 'tcp',
  observed: string,
  allowed: readonly TunnelType[],
  v6v4BehindNat: Config['tunnels']['v6v4BehindNat'],
): TunnelType {
  const refuse = (why: string) => new BrokerError('TSP_UNSUPPORTED_TUNNEL', why);
  if (req.proxy) throw refuse('proxy tunnels (to a third-party IPv4) are not offered');
  const can = (t: TunnelType) => allowed.includes(t);
  if (observed.includes(':')) {
    if (req.type !== 'v4v6') throw refuse(`${req.type ?? 'no'} tunnels need TSP over IPv4; over IPv6 only v4v6`);
    if (!can('v4v6')) throw refuse('v4v6 is not offered here');
    return 'v4v6';
  }
  // a client that does not say its address is treated as behind NAT: v6udpv4 crosses NAT, v6v4 rarely does
  const nat = req.clientIpv4 === undefined || req.clientIpv4 !== observed;
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
      if (nat && v6v4BehindNat === 'refuse')
        throw refuse(
          `client reports ${req.clientIpv4 ?? 'no address'} but comes from ${observed}: protocol 41 does not cross NAT`,
        );
      return 'v6v4';
    case 'v4v6':
      throw refuse(
        can('v4v6') ? 'v4v6 needs TSP over IPv6 (to the IPv6 address it is to run to)' : 'v4v6 is not offered here',
      );
    default:
      throw refuse(`${req.type ?? 'no'} tunnels are not offered`);
  }
}

/** Why a tunnel may not have `observed` (the session's source) as its endpoint, or null. Refused: an IPv6
 *  source that is not a routable unicast address (link-local, with a zone, multicast, IPv4-mapped), and any source
 *  inside the broker's own pools. The latter would be a client negotiating through one of this broker's tunnels:
 *  a tunnel carried inside another tunnel of the same broker can be chained into a loop that no hop limit ends
 *  (RFC 6324), now that v4v6 puts IPv4 inside tunnels and the broker listens on IPv6. */
export function sessionSourceRefusal(
  observed: string,
  pools: { ipv6: readonly string[]; ipv4: string | null },
): string | null {
  if (observed.includes(':')) {
    if (observed.includes('%') || !ipaddr.IPv6.isValid(observed)) return `${observed} is not a routable IPv6 address`;
    const a = ipaddr.IPv6.parse(observed);
    if (['linkLocal', 'multicast', 'ipv4Mapped', 'unspecified'].includes(a.range()))
      return `${observed} is not a routable IPv6 address (${a.range()})`;
    const pool = pools.ipv6.find((p) => a.match(ipaddr.IPv6.parseCIDR(p)));
    return pool ? `${observed} is inside the broker's own pool ${pool}: a tunnel through its own tunnel` : null;
  }
  if (pools.ipv4 && ipaddr.IPv4.isValidFourPartDecimal(observed)) {
    if (ipaddr.IPv4.parse(observed).match(ipaddr.IPv4.parseCIDR(pools.ipv4)))
      return `${observed} is inside the broker's own pool ${pools.ipv4}: a tunnel through its own tunnel`;
  }
  return null;
}

/** The keepalive interval offered: the client's wish (or the default), clamped to the configured bounds. */
export function keepaliveFor(req: TunnelRequest, k: Config['tunnels']['keepalive']): number {
  const wish = req.keepaliveInterval && req.keepaliveInterval > 0 ? req.keepaliveInterval : k.default;
  return Math.min(k.max, Math.max(k.min, wish));
}

/** The delegated prefix length for a router request (undefined: host mode, no prefix), or a BrokerError
 *  (522 anonymous, 520 missing, 518 outside the bounds of the configuration and the account). */
export function delegatedLength(
  req: TunnelRequest,
  anonymous: boolean,
  bounds: Config['pools']['prefixLen'],
  limits: AccountLimits,
): number | undefined {
  if (!req.router) return undefined;
  if (anonymous) throw new BrokerError('TSP_PREFIX_FOR_ANONYMOUS', 'router mode needs an account');
  const len = req.router.prefixLength;
  if (len === undefined) throw new BrokerError('TSP_PREFIX_LENGTH_MISSING', 'router request without a prefix length');
  const min = Math.max(bounds.min, limits.minPrefixLen ?? 0);
  const max = Math.min(bounds.max, limits.maxPrefixLen ?? 128);
  if (len < min || len > max)
    throw new BrokerError('TSP_PREFIX_LENGTH_UNSUPPORTED', `prefix length /${len} is outside /${min}../${max}`);
  return len;
}

/** The IPv4 address the offer names as the server's: configured, else the listen address, else the local
 *  address the client reached (undefined: ask the kernel which address routes toward the client). */
export function serverIpv4From(
  cfg: Pick<Config, 'serverIpv4' | 'listen'>,
  localAddress: string | undefined,
): string | undefined {
  if (cfg.serverIpv4) return cfg.serverIpv4;
  if (cfg.listen.address !== '0.0.0.0') return cfg.listen.address;
  if (localAddress && localAddress !== '0.0.0.0') return localAddress;
  return undefined;
}

/** The IPv6 address a v4v6 offer names as the server's (the tunnel's outer endpoint): configured, else the IPv6
 *  listen address, else the local address the client reached (undefined: ask the kernel). */
export function serverIpv6From(
  cfg: Pick<Config, 'serverIpv6' | 'listen'>,
  localAddress: string | undefined,
): string | undefined {
  if (cfg.serverIpv6) return cfg.serverIpv6;
  if (cfg.listen.address6) return cfg.listen.address6;
  if (localAddress?.includes(':') && localAddress !== '::') return localAddress;
  return undefined;
}

/** The offer for a tunnel row. `dnsServer`: the configured resolver, else the server's tunnel address. A v4v6
 *  tunnel's keepalives go to the server's inner IPv4; it names a resolver only when one is configured (the
 *  server's IPv6 is its outer endpoint, no resolver). */
export function offerFor(t: TunnelRecord, dnsServer: string | undefined): Offer {
  const v4v6 = t.type === 'v4v6';
  const offer: Offer = {
    type: t.type,
    lifetimeS: t.lifetimeS,
    serverIpv4: t.serverIpv4,
    serverIpv6: t.serverIpv6,
    clientIpv4: t.clientIpv4,
    clientIpv6: t.clientIpv6,
    keepalive: { interval: t.keepaliveInterval, address: v4v6 ? t.serverIpv4 : t.serverIpv6 },
  };
  const resolver = v4v6 ? dnsServer : (dnsServer ?? t.serverIpv6);
  if (resolver) offer.dnsServer = resolver;
  if (t.prefix && t.prefixLen !== null) offer.prefix = { address: t.prefix, length: t.prefixLen };
  return offer;
}

/** How long a live tunnel may stay silent: idleIntervals keepalive intervals, at least idleMinS; an anonymous
 *  tunnel holds pool space for nobody in particular, so its limit is capped whatever it asked. */
export function idleLimitMs(
  t: Pick<TunnelRecord, 'keepaliveInterval' | 'accountId'>,
  cfg: Pick<Config['tunnels'], 'idleIntervals' | 'idleMinS' | 'anonymousIdleMaxS'>,
): number {
  let s = Math.max(cfg.idleIntervals * t.keepaliveInterval, cfg.idleMinS);
  if (t.accountId === null) s = Math.min(s, cfg.anonymousIdleMaxS);
  return s * 1000;
}

/** Why an anonymous tunnel is refused (answered 301), or null. Anonymous tunnels are bounded per source (an IPv4
 *  address, an IPv6 /64) and per network (/24, /48), and may use only the part of their pool (the link pool, or
 *  pools.ipv4 for v4v6) not kept for accounts (pools.accountReserve). */
export function anonymousRefusal(
  held: { bySource: number; byPrefix24: number; total: number },
  limits: Pick<Config['limits'], 'anonymousPerSource' | 'anonymousPerPrefix24'>,
  pool: { name: string; length: number; leaseLength: number },
  accountReserve: number,
): string | null {
  if (held.bySource >= limits.anonymousPerSource)
    return `this address holds ${limits.anonymousPerSource} anonymous tunnels (limits.anonymousPerSource)`;
  if (held.byPrefix24 >= limits.anonymousPerPrefix24)
    return `this network holds ${limits.anonymousPerPrefix24} anonymous tunnels (limits.anonymousPerPrefix24)`;
  const capacity = 2 ** Math.min(pool.leaseLength - pool.length, 52);
  const share = Math.floor(capacity * (1 - accountReserve));
  if (held.total >= share)
    return `anonymous tunnels hold their share of the ${pool.name} (${share} of ${capacity}, pools.accountReserve)`;
  return null;
}
