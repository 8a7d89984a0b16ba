/** @module client/ra: which announcer gives the LAN its router advertisements in router mode (the `ra` key):
 *
 *    auto     radvd when it is installed (client/ra-radvd.ts), else tspc's own (client/ra-builtin.ts)
 *    radvd    radvd, and a setup error when it is not installed
 *    builtin  tspc's own, even when radvd is there
 *    off      none: the LAN gets its address and route, hosts are configured by hand or by a hook
 *
 *  local-setup starts the announcer once the LAN has its address and forwarding is on, and stops it (final RAs
 *  with router lifetime 0) as the first step of the teardown, so every tunnel, and every prefix a reconnect
 *  brings, gets its own. */

import { systemClock } from '../clock.js';
import { BrokerError } from '../errors.js';
import type { RaMode } from './config.js';
import type { ClientLog } from './log.js';
import { BuiltinAnnouncer, interfaceLink, openRaSocket } from './ra-builtin.js';
import type { Announcement } from './ra-packet.js';
import { findProgram, RadvdAnnouncer } from './ra-radvd.js';

export interface LanAnnouncer {
  readonly kind: 'radvd' | 'builtin';
  /** Final RAs, then nothing more is sent. Never rejects. */
  stop(): Promise<void>;
}

/** Starts the announcer `mode` asks for (undefined for off); ra=auto falls back to the builtin one when radvd
 *  is missing or does not start. Throws CLIENT_SETUP naming the `ra` key when radvd is required but missing,
 *  or when the announcer cannot start. `runDir` holds radvd's files; `find`
 *  looks programs up (a seam for the test of a host without radvd). */
export async function startLanAnnouncer(
  mode: RaMode,
  a: Announcement,
  runDir: string,
  log: ClientLog,
  find: (program: string) => string | undefined = findProgram,
): Promise<LanAnnouncer | undefined> {
  if (mode === 'off') return undefined;
  const radvd = mode === 'builtin' ? undefined : find('radvd');
  if (mode === 'radvd' && !radvd)
    throw new BrokerError('CLIENT_SETUP', 'ra=radvd: radvd is not installed (apt-get install radvd, or ra=builtin)');
  if (radvd) {
    const announcer = new RadvdAnnouncer(a, radvd, runDir, log);
    try {
      await announcer.start();
      return announcer;
    } catch (e) {
      await announcer.stop();
      // ra=radvd asked for radvd: its failure is the answer; ra=auto still has the builtin announcer
      if (mode === 'radvd') throw e;
      log.warn(`radvd did not start (${(e as Error).message}): using the builtin router advertisements`);
    }
  }
  const announcer = new BuiltinAnnouncer(a, log, {
    clock: systemClock,
    open: openRaSocket,
    link: interfaceLink,
    random: Math.random,
  });
  announcer.start();
  log.info(`announcing ${a.prefix64}/64 on ${a.lanInterface} (builtin router advertisements)`, {
    dns: a.dnsServers.join(','),
  });
  return announcer;
}
