/** @module client/local-setup: the client host's side of an established tunnel, and its undoing.
 *
 *    v4v6 (IPv4 in IPv6): TUN with the client's inner IPv4, the server's as its peer, and the IPv4 default
 *    route over it (default_route=yes); nothing else below applies
 *
 *    addon client tunnel (TUN + UDP socket on the TSP port, or raw protocol 41)      dataplane/client-tunnel.ts
 *    TUN: MTU 1280, up, client /128, route to the server's tunnel address               (gogoc's linux template)
 *    host mode, or router mode:  default route over the tunnel (default_route=yes)
 *    router mode:  LAN interface gets <prefix>::1/64, the rest of the prefix is unreachable (no loop back into
 *                  the tunnel), IPv6 forwarding on, router advertisements of the /64 (and the offer's
 *                  resolver) on the LAN by radvd or tspc's own announcer (client/ra.ts; ra=off: none)
 *
 *  close(): the addon's threads stop and the TUN closes, which takes its addresses and routes with it; the
 *  rest (the announcer's final RAs, the LAN address, the unreachable route, the forwarding sysctl's old
 *  value) is undone in reverse order by HostSetup; the announcer stops first, while the LAN address is still
 *  there. A failure half-way undoes what was done and rejects with CLIENT_TUN (the device could
 *  not be created: permissions, /dev/net/tun) or CLIENT_SETUP. */

import path from 'node:path';
import ipaddr from 'ipaddr.js';
import { BrokerError, isBrokerError } from '../errors.js';
import { HostSetup } from '../dataplane/host.js';
import { startClientTunnel, type ClientTunnel } from '../dataplane/client-tunnel.js';
import type { ClientCounterName } from '../dataplane/native-addon.js';
import type { Offer } from '../protocol/xml.js';
import type { TspcConfig } from './config.js';
import type { Negotiated } from './negotiate.js';
import type { ClientLog } from './log.js';
import { startLanAnnouncer } from './ra.js';
import { usableResolvers } from './ra-packet.js';

/** The tunnel MTU client templates use (docs/protocol.md §2.8). */
export const TUNNEL_MTU = 1280;
/** Below the kernel's default metric (1024), so the tunnel wins over a default route already there without
 *  replacing it (and our undo cannot remove the user's route). */
const DEFAULT_ROUTE_METRIC = '1';
const FORWARDING_SYSCTL = 'net.ipv6.conf.all.forwarding';

export interface LocalTunnel {
  readonly tunName: string;
  /** Router mode with a LAN: its /64, the interface and who sends router advertisements there. */
  readonly lan?: { prefix64: string; interface: string; announcer: 'radvd' | 'builtin' | 'none' };
  readonly type: Offer['type'];
  counters(): Record<ClientCounterName, number>;
  close(): Promise<void>;
}

/** The /64 given to the LAN in router mode: the delegated prefix's first, as its network address. */
export function lanPrefix64(prefix: { address: string; length: number }): string {
  const bytes = ipaddr.IPv6.parse(prefix.address).toByteArray();
  for (let i = 8; i < 16; i++) bytes[i] = 0;
  return ipaddr.fromByteArray(bytes).toString();
}

/** The address given to the LAN in router mode: the delegated prefix's first /64, host ::1. */
export function lanAddress(prefix: { address: string; length: number }): string {
  const bytes = ipaddr.IPv6.parse(lanPrefix64(prefix)).toByteArray();
  bytes[15] = 1;
  return `${ipaddr.fromByteArray(bytes).toString()}/64`;
}

/** The addon's client tunnel for an offer: where its packets go and from where. */
function openTunnel(cfg: TspcConfig, n: Negotiated): ClientTunnel {
  const offer = n.offer;
  const v4v6 = offer.type === 'v4v6';
  const local = v4v6 ? cfg.clientV6 : cfg.clientV4;
  try {
    return startClientTunnel({
      tunName: v4v6 ? cfg.tunV4v6 : offer.type === 'v6udpv4' ? cfg.tunV6udpv4 : cfg.tunV6v4,
      type: offer.type,
      // v6v4: protocol 41 comes from the offer's server IPv4; v4v6: IPv4-in-IPv6 from its server IPv6;
      // v6udpv4: the TSP flow we negotiated on
      server:
        offer.type === 'v6udpv4'
          ? n.server
          : { address: v4v6 ? offer.serverIpv6 : offer.serverIpv4, port: v4v6 ? 0 : n.server.port },
      ...(local !== 'auto' ? { localAddress: local } : {}),
      ...(offer.type === 'v6udpv4' ? { localPort: n.local.port } : {}),
    });
  } catch (e) {
    throw new BrokerError('CLIENT_TUN', isBrokerError(e) ? e.message : String(e), { cause: e });
  }
}

export async function setUpTunnel(cfg: TspcConfig, n: Negotiated, log: ClientLog): Promise<LocalTunnel> {
  const offer = n.offer;
  const tunnel = openTunnel(cfg, n);
  const host = new HostSetup(undefined);
  const dev = tunnel.tunName;
  const close = async () => {
    tunnel.close();
    await host.undo();
  };
  if (offer.type === 'v4v6') {
    try {
      await setUpV4v6(host, cfg, offer, dev);
      return { tunName: dev, type: offer.type, counters: () => tunnel.readCounters(), close };
    } catch (e) {
      await close();
      throw new BrokerError('CLIENT_SETUP', isBrokerError(e) ? e.message : String(e), { cause: e });
    }
  }
  try {
    await host.ip(['link', 'set', 'dev', dev, 'mtu', String(TUNNEL_MTU), 'up']);
    // nodad: a point-to-point TUN of ours alone; duplicate detection would only delay the address
    await host.ip(['-6', 'addr', 'add', `${offer.clientIpv6}/128`, 'dev', dev, 'nodad']);
    await host.ip(['-6', 'route', 'replace', `${offer.serverIpv6}/128`, 'dev', dev]);
    if (offer.keepalive && offer.keepalive.address !== offer.serverIpv6)
      await host.ip(['-6', 'route', 'replace', `${offer.keepalive.address}/128`, 'dev', dev]);
    if (cfg.defaultRoute) {
      await host.ip(['-6', 'route', 'add', 'default', 'dev', dev, 'metric', DEFAULT_ROUTE_METRIC]);
      host.onUndo(() =>
        host.ip(['-6', 'route', 'del', 'default', 'dev', dev, 'metric', DEFAULT_ROUTE_METRIC]).then(() => {}),
      );
    }
    const lan = offer.prefix ? await setUpPrefix(host, cfg, offer, log) : undefined;
    return { tunName: dev, type: offer.type, ...(lan ? { lan } : {}), counters: () => tunnel.readCounters(), close };
  } catch (e) {
    await close();
    throw new BrokerError('CLIENT_SETUP', isBrokerError(e) ? e.message : String(e), { cause: e });
  }
}

/** v4v6: the TUN carries IPv4; the client's inner IPv4 with the server's as its peer, and the IPv4 default
 *  route over the tunnel (default_route=yes): the host has only IPv6 otherwise. */
async function setUpV4v6(host: HostSetup, cfg: TspcConfig, offer: Offer, dev: string): Promise<void> {
  await host.ip(['link', 'set', 'dev', dev, 'mtu', String(TUNNEL_MTU), 'up']);
  await host.ip(['-4', 'addr', 'add', `${offer.clientIpv4}/32`, 'peer', `${offer.serverIpv4}/32`, 'dev', dev]);
  if (offer.keepalive && offer.keepalive.address !== offer.serverIpv4)
    await host.ip(['-4', 'route', 'replace', `${offer.keepalive.address}/32`, 'dev', dev]);
  if (cfg.defaultRoute) {
    await host.ip(['-4', 'route', 'add', 'default', 'dev', dev, 'metric', DEFAULT_ROUTE_METRIC]);
    host.onUndo(() =>
      host.ip(['-4', 'route', 'del', 'default', 'dev', dev, 'metric', DEFAULT_ROUTE_METRIC]).then(() => {}),
    );
  }
}

async function setUpPrefix(
  host: HostSetup,
  cfg: TspcConfig,
  offer: Offer,
  log: ClientLog,
): Promise<LocalTunnel['lan']> {
  const prefix = offer.prefix!;
  const cidr = `${ipaddr.IPv6.parse(prefix.address).toString()}/${prefix.length}`;
  // Addresses of the prefix not on the LAN must not follow the default route back into the tunnel.
  await host.ip(['-6', 'route', 'replace', 'unreachable', cidr]);
  host.onUndo(() => host.ip(['-6', 'route', 'del', 'unreachable', cidr]).then(() => {}));
  if (!cfg.lanInterface) {
    log.warn('router mode without if_prefix: the delegated prefix is not given to any interface', { prefix: cidr });
    return undefined;
  }
  if (prefix.length > 64) {
    // a /64 on the LAN (and SLAAC from it) would reach outside what was delegated
    log.warn('the delegated prefix is longer than a /64: the LAN gets no address and no advertisements', {
      prefix: cidr,
    });
    return undefined;
  }
  const previous = await host.readSysctl(FORWARDING_SYSCTL);
  if (previous !== '1') {
    await host.writeSysctl(FORWARDING_SYSCTL, '1');
    host.onUndo(() => host.writeSysctl(FORWARDING_SYSCTL, previous));
  }
  const address = lanAddress(prefix);
  await host.ip(['-6', 'addr', 'add', address, 'dev', cfg.lanInterface, 'nodad']);
  host.onUndo(() => host.ip(['-6', 'addr', 'del', address, 'dev', cfg.lanInterface]).then(() => {}));
  await host.ip(['link', 'set', 'dev', cfg.lanInterface, 'up']);
  const announcer = await startLanAnnouncer(
    cfg.ra,
    {
      lanInterface: cfg.lanInterface,
      prefix64: lanPrefix64(prefix),
      dnsServers: usableResolvers(offer.dnsServer),
      // everything beyond the LAN crosses the tunnel: hosts that know it need no Packet Too Big to learn it
      mtu: TUNNEL_MTU,
    },
    path.dirname(cfg.statusFile), // radvd's configuration and pid file sit next to the status file
    log,
  );
  if (announcer) host.onUndo(() => announcer.stop());
  return { prefix64: lanPrefix64(prefix), interface: cfg.lanInterface, announcer: announcer?.kind ?? 'none' };
}
