/** @module store/node-types: the store's side of a cluster of broker nodes (cluster/node.ts, docs/cluster.md),
 *  apart from store/types.ts to keep that file readable; Store includes NodeStore. */

/** A broker node as the `nodes` table has it (schema version 9). */
export interface NodeRecord {
  name: string;
  /** The addresses its clients reach it on (what a redirect to it lists), or null. */
  ipv4: string | null;
  ipv6: string | null;
  /** Live tunnels above which it redirects new sessions, or null for no limit. */
  capacity: number | null;
  /** The operator asked it to take no new tunnels (tsp-broker node drain). */
  draining: boolean;
  /** Live tunnels at its last heartbeat. */
  tunnels: number;
  startedAt: number;
  heartbeatAt: number;
}

/** Whether a node is alive at `now`: its last heartbeat within `deadAfterS` (cluster.deadAfterS). A node that
 *  stopped cleanly (heartbeat 0) never is. The one rule the node itself, the API, the web UI and the CLI use. */
export function nodeAlive(n: Pick<NodeRecord, 'heartbeatAt'>, deadAfterS: number, now: number): boolean {
  return n.heartbeatAt !== 0 && now - n.heartbeatAt <= deadAfterS * 1000;
}

/** A message between the nodes of one database (PostgreSQL NOTIFY on CLUSTER_CHANNEL; nothing on SQLite, where
 *  one broker is the only node). Sent inside the transaction that made the change, so it is delivered when,
 *  and only if, that transaction commits. */
export type ClusterMessage =
  /** `ids` ended on `node`'s behalf by another node (the account's tunnel moved there): drop them. */
  | { kind: 'ended'; node: string; ids: number[] }
  /** An audit event was written (a kill, a disable, a delete): followers read the trail now. */
  | { kind: 'audit'; action: string }
  /** A node's row changed (drained, undrained). */
  | { kind: 'node'; name: string };

/** The PostgreSQL notification channel of ClusterMessages. */
export const CLUSTER_CHANNEL = 'tsp_cluster';

/** The audit actions whose rows are announced to the nodes (a 'audit' message): what broker/audit-follow.ts
 *  acts on. Other audit rows (sign-ins, /nic/update calls) send nothing. */
export const ANNOUNCED_AUDIT_ACTIONS: ReadonlySet<string> = new Set([
  'account.disable',
  'account.delete',
  'account.enable',
  'tunnel.kill',
]);

export interface NodeStore {
  /** This store's node name: the tunnels it creates carry it (OpenOptions.nodeId; 'local' when not given). */
  readonly nodeId: string;
  /** Inserts or refreshes this node's row (addresses, capacity, start and heartbeat time, `instance`);
   *  `draining` is kept, so a drained node that restarts stays drained. CFG_INVALID when another process
   *  (another instance) holds the name and heartbeat at or after `aliveSince`: two live brokers must not
   *  share a node name. */
  registerNode(
    n: { ipv4: string | null; ipv6: string | null; capacity: number | null },
    at: number,
    owner: { instance: string; aliveSince: number },
  ): Promise<NodeRecord>;
  /** This node's heartbeat: its tunnel count and time. Undefined when its row is gone (an operator forgot it)
   *  or another instance registered the name since: register again. */
  heartbeatNode(tunnels: number, at: number, instance: string): Promise<NodeRecord | undefined>;
  /** A clean stop: the row's heartbeat time becomes 0, so other nodes stop redirecting here at once. */
  leaveNode(instance: string): Promise<void>;
  listNodes(): Promise<NodeRecord[]>;
  /** false when there is no such node. Tells the node at once (a 'node' message). */
  setNodeDraining(name: string, draining: boolean): Promise<boolean>;
  /** Deletes a node's row (a node gone for good), ends the tunnels it still carried ('shutdown', anonymous
   *  leases released, an 'ended' message to the node in case it still runs) and gives back its anonymous lease
   *  chunks that no lease is cut from; undefined when there is no such node. */
  forgetNode(name: string, at: number): Promise<{ tunnelsEnded: number } | undefined>;
  /** Live tunnel rows that name no node (written before schema version 9) and whose server address is one of
   *  `addresses` (this node's: the rows its clients send to) become this node's; with no addresses, all of
   *  them, but only while no other node is registered. Returns how many. One statement, so of two nodes
   *  starting at once only one takes each row. */
  adoptTunnels(addresses: readonly string[]): Promise<number>;
  /** Ends the account's established tunnels on other nodes as 'replaced', in the caller's batch, and tells
   *  their nodes (an 'ended' message each). Serialised per account across nodes, so two nodes accepting the
   *  same account at once end one or the other, never neither. Returns what it ended. */
  endTunnelsElsewhere(accountId: number, at: number): Promise<{ id: number; node: string | null }[]>;
  /** Of these tunnel ids, those whose rows have ended (a node catching up on messages it missed). */
  endedOf(ids: readonly number[]): Promise<number[]>;
}
