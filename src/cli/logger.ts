/** @module cli/logger: the logger of `tsp-broker serve`. Two formats of the same pino records (log.format):
 *  - `json`: one JSON object per line, `time` as an ISO 8601 UTC string, for journald, files and collectors;
 *  - `human`: `[time] LEVEL: message key=value ...` on one line (an error's stack below it), for a person at a
 *    terminal, formatted by pino-pretty's prettyFactory in this process and written synchronously, so nothing
 *    is lost when the process exits right after logging and no worker thread is started.
 *  `auto` (the default) is human when stdout is a terminal, JSON otherwise. */

import { pino, type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';
import type { Config } from '../config/schema.js';

export type LogFormat = Config['log']['format'];

/** The format `auto` stands for on this output. */
export function resolveLogFormat(format: LogFormat, isTTY: boolean): 'human' | 'json' {
  return format === 'auto' ? (isTTY ? 'human' : 'json') : format;
}

/** Keys every record has that the human line already shows, or that say nothing to a person reading it. */
const HIDDEN = new Set(['time', 'level', 'msg', 'pid', 'hostname', 'service']);

/** A value as it reads after `key=`: bare when it is one plain word, else JSON (quoted, escaped). */
function show(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=\\]+$/.test(v) ? v : JSON.stringify(v);
  if (v instanceof Object) return JSON.stringify(v);
  return String(v);
}

/** The message followed by the record's own fields as key=value; an error as err=message (stack after). */
function messageWithFields(log: Record<string, unknown>, messageKey: string): string {
  let line = String(log[messageKey] ?? '');
  let stack = '';
  for (const [k, v] of Object.entries(log)) {
    if (HIDDEN.has(k) || k === messageKey || v === undefined) continue;
    const err = v as { message?: unknown; stack?: unknown } | null;
    if (err !== null && typeof err === 'object' && typeof err.stack === 'string') {
      line += ` ${k}=${show(err.message ?? '')}`;
      stack += `\n    ${err.stack.replace(/\n/g, '\n    ')}`;
      continue;
    }
    line += ` ${k}=${show(v)}`;
  }
  return line + stack;
}

export function createLogger(
  opts: { level: Config['log']['level']; format: LogFormat },
  out: { fd: number; isTTY?: boolean } = { fd: 1, isTTY: process.stdout.isTTY },
): Logger {
  const base = { level: opts.level, base: { service: 'tsp-broker' } };
  if (resolveLogFormat(opts.format, out.isTTY === true) === 'json')
    return pino({ ...base, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: out.fd, sync: true }));
  const prettify = prettyFactory({
    colorize: out.isTTY === true,
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
    ignore: 'pid,hostname,service',
    hideObject: true,
    messageFormat: (log, messageKey) => messageWithFields(log, messageKey),
  });
  const dest = pino.destination({ fd: out.fd, sync: true });
  return pino(base, { write: (line: string) => dest.write(prettify(line)) });
}
