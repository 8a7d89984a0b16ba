/** @module client/status: the status file `tspc status` reads. The running tspc rewrites it (write to a temporary
 *  file, then rename, so a reader never sees half a file) on every change and every few seconds while the
 *  tunnel is up (counters, keepalive RTT). `pid` lets a reader tell a live tspc from a stale file. */

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BrokerError } from '../errors.js';
import type { TunnelType } from '../tunnel-model.js';

export type TspcState = 'connecting' | 'up' | 'reconnecting' | 'stopped' | 'failed';

export interface StatusSnapshot {
  pid: number;
  state: TspcState;
  server: string;
  updatedAt: string;
  /** When the current state began. */
  since: string;
  /** Why tspc is reconnecting, or why it stopped. */
  reason?: string;
  reconnects: number;
  session?: {
    transport: 'udp' | 'tcp';
    version: string;
    mechanism: string;
    local: string;
  };
  tunnel?: {
    type: TunnelType;
    interface: string;
    clientIpv4: string;
    serverIpv4: string;
    clientIpv6: string;
    serverIpv6: string;
    prefix?: string;
    dnsServer?: string;
    /** Router mode: the /64 on the LAN and who announces it (`2001:db8::/64 on eth1, radvd`). */
    lan?: string;
    keepaliveIntervalS?: number;
  };
  counters?: { txPackets: number; txBytes: number; rxPackets: number; rxBytes: number; dropped: number };
  keepalive?: { lastRttMs?: number; lastReplyAt?: string; misses: number; sent: number };
}

export function writeStatus(file: string, s: StatusSnapshot): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`);
  renameSync(tmp, file);
}

export function readStatus(file: string): StatusSnapshot {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new BrokerError('CFG_FILE', `no status at ${file}: is tspc running (with this --status-file)?`, {
      cause: e,
    });
  }
  return JSON.parse(text) as StatusSnapshot;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function bytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}

/** A few readable lines for `tspc status`. */
export function formatStatus(s: StatusSnapshot, alive: boolean): string {
  const lines: string[] = [];
  const state =
    alive || s.state === 'stopped' || s.state === 'failed' ? s.state : `${s.state} (stale: pid ${s.pid} is gone)`;
  lines.push(`state:      ${state} since ${s.since}${s.reason ? ` (${s.reason})` : ''}`);
  lines.push(
    `server:     ${s.server}${s.session ? ` over ${s.session.transport}, TSP ${s.session.version}, ${s.session.mechanism}, from ${s.session.local}` : ''}`,
  );
  if (s.tunnel) {
    const t = s.tunnel;
    lines.push(`tunnel:     ${t.type} on ${t.interface}, ${t.clientIpv4} <-> ${t.serverIpv4}`);
    lines.push(`addresses:  ${t.clientIpv6} (server ${t.serverIpv6})`);
    if (t.prefix) lines.push(`prefix:     ${t.prefix}`);
    if (t.lan) lines.push(`lan:        ${t.lan}`);
    if (t.dnsServer) lines.push(`dns:        ${t.dnsServer}`);
  }
  if (s.counters) {
    const c = s.counters;
    lines.push(
      `traffic:    sent ${c.txPackets} packets (${bytes(c.txBytes)}), received ${c.rxPackets} (${bytes(c.rxBytes)}), dropped ${c.dropped}`,
    );
  }
  if (s.keepalive) {
    const k = s.keepalive;
    const rtt =
      k.lastRttMs !== undefined ? `last RTT ${k.lastRttMs.toFixed(1)} ms at ${k.lastReplyAt}` : 'no reply yet';
    lines.push(
      `keepalive:  every ${s.tunnel?.keepaliveIntervalS ?? '?'} s, ${rtt}, ${k.misses} missed in a row, ${k.sent} sent`,
    );
  } else if (s.tunnel) lines.push('keepalive:  off (the offer has none)');
  lines.push(`reconnects: ${s.reconnects}`);
  return lines.join('\n');
}
