/** @module test/fuzz/targets: every fuzz target, by name (docs/fuzzing.md). */
import type { Target } from '../engine.js';
import { clientSession } from './client-session.js';
import { dnsReplyTarget } from './dns-reply.js';
import { saslTarget } from './sasl.js';
import { serverTcp, serverUdp } from './server-session.js';
import { v4v6PacketTarget } from './v4v6-packet.js';
import { xmlTarget } from './xml.js';

export const TARGETS: readonly Target[] = [
  serverUdp,
  serverTcp,
  clientSession,
  xmlTarget,
  saslTarget,
  dnsReplyTarget,
  v4v6PacketTarget,
];

export function targetByName(name: string): Target | undefined {
  return TARGETS.find((t) => t.name === name);
}
