/** @module errors: the one error hierarchy and registry of stable codes (docs/style.md §7).
 *  Every error we throw is a BrokerError with a code from ERRORS. Callers match on `code`, never on the message.
 *  `tsp` is the TSP status sent for it (null: never sent on TSP), `http` the admin API status.
 *  Imports nothing, so every layer may use it. */

export const ERRORS = {
  // TSP protocol: the peer broke TSP (RemoteProtocolError)
  TSP_BAD_FRAME: { tsp: 500, http: 400, text: 'Invalid request format or specified length' },
  TSP_TOO_LARGE: { tsp: 500, http: 413, text: 'Invalid request format or specified length' },
  TSP_UNEXPECTED: { tsp: 500, http: 400, text: 'Invalid request format or specified length' },
  TSP_BAD_VERSION: { tsp: 302, http: 400, text: 'Unsupported client version' },
  TSP_BAD_XML: { tsp: 500, http: 400, text: 'Invalid request format or specified length' },
  TSP_BAD_IPV4: { tsp: 501, http: 400, text: 'Invalid IPv4 address' },
  TSP_BAD_IPV6: { tsp: 502, http: 400, text: 'Invalid IPv6 address' },
  TSP_UNSUPPORTED_TUNNEL: { tsp: 303, http: 400, text: 'Unsupported tunnel type' },
  TSP_PREFIX_LENGTH_UNSUPPORTED: { tsp: 518, http: 400, text: 'Unsupported prefix length' },
  TSP_PREFIX_LENGTH_MISSING: { tsp: 520, http: 400, text: 'Missing prefix length' },
  TSP_PREFIX_LENGTH_UNAVAILABLE: { tsp: 507, http: 409, text: 'Prefix length unavailable' },
  TSP_PREFIX_FOR_ANONYMOUS: { tsp: 522, http: 403, text: 'Prefix requested for anonymous' },
  TSP_REQUEST_IN_PROGRESS: { tsp: 521, http: 409, text: 'Request already in progress' },
  TSP_TIMEOUT: { tsp: null, http: 408, text: 'Negotiation timed out' },
  TSP_BUSY: { tsp: 530, http: 503, text: 'Server too busy' },
  // Authentication
  AUTH_FAILED: { tsp: 300, http: 401, text: 'Authentication failed' },
  AUTH_MECHANISM: { tsp: 300, http: 400, text: 'Authentication failed' },
  AUTH_RATE_LIMITED: { tsp: 300, http: 429, text: 'Authentication failed' },
  // Allocation
  POOL_EXHAUSTED: { tsp: 301, http: 503, text: 'No more tunnels available' },
  POOL_CONFLICT: { tsp: 310, http: 409, text: 'Server side error' },
  /** An operator killed this account's (or source address's) tunnel and blocked it for a while. */
  TUNNEL_BLOCKED: { tsp: 301, http: 403, text: 'No more tunnels available' },
  // Reverse DNS (broker/reverse-dns.ts)
  /** The DNS server refused or never answered the update, or the name servers given are not acceptable. */
  DNS_DELEGATION: { tsp: 509, http: 502, text: 'DNS delegation error' },
  DNS_DELEGATION_OFF: { tsp: null, http: 409, text: 'Reverse DNS delegation is not configured' },
  /** A static 6in4 tunnel holds the account's addresses, or the protocol-41 endpoint asked for
   *  (broker/static-tunnels.ts): a TSP session of that account, or a v6v4 tunnel from that IPv4, is refused. */
  STATIC_TUNNEL_HOLDS: { tsp: 301, http: 409, text: 'No more tunnels available' },
  /** An operator killed the account's static 6in4 tunnel and blocked the account for a while: it is not made
   *  live again (endpoint change, account enabled, create) until the block ends. */
  STATIC_TUNNEL_BLOCKED: { tsp: 301, http: 409, text: 'No more tunnels available' },
  /** Static 6in4 tunnels are carried by a single-node broker (SQLite) only: on a cluster any node could make
   *  one live, and the router's protocol-41 endpoint names one node's address (docs/cluster.md). */
  STATIC_TUNNEL_CLUSTER: { tsp: 301, http: 409, text: 'No more tunnels available' },
  // Store
  STORE_NOT_FOUND: { tsp: 310, http: 404, text: 'Not found' },
  STORE_CONFLICT: { tsp: 310, http: 409, text: 'Already exists' },
  STORE_FAILED: { tsp: 310, http: 500, text: 'Server side error' },
  // Configuration
  CFG_INVALID: { tsp: null, http: 400, text: 'Invalid configuration' },
  CFG_FILE: { tsp: null, http: 500, text: 'Configuration file unreadable' },
  // Data plane
  DP_UNAVAILABLE: { tsp: 310, http: 503, text: 'Data plane unavailable' },
  DP_FAILED: { tsp: 310, http: 500, text: 'Server side error' },
  // Admin API
  API_BAD_REQUEST: { tsp: null, http: 400, text: 'Request does not match the schema' },
  API_UNAUTHORIZED: { tsp: null, http: 401, text: 'Authentication required' },
  API_FORBIDDEN: { tsp: null, http: 403, text: 'Forbidden' },
  API_NOT_FOUND: { tsp: null, http: 404, text: 'Not found' },
  API_CSRF: { tsp: null, http: 403, text: 'CSRF token missing or invalid' },
  API_RATE_LIMITED: { tsp: null, http: 429, text: 'Too many attempts' },
  // TSP client (tspc): what went wrong on our side of a session. Never sent on TSP; tspc maps them to exit
  // statuses (src/client/exit-codes.ts).
  CLIENT_UNREACHABLE: { tsp: null, http: 504, text: 'TSP server unreachable' },
  CLIENT_TIMEOUT: { tsp: null, http: 504, text: 'TSP server stopped answering' },
  CLIENT_IO: { tsp: null, http: 502, text: 'TSP connection failed' },
  CLIENT_PROTOCOL: { tsp: null, http: 502, text: 'TSP server broke the protocol' },
  CLIENT_VERSION: { tsp: null, http: 502, text: 'No TSP version in common with the server' },
  CLIENT_BUSY: { tsp: null, http: 503, text: 'TSP server too busy' },
  CLIENT_REDIRECT: { tsp: null, http: 502, text: 'TSP server redirects to another broker' },
  CLIENT_AUTH_FAILED: { tsp: null, http: 401, text: 'Authentication failed' },
  CLIENT_NO_MECHANISM: { tsp: null, http: 401, text: 'No authentication mechanism in common' },
  CLIENT_UNSUPPORTED_MODE: { tsp: null, http: 502, text: 'Tunnel mode not offered by the server' },
  CLIENT_SERVER_ERROR: { tsp: null, http: 502, text: 'The server refused the tunnel request' },
  CLIENT_BAD_OFFER: { tsp: null, http: 502, text: 'The server offered an unusable tunnel' },
  CLIENT_KEEPALIVE: { tsp: null, http: 504, text: 'Keepalive timeout' },
  CLIENT_TUN: { tsp: null, http: 500, text: 'Cannot create the tunnel device' },
  CLIENT_SETUP: { tsp: null, http: 500, text: 'Local network setup failed' },
  CLIENT_HOOK: { tsp: null, http: 500, text: 'Hook script failed' },
  INTERNAL: { tsp: 310, http: 500, text: 'Server side error' },
} as const satisfies Record<string, { tsp: number | null; http: number; text: string }>;

export type ErrorCode = keyof typeof ERRORS;

export class BrokerError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
  /** The TSP status line text for this error, or the generic server error when it has none. */
  get tspStatus(): { code: number; text: string } {
    const e = ERRORS[this.code];
    return e.tsp === null ? { code: 310, text: 'Server side error' } : { code: e.tsp, text: e.text };
  }
}

/** The peer broke TSP: the session replies with the code's status and ends cleanly. */
export class RemoteProtocolError extends BrokerError {}

export function isBrokerError(e: unknown): e is BrokerError {
  return e instanceof BrokerError;
}
