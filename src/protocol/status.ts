/** @module protocol/status: TSP status lines (docs/protocol.md §7), built from the error registry in src/errors.ts
 *  so that a code's status and text are written in one place. Pure. */

import { ERRORS, type ErrorCode } from '../errors.js';

export const CRLF = '\r\n';

/** A bare status line: `200 Success\r\n` (version and authentication phases). */
export function statusLine(code: number, text: string): Buffer {
  return Buffer.from(`${code} ${text}${CRLF}`, 'latin1');
}

export interface TspStatus {
  code: number;
  text: string;
}

/** The TSP status a registry code is answered with; a code never sent on TSP is the generic server error. */
export function tspStatusOf(code: ErrorCode): TspStatus {
  const e = ERRORS[code];
  return e.tsp === null ? { code: ERRORS.INTERNAL.tsp, text: ERRORS.INTERNAL.text } : { code: e.tsp, text: e.text };
}

/** The bare status line for a registry code (`300 Authentication failed\r\n`, `530 Server too busy\r\n`). */
export function errorLine(code: ErrorCode): Buffer {
  const st = tspStatusOf(code);
  return statusLine(st.code, st.text);
}

export const SUCCESS_LINE = statusLine(200, 'Success');
export const AUTH_FAILED_LINE = errorLine('AUTH_FAILED');
export const BAD_VERSION_LINE = errorLine('TSP_BAD_VERSION');
/** What a peer over a connection limit gets before the connection closes (docs/security.md). */
export const BUSY_LINE = errorLine('TSP_BUSY');

/** The numeric status at the start of a line, or 0 when there is none (a client reading replies). */
export function statusOfLine(line: string): number {
  const m = /^\s*(\d{3,4})(\s|$)/.exec(line);
  return m ? Number(m[1]) : 0;
}
