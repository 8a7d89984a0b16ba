/** @module client/ra-builtin: tspc's own router advertisement sender, for a router without radvd (ra=builtin,
 *  or ra=auto when radvd is not installed). Minimal, after RFC 4861 §6.2:
 *
 *    start  -> RA now, then INITIAL_ADVERTISEMENTS - 1 more INITIAL_INTERVAL_MS apart (§6.2.4: hosts that came
 *              up before us hear of the prefix within seconds), then every MIN..MAX_RTR_ADV_INTERVAL_S at random
 *    RS     -> a multicast RA after 0..MAX_RA_DELAY_MS, never sooner than MIN_DELAY_BETWEEN_RAS_MS after the
 *              last one (§6.2.6): however many solicitations arrive, at most one RA per 3 s answers them all
 *    stop   -> one final RA with router lifetime 0, the prefix deprecated and the resolver withdrawn (§6.2.5),
 *              then the socket closes
 *
 *  One timer at a time: an RS moves the pending timer earlier, never adds one. RAs go to ff02::1 from the LAN
 *  interface's link-local address (§6.1.2: hosts drop RAs from any other source) with hop limit 255; until the
 *  interface has a usable link-local address (duplicate address detection takes a second or two after the
 *  link comes up) a failed send is retried after SEND_RETRY_MS and does not count as an initial RA. */

import os from 'node:os';
import { BrokerError, isBrokerError } from '../errors.js';
import type { Clock, Timer } from '../clock.js';
import { loadAddon } from '../dataplane/native-addon.js';
import type { ClientLog } from './log.js';
import {
  buildRouterAdvertisement,
  isValidRouterSolicitation,
  ICMPV6_ROUTER_SOLICITATION,
  MAX_RTR_ADV_INTERVAL_S,
  MIN_RTR_ADV_INTERVAL_S,
  PREFIX_PREFERRED_LIFETIME_S,
  PREFIX_VALID_LIFETIME_S,
  RDNSS_LIFETIME_S,
  ROUTER_LIFETIME_S,
  type Announcement,
} from './ra-packet.js';

/** RFC 4861 §10: MAX_INITIAL_RTR_ADVERTISEMENTS. */
export const INITIAL_ADVERTISEMENTS = 3;
/** Between the initial RAs: within §10's MAX_INITIAL_RTR_ADVERT_INTERVAL (16 s), and MIN_DELAY_BETWEEN_RAS. */
export const INITIAL_INTERVAL_MS = 3_000;
/** RFC 4861 §10: MIN_DELAY_BETWEEN_RAS and MAX_RA_DELAY_TIME. */
export const MIN_DELAY_BETWEEN_RAS_MS = 3_000;
export const MAX_RA_DELAY_MS = 500;
/** A send that failed (no link-local address yet, the link down) is tried again this soon. */
export const SEND_RETRY_MS = 1_000;
const ALL_NODES = 'ff02::1';
const ALL_ROUTERS = 'ff02::2';

/** The raw ICMPv6 socket on the LAN interface (the addon's Icmp6Handle). */
export interface RaSocket {
  send(destination: string, source: string, data: Uint8Array): void;
  close(): void;
}
export type OnIcmp6 = (source: string, hopLimit: number, data: Uint8Array) => void;

/** Opens the addon's raw ICMPv6 socket on `ifname`, receiving Router Solicitations (sent to ff02::2). */
export function openRaSocket(ifname: string, onMessage: OnIcmp6): RaSocket {
  const addon = loadAddon();
  try {
    return new addon.Icmp6Handle(
      { interface: ifname, acceptTypes: [ICMPV6_ROUTER_SOLICITATION], joinGroup: ALL_ROUTERS },
      onMessage,
    );
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const hint = code === 'EPERM' || code === 'EACCES' ? ' (needs root or CAP_NET_RAW)' : '';
    throw new BrokerError('CLIENT_SETUP', `ra: cannot open a raw ICMPv6 socket on ${ifname}: ${String(e)}${hint}`, {
      cause: e,
    });
  }
}

/** The interface's link-local address and MAC, as the kernel lists them now. */
export function interfaceLink(ifname: string): { linkLocal?: string; mac?: string } {
  const entries = os.networkInterfaces()[ifname] ?? [];
  const ll = entries.find((e) => e.family === 'IPv6' && /^fe[89ab][0-9a-f]:/i.test(e.address));
  const mac = entries.find((e) => e.mac && e.mac !== '00:00:00:00:00:00')?.mac;
  return { ...(ll ? { linkLocal: ll.address } : {}), ...(mac ? { mac } : {}) };
}

export interface BuiltinDeps {
  clock: Clock;
  open: (ifname: string, onMessage: OnIcmp6) => RaSocket;
  link: (ifname: string) => { linkLocal?: string; mac?: string };
  random: () => number;
}

export class BuiltinAnnouncer {
  readonly kind = 'builtin';
  private socket: RaSocket | undefined;
  private timer: Timer | undefined;
  private timerAt = Infinity;
  private lastSentAt = -Infinity;
  /** RAs sent (successfully), solicitations answered, invalid messages ignored: for the log at stop. */
  private sent = 0;
  private solicited = 0;
  private ignored = 0;

  constructor(
    private readonly a: Announcement,
    private readonly log: ClientLog,
    private readonly deps: BuiltinDeps,
  ) {}

  /** Opens the socket and sends the first RA. Throws CLIENT_SETUP when the socket cannot be opened. */
  start(): void {
    this.socket = this.deps.open(this.a.lanInterface, (source, hopLimit, data) =>
      this.onMessage(source, hopLimit, data),
    );
    this.tick();
  }

  /** The final RA (router lifetime 0), then closes. Idempotent. */
  stop(): Promise<void> {
    const socket = this.socket;
    if (!socket) return Promise.resolve();
    this.timer?.cancel();
    this.timer = undefined;
    this.advertise(true);
    socket.close();
    this.socket = undefined;
    this.log.debug('router advertisements stopped', {
      interface: this.a.lanInterface,
      sent: this.sent,
      solicited: this.solicited,
      ignored: this.ignored,
    });
    return Promise.resolve();
  }

  private tick(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const ok = this.advertise(false);
    const spanMs = (MAX_RTR_ADV_INTERVAL_S - MIN_RTR_ADV_INTERVAL_S) * 1000;
    const next = !ok
      ? SEND_RETRY_MS
      : this.sent < INITIAL_ADVERTISEMENTS
        ? INITIAL_INTERVAL_MS
        : MIN_RTR_ADV_INTERVAL_S * 1000 + Math.floor(this.deps.random() * spanMs);
    this.arm(next);
  }

  private arm(delayMs: number): void {
    if (!this.socket) return;
    this.timer?.cancel();
    this.timerAt = this.deps.clock.now() + delayMs;
    this.timer = this.deps.clock.setTimeout(() => this.tick(), delayMs);
  }

  private onMessage(source: string, hopLimit: number, data: Uint8Array): void {
    if (!this.socket) return;
    if (!isValidRouterSolicitation(data, hopLimit, source)) {
      this.ignored++;
      return;
    }
    this.solicited++;
    const now = this.deps.clock.now();
    const at = Math.max(
      now + Math.floor(this.deps.random() * MAX_RA_DELAY_MS),
      this.lastSentAt + MIN_DELAY_BETWEEN_RAS_MS,
    );
    if (at < this.timerAt) this.arm(at - now); // else the RA already due by then answers this one too
  }

  /** Sends one RA to all nodes; false when it could not be sent (logged at debug). */
  private advertise(final: boolean): boolean {
    const link = this.deps.link(this.a.lanInterface);
    if (!link.linkLocal) {
      this.log.debug('router advertisement deferred: no link-local address yet', { interface: this.a.lanInterface });
      return false;
    }
    const bytes = buildRouterAdvertisement({
      routerLifetimeS: final ? 0 : ROUTER_LIFETIME_S,
      prefix: {
        address: this.a.prefix64,
        length: 64,
        // §6.2.5 asks only for router lifetime 0; the prefix and resolver die with the tunnel, so say so too
        validLifetimeS: final ? 0 : PREFIX_VALID_LIFETIME_S,
        preferredLifetimeS: final ? 0 : PREFIX_PREFERRED_LIFETIME_S,
      },
      ...(link.mac ? { sourceMac: link.mac } : {}),
      mtu: this.a.mtu,
      dns: { servers: this.a.dnsServers, lifetimeS: final ? 0 : RDNSS_LIFETIME_S },
    });
    try {
      this.socket!.send(ALL_NODES, link.linkLocal, bytes);
    } catch (e) {
      this.log.debug('router advertisement not sent', {
        interface: this.a.lanInterface,
        error: isBrokerError(e) ? e.message : String(e),
      });
      return false;
    }
    this.lastSentAt = this.deps.clock.now();
    this.sent++;
    return true;
  }
}
