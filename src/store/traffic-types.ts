/** @module store/traffic-types: the store's side of the dashboard's traffic history (admin/traffic.ts), apart
 *  from store/types.ts to keep that file readable; Store includes TrafficStore. */

/** Traffic through the data plane during one sampling interval (schema version 5), ending at `at`. */
export interface TrafficSampleRow {
  at: number;
  intervalMs: number;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
}

/** Traffic samples summed into a bucket [at, at + bucketMs); intervalMs is the time they cover (their rate is
 *  bytes / intervalMs, whatever the bucket size). */
export interface TrafficBucket {
  at: number;
  rxBytes: number;
  txBytes: number;
  intervalMs: number;
}

/** The dashboard's traffic history (schema version 5). */
export interface TrafficStore {
  addTrafficSample(s: TrafficSampleRow): Promise<void>;
  /** Deletes samples with at < olderThan, then all but the newest `keep`; returns how many went. */
  pruneTrafficSamples(olderThan: number, keep: number): Promise<number>;
  /** Samples with from <= at < to summed per bucketMs (buckets aligned to multiples of bucketMs), oldest first;
   *  buckets without samples are absent. */
  trafficHistory(from: number, to: number, bucketMs: number): Promise<TrafficBucket[]>;
}
