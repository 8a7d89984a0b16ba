/** @module store/kysely/tunnel-statements: the tunnel statements every session runs, prepared once
 *  (prepared.ts), and the counter values they take. Apart from tunnels.ts to keep that file readable. */

import { sql, type ExpressionBuilder } from 'kysely';
import type { CounterUpdate } from '../types.js';
import type { Database } from '../schema.js';
import { param, prepared } from './prepared.js';

type NewTunnelColumn =
  | 'account_id'
  | 'lease_id'
  | 'type'
  | 'transport'
  | 'client_ipv4'
  | 'client_port'
  | 'server_ipv4'
  | 'server_ipv6'
  | 'client_ipv6'
  | 'prefix'
  | 'prefix_len'
  | 'keepalive_interval'
  | 'lifetime_s'
  | 'created_at'
  | 'node'
  | 'state'
  | 'established_at';

/** A new tunnel's row, with its account's name. */
export const insertTunnel = prepared<NewTunnelColumn, { id: number | string; username: string | null }>((db) =>
  db
    .insertInto('tunnels')
    .values({
      account_id: param('account_id'),
      lease_id: param('lease_id'),
      type: param('type'),
      transport: param('transport'),
      client_ipv4: param('client_ipv4'),
      client_port: param('client_port'),
      server_ipv4: param('server_ipv4'),
      server_ipv6: param('server_ipv6'),
      client_ipv6: param('client_ipv6'),
      prefix: param('prefix'),
      prefix_len: param('prefix_len'),
      keepalive_interval: param('keepalive_interval'),
      lifetime_s: param('lifetime_s'),
      created_at: param('created_at'),
      node: param('node'),
      state: param('state'),
      established_at: param('established_at'),
    })
    .returning('id')
    .returning((eb) =>
      eb
        .selectFrom('accounts')
        .select('accounts.username')
        .whereRef('accounts.id', '=', 'tunnels.account_id')
        .as('username'),
    ),
);

export const establish = prepared<'id' | 'at', { id: number | string }>((db) =>
  db
    .updateTable('tunnels')
    .set({ state: 'established', established_at: param('at') })
    .where('id', '=', param<number>('id'))
    .where('state', '=', 'offered')
    .returning('id'),
);

export type CounterParam = 'rx_packets' | 'rx_bytes' | 'tx_packets' | 'tx_bytes' | 'last_seen_at';

/** Counters are the data plane's totals; a null one (all of them when an end brings none, and last_seen_at
 *  when the tunnel was silent) keeps the stored value. */
const counterSet = (eb: ExpressionBuilder<Database, 'tunnels'>) =>
  Object.fromEntries(
    (['rx_packets', 'rx_bytes', 'tx_packets', 'tx_bytes', 'last_seen_at'] as const).map((c) => [
      c,
      eb.fn.coalesce(sql<number>`${param(c)}`, eb.ref(c)),
    ]),
  );

export const end = prepared<'id' | 'at' | 'reason' | CounterParam, { id: number | string }>((db) =>
  db
    .updateTable('tunnels')
    .set((eb) => ({ state: 'ended', ended_at: param('at'), end_reason: param('reason'), ...counterSet(eb) }))
    .where('id', '=', param<number>('id'))
    .where('state', '<>', 'ended')
    .returning('id'),
);

export const writeCounters = prepared<'id' | CounterParam, unknown>((db) =>
  db
    .updateTable('tunnels')
    .set((eb) => counterSet(eb))
    .where('id', '=', param<number>('id')),
);

export function counterValues(c: Omit<CounterUpdate, 'id'> | undefined): Record<CounterParam, number | null> {
  return {
    rx_packets: c?.rxPackets ?? null,
    rx_bytes: c?.rxBytes ?? null,
    tx_packets: c?.txPackets ?? null,
    tx_bytes: c?.txBytes ?? null,
    last_seen_at: c?.lastSeenAt ?? null,
  };
}
