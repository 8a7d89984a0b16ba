/** @module test/unit/dataplane/internet: the contract's internet host for the data planes with a TUN (native,
 *  ebpf): an IPv6 UDP socket on an address of the namespace's loopback, which the kernel reaches through the
 *  TUN and which reaches the pool through it. Call inside the namespace (the process entered it). */

import dgram from 'node:dgram';
import type { Netns } from '../../helpers/netns.js';
import { INTERNET_ADDRESS, INTERNET_PORT, type Internet } from './contract.js';

/** Puts INTERNET_ADDRESS on the namespace's loopback; the result opens one internet host per call. */
export async function internetOnLoopback(ns: Netns): Promise<() => Promise<Internet>> {
  await ns.ip('-6', 'addr', 'add', `${INTERNET_ADDRESS}/128`, 'dev', 'lo', 'nodad');
  return async () => {
    const socket = dgram.createSocket('udp6');
    const received: { from: string; data: Buffer }[] = [];
    socket.on('message', (data, rinfo) => received.push({ from: rinfo.address, data }));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(INTERNET_PORT, INTERNET_ADDRESS, () => resolve());
    });
    return {
      received,
      send: (to, data, port = 9) =>
        new Promise((resolve, reject) => socket.send(data, port, to, (e) => (e ? reject(e) : resolve()))),
      close: () => socket.close(),
    };
  };
}
