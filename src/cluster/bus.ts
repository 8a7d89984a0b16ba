/** @module cluster/bus: the messages between nodes (store/node-types.ts ClusterMessage), received by PostgreSQL
 *  LISTEN on one connection of its own. A message is sent by the transaction that made the change
 *  (store/kysely/nodes.ts notifyCluster), so it arrives within a round trip of the commit: no polling.
 *
 *  The connection can break (database restart, network). Messages sent meanwhile are lost to this node, so
 *  after every (re)connection `onConnected` runs and the node catches up from the rows themselves (cluster.ts).
 *  Reconnection backs off from 1 s to 30 s. A message that does not parse is logged and dropped. */

import pg from 'pg';
import type { Logger } from 'pino';
import { CLUSTER_CHANNEL, type ClusterMessage } from '../store/node-types.js';

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

export interface ClusterBusOptions {
  url: string;
  log: Logger;
  onMessage: (m: ClusterMessage) => void;
  /** After each connection (the first included) is listening: catch up on what may have been missed. */
  onConnected: () => void;
}

/** A ClusterMessage from a notification payload, or undefined when it is not one. */
export function parseClusterMessage(payload: string | undefined): ClusterMessage | undefined {
  let m: unknown;
  try {
    m = JSON.parse(payload ?? '');
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null) return undefined;
  const o = m as Record<string, unknown>;
  if (o.kind === 'ended' && typeof o.node === 'string' && Array.isArray(o.ids) && o.ids.every(Number.isSafeInteger))
    return { kind: 'ended', node: o.node, ids: o.ids as number[] };
  if (o.kind === 'audit' && typeof o.action === 'string') return { kind: 'audit', action: o.action };
  if (o.kind === 'node' && typeof o.name === 'string') return { kind: 'node', name: o.name };
  return undefined;
}

export class ClusterBus {
  private client: pg.Client | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;
  private backoffMs = BACKOFF_MIN_MS;
  /** Whether a LISTEN connection is up now (metrics, tests). */
  connected = false;

  constructor(private readonly opts: ClusterBusOptions) {}

  /** Connects and listens; resolves once listening (rejects when the first connection fails). */
  async start(): Promise<void> {
    await this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    const c = this.client;
    this.client = undefined;
    this.connected = false;
    await c?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    // keepAlive: an idle LISTEN socket whose peer vanished (a database failover, a NAT's idle timeout) must
    // not stay open forever; check() also asks the server every heartbeat
    const client = new pg.Client({ connectionString: this.opts.url, keepAlive: true });
    // 'error' without a listener would crash the process: a broken connection is a reconnect
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client));
    client.on('notification', (n) => {
      if (n.channel !== CLUSTER_CHANNEL) return;
      const m = parseClusterMessage(n.payload);
      if (!m) return this.opts.log.warn({ payload: n.payload?.slice(0, 200) }, 'cluster message not understood');
      try {
        this.opts.onMessage(m);
      } catch (err) {
        this.opts.log.error({ err, message: m }, 'cluster message handling failed');
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CLUSTER_CHANNEL}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.connected = true;
    this.backoffMs = BACKOFF_MIN_MS;
    this.opts.onConnected();
  }

  /** Asks the server over the LISTEN connection; no answer within `timeoutMs` counts as a lost connection
   *  (reconnect, then catch up). Never rejects. */
  async check(timeoutMs: number): Promise<void> {
    const client = this.client;
    if (!client) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([client.query('select 1'), late]);
    } catch (err) {
      this.lost(client, err as Error);
    } finally {
      clearTimeout(timer);
    }
  }

  private lost(client: pg.Client, err?: Error): void {
    if (client !== this.client || this.closed) return;
    this.client = undefined;
    this.connected = false;
    void client.end().catch(() => undefined);
    this.opts.log.warn({ err, retryInMs: this.backoffMs }, 'cluster message connection lost: reconnecting');
    this.schedule();
  }

  private schedule(): void {
    const wait = this.backoffMs;
    this.backoffMs = Math.min(BACKOFF_MAX_MS, this.backoffMs * 2);
    this.retry = setTimeout(() => {
      this.connect().catch((err: unknown) => {
        this.opts.log.warn({ err, retryInMs: this.backoffMs }, 'cluster message connection failed: retrying');
        if (!this.closed) this.schedule();
      });
    }, wait);
    this.retry.unref();
  }
}
