/** @module cli/startup: what `tsp-broker serve` tells an operator once it is up: the database it uses, where
 *  the admin UI is (a URL to open), and, while no enabled admin account exists, the exact command that creates
 *  one against this same database from any directory. */

import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { ConfigSource } from '../config/load.js';
import type { Store } from '../store/types.js';
import type { RunningBroker } from './start-broker.js';
import { sqliteFile } from './database.js';

/** `scheme://address:port/`, with brackets around an IPv6 address. */
export function urlFor(tls: boolean, address: string, port: number): string {
  return `${tls ? 'https' : 'http'}://${address.includes(':') ? `[${address}]` : address}:${port}/`;
}

/** How an operator reaches a listener: its URL, or for a wildcard address what that means and a local URL. */
export function describeListener(what: string, tls: boolean, address: string, port: number): string {
  if (address === '0.0.0.0' || address === '::') {
    const all = address === '::' ? 'every address' : 'every IPv4 address';
    return `${what} listening on ${all} (${address}) port ${port}: ${urlFor(tls, address === '::' ? '::1' : '127.0.0.1', port)} from this machine, this host's own address from elsewhere`;
  }
  return `${what} at ${urlFor(tls, address, port)}`;
}

/** `tsp-broker` when it is on the PATH, else this checkout's bin/tsp-broker.js relative to the current
 *  directory (npm start in a checkout, where nothing is on the PATH). */
export function programName(env: NodeJS.ProcessEnv = process.env): string {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    try {
      accessSync(path.join(dir, 'tsp-broker'), constants.X_OK);
      return 'tsp-broker';
    } catch {
      // not here
    }
  }
  const bin = fileURLToPath(new URL('../../bin/tsp-broker.js', import.meta.url));
  const rel = path.relative(process.cwd(), bin);
  return rel.startsWith('..') || path.isAbsolute(rel) ? bin : rel;
}

/** The command that creates an admin account in the database this broker uses, from any directory. */
export function adminCommand(
  running: Pick<RunningBroker, 'config'>,
  source: ConfigSource,
  flags: Record<string, unknown>,
  program = programName(),
): string {
  const args = [program, 'user', 'add', 'admin', '--admin', '--web-only'];
  if (source.file !== undefined) args.push('--config', source.file);
  const file = sqliteFile(running.config);
  // a --db flag, or the default path (relative to this directory): name the file itself
  if (file !== undefined && (flags.db !== undefined || !path.isAbsolute(running.config.store.path)))
    args.push('--db', file);
  if (flags.allowGroupReadable) args.push('--allow-group-readable');
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Whether the store holds an admin account that can sign in. */
export async function hasEnabledAdmin(store: Store): Promise<boolean> {
  for (let offset = 0; ; offset += 500) {
    const page = await store.listAccounts({ offset, limit: 500 });
    if (page.items.some((a) => a.role === 'admin' && !a.disabled)) return true;
    if (page.items.length < 500) return false;
  }
}

export async function logStartup(
  running: RunningBroker,
  source: ConfigSource,
  flags: Record<string, unknown>,
  log: Logger,
): Promise<void> {
  const c = running.config;
  const file = sqliteFile(c);
  log.info(
    `database: ${file ?? (c.store.driver === 'postgres' ? 'PostgreSQL (store.url)' : c.store.path)}` +
      (source.file !== undefined ? `; configuration: ${source.file}` : `; no configuration file (${source.standard})`),
  );
  if (running.admin) log.info(describeListener('admin UI', c.admin.tls !== null, c.admin.address, running.admin.port));
  else log.info('admin UI off (admin.enabled false, or --no-admin)');
  if (running.selfService)
    log.info(
      describeListener(
        'self-service pages (sign-in, /me)',
        c.selfService.tls !== null,
        c.selfService.address,
        running.selfService.port,
      ),
    );
  if (running.admin && !(await hasEnabledAdmin(running.store)))
    log.warn(`no admin account yet: create one (any name for admin) with: ${adminCommand(running, source, flags)}`);
}
