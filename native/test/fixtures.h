// @module native/test/fixtures: packets and a three-tunnel table for the engine tests. Documentation
// addresses only (2001:db8::/32, 192.0.2.0/24, 198.51.100.0/24).
#pragma once

#include <arpa/inet.h>

#include <cstring>
#include <vector>

#include "engine/engine.h"

namespace tspdp {
namespace fixtures {

using Bytes = std::vector<uint8_t>;

inline Ip6 ip6(const char* text) {
  uint8_t b[16];
  inet_pton(AF_INET6, text, b);
  return load_ip6(b);
}
inline uint32_t ip4(const char* text) {
  in_addr a;
  inet_pton(AF_INET, text, &a);
  return a.s_addr;
}

/** An IPv6 packet: `next` header, hop limit, then `payload` right after the fixed header. */
inline Bytes ipv6(const char* source, const char* destination, const Bytes& payload, uint8_t next = 17, uint8_t hops = 64) {
  Bytes p(kIpv6HeaderBytes + payload.size(), 0);
  p[0] = 0x60;
  store_be16(&p[4], static_cast<uint16_t>(payload.size()));
  p[6] = next;
  p[7] = hops;
  store_ip6(&p[8], ip6(source));
  store_ip6(&p[24], ip6(destination));
  std::memcpy(&p[kIpv6HeaderBytes], payload.data(), payload.size());
  return p;
}

/** gogoc's keepalive: echo request, identifier 0x1234, sequence 7, "ping" (docs/protocol.md §9.1). */
inline Bytes echo_request(const char* source, const char* destination) {
  Bytes icmp = {kIcmpv6EchoRequest, 0, 0, 0, 0x12, 0x34, 0x00, 0x07, 'p', 'i', 'n', 'g'};
  Bytes p = ipv6(source, destination, icmp, kNextHeaderIcmpv6);
  store_be16(&p[kIpv6HeaderBytes + 2], icmpv6_checksum(p.data(), p.size()));
  return p;
}

/** Wraps `inner` in an IPv4 header from `source` carrying protocol 41, as a raw socket hands it over. */
inline Bytes proto41(const char* source, const Bytes& inner) {
  Bytes p(kIpv4MinHeaderBytes, 0);
  p[0] = 0x45;
  p[9] = kIpProtoIpv6;
  const uint32_t s = ip4(source);
  std::memcpy(&p[12], &s, 4);
  p.insert(p.end(), inner.begin(), inner.end());
  return p;
}

inline TunnelConfig udp_tunnel(uint32_t id, const char* client_ip6, uint16_t port) {
  TunnelConfig c;
  c.id = id;
  c.type = TunnelType::kV6udpv4;
  c.client_address = ip4("198.51.100.7");
  c.client_port = port;
  c.server_ip6 = ip6("2001:db8:f00::1");
  c.client_ip6 = ip6(client_ip6);
  return c;
}

/** A table of three: A (v6udpv4, delegated 2001:db8:f00:4400::/56), B (v6udpv4), C (v6v4 from 192.0.2.9). */
struct Fixture {
  TunnelTable table;
  Tunnel* a;
  Tunnel* b;
  Tunnel* c;
  Fixture() {
    TunnelConfig ca = udp_tunnel(1, "2001:db8:f00:1::2", 40001);
    ca.has_delegated = true;
    ca.delegated = ip6("2001:db8:f00:4400::");
    ca.delegated_length = 56;
    table.upsert(ca);
    table.upsert(udp_tunnel(2, "2001:db8:f00:2::2", 40002));
    TunnelConfig cc = udp_tunnel(3, "2001:db8:f00:3::2", 0);
    cc.type = TunnelType::kV6v4;
    cc.client_address = ip4("192.0.2.9");
    table.upsert(cc);
    a = table.find_udp(ip4("198.51.100.7"), 40001);
    b = table.find_udp(ip4("198.51.100.7"), 40002);
    c = table.find_proto41(ip4("192.0.2.9"));
  }
};

}  // namespace fixtures

using namespace fixtures;

}  // namespace tspdp
