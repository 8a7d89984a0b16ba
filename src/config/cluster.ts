/** @module config/cluster: the `cluster` section: this broker as one node of several sharing a PostgreSQL
 *  store (cluster/node.ts, docs/cluster.md). With SQLite the broker is the only node and the section is not
 *  used. Pure. */

import ipaddr from 'ipaddr.js';
import { z } from 'zod';

/** A node name: what `tsp-broker node` commands, logs and the tunnel rows call a node. */
export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export const clusterSchema = z
  .object({
    /** This node's name, unique in the cluster. null: the host name (`serve --node-id` overrides). */
    nodeId: z
      .string()
      .regex(
        NODE_NAME,
        'must be 1 to 63 letters, digits, dots, hyphens or underscores, starting with a letter or digit',
      )
      .nullable()
      .default(null),
    /** The IPv4 address clients reach this node on, which other nodes' redirects list. null: serverIpv4, else a
     *  specific listen.address; with neither, this node is never a redirect target. */
    address: z
      .string()
      .refine(
        (s) =>
          ipaddr.IPv4.isValidFourPartDecimal(s) &&
          !['unspecified', 'broadcast', 'multicast', 'linkLocal', 'loopback', 'reserved'].includes(
            ipaddr.IPv4.parse(s).range(),
          ),
        'must be a unicast dotted-quad IPv4 address (not 0.0.0.0, loopback, link-local, multicast or reserved)',
      )
      .nullable()
      .default(null),
    /** The IPv6 address clients reach it on (v4v6 clients), listed too. null: serverIpv6, else listen.address6. */
    address6: z
      .string()
      .refine(
        (s) => ipaddr.IPv6.isValid(s) && ipaddr.IPv6.parse(s).range() === 'unicast',
        'must be a unicast IPv6 address',
      )
      .nullable()
      .default(null),
    /** Seconds between heartbeats (the node's row: alive, tunnels, draining read back). */
    heartbeatS: z.number().int().min(1).max(60).default(5),
    /** A node silent this long is dead: never a redirect target, shown dead to operators. */
    deadAfterS: z.number().int().min(3).max(3600).default(20),
    /** Live tunnels at which new sessions are redirected to a less-loaded live node (when there is one);
     *  null: no limit. */
    capacity: z.number().int().min(1).nullable().default(null),
    /** Most brokers a redirect lists (gogoc keeps 50). */
    redirectMax: z.number().int().min(1).max(16).default(4),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.deadAfterS < 2 * c.heartbeatS)
      ctx.addIssue({
        code: 'custom',
        path: ['deadAfterS'],
        message: `must be at least twice cluster.heartbeatS (${2 * c.heartbeatS}), or one late heartbeat kills a node`,
      });
  });

export type ClusterConfig = z.infer<typeof clusterSchema>;
