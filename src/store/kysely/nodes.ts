/** @module store/kysely/nodes: NodeStore over Kysely (store/node-types.ts). Messages go out with pg_notify in
 *  the writing transaction (delivered at its commit); on SQLite there is no one to tell. */

import { sql, type Kysely, type Selectable, type SqlBool } from 'kysely';
import { CLUSTER_CHANNEL, type ClusterMessage, type NodeRecord, type NodeStore } from '../node-types.js';
import type { Database, NodesTable } from '../schema.js';
import type { Dialect } from '../migrations.js';
import { likePrefix, type Runner } from './runner.js';
import { BrokerError } from '../../errors.js';
import { CHUNK_LEASE_PREFIX } from '../lease-chunks.js';
import { releaseLease } from '../allocator.js';

/** The advisory lock class of an account's tunnels (the second key is the account id). */
const ACCOUNT_LOCK_CLASS = 0x3653;
/** ids per endedOf query, well under both dialects' parameter limits. */
const ENDED_OF_BATCH = 500;

/** Sends a ClusterMessage from inside a write transaction (PostgreSQL; nothing on SQLite). */
export async function notifyCluster(trx: Kysely<Database>, dialect: Dialect, m: ClusterMessage): Promise<void> {
  if (dialect !== 'postgres') return;
  await sql`select pg_notify(${CLUSTER_CHANNEL}, ${JSON.stringify(m)})`.execute(trx);
}

export function nodeStore(run: Runner, dialect: Dialect, nodeId: string): NodeStore {
  return {
    nodeId,

    registerNode(n, at, owner) {
      return run.write('registerNode', async (trx) => {
        const held = await trx
          .selectFrom('nodes')
          .select(['instance', 'heartbeat_at'])
          .where('name', '=', nodeId)
          .forUpdate()
          .executeTakeFirst();
        if (held && held.instance !== owner.instance && Number(held.heartbeat_at) >= owner.aliveSince)
          throw new BrokerError(
            'CFG_INVALID',
            `cluster.nodeId: another live broker is node ${nodeId} (heartbeat ${Math.round((at - Number(held.heartbeat_at)) / 1000)} s ago); give this one another name`,
          );
        const set = { ...n, started_at: at, heartbeat_at: at, instance: owner.instance, tunnels: 0 };
        const row = await trx
          .insertInto('nodes')
          .values({ name: nodeId, ...set })
          .onConflict((oc) => oc.column('name').doUpdateSet(set))
          .returningAll()
          .executeTakeFirstOrThrow();
        return toNode(row);
      });
    },

    heartbeatNode(tunnels, at, instance) {
      return run.write('heartbeatNode', async (trx) => {
        const row = await trx
          .updateTable('nodes')
          .set({ tunnels, heartbeat_at: at })
          .where('name', '=', nodeId)
          .where('instance', '=', instance)
          .returningAll()
          .executeTakeFirst();
        return row && toNode(row);
      });
    },

    leaveNode(instance) {
      return run.write('leaveNode', async (trx) => {
        await trx
          .updateTable('nodes')
          .set({ heartbeat_at: 0 })
          .where('name', '=', nodeId)
          .where('instance', '=', instance)
          .execute();
        await notifyCluster(trx, dialect, { kind: 'node', name: nodeId });
      });
    },

    listNodes() {
      return run.read('listNodes', async (db) =>
        (await db.selectFrom('nodes').selectAll().orderBy('name').execute()).map(toNode),
      );
    },

    setNodeDraining(name, draining) {
      return run.write('setNodeDraining', async (trx) => {
        const r = await trx
          .updateTable('nodes')
          .set({ draining: draining ? 1 : 0 })
          .where('name', '=', name)
          .returning('name')
          .executeTakeFirst();
        if (r) await notifyCluster(trx, dialect, { kind: 'node', name });
        return r !== undefined;
      });
    },

    forgetNode(name, at) {
      return run.write('forgetNode', async (trx) => {
        const r = await trx.deleteFrom('nodes').where('name', '=', name).returning('name').executeTakeFirst();
        if (r === undefined) return undefined;
        // its tunnels are carried by no one: they end, and their anonymous leases go back to the pool
        const ended = await trx
          .updateTable('tunnels')
          .set({ state: 'ended', ended_at: at, end_reason: 'shutdown' })
          .where('node', '=', name)
          .where('state', 'in', ['offered', 'established'])
          .returning(['id', 'lease_id'])
          .execute();
        for (const e of ended) if (e.lease_id !== null) await releaseLease(trx, e.lease_id);
        if (ended.length)
          await notifyCluster(trx, dialect, { kind: 'ended', node: name, ids: ended.map((e) => Number(e.id)) });
        // then its chunks that no lease is cut from any more (lease-chunks.ts: 'chunk:<node>:<uuid>')
        const chunks = await trx
          .selectFrom('allocations as c')
          .select('c.lease_id')
          .where(sql<SqlBool>`c.lease_id like ${likePrefix(`${CHUNK_LEASE_PREFIX}${name}:`)} escape '\\'`)
          .where((eb) =>
            eb.not(eb.exists(eb.selectFrom('allocations as l').select('l.id').whereRef('l.chunk_id', '=', 'c.id'))),
          )
          .execute();
        for (const c of chunks) if (c.lease_id !== null) await releaseLease(trx, c.lease_id);
        return { tunnelsEnded: ended.length };
      });
    },

    adoptTunnels(addresses) {
      return run.write('adoptTunnels', async (trx) => {
        if (addresses.length === 0) {
          const others = await trx.selectFrom('nodes').select('name').where('name', '<>', nodeId).executeTakeFirst();
          if (others) return 0;
        }
        let q = trx
          .updateTable('tunnels')
          .set({ node: nodeId })
          .where('node', 'is', null)
          .where('state', 'in', ['offered', 'established']);
        if (addresses.length)
          q = q.where((eb) => eb.or([eb('server_ipv4', 'in', addresses), eb('server_ipv6', 'in', addresses)]));
        const r = await q.executeTakeFirst();
        return Number(r.numUpdatedRows);
      });
    },

    endTunnelsElsewhere(accountId, at) {
      return run.write('endTunnelsElsewhere', async (trx) => {
        if (dialect === 'postgres')
          await sql`select pg_advisory_xact_lock(${ACCOUNT_LOCK_CLASS}::bigint * 4294967296 + ${accountId})`.execute(
            trx,
          );
        const rows = await trx
          .updateTable('tunnels')
          .set({ state: 'ended', ended_at: at, end_reason: 'replaced' })
          .where('account_id', '=', accountId)
          .where('state', '=', 'established')
          .where('transport', '<>', 'static')
          .where((eb) => eb.or([eb('node', 'is', null), eb('node', '<>', nodeId)]))
          .returning(['id', 'node'])
          .execute();
        const ended = rows.map((r) => ({ id: Number(r.id), node: r.node }));
        const byNode = new Map<string, number[]>();
        for (const e of ended) if (e.node !== null) byNode.set(e.node, [...(byNode.get(e.node) ?? []), e.id]);
        for (const [node, ids] of byNode) await notifyCluster(trx, dialect, { kind: 'ended', node, ids });
        return ended;
      });
    },

    endedOf(ids) {
      return run.read('endedOf', async (db) => {
        const out: number[] = [];
        for (let i = 0; i < ids.length; i += ENDED_OF_BATCH) {
          const rows = await db
            .selectFrom('tunnels')
            .select('id')
            .where('id', 'in', ids.slice(i, i + ENDED_OF_BATCH))
            .where('state', '=', 'ended')
            .execute();
          for (const r of rows) out.push(Number(r.id));
        }
        return out;
      });
    },
  };
}

function toNode(r: Selectable<NodesTable>): NodeRecord {
  return {
    name: r.name,
    ipv4: r.ipv4,
    ipv6: r.ipv6,
    capacity: r.capacity === null ? null : Number(r.capacity),
    draining: Number(r.draining) === 1,
    tunnels: Number(r.tunnels),
    startedAt: Number(r.started_at),
    heartbeatAt: Number(r.heartbeat_at),
  };
}
