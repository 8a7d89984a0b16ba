/** @module store/kysely/tunnels: TunnelStore over Kysely (store/types.ts). */

import { sql, type Expression, type ExpressionBuilder, type Kysely, type Selectable, type SqlBool } from 'kysely';
import { BrokerError } from '../../errors.js';
import { releaseLease } from '../allocator.js';
import type { LeaseChunks } from '../lease-chunks.js';
import { newTunnelRecord } from '../tunnel-record.js';
import type { EndReason, TunnelFilter, TunnelRecord, TunnelState, TunnelStore } from '../types.js';
import type { Database, TunnelsTable } from '../schema.js';
import { counterValues, end, establish, insertTunnel, writeCounters } from './tunnel-statements.js';
import { likeSubstring, nullableNumber, page, type Runner } from './runner.js';

type TunnelRow = Selectable<TunnelsTable> & { username: string | null };

export function tunnelStore(run: Runner, chunks: LeaseChunks, nodeId: string): TunnelStore {
  return {
    createTunnel(t, at, opts) {
      return run.write('createTunnel', async (trx, hooks) => {
        const established = opts?.established;
        const record = newTunnelRecord(t, at, {
          id: 0,
          username: null,
          node: nodeId,
          ...(established !== undefined ? { establishedAt: established } : {}),
        });
        const reservation = opts?.reservation;
        if (reservation !== undefined) {
          if (reservation.leaseId !== t.leaseId)
            throw new BrokerError('INTERNAL', `tunnel of lease ${t.leaseId} given reservation ${reservation.leaseId}`);
          await chunks.insertReserved(trx, hooks, reservation, at);
        }
        // the record is built from what was written: returning all 26 columns costs a row object a tunnel
        const row = await insertTunnel.first(trx, {
          state: record.state,
          established_at: record.establishedAt,
          account_id: record.accountId,
          lease_id: record.leaseId,
          type: record.type,
          transport: record.transport,
          client_ipv4: record.clientIpv4,
          client_port: record.clientPort,
          server_ipv4: record.serverIpv4,
          server_ipv6: record.serverIpv6,
          client_ipv6: record.clientIpv6,
          prefix: record.prefix,
          prefix_len: record.prefixLen,
          keepalive_interval: record.keepaliveInterval,
          lifetime_s: record.lifetimeS,
          created_at: record.createdAt,
          node: record.node,
        });
        if (row === undefined) throw new Error('tunnel insert returned no row');
        return { ...record, id: Number(row.id), username: row.username };
      });
    },

    /** offered -> established. Idempotent on an established tunnel; STORE_CONFLICT on an ended one (it timed
     *  out or was replaced before the accept was handled); STORE_NOT_FOUND on an unknown id. */
    establishTunnel(id, at) {
      return run.write('establishTunnel', async (trx) => {
        if ((await establish.first(trx, { id, at })) !== undefined) return;
        const state = await tunnelState(trx, id);
        if (state === 'ended') throw new BrokerError('STORE_CONFLICT', `tunnel ${id} has already ended`);
      });
    },

    /** Idempotent: an ended tunnel keeps its first end time and reason (final counters given for one are still
     *  written). STORE_NOT_FOUND on an unknown id. */
    endTunnel(id, reason, at, counters) {
      return run.write('endTunnel', async (trx) => {
        const values = counterValues(counters);
        if ((await end.first(trx, { id, at, reason, ...values })) !== undefined) return;
        await tunnelState(trx, id);
        if (counters) await writeCounters.execute(trx, { id, ...values });
      });
    },

    /** One transaction for the whole batch. The values replace the stored ones (they are the data plane's
     *  totals for the tunnel); a null lastSeenAt keeps the stored one. Ids the store does not know are ignored:
     *  the data plane may report a tunnel a moment after it ended, and one stray id must not lose the batch. */
    updateCounters(updates) {
      if (updates.length === 0) return Promise.resolve();
      return run.write('updateCounters', async (trx) => {
        for (const u of updates) await writeCounters.execute(trx, { id: u.id, ...counterValues(u) });
      });
    },

    moveTunnelEndpoint(id, clientIpv4) {
      return run.write('moveTunnelEndpoint', async (trx) => {
        const r = await trx
          .updateTable('tunnels')
          .set({ client_ipv4: clientIpv4 })
          .where('id', '=', id)
          .returning('id')
          .executeTakeFirst();
        if (r === undefined) throw new BrokerError('STORE_NOT_FOUND', `no tunnel with id ${id}`);
      });
    },

    getTunnel(id) {
      return run.read('getTunnel', (db) => selectTunnel(db, id));
    },

    liveTunnels(p) {
      return run.read('liveTunnels', async (db) => {
        let q = tunnelQuery(db).where('tunnels.state', 'in', ['offered', 'established']).orderBy('tunnels.id');
        if (p?.node !== undefined) q = q.where('tunnels.node', '=', p.node);
        const rows = p
          ? await q.where('tunnels.id', '>', p.afterId).limit(Math.max(0, p.limit)).execute()
          : await q.execute();
        return rows.map(toTunnel);
      });
    },

    /** Newest first (created_at, then id) unless f.sort and f.order say otherwise; ties by id in the same
     *  order. */
    listTunnels(f) {
      return run.read('listTunnels', async (db) => {
        const where = tunnelWhere(f);
        const dir = f.order === 'asc' ? 'asc' : 'desc';
        const key = {
          started: sql`${sql.ref('tunnels.created_at')}`,
          account: sql`coalesce(${sql.ref('accounts.username')}, '')`,
          type: sql`${sql.ref('tunnels.type')}`,
          traffic: sql`${sql.ref('tunnels.rx_bytes')} + ${sql.ref('tunnels.tx_bytes')}`,
        }[f.sort ?? 'started'];
        const { limit, offset } = page(f);
        const [count, rows] = await Promise.all([
          db
            .selectFrom('tunnels')
            .leftJoin('accounts', 'accounts.id', 'tunnels.account_id')
            .select((eb) => eb.fn.countAll().as('n'))
            .where(where)
            .executeTakeFirstOrThrow(),
          tunnelQuery(db)
            .where(where)
            .orderBy(key, dir)
            .orderBy('tunnels.id', dir)
            .limit(limit)
            .offset(offset)
            .execute(),
        ]);
        return { items: rows.map(toTunnel), total: Number(count.n) };
      });
    },

    /** The tunnels_state_created index finds the candidates: a tunnel that ended before `before` was also
     *  created before it. An anonymous tunnel's block is tied to it by lease_id, not a foreign key: the end
     *  releases it, but a lease still held by an ended tunnel would stay allocated forever once the row is gone,
     *  so it is released here (unless a live tunnel holds the same lease). Nothing else references tunnel rows. */
    pruneEndedTunnels(before, limit) {
      return run.write('pruneEndedTunnels', async (trx, hooks) => {
        const rows = await trx
          .selectFrom('tunnels')
          .select(['id', 'lease_id'])
          .where('state', '=', 'ended')
          .where('created_at', '<', before)
          .where('ended_at', '<', before)
          .orderBy('created_at')
          .limit(Math.max(0, Math.trunc(limit)))
          .execute();
        if (rows.length === 0) return 0;
        const leases = [...new Set(rows.flatMap((r) => (r.lease_id === null ? [] : [r.lease_id])))];
        for (const lease of await leasesHeldByNoLiveTunnel(trx, leases))
          chunks.released(await releaseLease(trx, lease), hooks);
        const r = await trx
          .deleteFrom('tunnels')
          .where(
            'id',
            'in',
            rows.map((x) => Number(x.id)),
          )
          .executeTakeFirst();
        return Number(r.numDeletedRows);
      });
    },
  };
}

/** The conditions of a TunnelFilter (all must hold). */
function tunnelWhere(f: TunnelFilter) {
  return (eb: ExpressionBuilder<Database, 'tunnels' | 'accounts'>): Expression<SqlBool> => {
    const conds: Expression<SqlBool>[] = [];
    if (f.state === 'live') conds.push(eb('tunnels.state', 'in', ['offered', 'established']));
    else if (f.state !== undefined) conds.push(eb('tunnels.state', '=', f.state));
    if (f.accountId !== undefined) conds.push(eb('tunnels.account_id', '=', f.accountId));
    if (f.type !== undefined) conds.push(eb('tunnels.type', '=', f.type));
    if (f.search) {
      const like = likeSubstring(f.search);
      conds.push(
        eb.or(
          (['accounts.username', 'tunnels.client_ipv4', 'tunnels.client_ipv6', 'tunnels.prefix'] as const).map(
            (c) => sql<SqlBool>`lower(${eb.ref(c)}) like ${like} escape '\\'`,
          ),
        ),
      );
    }
    return eb.and(conds);
  };
}

/** Of these leases, those that still hold a block and that no live tunnel uses. */
async function leasesHeldByNoLiveTunnel(trx: Kysely<Database>, leases: string[]): Promise<string[]> {
  if (leases.length === 0) return [];
  const rows = await trx
    .selectFrom('allocations')
    .select('lease_id')
    .distinct()
    .where('lease_id', 'in', leases)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('tunnels')
            .select('tunnels.id')
            .whereRef('tunnels.lease_id', '=', 'allocations.lease_id')
            .where('tunnels.state', '<>', 'ended'),
        ),
      ),
    )
    .execute();
  return rows.flatMap((r) => (r.lease_id === null ? [] : [r.lease_id]));
}

function tunnelQuery(db: Kysely<Database>) {
  return db
    .selectFrom('tunnels')
    .leftJoin('accounts', 'accounts.id', 'tunnels.account_id')
    .selectAll('tunnels')
    .select('accounts.username');
}

async function selectTunnel(db: Kysely<Database>, id: number): Promise<TunnelRecord | undefined> {
  const row = await tunnelQuery(db).where('tunnels.id', '=', id).executeTakeFirst();
  return row && toTunnel(row);
}

/** The tunnel's state; STORE_NOT_FOUND if there is no such tunnel. */
async function tunnelState(db: Kysely<Database>, id: number): Promise<TunnelState> {
  const row = await db.selectFrom('tunnels').select('state').where('id', '=', id).executeTakeFirst();
  if (row === undefined) throw new BrokerError('STORE_NOT_FOUND', `no tunnel with id ${id}`);
  return row.state as TunnelState;
}

function toTunnel(r: TunnelRow): TunnelRecord {
  return {
    id: Number(r.id),
    accountId: nullableNumber(r.account_id),
    username: r.username,
    leaseId: r.lease_id,
    type: r.type as TunnelRecord['type'],
    transport: r.transport as TunnelRecord['transport'],
    clientIpv4: r.client_ipv4,
    clientPort: Number(r.client_port),
    serverIpv4: r.server_ipv4,
    serverIpv6: r.server_ipv6,
    clientIpv6: r.client_ipv6,
    prefix: r.prefix,
    prefixLen: nullableNumber(r.prefix_len),
    keepaliveInterval: Number(r.keepalive_interval),
    lifetimeS: Number(r.lifetime_s),
    state: r.state as TunnelState,
    createdAt: Number(r.created_at),
    establishedAt: nullableNumber(r.established_at),
    endedAt: nullableNumber(r.ended_at),
    endReason: r.end_reason as EndReason | null,
    lastSeenAt: nullableNumber(r.last_seen_at),
    rxPackets: Number(r.rx_packets),
    rxBytes: Number(r.rx_bytes),
    txPackets: Number(r.tx_packets),
    txBytes: Number(r.tx_bytes),
    node: r.node,
  };
}
