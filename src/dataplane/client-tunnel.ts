/** @module dataplane/client-tunnel: the client end of one tunnel (our tspc's, and the e2e tests'): a TUN device
 *  moving IPv6 packets to and from the broker over UDP (v6udpv4) or protocol 41 (v6v4), or IPv4 packets over
 *  IPv6 next header 4 (v4v6: a raw IPv6 socket connected to the broker), in the addon's own threads
 *  (native/src/client.h). Packets never reach JavaScript; control datagrams from the broker do, in
 *  batches. Imports nothing from broker/, admin/, cli/.
 *
 *  startClientTunnel --> addon opens TUN + socket, starts its two threads --> caller sets addresses, routes
 *  close()           --> threads stop, descriptors close (the TUN device and its routes vanish) */

import {
  CLIENT_COUNTER_NAMES,
  loadAddon,
  unavailable,
  type ClientCounterName,
  type ClientTunnelHandle,
} from './native-addon.js';
import type { ControlDatagram, Endpoint, TunnelType } from './types.js';

export interface ClientTunnelOptions {
  /** Create the TUN and socket inside this named network namespace. */
  netns?: string;
  tunName: string;
  type: TunnelType;
  /** The broker: IPv4 address, and the TSP port for v6udpv4; for v4v6 its IPv6 address (the offer's server
   *  endpoint), port unused. */
  server: Endpoint;
  /** Local address to bind (default: any): IPv4, or IPv6 for v4v6 (the source of what the tunnel sends). */
  localAddress?: string;
  /** Local UDP port for v6udpv4: the one the TSP session used, so the NAT binding is reused. 0: ephemeral. */
  localPort?: number;
  cpu?: number;
}

export interface ClientTunnel {
  /** The TUN device's actual name. */
  readonly tunName: string;
  /** The UDP port the tunnel sends from (v6udpv4); 0 for v6v4. */
  readonly localPort: number;
  /** Traffic, drops, and the client's sendErrors and controlQueueFull (the broker's send_errors and
   *  control_queue_full). Still readable after close: the figures at close. */
  readCounters(): Record<ClientCounterName, number>;
  /** A control datagram to the broker over the tunnel's UDP flow (v6udpv4). False if refused. */
  sendControl(datagram: Uint8Array): boolean;
  /** Stops the threads and closes the TUN (the device disappears) and the socket. Idempotent. */
  close(): void;
}

/** Opens the client end of a tunnel: a TUN device moving IPv6 packets to and from the broker over UDP
 *  (v6udpv4) or protocol 41 (v6v4), or IPv4 packets in IPv6 (v4v6), in the addon's own threads. The caller configures the TUN's addresses and
 *  routes (`ip`), then traffic flows. Control datagrams (first nibble 0xF) from the broker go to `onControl`
 *  in batches. Rejects with DP_UNAVAILABLE saying what is missing. */
export function startClientTunnel(
  options: ClientTunnelOptions,
  onControl?: (batch: readonly ControlDatagram[]) => void,
): ClientTunnel {
  const lib = loadAddon();
  let handle: ClientTunnelHandle;
  try {
    handle = new lib.ClientTunnelHandle(
      {
        netns: options.netns,
        tunName: options.tunName,
        type: options.type,
        serverAddress: options.server.address,
        serverPort: options.type === 'v6udpv4' ? options.server.port : undefined, // no port in 41 or 4
        localAddress: options.localAddress,
        localPort: options.localPort,
        cpu: options.cpu,
      },
      onControl,
    );
    handle.start();
  } catch (e) {
    throw unavailable(e, {
      tunName: options.tunName,
      listenAddress: options.localAddress ?? '0.0.0.0',
      port: options.localPort ?? 0,
    });
  }
  const counters = new Float64Array(CLIENT_COUNTER_NAMES.length);
  let closed = false;
  const tunName = handle.tunName();
  const localPort = handle.localPort();
  return {
    tunName,
    localPort,
    readCounters() {
      if (!closed) handle.readCounters(counters);
      const out = {} as Record<ClientCounterName, number>;
      CLIENT_COUNTER_NAMES.forEach((name, i) => (out[name] = counters[i]!));
      return out;
    },
    sendControl: (datagram) => !closed && handle.sendControl(datagram),
    close() {
      if (closed) return;
      closed = true;
      handle.readCounters(counters); // keep the final figures readable after close
      handle.close();
    },
  };
}
