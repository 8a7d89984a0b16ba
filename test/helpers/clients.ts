/** Minimal raw TSP peers for tests: a UDP socket that sends exact datagrams and collects replies by sequence,
 *  and a TCP socket that records every chunk as it arrives (to see separate server writes). Every wait is
 *  bounded in time. */
import dgram from 'node:dgram';
import net from 'node:net';

export class RawUdp {
  readonly socket: dgram.Socket;
  private readonly inbox: Buffer[] = [];
  private waiters: (() => void)[] = [];
  /** The broker's loopback address of the socket's family. */
  private readonly server: string;
  private constructor(ipv6: boolean) {
    this.socket = dgram.createSocket(ipv6 ? 'udp6' : 'udp4');
    this.server = ipv6 ? '::1' : '127.0.0.1';
    this.socket.on('message', (m) => {
      this.inbox.push(m);
      for (const w of this.waiters.splice(0)) w();
    });
  }
  /** `address`: any loopback address (127.0.0.0/8), to stand for another source, or ::1 for TSP over IPv6. */
  static async open(address = '127.0.0.1'): Promise<RawUdp> {
    const u = new RawUdp(address.includes(':'));
    await new Promise<void>((r) => u.socket.bind(0, address, () => r()));
    u.socket.unref(); // a test that forgets to close it must not keep its process alive
    return u;
  }
  get port(): number {
    return this.socket.address().port;
  }
  send(bytes: Buffer, port: number): void {
    this.socket.send(bytes, port, this.server);
  }
  /** Next datagram (any), or undefined after timeoutMs. */
  async next(timeoutMs = 2000): Promise<Buffer | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.inbox.shift();
  }
  /** Sends and waits for the reply carrying the same sequence. */
  async request(bytes: Buffer, port: number, timeoutMs = 2000): Promise<Buffer | undefined> {
    const seq = bytes.readUInt32BE(0);
    this.send(bytes, port);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.next(Math.max(0, deadline - Date.now()));
      if (!m) return undefined;
      if (m.length >= 8 && m.readUInt32BE(0) === seq) return m;
    }
  }
  close(): void {
    this.socket.close();
  }
}

export function udpDatagram(seq: number, timestamp: number, body: string | Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE((0xf0000000 | seq) >>> 0, 0);
  h.writeUInt32BE(timestamp >>> 0, 4);
  return Buffer.concat([h, typeof body === 'string' ? Buffer.from(body, 'latin1') : body]);
}

export class RawTcp {
  readonly chunks: Buffer[] = [];
  ended = false;
  private waiters: (() => void)[] = [];
  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d) => {
      this.chunks.push(d);
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {});
  }
  private wake() {
    for (const w of this.waiters.splice(0)) w();
  }
  /** `localAddress`: any loopback address (127.0.0.0/8), to stand for another source. */
  static async connect(port: number, localAddress?: string): Promise<RawTcp> {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true, ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('error', reject);
    });
    s.unref(); // a test that forgets to close it must not keep its process alive
    return new RawTcp(s);
  }
  write(b: Buffer | string): void {
    this.socket.write(typeof b === 'string' ? Buffer.from(b, 'latin1') : b);
  }
  /** Waits until `pred` holds over the received text, the connection ends, or timeoutMs passes. */
  async waitFor(pred: (text: string) => boolean, timeoutMs = 2000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = Buffer.concat(this.chunks).toString('latin1');
      if (pred(text) || this.ended) return text;
      const left = deadline - Date.now();
      if (left <= 0) return text;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
  async waitClosed(timeoutMs = 2000): Promise<boolean> {
    await this.waitFor(() => false, timeoutMs);
    return this.ended;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }
  close(): void {
    this.socket.destroy();
  }
}

/** Polls a condition until it holds or timeoutMs passes (bounded). */
export async function eventually(
  pred: () => boolean | Promise<boolean>,
  timeoutMs = 3000,
  stepMs = 25,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
