/** @module store/kysely/traffic: TrafficStore over Kysely (store/types.ts): the dashboard's traffic history
 *  (schema version 5). */

import { sql } from 'kysely';
import { BrokerError } from '../../errors.js';
import type { TrafficStore } from '../types.js';
import type { Runner } from './runner.js';

export function trafficStore(run: Runner): TrafficStore {
  return {
    addTrafficSample(t) {
      return run.write('addTrafficSample', async (trx) => {
        await trx
          .insertInto('traffic_samples')
          .values({
            at: t.at,
            interval_ms: t.intervalMs,
            rx_bytes: t.rxBytes,
            tx_bytes: t.txBytes,
            rx_packets: t.rxPackets,
            tx_packets: t.txPackets,
          })
          .execute();
      });
    },

    /** By age first, then by count: the newest `keep` rows (by at, then id) stay. */
    pruneTrafficSamples(olderThan, keep) {
      return run.write('pruneTrafficSamples', async (trx) => {
        const old = await trx.deleteFrom('traffic_samples').where('at', '<', olderThan).executeTakeFirst();
        const cutoff = await trx
          .selectFrom('traffic_samples')
          .select('id')
          .orderBy('at', 'desc')
          .orderBy('id', 'desc')
          .limit(1)
          .offset(Math.max(0, Math.trunc(keep)))
          .executeTakeFirst();
        let extra = 0;
        if (cutoff !== undefined) {
          const edge = await trx
            .selectFrom('traffic_samples')
            .select(['at', 'id'])
            .where('id', '=', Number(cutoff.id))
            .executeTakeFirstOrThrow();
          const r = await trx
            .deleteFrom('traffic_samples')
            .where((eb) =>
              eb.or([
                eb('at', '<', Number(edge.at)),
                eb.and([eb('at', '=', Number(edge.at)), eb('id', '<=', Number(edge.id))]),
              ]),
            )
            .executeTakeFirst();
          extra = Number(r.numDeletedRows);
        }
        return Number(old.numDeletedRows) + extra;
      });
    },

    trafficHistory(from, to, bucketMs) {
      const bucket = Math.trunc(bucketMs);
      if (!(bucket >= 1)) throw new BrokerError('INTERNAL', 'trafficHistory: bucketMs must be >= 1');
      return run.read('trafficHistory', async (db) => {
        // integer division on both dialects (bigint / bigint); the bucket is a validated integer literal
        const b = sql<number | string>`${sql.ref('at')} / ${sql.lit(bucket)}`;
        const rows = await db
          .selectFrom('traffic_samples')
          .select([
            b.as('b'),
            (eb) => eb.fn.sum<number | string>('rx_bytes').as('rx'),
            (eb) => eb.fn.sum<number | string>('tx_bytes').as('tx'),
            (eb) => eb.fn.sum<number | string>('interval_ms').as('ms'),
          ])
          .where('at', '>=', from)
          .where('at', '<', to)
          .groupBy(b)
          .orderBy(b)
          .execute();
        return rows.map((r) => ({
          at: Number(r.b) * bucket,
          rxBytes: Number(r.rx),
          txBytes: Number(r.tx),
          intervalMs: Number(r.ms),
        }));
      });
    },
  };
}
