/** @module admin/context: everything the admin routes use, built once per admin server by admin/server.ts.
 *  Routes receive this object; they reach the broker only through it (no module-level state). */

import type { Config } from '../config/schema.js';
import type { Store } from '../store/types.js';
import type { PoolRow } from './views/pools.js';
import type { Broker } from '../broker/broker.js';
import type { AccountService } from '../broker/accounts.js';
import type { Clock } from '../clock.js';
import type { SessionCounts } from '../transport/session-host.js';
import type { TokenService } from './tokens.js';
import type { Authenticator } from './auth.js';
import type { TrafficMeter } from './traffic.js';
import type { AdminMetrics } from './metrics.js';

export interface AdminContext {
  config: Config;
  store: Store;
  broker: Broker;
  accounts: AccountService;
  clock: Clock;
  tokens: TokenService;
  auth: Authenticator;
  traffic: TrafficMeter;
  metrics: AdminMetrics;
  /** TSP port clients should use (the bound one), for the configuration snippets. */
  tspPort: number;
  sessionCounts(): SessionCounts;
  /** Cookies get the Secure attribute (the server runs TLS). */
  secureCookies: boolean;
  /** Pool usage with the configured prefixes, cached briefly (admin/metrics.ts), and the link blocks' length. */
  poolUsage(): Promise<PoolRow[]>;
}
