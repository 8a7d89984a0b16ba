/** @module config/load: finds and reads a JSON configuration file, lays command-line overrides over it, and
 *  validates the result through the one model (schema.ts). Errors name the file or the key and the problem.
 *
 *  Which file: `--config FILE` when given (a missing one is an error); else the standard file, the path in
 *  TSP_BROKER_CONFIG or /etc/tsp-broker/config.json, when it exists (a missing one is fine: the defaults
 *  apply). Relative paths in a file (store.path, the TLS cert and key) are taken relative to the file's own
 *  directory, so every command finds the same database whatever the current directory. */

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { BrokerError } from '../errors.js';
import { parseConfig, type Config } from './schema.js';

export type Overrides = Record<string, unknown>;

/** Sets `a.b.c` in a nested object. */
export function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  let o = target;
  for (const k of keys.slice(0, -1)) {
    const next = o[k];
    if (next === undefined || next === null || typeof next !== 'object' || Array.isArray(next)) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]!] = value;
}

export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new BrokerError('CFG_FILE', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new BrokerError('CFG_FILE', `${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new BrokerError('CFG_FILE', `${file} must hold a JSON object`);
  return raw as Record<string, unknown>;
}

/** Where the configuration file is looked for when no `--config` is given (TSP_BROKER_CONFIG overrides it). */
export const STANDARD_CONFIG_FILE = '/etc/tsp-broker/config.json';

/** The configuration file in use: `file` is what to read (absolute; undefined: none, the defaults apply);
 *  `standard` is the standard place that was looked at when no --config was given. */
export interface ConfigSource {
  file: string | undefined;
  explicit: boolean;
  standard: string;
}

/** `--config` wins; else the standard file (TSP_BROKER_CONFIG, else /etc/tsp-broker/config.json) if it exists. */
export function findConfigFile(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): ConfigSource {
  const standard = path.resolve(env.TSP_BROKER_CONFIG || STANDARD_CONFIG_FILE);
  if (explicit !== undefined) return { file: path.resolve(explicit), explicit: true, standard };
  return { file: existsSync(standard) ? standard : undefined, explicit: false, standard };
}

/** Keys holding file paths: relative values in a configuration file are relative to the file's directory. */
const PATH_KEYS = [
  ['store', 'path'],
  ['admin', 'tls', 'cert'],
  ['admin', 'tls', 'key'],
  ['selfService', 'tls', 'cert'],
  ['selfService', 'tls', 'key'],
] as const;

function resolvePathsFrom(raw: Record<string, unknown>, dir: string): void {
  for (const keys of PATH_KEYS) {
    let o: unknown = raw;
    for (const k of keys.slice(0, -1))
      o = o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined;
    if (o === null || typeof o !== 'object') continue;
    const last = keys[keys.length - 1]!;
    const v = (o as Record<string, unknown>)[last];
    if (typeof v === 'string' && v !== '' && v !== ':memory:' && !path.isAbsolute(v))
      (o as Record<string, unknown>)[last] = path.resolve(dir, v);
  }
}

/** File (optional), then overrides given as dotted keys (`listen.port` -> 3653). Relative paths in the file
 *  resolve against its directory; those in overrides (flags) against the current directory, as usual. */
export function loadConfig(file: string | undefined, overrides: Overrides = {}): Config {
  const raw = file ? readConfigFile(file) : {};
  if (file) resolvePathsFrom(raw, path.dirname(path.resolve(file)));
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) setPath(raw, k, v);
  try {
    return parseConfig(raw);
  } catch (e) {
    if (e instanceof BrokerError && file) throw new BrokerError('CFG_INVALID', `${file}:\n${e.message}`, { cause: e });
    throw e;
  }
}
