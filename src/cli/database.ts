/** @module cli/database: which database a `tsp-broker` command opens, said so an operator can act on it.
 *  Commands that read or change what is already there (user list, tunnel kill, token revoke, ...) never create
 *  a database: a missing SQLite file is an error naming the absolute path looked at and where that path came
 *  from, instead of an empty new file that silently lists nobody. `serve` and `user add` may create one. */

import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import type { ConfigSource } from '../config/load.js';
import { BrokerError } from '../errors.js';
import { openStore } from '../store/open.js';
import type { Store } from '../store/types.js';

/** The SQLite file a configuration names, absolute (undefined for PostgreSQL or an in-memory database). */
export function sqliteFile(config: Config): string | undefined {
  if (config.store.driver !== 'sqlite' || config.store.path === ':memory:') return undefined;
  return path.resolve(config.store.path);
}

/** Where store.path came from, in words: the --db flag, a configuration file, or the default. */
export function describeStorePath(config: Config, source: ConfigSource, dbFlag: unknown): string {
  if (dbFlag !== undefined) return `--db ${String(dbFlag)}`;
  // a relative path in a file was made absolute (config/load.ts): a relative one left is the default
  if (source.file !== undefined && path.isAbsolute(config.store.path)) return `store.path in ${source.file}`;
  const why =
    source.file !== undefined ? `${source.file} sets no store.path` : `no configuration file at ${source.standard}`;
  return `the default store.path ${config.store.path}, relative to the current directory ${process.cwd()}; ${why}`;
}

/** Opens the configured store. With `mustExist`, a missing SQLite file is a CFG_INVALID error that says where
 *  it looked and how to point elsewhere; nothing is created. */
export async function openCliStore(
  config: Config,
  source: ConfigSource,
  dbFlag: unknown,
  opts: { mustExist: boolean },
): Promise<{ store: Store; created: string | undefined }> {
  const file = sqliteFile(config);
  const exists = file === undefined || existsSync(file);
  if (!exists && opts.mustExist)
    throw new BrokerError(
      'CFG_INVALID',
      `no database found at ${file} (${describeStorePath(config, source, dbFlag)}). Name the broker's ` +
        `database with --config FILE or --db PATH (or set TSP_BROKER_CONFIG); \`tsp-broker serve\` and ` +
        `\`tsp-broker user add\` create a new one`,
    );
  const store = await openStore(config.store);
  return { store, created: exists ? undefined : file };
}
