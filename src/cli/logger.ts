/** @module cli/logger: the logger of `tsp-broker serve`. Two formats of the same pino records (log.format):
 *  - `json`: one JSON object per line, `time` as an ISO 8601 UTC string, for journald, files and collectors;
 *  - `human`: `[time] LEVEL: message key=value ...` on one line (an error's stack below it), for a person at a
 *    terminal, formatted by pino-pretty's prettyFactory in this process (no worker thread is started).
 *  `auto` (the default) is human when stdout is a terminal, JSON otherwise.
 *
 *  Either way the lines logged during one turn of the event loop are written together, in order, with one
 *  write(2) when the turn ends (TurnWriter): under a reconnect storm the broker logs two lines a session, and
 *  one write each was about 4 % of its CPU. A line waits at most for the end of its turn (or of the
 *  synchronous step it was logged before); on process exit (process.exit, an uncaught exception) what waits is
 *  written synchronously first, and the CLI flushes (flushLogs) before its last words on stderr. What ends the
 *  process without an exit (kill -9, a signal with no handler, V8 running out of memory) loses the lines of
 *  the turn it lands in. */

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

/** Where pino writes: gathers the lines of one event-loop turn and writes them with one synchronous write at
 *  its end (setImmediate), or at once when they reach FLUSH_AT bytes or the process exits. */
class TurnWriter {
  private parts: string[] = [];
  private bytes = 0;
  private scheduled = false;
  private readonly dest: ReturnType<typeof pino.destination>;
  private readonly onExit = () => this.flush();

  constructor(fd: number) {
    this.dest = pino.destination({ fd, sync: true });
    process.on('exit', this.onExit);
    writers.add(this);
  }

  write(line: string): void {
    this.parts.push(line);
    this.bytes += line.length;
    if (this.bytes >= FLUSH_AT) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  /** Writes what waits, synchronously (pino's logger.flush() calls this too). */
  flush(cb?: (err?: Error) => void): void {
    if (this.parts.length > 0) {
      const text = this.parts.length === 1 ? this.parts[0]! : this.parts.join('');
      this.parts = [];
      this.bytes = 0;
      this.dest.write(text);
    }
    cb?.();
  }
}

const writers = new Set<TurnWriter>();

/** Writes every logger's waiting lines now: before printing to another stream (stderr) what must read after
 *  them, as the CLI's last words on a fatal error do. */
export function flushLogs(): void {
  for (const w of writers) w.flush();
}

/** A turn's lines are written early once they are this long (bounds the memory a burst of logging holds). */
const FLUSH_AT = 64 * 1024;

export function createLogger(
  opts: { level: Config['log']['level']; format: LogFormat },
  out: { fd: number; isTTY?: boolean } = { fd: 1, isTTY: process.stdout.isTTY },
): Logger {
  const base = { level: opts.level, base: { service: 'tsp-broker' } };
  const dest = new TurnWriter(out.fd);
  if (resolveLogFormat(opts.format, out.isTTY === true) === 'json')
    return pino({ ...base, timestamp: pino.stdTimeFunctions.isoTime }, dest);
  const prettify = prettyFactory({
    colorize: out.isTTY === true,
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
    ignore: 'pid,hostname,service',
    hideObject: true,
    messageFormat: (log, messageKey) => messageWithFields(log, messageKey),
  });
  // flush: logger.flush() reaches the waiting lines in this format too
  const stream = { write: (line: string) => dest.write(prettify(line)), flush: (cb?: () => void) => dest.flush(cb) };
  return pino(base, stream);
}
