/** @module client/log: tspc's logger: one readable line per event, `tspc: <message> key=value ...`, info and
 *  debug to stdout, warnings and errors to stderr. Users read these lines; tests wait for them. */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface ClientLog {
  error(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
}

function format(level: LogLevel, message: string, fields?: Record<string, unknown>): string {
  const extra = fields
    ? Object.entries(fields)
        .filter(([, v]) => v !== undefined && v !== '')
        .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
        .join(' ')
    : '';
  const tag = level === 'info' ? '' : `${level}: `;
  return `tspc: ${tag}${message}${extra ? ` ${extra}` : ''}\n`;
}

export function createLog(
  level: LogLevel,
  out: NodeJS.WritableStream = process.stdout,
  err = process.stderr,
): ClientLog {
  const emit = (l: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (RANK[l] > RANK[level]) return;
    (RANK[l] <= RANK.warn ? err : out).write(format(l, message, fields));
  };
  return { error: emit('error'), warn: emit('warn'), info: emit('info'), debug: emit('debug') };
}

/** Discards everything (tests). */
export const silentLog: ClientLog = { error() {}, warn() {}, info() {}, debug() {} };
