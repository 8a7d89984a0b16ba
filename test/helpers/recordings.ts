/** Loads the recorded gogoc 1.2 sessions (../shared/interop/gogoc-1.2, docs/protocol.md §14) as exact bytes. */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface RecordedMessage {
  from: 'client' | 'server';
  transport: 'udp' | 'tcp';
  header?: { seq: string; timestamp: number };
  attempt?: number;
  payload: string;
}

export interface Recording {
  name: string;
  client_config: Record<string, string>;
  client_exit: string;
  messages: RecordedMessage[];
  client_tunnel_environment?: Record<string, string>;
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** The folder: beside the checkout as ../shared (sessions and CI lay it so), or TSP_INTEROP_DIR. */
export function recordingsDir(): string {
  const candidates = [
    process.env.TSP_INTEROP_DIR,
    path.resolve(here, '../../../shared/interop/gogoc-1.2'),
    '/work/shared/interop/gogoc-1.2',
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`recorded gogoc sessions not found; looked in ${candidates.join(', ')}`);
  return found;
}

export function loadRecordings(): Recording[] {
  const dir = recordingsDir();
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Recording);
}

/** Payload text as bytes: one code point per byte. */
export function payloadBytes(m: RecordedMessage): Buffer {
  return Buffer.from(m.payload, 'latin1');
}

/** The whole UDP datagram as the client sent it: header + payload. */
export function datagramBytes(m: RecordedMessage): Buffer {
  if (!m.header) throw new Error('not a UDP message');
  const h = Buffer.alloc(8);
  h.writeUInt32BE(Number(m.header.seq) >>> 0, 0);
  h.writeUInt32BE(m.header.timestamp >>> 0, 4);
  return Buffer.concat([h, payloadBytes(m)]);
}
