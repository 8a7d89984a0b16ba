/** @module cluster/routes-start: route export as the composition root starts it (cli/start-broker.ts): off
 *  unless `routes.table` is set, and only over a data plane with a TUN device. */

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { DataPlane } from '../dataplane/types.js';
import { RouteExporter, type RouteSource } from './routes.js';

/** Starts route export for this configuration; undefined when it is off. Call it after the registry has
 *  restored its tunnels and after the broker's close is in `closers`, so that the exporter's close (pushed
 *  here) runs before the broker's and the data plane's: the routes go before the node stops carrying. Over MemoryDataPlane (which `dataplane.driver` 'auto' falls back to without root) there is no
 *  device to route to and no packet would be carried: it logs that and stays off, since a node that cannot
 *  carry packets must not attract them ('memory' itself is refused by the configuration). */
export async function startRouteExport(
  config: Config,
  dataplane: DataPlane,
  registry: RouteSource,
  linkLeaseLen: number,
  log: Logger,
  /** Where its close() goes (the composition root's stop list). */
  closers: (() => Promise<void>)[],
): Promise<RouteExporter | undefined> {
  const { table, protocol } = config.routes;
  if (table === null) return undefined;
  const device = 'tunName' in dataplane ? (dataplane as { tunName: string }).tunName : '';
  if (dataplane.kind === 'memory' || device === '') {
    log.error(
      { table, dataplane: dataplane.kind },
      'route export off: routes.table is set but the data plane has no TUN device to route to (no packets are carried)',
    );
    return undefined;
  }
  const exporter = new RouteExporter({ table, protocol, device, linkLeaseLen, log });
  closers.push(() => exporter.close());
  await exporter.start(registry);
  return exporter;
}
