/** @module client/servers: which broker tspc asks next (client/tspc.ts). The configured servers (`server=`, a
 *  list in tspc) in turn, the one to try first at the front and one that fails moved to the back; a redirect's
 *  brokers in order, at once; a redirect list that fails counts as the failure of the configured server that
 *  sent it; more than MAX_REDIRECTS redirects in a row (brokers sending clients to each other) count as one
 *  failure. After a failure of every configured server in a row, the caller backs off. */

import type { NegotiateTarget } from './negotiate.js';

/** Redirects followed in a row before it is taken as a failure. */
export const MAX_REDIRECTS = 5;

export class ServerChoice {
  private readonly configured: NegotiateTarget[];
  private targets: NegotiateTarget[];
  private failedServers = 0;
  /** The configured server whose redirect is being followed. */
  private issuer: NegotiateTarget | undefined;
  private redirects = 0;

  constructor(servers: readonly NegotiateTarget[]) {
    this.configured = [...servers];
    this.targets = [this.configured[0]!];
  }

  /** The broker to ask now. */
  get current(): NegotiateTarget {
    return this.targets[0]!;
  }

  /** A redirect to `brokers`: true when it is followed (ask current next), false when there were too many in
   *  a row (then call failed()). */
  redirected(brokers: readonly string[]): boolean {
    if (this.redirects >= MAX_REDIRECTS) return false;
    this.redirects++;
    this.issuer ??= this.current;
    const port = this.configured[0]!.port;
    this.targets = brokers.map((b) => ({ host: b.replace(/^\[|\]$/g, ''), port, text: b }));
    return true;
  }

  /** The current broker failed. 'next': ask current at once (the next broker of a redirect list, or the next
   *  configured server); 'backoff': every configured server failed in a row (or `permanent`), wait first. */
  failed(permanent: boolean, tooManyRedirects = false): 'next' | 'backoff' {
    if (!tooManyRedirects && this.targets.length > 1) {
      this.targets = this.targets.slice(1);
      return 'next';
    }
    const failed = this.issuer ?? this.current;
    this.issuer = undefined;
    this.redirects = 0;
    this.rotate(failed);
    this.targets = [this.configured[0]!];
    if (this.configured.includes(failed) && ++this.failedServers < this.configured.length && !permanent) return 'next';
    this.failedServers = 0;
    return 'backoff';
  }

  /** A tunnel came up: start from the front again next time. */
  succeeded(): void {
    this.failedServers = 0;
    this.issuer = undefined;
    this.redirects = 0;
    this.targets = [this.configured[0]!];
  }

  /** The tunnel on `server` died (keepalives unanswered): the other configured servers come first. */
  died(server: NegotiateTarget): void {
    this.rotate(server);
    this.targets = [this.configured[0]!];
  }

  private rotate(from: NegotiateTarget): void {
    if (this.configured[0] === from && this.configured.length > 1) this.configured.push(this.configured.shift()!);
  }
}
