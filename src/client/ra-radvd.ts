/** @module client/ra-radvd: router advertisements on the LAN by radvd (Debian's `radvd`), when it is installed
 *  (ra=radvd, or ra=auto). tspc owns the daemon for the tunnel's life:
 *
 *    start: write radvd-<lan>.conf next to the status file (the /64, RDNSS, MTU: the same values as the
 *           builtin announcer), check it with `radvd --configtest`, run `radvd --nodaemon` with its own pid file
 *           and log to stderr (copied into tspc's log at debug, and the last lines when it dies early)
 *    stop:  SIGTERM (radvd then sends its final RAs with router lifetime 0), wait for it (SIGKILL after
 *           STOP_TIMEOUT_MS), remove the files
 *
 *  A new tunnel (a reconnect, perhaps with another prefix) gets a new configuration and a new radvd. radvd runs
 *  under `setpriv --pdeathsig TERM` when setpriv (util-linux) is there, so a tspc killed with SIGKILL does not
 *  leave it announcing a prefix that no longer routes anywhere. */

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BrokerError } from '../errors.js';
import type { ClientLog } from './log.js';
import {
  MAX_RTR_ADV_INTERVAL_S,
  MIN_RTR_ADV_INTERVAL_S,
  PREFIX_PREFERRED_LIFETIME_S,
  PREFIX_VALID_LIFETIME_S,
  RDNSS_LIFETIME_S,
  ROUTER_LIFETIME_S,
  type Announcement,
} from './ra-packet.js';

/** radvd and setpriv live in sbin on Debian, which a service's PATH may lack. */
const SEARCH_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
/** How long radvd gets to send its final RAs and exit on SIGTERM. */
export const STOP_TIMEOUT_MS = 5_000;
/** Lines of radvd's stderr kept for the message when it dies. */
const KEPT_LINES = 10;

/** The executable's path when `name` is installed (PATH, then the sbin directories), else undefined. */
export function findProgram(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SEARCH_DIRS];
  for (const dir of dirs) {
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** radvd.conf(5) for the announcement. */
export function radvdConfig(a: Announcement): string {
  const lines = [
    '# Written by tspc for the prefix its tunnel broker delegated; rewritten on every tunnel, removed on exit.',
    `interface ${a.lanInterface} {`,
    '  AdvSendAdvert on;',
    `  MinRtrAdvInterval ${MIN_RTR_ADV_INTERVAL_S};`,
    `  MaxRtrAdvInterval ${MAX_RTR_ADV_INTERVAL_S};`,
    `  AdvDefaultLifetime ${ROUTER_LIFETIME_S};`,
    `  AdvLinkMTU ${a.mtu};`,
    `  prefix ${a.prefix64}/64 {`,
    '    AdvOnLink on;',
    '    AdvAutonomous on;',
    `    AdvValidLifetime ${PREFIX_VALID_LIFETIME_S};`,
    `    AdvPreferredLifetime ${PREFIX_PREFERRED_LIFETIME_S};`,
    // radvd deprecates the prefix in its final RAs, as the builtin announcer does
    '    DeprecatePrefix on;',
    '  };',
  ];
  if (a.dnsServers.length > 0)
    lines.push(`  RDNSS ${a.dnsServers.join(' ')} {`, `    AdvRDNSSLifetime ${RDNSS_LIFETIME_S};`, '  };');
  lines.push('};', '');
  return lines.join('\n');
}

export class RadvdAnnouncer {
  readonly kind = 'radvd';
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopping = false;
  private readonly confFile: string;
  private readonly pidFile: string;

  constructor(
    private readonly a: Announcement,
    private readonly radvd: string,
    runDir: string,
    private readonly log: ClientLog,
  ) {
    this.confFile = path.join(runDir, `radvd-${a.lanInterface}.conf`);
    this.pidFile = path.join(runDir, `radvd-${a.lanInterface}.pid`);
  }

  /** Writes and checks the configuration and starts radvd. Throws CLIENT_SETUP naming what failed. */
  async start(): Promise<void> {
    mkdirSync(path.dirname(this.confFile), { recursive: true });
    // radvd refuses a configuration file that others may write (chmod too: a file left behind keeps its mode)
    // a fresh file (never through a link someone left in the directory), 0644 as radvd wants
    rmSync(this.confFile, { force: true });
    writeFileSync(this.confFile, radvdConfig(this.a), { mode: 0o644, flag: 'wx' });
    chmodSync(this.confFile, 0o644);
    await new Promise<void>((resolve, reject) =>
      execFile(this.radvd, ['--configtest', '--config', this.confFile], { timeout: 10_000 }, (e, _out, err) =>
        e
          ? reject(new BrokerError('CLIENT_SETUP', `ra: radvd refused ${this.confFile}: ${String(err).trim() || e}`))
          : resolve(),
      ),
    );
    const args = ['--nodaemon', '--config', this.confFile, '--pidfile', this.pidFile, '--logmethod', 'stderr'];
    const setpriv = findProgram('setpriv');
    const child = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'TERM', this.radvd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(this.radvd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    const kept: string[] = [];
    let partial = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines.filter(Boolean)) {
        this.log.debug(`radvd: ${line}`);
        kept.push(line);
        if (kept.length > KEPT_LINES) kept.shift();
      }
    });
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        if (!this.stopping)
          this.log.warn(`radvd exited (${signal ?? `status ${code}`}): the LAN gets no router advertisements`, {
            interface: this.a.lanInterface,
            output: kept.join(' | '),
          });
        resolve();
      });
      // could not be started at all (then no 'exit' follows)
      child.once('error', (e) => {
        this.log.warn(`radvd: ${e.message}: the LAN gets no router advertisements`);
        resolve();
      });
    });
    this.log.info(`radvd announces ${this.a.prefix64}/64 on ${this.a.lanInterface}`, {
      pid: child.pid,
      config: this.confFile,
    });
  }

  /** SIGTERM (radvd's final RAs), bounded wait, files removed. Idempotent; never rejects. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    this.stopping = true;
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await this.exited;
      clearTimeout(timer);
    }
    for (const file of [this.confFile, this.pidFile]) {
      try {
        rmSync(file, { force: true });
      } catch (e) {
        this.log.warn(`cannot remove ${file}: ${(e as Error).message}`);
      }
    }
  }
}
