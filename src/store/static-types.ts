/** @module store/static-types: the store's side of static 6in4 tunnels (broker/static-tunnels.ts), apart from
 *  store/types.ts to keep that file readable; Store includes StaticTunnelStore. */

/** A static 6in4 tunnel's settings (schema version 8). While it has an endpoint and its account is enabled, a
 *  `tunnels` row with transport 'static' carries it in the data plane. */
export interface StaticTunnel {
  id: number;
  accountId: number;
  /** Joined from accounts. */
  username: string;
  /** Lower case, unique across accounts: the name dyndns2 updates give. */
  hostname: string;
  /** The client's IPv4, or null while unknown. */
  endpoint: string | null;
  /** The account's delegated prefix is routed to the tunnel too. */
  delegatePrefix: boolean;
  /** SHA-256 hex of the update key; null when none was made. Never leaves the broker. */
  updateKeyHash: string | null;
  createdAt: number;
  updatedAt: number;
}

/** Static 6in4 tunnels, at most one per account (schema version 8). */
export interface StaticTunnelStore {
  /** STORE_CONFLICT when the account already has one or the host name is taken. */
  createStaticTunnel(
    t: { accountId: number; hostname: string; endpoint: string | null; delegatePrefix: boolean },
    at: number,
  ): Promise<StaticTunnel>;
  staticTunnelOf(accountId: number): Promise<StaticTunnel | undefined>;
  /** By host name (compared in lower case). */
  findStaticTunnel(hostname: string): Promise<StaticTunnel | undefined>;
  /** Those with an endpoint whose account is enabled: what a start puts into the data plane. */
  activeStaticTunnels(): Promise<StaticTunnel[]>;
  /** Changes the given fields; STORE_NOT_FOUND on an unknown id. */
  updateStaticTunnel(
    id: number,
    change: { endpoint?: string | null; updateKeyHash?: string | null; delegatePrefix?: boolean },
    at: number,
  ): Promise<void>;
  /** False when there was none. */
  deleteStaticTunnel(id: number): Promise<boolean>;
}
