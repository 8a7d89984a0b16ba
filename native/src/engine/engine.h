// @module native/engine/engine: the broker's forwarding decisions, as pure functions of the packet bytes and
// the tunnel table. No sockets, no threads, no clock of its own: the receive loop (receive_loop.h) feeds them,
// and native/test/engine_test.cc runs them without root.
//
//   UDP datagram on the TSP port --classify_udp_datagram--> control (nibble 0xF, or anything not IPv6)
//                                                         | data --find_udp(ip, port)--> forward_from_tunnel
//   raw protocol-41 datagram --parse_proto41 (outer IPv4)--> find_proto41(ip) --> forward_from_tunnel
//   raw IPv6 next-header-4 datagram (outer source from recvfrom) --find_ipip(ip6)--> forward_from_v4v6
//   TUN packet --forward_from_tun--> IPv6: route(destination) | IPv4: route4(destination)
//                                --> the tunnel's encapsulation | drop no_route
//
// forward_from_tunnel (docs/design.md, "The packet path"; docs/protocol.md §2.4, §8.3, §9.1, §11):
//   unknown endpoint -> drop; inner source not the client's /128 or delegated prefix -> drop (link-local
//   separately); echo request to the tunnel's server address -> reply in place; destination in another
//   tunnel -> re-encapsulate to it (hop limit decremented); destination back into the same tunnel -> drop;
//   otherwise -> TUN, where the kernel forwards it.
//
// forward_from_v4v6 (IPv4 in IPv6, RFC 2473) applies the same rules to the inner IPv4 packet: malformed; unknown
// endpoint; inner source not the client's /32 -> spoofed; ICMP echo request to the server's inner IPv4 -> reply
// in place; destination another v4v6 client's /32 -> hairpin (TTL decremented, 1 or less -> TUN); back into the
// same tunnel -> no_route; otherwise -> TUN.
#pragma once

#include <cstddef>
#include <cstdint>

#include "counters.h"
#include "tables.h"

namespace tspdp {

/** What becomes of one packet. */
enum class Action : uint8_t {
  kDrop,      // counted under `count`
  kToTun,     // decapsulated: the kernel forwards it
  kToTunnel,  // encapsulated to `to` (an echo reply, a hairpin, or a packet from the TUN)
};

struct Verdict {
  Action action = Action::kDrop;
  /** The broker counter this packet bumps: the drop reason, kEchoReplies, kHairpinPackets, or kCounterCount
   *  for none (TUN writes and sends are counted where they happen). */
  Counter count = kCounterCount;
  Tunnel* to = nullptr;  // kToTunnel only
  size_t length = 0;     // the inner packet's length (trailing bytes beyond its own length cut off)
};

/** What a datagram on the TSP port is (docs/protocol.md §2.4): the high nibble of byte 0 tells control (0xF)
 *  from IPv6 data (6); anything that is not IPv6 goes to the control plane too, which may know an old client's
 *  quirk. */
enum class DatagramKind : uint8_t { kControl, kData, kMalformed, kControlTooShort };
DatagramKind classify_udp_datagram(const uint8_t* data, size_t length, bool truncated);

/** The outer IPv4 header a raw protocol-41 socket hands over with each datagram. */
struct Proto41Header {
  size_t length = 0;    // bytes to skip to the inner IPv6 packet
  uint32_t source = 0;  // network order: the tunnel's client
};
/** False (malformed) unless a whole IPv4 header carrying protocol 41 precedes some payload. */
bool parse_proto41(const uint8_t* data, size_t length, bool truncated, Proto41Header* out);

/** Decides what to do with an IPv6 packet that arrived from tunnel `from` (nullptr: unknown endpoint), and
 *  counts it on `from` (rx, last received time `now_ms`) when its source is allowed. May rewrite the packet in
 *  place: an echo reply, or the hop limit of a hairpinned packet. Call under the table's read lock. */
Verdict forward_from_tunnel(uint8_t* packet, size_t available, Tunnel* from, int64_t now_ms,
                            const TunnelTable& table);

/** Decides what to do with an IPv4 packet that arrived in IPv6 (next header 4) from v4v6 tunnel `from`
 *  (nullptr: unknown outer source); counts it on `from` when its source is the client's /32. May rewrite the
 *  packet in place (an ICMP echo reply, the TTL of a hairpinned packet). Call under the table's read lock. */
Verdict forward_from_v4v6(uint8_t* packet, size_t available, Tunnel* from, int64_t now_ms, const TunnelTable& table);

/** Decides what to do with a packet read from the TUN: the tunnel owning its destination (IPv6: longest prefix
 *  over the v6 tunnels; IPv4: a v4v6 client's /32), or a drop. Call under the table's read lock. */
Verdict forward_from_tun(const uint8_t* packet, size_t available, const TunnelTable& table);

/** Where a packet for tunnel `t` is sent: which socket, and the outer destination. The kernel builds the outer
 *  header from this: the UDP socket for v6udpv4, the raw IPv4 socket without IP_HDRINCL for v6v4, the raw IPv6
 *  next-header-4 socket for v4v6. */
struct Encapsulation {
  TunnelType type = TunnelType::kV6udpv4;
  uint32_t address = 0;  // network order; v6udpv4 and v6v4
  uint16_t port = 0;     // host order; 0 for v6v4 and v4v6
  Ip6 address6;          // v4v6 only
};
inline Encapsulation encapsulation_for(const Tunnel& t) {
  const TunnelConfig& c = t.config;
  return {c.type, c.client_address, c.type == TunnelType::kV6udpv4 ? c.client_port : uint16_t{0},
          c.client_endpoint6};
}

/** The client end (tspc): what a datagram from the broker is. v6udpv4: control when the nibble is 0xF and the
 *  TSP header fits, else data; v6v4: data only from the server's address, after the outer header. */
enum class ClientInbound : uint8_t { kControl, kData, kDrop };
struct ClientDatagram {
  ClientInbound kind = ClientInbound::kDrop;
  size_t offset = 0;  // where the inner packet starts
  size_t length = 0;  // the inner IPv6 packet's length (kData)
};
ClientDatagram classify_client_datagram(const uint8_t* data, size_t length, bool udp, uint32_t server_address);
/** The client end of a v4v6 tunnel: what its raw IPv6 socket (connected to the server, so only the server's
 *  packets arrive) received is data when it is a well-formed IPv4 packet, else dropped. */
ClientDatagram classify_client_v4v6(const uint8_t* data, size_t length);

}  // namespace tspdp
