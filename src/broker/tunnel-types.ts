/** @module broker/tunnel-types: the types of the live-tunnel registry (tunnels.ts): what it asks of the store, what
 *  it reports, and the traffic it accounts. Apart from tunnels.ts to keep that file readable. */

import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { DataPlane } from '../dataplane/types.js';
import type { AnonymousHoldings } from './anonymous.js';
import type { TunnelCounters } from '../dataplane/types.js';
import type { CounterUpdate, EndReason, Store, TunnelRecord } from '../store/types.js';

/** The store calls the registry makes. */
export type TunnelRegistryStore = Pick<
  Store,
  | 'batch'
  | 'endTunnel'
  | 'establishTunnel'
  | 'createTunnel'
  | 'releaseReservation'
  | 'updateCounters'
  | 'releaseLease'
  | 'liveTunnels'
  | 'moveTunnelEndpoint'
  | 'endTunnelsElsewhere'
>;

/** What the registry is made with. */
export interface TunnelRegistryDeps {
  dataplane: DataPlane;
  store: TunnelRegistryStore;
  clock: Clock;
  log: Logger;
  anonymous: AnonymousHoldings;
  idle: IdleRule;
  /** Live tunnels read per store call at a restart (default 5,000). */
  restorePage?: number;
  /** Several nodes share the store (cluster/node.ts) and this is node `node`: a restart restores only its
   *  tunnels, and an accept ends the account's tunnels on other nodes too. */
  node?: string;
}

export interface TrafficTotals {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}

export interface TunnelEventMap {
  established: { record: TunnelRecord };
  /** `counters`: the tunnel's final totals, as stored with its end. */
  ended: { record: TunnelRecord; reason: EndReason; counters: CounterUpdate };
}

/** What traffic the data plane carried since this process started: only grows (an ended tunnel's last
 *  counters are carried over at its removal, so nothing is lost between a read and a removal). */
export interface TrafficReading {
  totals: TrafficTotals;
  /** Each live tunnel's own counters since its data-plane entry was made. */
  tunnels: { id: number; rxBytes: number; txBytes: number }[];
}

export type CountersById = ReadonlyMap<number, TunnelCounters>;

/** The idle rule's settings (expiry.ts): the registry keeps each tunnel's deadline by them. */
export type IdleRule = Pick<Config['tunnels'], 'idleIntervals' | 'idleMinS' | 'anonymousIdleMaxS'>;
