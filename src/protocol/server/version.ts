/** @module protocol/server/version: the server's answer to `VERSION=` (docs/protocol.md §4), which depends on
 *  the configuration alone: CAPABILITY, or 302 for a version we do not speak. Shared by the session and by the
 *  stateless UDP answer (framing/udp.ts classifyFirstDatagram). Pure. */

import { SUPPORTED_VERSIONS, type TspVersion } from '../constants.js';
import { RemoteProtocolError } from '../../errors.js';
import { BAD_VERSION_LINE } from '../status.js';
import type { TunnelType } from '../../tunnel-model.js';

/** What CAPABILITY lists. */
export interface Capabilities {
  /** Concrete tunnel types advertised in CAPABILITY (upper-cased there). */
  tunnelTypes: readonly TunnelType[];
  /** Enabled mechanisms, in the order advertised. */
  mechanisms: readonly ('ANONYMOUS' | 'PLAIN' | 'DIGEST-MD5')[];
}

/** The CAPABILITY line, built from what is enabled; the final CR LF is required (gogoc drops the last token
 *  without it, docs/protocol.md §4). */
export function capabilityLine(opt: Capabilities): Buffer {
  const tokens = [
    ...opt.tunnelTypes.map((t) => `TUNNEL=${t.toUpperCase()}`),
    ...opt.mechanisms.map((m) => `AUTH=${m}`),
  ];
  return Buffer.from(`CAPABILITY ${tokens.join(' ')}\r\n`, 'latin1');
}

const VERSION_LINE = /^VERSION=(\S+)\s*$/i;

/** Whether a line is a VERSION request at all (a UDP datagram body starting so restarts its session). */
export function startsWithVersion(body: Buffer): boolean {
  return body.subarray(0, 8).toString('latin1').toUpperCase() === 'VERSION=';
}

export type VersionAnswer =
  | { supported: true; version: TspVersion; reply: Buffer }
  /** `version` is what the peer asked for, cut to 16 characters for logs. */
  | { supported: false; version: string; reply: Buffer };

/** Reads a `VERSION=x` line: undefined when the line is not one. */
export function answerVersion(line: string, caps: Capabilities): VersionAnswer | undefined {
  const m = VERSION_LINE.exec(line);
  if (!m) return undefined;
  const v = m[1]!;
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v))
    return { supported: false, version: v.slice(0, 16), reply: BAD_VERSION_LINE };
  return { supported: true, version: v as TspVersion, reply: capabilityLine(caps) };
}

/** answerVersion for the session: anything but a VERSION line is a framing error (answered with 500). */
export function requireVersion(line: string, caps: Capabilities): VersionAnswer {
  const a = answerVersion(line, caps);
  if (!a) throw new RemoteProtocolError('TSP_BAD_FRAME', 'expected VERSION=');
  return a;
}
