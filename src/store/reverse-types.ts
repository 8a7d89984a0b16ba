/** @module store/reverse-types: the reverse-DNS part of the Store contract (schema version 7), re-exported by
 *  store/types.ts. */

/** An account's reverse-DNS delegation (schema version 7): the name servers it wants for its prefix's
 *  ip6.arpa zone, and what the broker last published at the DNS server (broker/reverse-dns.ts). */
export interface ReverseDelegation {
  id: number;
  /** null: the account was deleted and `published` is still to be withdrawn. */
  accountId: number | null;
  servers: string[];
  published: string[];
  /** The name servers the published names may point to at the DNS server (ours: withdrawn record by record,
   *  so a name that now belongs to someone else keeps their records). */
  publishedServers: string[];
  /** The last update's failure; null when the DNS server holds what `published` says. */
  error: string | null;
  updatedAt: number;
}

/** What a DNS update left at the server for a row, and for which wish (`servers`) it was made. */
export interface ReverseOutcome {
  published: string[];
  publishedServers: string[];
  error: string | null;
  servers: string[];
}

/** The `error` of a row whose servers were set and whose DNS update has not gone through yet. */
export const REVERSE_PENDING = 'not published yet';

export interface ReverseDnsStore {
  getReverseDelegation(accountId: number): Promise<ReverseDelegation | undefined>;
  getReverseDelegationById(id: number): Promise<ReverseDelegation | undefined>;
  /** Sets the wanted name servers (an empty list: none), creating the account's row if needed, and marks it
   *  REVERSE_PENDING. */
  setReverseServers(accountId: number, servers: string[], at: number): Promise<ReverseDelegation>;
  /** Records what the DNS server now holds for the row, and why the update failed (null: it went through). A
   *  wish changed since (the row's servers differ from `outcome.servers`) keeps the row REVERSE_PENDING. */
  markReverseDelegation(id: number, outcome: ReverseOutcome, at: number): Promise<void>;
  /** Rows with work left (a deleted account's, or a failed update), least recently tried first. */
  pendingReverseDelegations(limit: number): Promise<ReverseDelegation[]>;
  deleteReverseDelegation(id: number): Promise<void>;
}
