/** @module transport/local-address: which local address the kernel routes toward a peer (IPv4 or IPv6, the
 *  peer's family). A broker listening on 0.0.0.0 or :: must still write its own address into offers; connecting
 *  a UDP socket asks the routing table without sending anything. */

import dgram from 'node:dgram';

export async function localAddressToward(peer: string): Promise<string> {
  const s = dgram.createSocket(peer.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.connect(9, peer, () => resolve());
    });
    return s.address().address;
  } finally {
    s.close();
  }
}
