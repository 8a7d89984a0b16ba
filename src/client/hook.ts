/** @module client/hook: the user's script run after the tunnel comes up and after it goes down, with the
 *  TSP_* environment variables gogoc 1.2 gives its template scripts (gogoc's tsp_setup.c,
 *  set_tsp_env_variables; the recordings keep them as `client_tunnel_environment`, docs/protocol.md §14), so
 *  scripts written for gogoc keep working. The environment is built from the offer exactly as gogoc builds it,
 *  including the character-count truncation of TSP_PREFIX (§6.4). */

import { execFile } from 'node:child_process';
import { BrokerError } from '../errors.js';
import { expandIpv6, type Offer } from '../protocol/xml.js';

export type TspOperation = 'TSP_TUNNEL_CREATION' | 'TSP_TUNNEL_TEARDOWN';

/** A hung hook must not hang tspc. */
export const HOOK_TIMEOUT_MS = 60_000;

/** gogoc's TSP_PREFIX: the expanded prefix cut to the groups the length covers, `ceil(L/16)` groups, e.g.
 *  `2001:0db8:0f01:0000` for a /56 (recording 09) and `2001:0db8:0f01` for a /48. */
export function gogocPrefix(address: string, length: number): string {
  const groups = Math.max(1, Math.ceil(length / 16));
  return expandIpv6(address).split(':').slice(0, groups).join(':');
}

export function tspEnvironment(p: {
  offer: Offer;
  operation: TspOperation;
  hostType: 'host' | 'router';
  tunName: string;
  /** gogoc's if_prefix (empty in host mode). */
  homeInterface: string;
  homeDir: string;
}): Record<string, string> {
  const o = p.offer;
  const env: Record<string, string> = {
    TSP_VERBOSE: '3',
    TSP_HOME_DIR: p.homeDir,
    TSP_TUNNEL_MODE: o.type,
    TSP_HOST_TYPE: p.hostType,
    TSP_TUNNEL_INTERFACE: p.tunName,
    TSP_HOME_INTERFACE: p.homeInterface,
    TSP_CLIENT_ADDRESS_IPV4: o.clientIpv4,
    TSP_CLIENT_ADDRESS_IPV6: o.clientIpv6,
    TSP_CLIENT_DNS_ADDRESS_IPV6: o.dnsServer ?? '',
    TSP_SERVER_ADDRESS_IPV4: o.serverIpv4,
    TSP_SERVER_ADDRESS_IPV6: o.serverIpv6,
    TSP_TUNNEL_PREFIXLEN: o.type === 'v4v6' ? '32' : '128',
    TSP_OPERATION: p.operation,
  };
  if (o.prefix) {
    env.TSP_PREFIX = gogocPrefix(o.prefix.address, o.prefix.length);
    env.TSP_PREFIXLEN = String(o.prefix.length);
  }
  return env;
}

/** Runs the hook with the variables added to tspc's environment. Resolves with its output; rejects with
 *  CLIENT_HOOK when it cannot start, exits non-zero or runs longer than HOOK_TIMEOUT_MS. */
export function runHook(script: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      script,
      [],
      { env: { ...process.env, ...env }, timeout: HOOK_TIMEOUT_MS, maxBuffer: 1 << 20 },
      (error, stdout, stderr) => {
        const output = `${stdout}${stderr}`.trim();
        if (!error) return resolve(output);
        const why =
          (error as NodeJS.ErrnoException).code === 'ENOENT'
            ? 'not found'
            : (error as NodeJS.ErrnoException).code === 'EACCES'
              ? 'not executable'
              : error.killed
                ? `killed after ${HOOK_TIMEOUT_MS} ms`
                : `exited ${String(error.code)}`;
        reject(
          new BrokerError('CLIENT_HOOK', `hook ${script} (${env.TSP_OPERATION}) ${why}${output ? `: ${output}` : ''}`, {
            cause: error,
          }),
        );
      },
    );
  });
}
