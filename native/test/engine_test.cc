// @module native/test/engine_test: the broker's forwarding decisions (engine/) without root, sockets or Node:
// classification, the source check (delegated prefix included), the echo answer's bytes, hairpin, longest
// prefix match, and the one receive loop over in-memory receivers and senders (io/io.h). Built and run by
// test/unit/dataplane/engine-cxx.test.ts (npm test); by hand:
//   c++ -std=c++17 -Inative/src native/test/*.cc native/src/engine/*.cc -lpthread -o /tmp/t && /tmp/t
// The receive loop and the control queue are in receive_loop_test.cc, the table's change log in tables_test.cc.
// Addresses are documentation ranges only (2001:db8::/32, 192.0.2.0/24, 198.51.100.0/24).
#include <arpa/inet.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "fixtures.h"
#include "harness.h"

using namespace tspdp;

TEST("classify_udp_datagram: nibble 0xF and anything not IPv6 is control; IPv6 is data") {
  const Bytes control = {0xF0, 0, 0, 1, 0, 0, 0, 0, 'V', 'E', 'R'};
  CHECK(classify_udp_datagram(control.data(), control.size(), false) == DatagramKind::kControl);
  const Bytes ipv4_looking = {0x45, 0, 0, 0, 0, 0, 0, 0};
  CHECK(classify_udp_datagram(ipv4_looking.data(), ipv4_looking.size(), false) == DatagramKind::kControl);
  CHECK(classify_udp_datagram(control.data(), 7, false) == DatagramKind::kControlTooShort);
  CHECK(classify_udp_datagram(control.data(), 0, false) == DatagramKind::kMalformed);
  CHECK(classify_udp_datagram(control.data(), control.size(), true) == DatagramKind::kMalformed);
  const Bytes data = ipv6("2001:db8:f00:1::2", "2001:db8:200::1", {1, 2, 3});
  CHECK(classify_udp_datagram(data.data(), data.size(), false) == DatagramKind::kData);
}

TEST("parse_proto41: the outer header is skipped and its source kept; anything else is malformed") {
  const Bytes p = proto41("192.0.2.9", ipv6("2001:db8:f00:3::2", "2001:db8:200::1", {}));
  Proto41Header h;
  CHECK(parse_proto41(p.data(), p.size(), false, &h));
  CHECK_EQ(h.length, kIpv4MinHeaderBytes);
  CHECK_EQ(h.source, ip4("192.0.2.9"));
  Bytes udp = p;
  udp[9] = 17;
  CHECK(!parse_proto41(udp.data(), udp.size(), false, &h));
  CHECK(!parse_proto41(p.data(), kIpv4MinHeaderBytes, false, &h));  // header only
  CHECK(!parse_proto41(p.data(), 10, false, &h));
  CHECK(!parse_proto41(p.data(), p.size(), true, &h));
  Bytes short_ihl = p;
  short_ihl[0] = 0x44;
  CHECK(!parse_proto41(short_ihl.data(), short_ihl.size(), false, &h));
}

TEST("source check: the client's /128 and its delegated prefix pass; others are spoofed or link-local") {
  Fixture f;
  struct Case {
    const char* source;
    Action action;
    Counter count;
  } cases[] = {
      {"2001:db8:f00:1::2", Action::kToTun, kCounterCount},
      {"2001:db8:f00:4400::1", Action::kToTun, kCounterCount},            // first /64 of the /56
      {"2001:db8:f00:44ff:ffff::9", Action::kToTun, kCounterCount},       // last /64 of the /56
      {"2001:db8:f00:4500::1", Action::kDrop, kDropSpoofedSource},        // the next /56
      {"2001:db8:f00:1::3", Action::kDrop, kDropSpoofedSource},           // a neighbour in the same /64
      {"2001:db8:f00:2::2", Action::kDrop, kDropSpoofedSource},           // another tunnel's client
      {"fe80::1", Action::kDrop, kDropLinkLocalSource},
  };
  for (const Case& c : cases) {
    Bytes p = ipv6(c.source, "2001:db8:200::1", {1, 2, 3, 4});
    const Verdict v = forward_from_tunnel(p.data(), p.size(), f.a, 1000, f.table);
    CHECK(v.action == c.action);
    CHECK_EQ(v.count, c.count);
  }
  CHECK_EQ(f.a->rx_packets.load(), 3u);
  CHECK_EQ(f.a->rx_bytes.load(), 3u * 44);
  CHECK_EQ(f.a->last_rx_ms.load(), 1000);
}

TEST("forward_from_tunnel: unknown endpoint, malformed and trailing bytes") {
  Fixture f;
  Bytes p = ipv6("2001:db8:f00:1::2", "2001:db8:200::1", {1, 2, 3, 4});
  CHECK_EQ(forward_from_tunnel(p.data(), p.size(), nullptr, 0, f.table).count, kDropUnknownEndpoint);
  CHECK_EQ(forward_from_tunnel(p.data(), p.size() - 1, f.a, 0, f.table).count, kDropMalformed);  // payload cut
  CHECK_EQ(forward_from_tunnel(p.data(), 39, f.a, 0, f.table).count, kDropMalformed);
  Bytes v4 = p;
  v4[0] = 0x45;
  CHECK_EQ(forward_from_tunnel(v4.data(), v4.size(), f.a, 0, f.table).count, kDropMalformed);
  Bytes padded = p;
  padded.resize(p.size() + 6, 0xEE);  // a router ignores bytes beyond the payload length
  const Verdict v = forward_from_tunnel(padded.data(), padded.size(), f.a, 0, f.table);
  CHECK(v.action == Action::kToTun);
  CHECK_EQ(v.length, p.size());
}

TEST("echo: a request to the server's tunnel address is answered in place, byte for byte") {
  Fixture f;
  Bytes p = echo_request("2001:db8:f00:1::2", "2001:db8:f00::1");
  const Verdict v = forward_from_tunnel(p.data(), p.size(), f.a, 5, f.table);
  CHECK(v.action == Action::kToTunnel);
  CHECK(v.to == f.a);
  CHECK_EQ(v.count, kEchoReplies);
  // Expected: addresses swapped, hop limit 64, type 129, checksum 0x1437 (computed independently, in Python).
  Bytes want = ipv6("2001:db8:f00::1", "2001:db8:f00:1::2",
                    {kIcmpv6EchoReply, 0, 0x14, 0x37, 0x12, 0x34, 0x00, 0x07, 'p', 'i', 'n', 'g'}, kNextHeaderIcmpv6);
  CHECK(p == want);
  // And it verifies: the one's complement sum of pseudo-header and message, checksum included, is 0xffff.
  uint32_t sum = static_cast<uint32_t>(p.size() - kIpv6HeaderBytes) + kNextHeaderIcmpv6;
  for (size_t i = 8; i + 1 < p.size(); i += 2) sum += load_be16(&p[i]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  CHECK_EQ(sum, 0xffffu);
  // A request to any other address is forwarded, not answered; neither is an echo reply.
  Bytes other = echo_request("2001:db8:f00:1::2", "2001:db8:200::1");
  CHECK(forward_from_tunnel(other.data(), other.size(), f.a, 5, f.table).action == Action::kToTun);
  Bytes reply = want;
  store_ip6(&reply[8], ip6("2001:db8:f00:1::2"));
  store_ip6(&reply[24], ip6("2001:db8:f00::1"));
  CHECK(forward_from_tunnel(reply.data(), reply.size(), f.a, 5, f.table).action == Action::kToTun);
}

TEST("hairpin: another tunnel's address is re-encapsulated with the hop limit decremented") {
  Fixture f;
  Bytes p = ipv6("2001:db8:f00:1::2", "2001:db8:f00:2::2", {9}, 17, 10);
  Verdict v = forward_from_tunnel(p.data(), p.size(), f.a, 0, f.table);
  CHECK(v.action == Action::kToTunnel);
  CHECK(v.to == f.b);
  CHECK_EQ(v.count, kHairpinPackets);
  CHECK_EQ(p[7], 9);
  // From B into A's delegated prefix.
  Bytes q = ipv6("2001:db8:f00:2::2", "2001:db8:f00:44aa::1", {9});
  v = forward_from_tunnel(q.data(), q.size(), f.b, 0, f.table);
  CHECK(v.to == f.a);
  // Back into the tunnel it came from: dropped as no_route (docs/protocol.md §11).
  Bytes back = ipv6("2001:db8:f00:1::2", "2001:db8:f00:4401::1", {9});
  v = forward_from_tunnel(back.data(), back.size(), f.a, 0, f.table);
  CHECK(v.action == Action::kDrop);
  CHECK_EQ(v.count, kDropNoRoute);
  // An expiring hop limit goes to the TUN, untouched, so the kernel sends Time Exceeded.
  Bytes expiring = ipv6("2001:db8:f00:1::2", "2001:db8:f00:2::2", {9}, 17, 1);
  v = forward_from_tunnel(expiring.data(), expiring.size(), f.a, 0, f.table);
  CHECK(v.action == Action::kToTun);
  CHECK_EQ(expiring[7], 1);
}

TEST("tables: longest prefix match, replace and remove") {
  TunnelTable t;
  TunnelConfig wide = udp_tunnel(1, "2001:db8:f00:1::2", 1);
  wide.has_delegated = true;
  wide.delegated = ip6("2001:db8:4000::");
  wide.delegated_length = 48;
  TunnelConfig narrow = udp_tunnel(2, "2001:db8:f00:2::2", 2);
  narrow.has_delegated = true;
  narrow.delegated = ip6("2001:db8:4000:ab00::");
  narrow.delegated_length = 56;
  t.upsert(wide);
  t.upsert(narrow);
  TunnelConfig host = udp_tunnel(3, "2001:db8:4000:ab00::5", 3);  // a /128 inside both prefixes
  t.upsert(host);
  CHECK_EQ(t.route(ip6("2001:db8:4000:ab00::5"))->config.id, 3u);
  CHECK_EQ(t.route(ip6("2001:db8:4000:ab00::6"))->config.id, 2u);
  CHECK_EQ(t.route(ip6("2001:db8:4000:ac00::6"))->config.id, 1u);
  CHECK(t.route(ip6("2001:db8:4001::1")) == nullptr);
  t.remove(2);
  CHECK_EQ(t.route(ip6("2001:db8:4000:ab00::6"))->config.id, 1u);
  // Replacing a tunnel moves its keys: the old endpoint and address are forgotten, counters kept.
  Tunnel* one = t.find_udp(ip4("198.51.100.7"), 1);
  one->rx_packets = 7;
  TunnelConfig moved = udp_tunnel(1, "2001:db8:f00:9::2", 9);
  t.upsert(moved);
  CHECK(t.find_udp(ip4("198.51.100.7"), 1) == nullptr);
  CHECK(t.find_udp(ip4("198.51.100.7"), 9) == one);
  CHECK(t.route(ip6("2001:db8:f00:1::2")) == nullptr);
  CHECK(t.route(ip6("2001:db8:4000:1::1")) == nullptr);  // the delegation went with the replace
  CHECK_EQ(one->rx_packets.load(), 7u);
  CHECK(!t.remove(42));
  CHECK_EQ(t.size(), 2u);
  double records[2 * kCounterStride];
  CHECK_EQ(t.read_counters(records, 2), 2u);
}

TEST("forward_from_tun and encapsulation: by destination, to the tunnel's endpoint") {
  Fixture f;
  const Bytes p = ipv6("2001:db8:200::1", "2001:db8:f00:4412::1", {1});
  Verdict v = forward_from_tun(p.data(), p.size(), f.table);
  CHECK(v.action == Action::kToTunnel && v.to == f.a);
  Encapsulation e = encapsulation_for(*v.to);
  CHECK(e.type == TunnelType::kV6udpv4);
  CHECK_EQ(e.address, ip4("198.51.100.7"));
  CHECK_EQ(e.port, 40001);
  const Bytes q = ipv6("2001:db8:200::1", "2001:db8:f00:3::2", {1});
  e = encapsulation_for(*forward_from_tun(q.data(), q.size(), f.table).to);
  CHECK(e.type == TunnelType::kV6v4);
  CHECK_EQ(e.address, ip4("192.0.2.9"));
  CHECK_EQ(e.port, 0);
  const Bytes nowhere = ipv6("2001:db8:200::1", "2001:db8:f01::1", {1});
  CHECK_EQ(forward_from_tun(nowhere.data(), nowhere.size(), f.table).count, kDropNoRoute);
  CHECK_EQ(forward_from_tun(p.data(), 20, f.table).count, kDropMalformed);
}

TEST("client: control from the broker, data, and protocol 41 only from the server") {
  const uint32_t server = ip4("192.0.2.1");
  const Bytes control = {0xF0, 0, 0, 1, 0, 0, 0, 0, 'O', 'K'};
  CHECK(classify_client_datagram(control.data(), control.size(), true, server).kind == ClientInbound::kControl);
  const Bytes data = ipv6("2001:db8:200::1", "2001:db8:f00:1::2", {1, 2});
  ClientDatagram d = classify_client_datagram(data.data(), data.size(), true, server);
  CHECK(d.kind == ClientInbound::kData && d.offset == 0 && d.length == data.size());
  CHECK(classify_client_datagram(control.data(), 4, true, server).kind == ClientInbound::kDrop);
  const Bytes wrapped = proto41("192.0.2.1", data);
  d = classify_client_datagram(wrapped.data(), wrapped.size(), false, server);
  CHECK(d.kind == ClientInbound::kData && d.offset == kIpv4MinHeaderBytes && d.length == data.size());
  const Bytes stranger = proto41("192.0.2.66", data);
  CHECK(classify_client_datagram(stranger.data(), stranger.size(), false, server).kind == ClientInbound::kDrop);
}

TEST("counter layout: names in enum order, the record stride its field count") {
  CHECK(std::string(kCounterNames[kDropUnknownEndpoint]) == std::string("unknown_endpoint"));
  CHECK(std::string(kCounterNames[kSendErrors]) == std::string("send_errors"));
  CHECK(std::string(kTunnelRecordFields[kRecordLastRxMs]) == std::string("lastRxMs"));
  CHECK(std::string(kClientCounterNames[kClientControlQueueFull]) == std::string("controlQueueFull"));
}

int main() { return harness::run_all(); }
