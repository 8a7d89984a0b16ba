/** @module client/exit-codes: tspc's exit statuses. Where gogoc 1.2 has a status for the same failure we use
 *  its number (docs/protocol.md §14, `client_exit`), so scripts written around gogoc keep working; the others
 *  are ours. The CLI prints `tspc: <message>` and exits with `exitCodeFor(error)` (docs/style.md §8). */

import { isBrokerError, type ErrorCode } from '../errors.js';

export const EXIT = {
  OK: 0,
  /** Anything unforeseen (a bug). */
  INTERNAL: 1,
  /** Bad command line or configuration (gogoc: 3). */
  CONFIG: 3,
  /** Cannot create the TUN device: no permission or no /dev/net/tun (ours). */
  NO_TUN: 4,
  /** No answer from the TSP server (gogoc: 9). */
  UNREACHABLE: 9,
  /** Socket or protocol I/O error (gogoc: 10). */
  IO: 10,
  /** The server answered with an error status (gogoc: 13). */
  SERVER_ERROR: 13,
  /** The requested tunnel mode is not offered (gogoc: 15). */
  UNSUPPORTED_MODE: 15,
  /** Authentication failed (gogoc: 16). */
  AUTH_FAILED: 16,
  /** No authentication mechanism in common (gogoc: 17). */
  NO_MECHANISM: 17,
  /** Interface setup or the hook script failed (gogoc: 18). */
  SETUP: 18,
  /** The offer is unusable (gogoc: 19). */
  BAD_OFFER: 19,
  /** Keepalive timeout with auto_retry_connect=no (gogoc: 21). */
  KEEPALIVE: 21,
} as const;

const BY_CODE: Partial<Record<ErrorCode, number>> = {
  CFG_INVALID: EXIT.CONFIG,
  CFG_FILE: EXIT.CONFIG,
  CLIENT_TUN: EXIT.NO_TUN,
  CLIENT_UNREACHABLE: EXIT.UNREACHABLE,
  CLIENT_TIMEOUT: EXIT.IO,
  CLIENT_IO: EXIT.IO,
  CLIENT_PROTOCOL: EXIT.IO,
  CLIENT_VERSION: EXIT.SERVER_ERROR,
  CLIENT_BUSY: EXIT.SERVER_ERROR,
  CLIENT_REDIRECT: EXIT.SERVER_ERROR,
  CLIENT_SERVER_ERROR: EXIT.SERVER_ERROR,
  CLIENT_UNSUPPORTED_MODE: EXIT.UNSUPPORTED_MODE,
  CLIENT_AUTH_FAILED: EXIT.AUTH_FAILED,
  CLIENT_NO_MECHANISM: EXIT.NO_MECHANISM,
  CLIENT_SETUP: EXIT.SETUP,
  CLIENT_HOOK: EXIT.SETUP,
  CLIENT_BAD_OFFER: EXIT.BAD_OFFER,
  CLIENT_KEEPALIVE: EXIT.KEEPALIVE,
};

export function exitCodeFor(e: unknown): number {
  return (isBrokerError(e) ? BY_CODE[e.code] : undefined) ?? EXIT.INTERNAL;
}

/** Failures no retry can fix: the configuration, the credentials or the host must change first. tspc exits on
 *  them even with auto_retry_connect=yes (gogoc would come back every few minutes, §9.5). */
export function isPermanent(e: unknown): boolean {
  if (!isBrokerError(e)) return true;
  return [
    'CFG_INVALID',
    'CFG_FILE',
    'CLIENT_AUTH_FAILED',
    'CLIENT_NO_MECHANISM',
    'CLIENT_UNSUPPORTED_MODE',
    'CLIENT_VERSION',
    'CLIENT_TUN',
    'CLIENT_SETUP',
    'CLIENT_HOOK',
  ].includes(e.code);
}

/** What the user should look at, per failure (printed after the message). */
export function adviceFor(e: unknown): string | undefined {
  if (!isBrokerError(e)) return undefined;
  const advice: Partial<Record<ErrorCode, string>> = {
    CLIENT_AUTH_FAILED: 'check userid and passwd (or auth_method)',
    CLIENT_NO_MECHANISM: 'set auth_method to one the server offers (see the CAPABILITY line with --log-level debug)',
    CLIENT_UNSUPPORTED_MODE: 'set tunnel_mode to one the server offers, or v6anyv4',
    CLIENT_UNREACHABLE: 'check server= and that UDP/TCP port 3653 is reachable',
    CLIENT_TUN: 'run tspc as root, or with CAP_NET_ADMIN and CAP_NET_RAW, on a host with /dev/net/tun',
  };
  return advice[e.code];
}
