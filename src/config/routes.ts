/** @module config/routes: the `routes` section: the kernel routing table and protocol tag the broker installs
 *  its live tunnels' routes under, for a routing daemon to announce (cluster/routes.ts, docs/cluster.md). Pure. */

import { z } from 'zod';

/** Tables the kernel gives a meaning of its own: 253 default, 254 main, 255 local (0 is "unspecified"). Our
 *  flush removes every route of our tag in our table, so it must be a table nothing else fills. */
export const RESERVED_ROUTE_TABLES: readonly number[] = [253, 254, 255];
const MAX_ROUTE_TABLE = 2 ** 32 - 1;

/** Protocol tags we refuse. 0 to 4 are the kernel's (unspec, redirect, kernel, boot, and static: what a plain
 *  `ip route add` gets, so a flush of it would take an administrator's routes). The others are the tags the
 *  kernel's rtnetlink.h, iproute2's rt_protos, FRR (186 to 198: FRR's staticd installs with 196) and BIRD (12)
 *  give to routing software: a daemon takes routes of its own tag for its own (BIRD's `learn` ignores them),
 *  and our flush would remove that daemon's routes. */
export const RESERVED_ROUTE_PROTOCOLS: readonly number[] = [
  0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 42, 99, 186, 187, 188, 189, 190, 191, 192, 193, 194, 195,
  196, 197, 198,
];

/** Our default tag: unassigned in all of the above (docs/cluster.md, "Routes"). */
export const DEFAULT_ROUTE_PROTOCOL = 150;

export const routesSchema = z
  .object({
    /** The kernel routing table the live tunnels' routes go into: one of its own, which a routing daemon
     *  reads (docs/cluster.md). null: no route export (a single node needs none: its pools' routes do). */
    table: z
      .number()
      .int()
      .min(1)
      .max(MAX_ROUTE_TABLE)
      .refine(
        (t) => !RESERVED_ROUTE_TABLES.includes(t),
        "must not be 253, 254 or 255 (the kernel's default, main and local tables)",
      )
      .nullable()
      .default(null),
    /** The protocol tag of those routes (`ip route ... proto N`): how the routing daemon's filter tells them
     *  from anything else in the table, and what our flush at start and stop removes. */
    protocol: z
      .number()
      .int()
      .min(1)
      .max(255)
      .refine(
        (p) => !RESERVED_ROUTE_PROTOCOLS.includes(p),
        "must not be 1 to 4 (the kernel's) nor a tag routing software uses (8-18, 42, 99, 186-198)",
      )
      .default(DEFAULT_ROUTE_PROTOCOL),
  })
  .strict();

export type RoutesConfig = z.infer<typeof routesSchema>;
