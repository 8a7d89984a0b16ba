/** @module client/tspc: the tspc daemon's lifecycle (docs/protocol.md §3.3, §9): negotiate, set the tunnel up,
 *  run the hook, watch it, and start over when it dies.
 *
 *    connecting --negotiate--> setup --hook up--> up --keepalive dead | local IPv4 changed--> teardown
 *        ^   | failure: permanent -> exit;  transient -> wait backoff(failures) (auto_retry_connect=no: exit)
 *        |   | redirect -> the listed brokers in order, then the configured server again
 *        +-------------------------------------- reconnecting <--(hook down)-- teardown
 *    stop() (SIGINT/SIGTERM) from any state: teardown (sends nothing to the server, §9.3), hook down, exit 0.
 *
 *  A new session after a lost tunnel is a whole new TSP exchange from a new socket: the broker moves the
 *  account's tunnel, with the same addresses, to whatever endpoint the NAT now shows (§8.3). */

import path from 'node:path';
import ipaddr from 'ipaddr.js';
import { sleep, systemClock, type Clock } from '../clock.js';
import { BrokerError, isBrokerError } from '../errors.js';
import { localAddressToward } from '../transport/local-address.js';
import { backoffDelayMs } from './backoff.js';
import type { TspcConfig } from './config.js';
import { EXIT, exitCodeFor, isPermanent } from './exit-codes.js';
import { runHook, tspEnvironment, type TspOperation } from './hook.js';
import { Keepalive, pingProbe, type Probe } from './keepalive.js';
import { setUpTunnel, type LocalTunnel } from './local-setup.js';
import type { ClientLog } from './log.js';
import { negotiate, type Negotiated } from './negotiate.js';
import { MAX_REDIRECTS, ServerChoice } from './servers.js';
import { writeStatus, type StatusSnapshot, type TspcState } from './status.js';

/** How often the status file is refreshed and the local IPv4 checked while the tunnel is up. */
export const STATUS_INTERVAL_MS = 2_000;

/** Seams for tests; the defaults are the real thing. */
export interface TspcDeps {
  negotiate: typeof negotiate;
  setUpTunnel: typeof setUpTunnel;
  probe: (target: string, tunName: string) => Probe;
  localAddressToward: (peer: string) => Promise<string>;
  runHook: typeof runHook;
  writeStatus: (file: string, s: StatusSnapshot) => void;
  /** The time, the backoff waits, the keepalive's pace, the status refresh and the negotiation's timers. */
  clock: Clock;
}

const REAL: TspcDeps = {
  negotiate,
  setUpTunnel,
  probe: pingProbe,
  localAddressToward,
  runHook,
  writeStatus,
  clock: systemClock,
};

type EndReason = { kind: 'stop' } | { kind: 'dead' } | { kind: 'moved'; from: string; to: string };

export class Tspc {
  private readonly deps: TspcDeps;
  private stopping = false;
  private readonly abort = new AbortController();
  private wakeSleep: (() => void) | undefined;
  private endCurrent: ((r: EndReason) => void) | undefined;
  private status: StatusSnapshot;
  /** Why run() ended with a non-zero status (the CLI prints it). */
  failure: unknown;

  constructor(
    private readonly cfg: TspcConfig,
    private readonly log: ClientLog,
    private readonly homeDir: string,
    deps: Partial<TspcDeps> = {},
  ) {
    this.deps = { ...REAL, ...deps };
    const now = this.isoNow();
    this.status = {
      pid: process.pid,
      state: 'connecting',
      server: cfg.server.text,
      updatedAt: now,
      since: now,
      reconnects: 0,
    };
  }

  /** Runs until stop() or a failure that ends tspc; resolves with the exit status. */
  async run(): Promise<number> {
    const servers = new ServerChoice(this.cfg.servers.length ? this.cfg.servers : [this.cfg.server]);
    let failures = 0;
    let everUp = false;
    this.setState('connecting');
    while (!this.stopping) {
      const target = servers.current;
      let n: Negotiated;
      try {
        this.log.info(`connecting to ${target.text}`, { mode: this.cfg.tunnelMode, auth: this.cfg.authMethod });
        n = await this.deps.negotiate(this.cfg, target, this.log, this.abort.signal, this.deps.clock);
      } catch (e) {
        if (this.stopping) break;
        const brokers = (e as { brokers?: string[] }).brokers;
        const redirect = isBrokerError(e) && e.code === 'CLIENT_REDIRECT' && !!brokers?.length;
        if (redirect && servers.redirected(brokers!)) {
          this.log.info(`redirected to ${brokers!.join(', ')}`);
          continue;
        }
        if (redirect) this.log.warn(`${MAX_REDIRECTS} redirects in a row: taken as a failure`);
        const message = isBrokerError(e) ? e.message : String(e);
        if (servers.failed(isPermanent(e), redirect) === 'next') {
          if (target !== servers.current) this.log.warn(`${message}; trying ${servers.current.text}`);
          continue;
        }
        failures++;
        if (isPermanent(e) || !this.cfg.autoRetryConnect) return this.fail(e);
        const waitMs = backoffDelayMs(failures, this.cfg.retryDelayS, this.cfg.retryDelayMaxS);
        this.log.warn(`${message}; retrying in ${waitMs / 1000} s`, { attempt: failures });
        this.setState(everUp ? 'reconnecting' : 'connecting', message);
        await this.sleep(waitMs);
        continue;
      }
      let tunnel: LocalTunnel;
      try {
        tunnel = await this.deps.setUpTunnel(this.cfg, n, this.log);
      } catch (e) {
        return this.fail(e);
      }
      failures = 0;
      servers.succeeded();
      everUp = true;
      const reason = await this.up(n, tunnel);
      // a server that stopped answering is tried last when there are others
      if (reason?.kind === 'dead') servers.died(target);
      if (reason === undefined) return exitCodeFor(this.failure); // the hook failed; fail() has run
      if (this.stopping) break;
      this.status.reconnects++;
      const why =
        reason.kind === 'dead'
          ? `no keepalive reply ${this.cfg.keepaliveMisses} times in a row`
          : reason.kind === 'moved'
            ? `local IPv4 changed from ${reason.from} to ${reason.to}`
            : 'stopped';
      if (!this.cfg.autoRetryConnect) return this.fail(new BrokerError('CLIENT_KEEPALIVE', `tunnel lost: ${why}`));
      this.log.warn(`tunnel lost: ${why}; reconnecting`);
      this.setState('reconnecting', why);
    }
    this.setState('stopped', 'stopped by signal');
    return EXIT.OK;
  }

  /** Tears down and makes run() resolve with 0. Safe to call more than once. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.abort.abort();
    this.wakeSleep?.();
    this.endCurrent?.({ kind: 'stop' });
  }

  /** The tunnel's life: hook, keepalive, status refresh; resolves when it ends (after teardown). */
  private async up(n: Negotiated, tunnel: LocalTunnel): Promise<EndReason | undefined> {
    const o = n.offer;
    this.status.session = {
      transport: n.transport,
      version: n.version,
      mechanism: n.mechanism,
      local: `${n.local.address}:${n.local.port}`,
    };
    this.status.tunnel = {
      type: o.type,
      interface: tunnel.tunName,
      clientIpv4: o.clientIpv4,
      serverIpv4: o.serverIpv4,
      clientIpv6: short(o.clientIpv6),
      serverIpv6: short(o.serverIpv6),
      ...(o.prefix ? { prefix: `${short(o.prefix.address)}/${o.prefix.length}` } : {}),
      ...(o.dnsServer ? { dnsServer: short(o.dnsServer) } : {}),
      ...(tunnel.lan
        ? {
            lan: `${tunnel.lan.prefix64}/64 on ${tunnel.lan.interface}, router advertisements: ${tunnel.lan.announcer}`,
          }
        : {}),
      ...(o.keepalive ? { keepaliveIntervalS: o.keepalive.interval } : {}),
    };
    if (this.cfg.hook) {
      try {
        const out = await this.deps.runHook(this.cfg.hook, this.environment(n, tunnel, 'TSP_TUNNEL_CREATION'));
        if (out) this.log.debug('hook output', { output: out });
      } catch (e) {
        await tunnel.close();
        this.fail(e);
        return undefined;
      }
    }
    // inside addresses <-> ; the endpoint is the other family (v4v6: IPv4 inside IPv6)
    const v4v6 = o.type === 'v4v6';
    const [inner, server, endpoint] = v4v6
      ? [o.clientIpv4, o.serverIpv4, short(o.clientIpv6)]
      : [short(o.clientIpv6), short(o.serverIpv6), o.clientIpv4];
    this.log.info(
      `tunnel up: ${o.type} on ${tunnel.tunName}, ${inner} <-> ${server}` +
        (o.prefix ? `, prefix ${short(o.prefix.address)}/${o.prefix.length}` : ''),
      { transport: n.transport, endpoint, keepalive: o.keepalive ? `${o.keepalive.interval}s` : 'off' },
    );
    this.status.counters = tunnel.counters();
    this.status.keepalive = o.keepalive ? { misses: 0, sent: 0 } : undefined;
    this.setState('up');

    let resolveEnd!: (r: EndReason) => void;
    const ended = new Promise<EndReason>((r) => (resolveEnd = r));
    this.endCurrent = resolveEnd;
    if (this.stopping) resolveEnd({ kind: 'stop' });
    let keepalive: Keepalive | undefined;
    if (o.keepalive) {
      keepalive = new Keepalive({
        intervalMs: o.keepalive.interval * 1000,
        timeoutMs: this.cfg.keepaliveTimeoutS * 1000,
        misses: this.cfg.keepaliveMisses,
        probe: this.deps.probe(o.keepalive.address, tunnel.tunName),
        onReply: (rtt) => this.log.debug('keepalive reply', { rttMs: rtt }),
        onMiss: (k) => this.log.warn(`no keepalive reply (${k} of ${this.cfg.keepaliveMisses})`),
        onDead: () => resolveEnd({ kind: 'dead' }),
        clock: this.deps.clock,
      });
      keepalive.start();
    }
    const refresh = this.deps.clock.setInterval(() => {
      this.status.counters = tunnel.counters();
      if (keepalive)
        this.status.keepalive = {
          misses: keepalive.missesInARow,
          sent: keepalive.sent,
          ...(keepalive.lastRttMs !== undefined ? { lastRttMs: keepalive.lastRttMs } : {}),
          ...(keepalive.lastReplyAtMs !== undefined
            ? { lastReplyAt: new Date(keepalive.lastReplyAtMs).toISOString() }
            : {}),
        };
      this.saveStatus();
      // a changed local IPv4 (DHCP, another uplink) means a new session from the new address (§8.3)
      if (this.cfg.clientV4 === 'auto' && n.transport === 'udp')
        this.deps.localAddressToward(n.server.address).then(
          (now) => now !== n.local.address && resolveEnd({ kind: 'moved', from: n.local.address, to: now }),
          () => {},
        );
    }, STATUS_INTERVAL_MS);
    const reason = await ended;
    this.endCurrent = undefined;
    refresh.cancel();
    keepalive?.stop();
    this.status.counters = tunnel.counters();
    await tunnel.close();
    this.log.info(`tunnel down: ${tunnel.tunName} removed`);
    if (this.cfg.hook)
      await this.deps
        .runHook(this.cfg.hook, this.environment(n, tunnel, 'TSP_TUNNEL_TEARDOWN'))
        .catch((e: unknown) => this.log.warn(isBrokerError(e) ? e.message : String(e)));
    this.status.tunnel = undefined;
    this.status.keepalive = undefined;
    return reason;
  }

  private environment(n: Negotiated, tunnel: LocalTunnel, operation: TspOperation): Record<string, string> {
    return tspEnvironment({
      offer: n.offer,
      operation,
      hostType: this.cfg.hostType,
      tunName: tunnel.tunName,
      homeInterface: this.cfg.lanInterface,
      homeDir: this.homeDir,
    });
  }

  private fail(e: unknown): number {
    this.failure = e;
    this.setState('failed', isBrokerError(e) ? e.message : String(e));
    return exitCodeFor(e);
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopping) return Promise.resolve();
    const s = sleep(this.deps.clock, ms);
    this.wakeSleep = s.wake;
    return s.done;
  }

  private isoNow(): string {
    return new Date(this.deps.clock.now()).toISOString();
  }

  private setState(state: TspcState, reason?: string): void {
    const now = this.isoNow();
    if (state !== this.status.state) this.status.since = now;
    this.status.state = state;
    if (reason === undefined) delete this.status.reason;
    else this.status.reason = reason;
    if (state !== 'up') {
      delete this.status.counters;
      if (state !== 'stopped' && state !== 'failed') delete this.status.session;
    }
    this.saveStatus();
  }

  private saveStatus(): void {
    this.status.updatedAt = this.isoNow();
    try {
      this.deps.writeStatus(this.cfg.statusFile, this.status);
    } catch (e) {
      this.log.debug('cannot write the status file', { file: this.cfg.statusFile, error: (e as Error).message });
    }
  }
}

/** Offers write IPv6 fully expanded (for gogoc); people read the short form. */
function short(address: string): string {
  return ipaddr.IPv6.parse(address).toString();
}

/** The directory gogoc scripts get as TSP_HOME_DIR: the configuration file's, or the working directory. */
export function homeDirFor(configFile: string | undefined): string {
  return configFile ? path.dirname(path.resolve(configFile)) : process.cwd();
}
