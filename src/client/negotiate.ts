/** @module client/negotiate: runs TSP sessions (protocol/client/session.ts) over real sockets until a tunnel is
 *  established or the attempt fails. A thin adapter (docs/style.md §3): it moves bytes, arms the one timer the
 *  session asks for, and makes the socket decisions the session leaves to its caller:
 *
 *    for each version 2.0.2, 2.0.1, 2.0.0:   new socket --session--> established | 302 (next version) | failed
 *    v6v4/v6anyv4 with no UDP answer at all:  the same over TCP at once (gogoc's daemon does this, §2.1)
 *
 *  UDP: a socket connected to the broker, so only its datagrams arrive. For v6udpv4 the caller then binds the
 *  tunnel's socket to the same local port (the NAT binding the broker saw is the one the data uses). TCP: the
 *  connection is closed once the tunnel is established (a v6v4 tunnel does not depend on it, §2.5). */

import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { sleep, systemClock, type Clock, type Timer } from '../clock.js';
import { BrokerError, isBrokerError } from '../errors.js';
import { SUPPORTED_VERSIONS, type TspVersion } from '../protocol/constants.js';
import {
  ClientSession,
  type ClientEvent,
  type ClientSessionOptions,
  type ClientStep,
} from '../protocol/client/session.js';
import type { Offer } from '../protocol/xml.js';
import type { ClientLog } from './log.js';
import type { TspcConfig } from './config.js';

/** gogoc opens the next socket about 5 ms after a 302 (§4). */
const FALLBACK_PAUSE_MS = 5;
/** A TCP connect that neither succeeds nor fails within this is "unreachable". */
const TCP_CONNECT_TIMEOUT_MS = 6_000;

export interface Negotiated {
  offer: Offer;
  transport: 'udp' | 'tcp';
  version: TspVersion;
  mechanism: string;
  /** The broker's address (IPv4; IPv6 for v4v6) and TSP port as we reached them. */
  server: { address: string; port: number };
  /** Our socket's local address and port (the port matters for v6udpv4). */
  local: { address: string; port: number };
}

export interface NegotiateTarget {
  host: string;
  port: number;
  /** `server=` as configured: the DIGEST digest-uri is built from it. */
  text: string;
}

/** Resolves a host name to IPv4 (TSP for v6*v4 runs over IPv4), or to IPv6 for v4v6 (TSP over IPv6). */
async function resolveServer(host: string, family: 4 | 6): Promise<string> {
  if (net.isIP(host) === family) return host;
  try {
    return (await lookup(host, { family })).address;
  } catch (e) {
    throw new BrokerError('CLIENT_UNREACHABLE', `cannot resolve ${host}: ${(e as Error).message}`, { cause: e });
  }
}

/** One whole negotiation: versions, and UDP then TCP where the mode allows. Rejects with a CLIENT_* error.
 *  `clock` gives the sessions their time and arms their retransmission, deadline and connect timers. */
export async function negotiate(
  cfg: TspcConfig,
  target: NegotiateTarget,
  log: ClientLog,
  signal?: AbortSignal,
  clock: Clock = systemClock,
): Promise<Negotiated> {
  const address = await resolveServer(target.host, cfg.tunnelMode === 'v4v6' ? 6 : 4);
  const server = { address, port: target.port };
  const transports: ('udp' | 'tcp')[] =
    cfg.transport === 'tcp' ? ['tcp'] : cfg.tunnelMode === 'v6udpv4' ? ['udp'] : ['udp', 'tcp'];
  let lastError: unknown;
  for (const transport of transports) {
    try {
      return await negotiateOver(transport, cfg, target, server, log, signal, clock);
    } catch (e) {
      lastError = e;
      // Only "nobody answered on UDP" moves on to TCP: any answer means UDP works and the failure is real.
      if (!(isBrokerError(e) && e.code === 'CLIENT_UNREACHABLE' && transport === 'udp')) throw e;
      if (transports.length > 1) log.info('no answer over UDP; trying TCP', { server: target.text });
    }
  }
  throw lastError;
}

async function negotiateOver(
  transport: 'udp' | 'tcp',
  cfg: TspcConfig,
  target: NegotiateTarget,
  server: { address: string; port: number },
  log: ClientLog,
  signal: AbortSignal | undefined,
  clock: Clock,
): Promise<Negotiated> {
  let version: TspVersion = SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1]!;
  for (;;) {
    const run = transport === 'udp' ? runUdp : runTcp;
    const result = await run(cfg, target, server, version, log, signal, clock);
    if ('offer' in result) return result;
    log.info(`the server refused TSP ${version}; trying ${result.next} on a new socket`);
    version = result.next;
    await sleep(clock, FALLBACK_PAUSE_MS).done;
  }
}

function sessionOptions(
  cfg: TspcConfig,
  target: NegotiateTarget,
  transport: 'udp' | 'tcp',
  version: TspVersion,
  local: string,
  nowMs: number,
): ClientSessionOptions {
  const v4v6 = cfg.tunnelMode === 'v4v6';
  return {
    transport,
    version,
    auth: { method: cfg.authMethod, username: cfg.userid, password: cfg.passwd },
    serverString: target.text,
    request: {
      mode: cfg.tunnelMode,
      clientIpv4: v4v6 ? '' : local,
      ...(v4v6 ? { clientIpv6: local } : {}),
      ...(cfg.keepalive ? { keepaliveInterval: cfg.keepaliveIntervalS } : {}),
      ...(cfg.hostType === 'router' ? { prefixLength: cfg.prefixLen, dnsServers: cfg.dnsServers } : {}),
    },
    // gogoc's cnonce is its Unix time in decimal (§5.4)
    cnonce: String(Math.floor(nowMs / 1000)),
    nowMs,
  };
}

type RunResult = Negotiated | { next: TspVersion };

/** The local address configured for the session's family (client_v6 for v4v6, client_v4 otherwise), or
 *  undefined for the kernel's choice. */
function localChoice(cfg: TspcConfig): string | undefined {
  const chosen = cfg.tunnelMode === 'v4v6' ? cfg.clientV6 : cfg.clientV4;
  return chosen === 'auto' ? undefined : chosen;
}

/** Drives one session: applies each step, re-arms the timer, settles on the first decisive event. */
function drive(
  session: ClientSession,
  write: (b: Buffer) => void,
  log: ClientLog,
  clock: Clock,
  settle: (outcome: { events: ClientEvent[] } | { error: unknown }) => void,
): { apply: (step: ClientStep) => void; stop: () => void } {
  let timer: Timer | undefined;
  let stopped = false;
  const stop = () => {
    stopped = true;
    timer?.cancel();
  };
  const apply = (step: ClientStep) => {
    if (stopped) return;
    try {
      for (const b of step.send) write(b);
    } catch (e) {
      stop();
      settle({ error: new BrokerError('CLIENT_IO', `cannot send: ${(e as Error).message}`, { cause: e }) });
      return;
    }
    for (const e of step.events) {
      if (e.type === 'capability')
        log.debug('server capability', { tunnels: e.tunnelTypes.join(','), auth: e.mechanisms.join(',') });
      if (e.type === 'authenticated') log.debug('authenticated', { mechanism: e.mechanism });
    }
    timer?.cancel();
    timer = undefined;
    if (step.done) {
      stop();
      settle({ events: step.events });
    } else if (step.wakeAtMs !== undefined)
      timer = clock.setTimeout(() => apply(session.timeout(clock.now())), step.wakeAtMs - clock.now());
  };
  return { apply, stop };
}

/** Turns the final events into a result or an error. */
function outcome(events: ClientEvent[], version: TspVersion): { next: TspVersion } | { offer: Offer } {
  for (const e of events) {
    if (e.type === 'versionRefused') return { next: e.next };
    if (e.type === 'established') return { offer: e.offer };
    if (e.type === 'failed') {
      const err = e.error;
      if (e.brokers) (err as BrokerError & { brokers?: string[] }).brokers = e.brokers;
      throw err;
    }
  }
  throw new BrokerError('CLIENT_PROTOCOL', `TSP ${version} session ended without a result`);
}

/** Settles a run from how its session ended: the next version to try, the negotiated tunnel, or the error. */
function settle(
  o: { error: unknown } | { events: ClientEvent[] },
  how: Omit<Negotiated, 'offer'>,
  resolve: (r: RunResult) => void,
  reject: (e: unknown) => void,
): void {
  if ('error' in o) return reject(o.error);
  try {
    const r = outcome(o.events, how.version);
    resolve('next' in r ? r : { ...how, offer: r.offer });
  } catch (e) {
    reject(e);
  }
}

function runUdp(
  cfg: TspcConfig,
  target: NegotiateTarget,
  server: { address: string; port: number },
  version: TspVersion,
  log: ClientLog,
  signal: AbortSignal | undefined,
  clock: Clock,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(server.address.includes(':') ? 'udp6' : 'udp4');
    let session: ClientSession | undefined;
    let driver: ReturnType<typeof drive> | undefined;
    let done = false;
    const onAbort = () => finish({ error: new BrokerError('CLIENT_IO', 'stopped') });
    const finish = (o: { events: ClientEvent[] } | { error: unknown }) => {
      if (done) return;
      done = true;
      driver?.stop();
      signal?.removeEventListener('abort', onAbort);
      let local = { address: '', port: 0 };
      try {
        const a = socket.address();
        local = { address: a.address, port: a.port };
      } catch {
        // never bound
      }
      socket.close();
      settle(o, { transport: 'udp', version, mechanism: session?.authMechanism ?? '', server, local }, resolve, reject);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (e) =>
      finish({ error: new BrokerError('CLIENT_IO', `UDP socket: ${e.message}`, { cause: e }) }),
    );
    socket.on('message', (m) => {
      if (session && driver) driver.apply(session.receive(m, clock.now()));
    });
    const bindAddress = localChoice(cfg);
    socket.bind({ port: 0, ...(bindAddress ? { address: bindAddress } : {}) }, () => {
      socket.connect(server.port, server.address, () => {
        if (done) return;
        const clientIpv4 = socket.address().address;
        session = new ClientSession(sessionOptions(cfg, target, 'udp', version, clientIpv4, clock.now()));
        driver = drive(
          session,
          (b) =>
            // ECONNREFUSED (an ICMP error from a closed port) is left to the retransmission timer
            socket.send(b, (err) => err && log.debug('UDP send failed', { error: err.message })),
          log,
          clock,
          finish,
        );
        log.debug('TSP over UDP', { server: `${server.address}:${server.port}`, version, local: clientIpv4 });
        driver.apply(session.start(clock.now()));
      });
    });
  });
}

function runTcp(
  cfg: TspcConfig,
  target: NegotiateTarget,
  server: { address: string; port: number },
  version: TspVersion,
  log: ClientLog,
  signal: AbortSignal | undefined,
  clock: Clock,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host: server.address,
      port: server.port,
      ...(localChoice(cfg) ? { localAddress: localChoice(cfg) } : {}),
    });
    let session: ClientSession | undefined;
    let driver: ReturnType<typeof drive> | undefined;
    let done = false;
    const connectTimer = clock.setTimeout(
      () => finish({ error: new BrokerError('CLIENT_UNREACHABLE', `TCP connect to ${target.text} timed out`) }),
      TCP_CONNECT_TIMEOUT_MS,
    );
    const onAbort = () => finish({ error: new BrokerError('CLIENT_IO', 'stopped') });
    const finish = (o: { events: ClientEvent[] } | { error: unknown }) => {
      if (done) return;
      done = true;
      connectTimer.cancel();
      driver?.stop();
      signal?.removeEventListener('abort', onAbort);
      const local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
      socket.end();
      socket.destroySoon();
      settle(o, { transport: 'tcp', version, mechanism: session?.authMechanism ?? '', server, local }, resolve, reject);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      const unreachable = ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'].includes(e.code ?? '');
      if (session && driver && !unreachable) driver.apply(session.closed(clock.now(), `TCP: ${e.message}`));
      else
        finish({
          error: new BrokerError(
            unreachable ? 'CLIENT_UNREACHABLE' : 'CLIENT_IO',
            `TCP to ${target.text}: ${e.message}`,
            {
              cause: e,
            },
          ),
        });
    });
    socket.on('end', () => {
      if (session && driver) driver.apply(session.closed(clock.now()));
    });
    socket.on('data', (chunk: Buffer) => {
      if (session && driver) driver.apply(session.receive(chunk, clock.now()));
    });
    socket.on('connect', () => {
      connectTimer.cancel();
      socket.setNoDelay(true);
      const local = socket.localAddress ?? '0.0.0.0';
      session = new ClientSession(sessionOptions(cfg, target, 'tcp', version, local, clock.now()));
      driver = drive(session, (b) => socket.write(b), log, clock, finish);
      log.debug('TSP over TCP', { server: `${server.address}:${server.port}`, version });
      driver.apply(session.start(clock.now()));
    });
  });
}
