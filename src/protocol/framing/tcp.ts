/** @module protocol/framing/tcp: TSP over a TCP byte stream (docs/protocol.md §2.5): lines and Content-length
 *  messages as they arrive, split anywhere; exactly one NUL discarded after an AUTHENTICATE line. The server's
 *  reader (TcpServerFraming) and the client's (takeReply). Pure. */

import { RemoteProtocolError, BrokerError } from '../../errors.js';
import { MAX_CONTENT_LENGTH, MAX_LINE_BYTES, TCP_LINGER_MS } from '../constants.js';
import { BUSY_LINE, statusOfLine } from '../status.js';
import { scanFramed } from './content-length.js';
import { headerText, isBlank } from './lines.js';
import type { Inbound, Outbox, ReaderState, ServerFraming } from './types.js';

const EMPTY = Buffer.alloc(0);

/** What a connection over a limit is sent before it is closed. */
export function tcpBusyReply(): Buffer {
  return BUSY_LINE;
}

export class TcpServerFraming implements ServerFraming {
  readonly transport = 'tcp' as const;
  readonly sourceValidated = true;
  readonly digestSuccess = 'pause' as const;
  /** Over TCP an accepted session only lingers for the client's last message; then the connection closes. */
  readonly acceptLingerMs = TCP_LINGER_MS;
  readonly endsAtOnce = true;
  private inbuf: Buffer = EMPTY;
  private skipNul = false;

  markValidated(): void {}

  push(bytes: Buffer): void {
    this.inbuf = this.inbuf.length ? Buffer.concat([this.inbuf, bytes]) : Buffer.from(bytes);
  }

  expectNul(): void {
    this.skipNul = true;
  }

  next(state: ReaderState): Inbound | undefined {
    if (state.waiting || state.reading === 'nothing') return undefined;
    for (;;) {
      if (this.skipNul && this.inbuf.length) {
        if (this.inbuf[0] === 0) this.inbuf = this.inbuf.subarray(1);
        this.skipNul = false;
      }
      const m = state.reading === 'line' ? this.takeLine(state) : this.takeFramed();
      if (m !== 'blank') return m;
    }
  }

  reply(body: Buffer, out: Outbox): void {
    if (body.length) out.send(body);
  }

  private takeLine(state: ReaderState): Inbound | 'blank' | undefined {
    const lf = this.inbuf.indexOf(0x0a);
    if (lf < 0) {
      if (this.inbuf.length > MAX_LINE_BYTES)
        throw new RemoteProtocolError('TSP_TOO_LARGE', `line longer than ${MAX_LINE_BYTES} bytes`);
      return undefined;
    }
    if (lf > MAX_LINE_BYTES) throw new RemoteProtocolError('TSP_TOO_LARGE', `line longer than ${MAX_LINE_BYTES} bytes`);
    let line = this.inbuf.subarray(0, lf);
    this.inbuf = this.inbuf.subarray(lf + 1);
    if (line.length && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (line.length === 0 && state.skipBlankLines) return 'blank';
    return { kind: 'line', line };
  }

  /** Blank lines are skipped, then the header line, then exactly N bytes. */
  private takeFramed(): Inbound | 'blank' | undefined {
    const scan = scanFramed(this.inbuf);
    if (scan.kind === 'incomplete') {
      if (scan.lineLength !== undefined && scan.lineLength > MAX_LINE_BYTES)
        throw new RemoteProtocolError('TSP_TOO_LARGE', 'header line too long');
      return undefined;
    }
    if (scan.kind === 'notFramed') {
      if (!isBlank(headerText(this.inbuf, scan.lf)))
        throw new RemoteProtocolError('TSP_BAD_FRAME', 'expected a Content-length header');
      this.inbuf = this.inbuf.subarray(scan.lf + 1);
      return 'blank';
    }
    const body = this.inbuf.subarray(scan.start, scan.end);
    this.inbuf = this.inbuf.subarray(scan.end);
    return { kind: 'framed', body };
  }
}

/** The client's reader: one whole reply from the front of the stream, in the form it takes (a Content-length
 *  message, a redirect's status line and broker list, or a bare line), or undefined for "need more bytes".
 *  Returns the reply and what is left. */
export function takeReply(b: Buffer): { reply: Buffer; rest: Buffer } | undefined {
  const scan = scanFramed(b);
  if (scan.kind === 'incomplete') {
    if (scan.lineLength !== undefined && b.length > MAX_CONTENT_LENGTH)
      throw new BrokerError('CLIENT_PROTOCOL', `no line end in the first ${b.length} bytes of a reply`);
    return undefined;
  }
  let end: number;
  if (scan.kind === 'message') end = scan.end;
  else {
    end = scan.lf + 1;
    if (statusOfLine(headerText(b, scan.lf)) > 1000) {
      // a bare redirect carries its broker list after the status line (§10)
      const close = b.indexOf('</tunnel>', scan.lf, 'latin1');
      if (close < 0) return b.length > MAX_CONTENT_LENGTH ? { reply: b, rest: EMPTY } : undefined;
      end = close + '</tunnel>'.length;
    }
  }
  return { reply: b.subarray(0, end), rest: b.subarray(end) };
}
