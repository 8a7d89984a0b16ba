/** @module cluster/routes-batch: one long-lived `ip -force -batch -` child (iproute2) that applies route
 *  commands written to its stdin, one line each, in order, without a process per command and without the
 *  event loop ever waiting on it (cluster/routes.ts drives it). `-force` keeps it going past a failed line: it
 *  says `Command failed -:<line>` on stderr, which is counted and logged with the line it names.
 *
 *  Completion: a successful route command prints nothing, so `sync()` writes `link show dev lo` (whose output
 *  starts `<index>: lo:`) as a marker and resolves when that many markers have come back on stdout: every
 *  command written before it has been applied (or has failed) by then. */

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

/** Commands remembered by line number, so a failure can be logged with the command that failed. Beyond
 *  that many lines back the log says the line number only. */
const REMEMBERED_LINES = 4096;
/** What of its stderr a dead child's log line quotes at most. */
const STDERR_TAIL_CHARS = 2000;
const MARKER_COMMAND = 'link show dev lo\n';
const MARKER_OUTPUT = /^\d+: lo:/;

export interface IpBatchEvents {
  /** A command failed: the command (if still remembered) and what ip said about it. */
  failed(command: string | undefined, error: string): void;
  /** The child is gone (or never started): why, in words for the log. */
  exited(why: string): void;
}

export class IpBatch {
  private readonly child: ChildProcessWithoutNullStreams;
  private linesWritten = 0;
  /** The last REMEMBERED_LINES commands, at their line number modulo REMEMBERED_LINES. */
  private readonly remembered: string[] = new Array<string>(REMEMBERED_LINES).fill('');
  private markersWritten = 0;
  private markersSeen = 0;
  private readonly waiters: { marker: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  private stdoutRest = '';
  private stderrRest = '';
  private stderrTail = '';
  private lastError = '';
  private gone = false;
  readonly exited: Promise<void>;

  constructor(netns: string | undefined, events: IpBatchEvents) {
    const args = [...(netns === undefined ? [] : ['-n', netns]), '-force', '-batch', '-'];
    this.child = spawn('ip', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout.setEncoding('utf8').on('data', (d: string) => this.onStdout(d));
    this.child.stderr.setEncoding('utf8').on('data', (d: string) => this.onStderr(d, events));
    this.child.stdin.on('error', () => {}); // EPIPE when it died: 'exit' says so
    this.exited = new Promise((resolve) => {
      const done = (why: string) => {
        if (this.gone) return;
        this.gone = true;
        const error = new Error(`ip -batch exited: ${why}`);
        for (const w of this.waiters.splice(0)) w.reject(error);
        events.exited(why);
        resolve();
      };
      this.child.once('error', (err) => done(`could not run ip: ${err.message}`));
      this.child.once('exit', (code, signal) => {
        const tail = this.stderrTail.trim();
        done(`${signal !== null ? `killed by ${signal}` : `exit code ${code}`}${tail ? `: ${tail}` : ''}`);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return !this.gone;
  }

  /** Writes commands, each a line ending in "\n" (a batch of them in one string). */
  write(commands: string): void {
    if (this.gone) return;
    for (let at = 0; at < commands.length;) {
      const newline = commands.indexOf('\n', at);
      const end = newline === -1 ? commands.length : newline;
      this.remember(commands.slice(at, end));
      at = end + 1;
    }
    this.child.stdin.write(commands);
  }

  /** Resolves when every command written so far has been applied; rejects if the child dies first or after
   *  `timeoutMs`. */
  sync(timeoutMs: number): Promise<void> {
    if (this.gone) return Promise.reject(new Error('ip -batch is not running'));
    const marker = ++this.markersWritten;
    this.remember(MARKER_COMMAND.trim());
    this.child.stdin.write(MARKER_COMMAND);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`ip -batch did not answer within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        marker,
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  }

  /** Closes its stdin (it exits once it has applied what it read), and kills it if it has not within
   *  `graceMs`. */
  async end(graceMs: number): Promise<void> {
    if (this.gone) return;
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  private remember(command: string): void {
    this.remembered[++this.linesWritten % REMEMBERED_LINES] = command;
  }

  private onStdout(data: string): void {
    const lines = (this.stdoutRest + data).split('\n');
    this.stdoutRest = lines.pop()!;
    for (const line of lines) if (MARKER_OUTPUT.test(line)) this.markersSeen++;
    while (this.waiters.length > 0 && this.waiters[0]!.marker <= this.markersSeen) this.waiters.shift()!.resolve();
  }

  private onStderr(data: string, events: IpBatchEvents): void {
    this.stderrTail = (this.stderrTail + data).slice(-STDERR_TAIL_CHARS);
    const lines = (this.stderrRest + data).split('\n');
    this.stderrRest = lines.pop()!;
    for (const line of lines) {
      const failed = /^Command failed -:(\d+)/.exec(line);
      if (!failed) {
        if (line.trim()) this.lastError = line.trim();
        continue;
      }
      const at = Number(failed[1]);
      const known = at > this.linesWritten - REMEMBERED_LINES ? this.remembered[at % REMEMBERED_LINES] : undefined;
      events.failed(known, this.lastError);
      this.lastError = '';
    }
  }
}
