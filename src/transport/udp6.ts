/** @module transport/udp6: TSP over UDP on IPv6, for v4v6 clients (which have no IPv4). Control only: no
 *  tunnel type carries packets on an IPv6 UDP flow, so a plain Node socket serves, beside the data plane's IPv4
 *  one. `controlChannels` joins the two, so one UdpControl (one session table, one set of half-open bounds)
 *  serves both families. */

import dgram from 'node:dgram';
import { BrokerError } from '../errors.js';
import type { ControlDatagram, DataPlane, Endpoint } from '../dataplane/types.js';

/** Where UdpControl reads control datagrams and sends its replies. */
export type ControlChannel = Pick<DataPlane, 'onControl' | 'sendControl'>;

export class Udp6Channel implements ControlChannel {
  private socket: dgram.Socket | undefined;
  private handler: (batch: readonly ControlDatagram[]) => void = () => {};

  /** Binds `address` (an IPv6 address, IPv6 only) on `port`. Rejects with DP_UNAVAILABLE saying why. */
  async bind(address: string, port: number): Promise<void> {
    const s = dgram.createSocket({ type: 'udp6', ipv6Only: true });
    await new Promise<void>((resolve, reject) => {
      s.once('error', (err) =>
        reject(new BrokerError('DP_UNAVAILABLE', `cannot listen on UDP [${address}]:${port}: ${err.message}`)),
      );
      s.bind({ address, port, exclusive: true }, () => resolve());
    });
    s.on('error', () => {}); // a send to an unreachable peer: nothing to do, the session times out
    s.on('message', (data, rinfo) => this.handler([{ from: { address: rinfo.address, port: rinfo.port }, data }]));
    this.socket = s;
  }

  get port(): number {
    return this.socket?.address().port ?? 0;
  }

  onControl(handler: (batch: readonly ControlDatagram[]) => void): void {
    this.handler = handler;
  }

  sendControl(to: Endpoint, datagram: Uint8Array): void {
    this.socket?.send(datagram, to.port, to.address);
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
  }
}

/** One channel over the data plane's IPv4 socket and, when there is one, the IPv6 socket: replies go out on the
 *  socket of the peer's family. */
export function controlChannels(v4: ControlChannel, v6: ControlChannel | undefined): ControlChannel {
  if (!v6) return v4;
  return {
    onControl(handler) {
      v4.onControl(handler);
      v6.onControl(handler);
    },
    sendControl(to, datagram) {
      (to.address.includes(':') ? v6 : v4).sendControl(to, datagram);
    },
  };
}
