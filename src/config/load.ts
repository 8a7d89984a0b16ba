/** @module config/load: reads a JSON configuration file, lays command-line overrides over it, and validates
 *  the result through the one model (schema.ts). Errors name the file or the key and the problem. */

import { readFileSync } from 'node:fs';
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

/** File (optional), then overrides given as dotted keys (`listen.port` -> 3653). */
export function loadConfig(file: string | undefined, overrides: Overrides = {}): Config {
  const raw = file ? readConfigFile(file) : {};
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) setPath(raw, k, v);
  try {
    return parseConfig(raw);
  } catch (e) {
    if (e instanceof BrokerError && file) throw new BrokerError('CFG_INVALID', `${file}:\n${e.message}`, { cause: e });
    throw e;
  }
}
