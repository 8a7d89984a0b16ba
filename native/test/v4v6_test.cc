// @module native/test/v4v6_test: the v4v6 decisions (IPv4 inside IPv6, next header 4) without root: the inner
// IPv4 checks, the source check against the client's /32, the ICMP echo answer's bytes and checksums, hairpin
// with the TTL, the /32 lookup from the TUN, the client's classification, and a seeded sweep of mutated packets
// through forward_from_v4v6 and forward_from_tun (run it under -fsanitize=address,undefined to fuzz by hand;
// docs/fuzzing.md, "The packet engine"). Built with the other engine tests by test/unit/dataplane/engine-cxx.test.ts.
#include <arpa/inet.h>

#include <cstring>
#include <vector>

#include "engine/engine.h"
#include "engine/receive_loop.h"
#include "fixtures.h"
#include "harness.h"

using namespace tspdp;
using namespace tspdp::fixtures;

// A longer or different sweep by hand: -DV4V6_SWEEP_ROUNDS=50000000 -DV4V6_SWEEP_SEED=7 (docs/fuzzing.md).
#ifndef V4V6_SWEEP_ROUNDS
#define V4V6_SWEEP_ROUNDS 200000
#endif
#ifndef V4V6_SWEEP_SEED
#define V4V6_SWEEP_SEED 0x46464646u
#endif

namespace {

/** An IPv4 packet (IHL 5, checksum right) carrying `payload` under `protocol`. */
Bytes ipv4(const char* source, const char* destination, const Bytes& payload, uint8_t protocol = 17, uint8_t ttl = 64) {
  Bytes p(kIpv4MinHeaderBytes + payload.size(), 0);
  p[0] = 0x45;
  store_be16(&p[2], static_cast<uint16_t>(p.size()));
  p[8] = ttl;
  p[9] = protocol;
  const uint32_t s = ip4(source), d = ip4(destination);
  std::memcpy(&p[12], &s, 4);
  std::memcpy(&p[16], &d, 4);
  store_be16(&p[10], checksum_skipping(p.data(), kIpv4MinHeaderBytes, 10));
  std::memcpy(&p[kIpv4MinHeaderBytes], payload.data(), payload.size());
  return p;
}

Bytes echo4(const char* source, const char* destination) {
  Bytes icmp = {kIcmpEchoRequest, 0, 0, 0, 0x46, 0x46, 0x00, 0x09, 'p', 'i', 'n', 'g', '4'};
  store_be16(&icmp[2], checksum_skipping(icmp.data(), icmp.size(), 2));
  return ipv4(source, destination, icmp, kIpProtoIcmp);
}

/** Sums to 0xffff (a verifying checksum) over `n` bytes. */
bool checksum_ok(const uint8_t* p, size_t n) { return fold_checksum(sum_words(p, n, 0)) == 0; }

TunnelConfig v4v6(uint32_t id, const char* endpoint, const char* client_ip4) {
  TunnelConfig c;
  c.id = id;
  c.type = TunnelType::kV4v6;
  c.client_endpoint6 = ip6(endpoint);
  c.server_ip4 = ip4("192.0.2.1");
  c.client_ip4 = ip4(client_ip4);
  return c;
}

/** Two v4v6 tunnels (A 192.0.2.2 from 2001:db8:46::a, B 192.0.2.3 from ::b) beside the IPv6 fixture's three. */
struct V4Fixture : Fixture {
  Tunnel* va;
  Tunnel* vb;
  V4Fixture() {
    table.upsert(v4v6(10, "2001:db8:46::a", "192.0.2.2"));
    table.upsert(v4v6(11, "2001:db8:46::b", "192.0.2.3"));
    va = table.find_ipip(ip6("2001:db8:46::a"));
    vb = table.find_ipip(ip6("2001:db8:46::b"));
  }
};

/** Datagrams as the raw IPv6 next-header-4 socket hands them over: the inner packet, the outer source. */
struct IpipReceiver : BatchReceiver {
  std::vector<std::pair<Bytes, Ip6>> pending;
  int receive(RxBatch& rx) override {
    const unsigned n = static_cast<unsigned>(pending.size());
    for (unsigned i = 0; i < n; i++) {
      std::memcpy(rx.buffer(i), pending[i].first.data(), pending[i].first.size());
      rx.msgs[i].msg_len = static_cast<unsigned>(pending[i].first.size());
      rx.msgs[i].msg_hdr.msg_flags = 0;
      fill_sockaddr6(&rx.from[i].v6, pending[i].second);
    }
    pending.clear();
    return static_cast<int>(n);
  }
  void idle() override {}
  void busy() override {}
};

/** Records where each datagram of a batch goes: the IPv6 destination for the v4v6 socket. */
struct Sender6 : BatchSender {
  std::vector<std::pair<Bytes, Ip6>> sent;
  void send(OutBatch& batch) override {
    for (unsigned i = 0; i < batch.count; i++) {
      const auto* p = static_cast<const uint8_t*>(batch.iov[i].iov_base);
      sent.push_back({Bytes(p, p + batch.iov[i].iov_len), load_ip6(batch.to[i].v6.sin6_addr.s6_addr)});
    }
    batch.count = 0;
  }
};

/** The UDP and protocol-41 senders: only how many went through them. */
struct CountingSender : BatchSender {
  unsigned sent = 0;
  void send(OutBatch& batch) override {
    sent += batch.count;
    batch.count = 0;
  }
};

struct NullTun : PacketWriter {
  unsigned written = 0;
  unsigned write(const uint8_t* const*, const size_t*, unsigned count) override {
    written += count;
    return 0;
  }
};

int64_t clock_at_7() { return 7; }

}  // namespace

TEST("receive loop (v4v6): outer IPv6 source looked up, echo and hairpin out of the v4v6 socket, TUN for the rest") {
  V4Fixture f;
  IpipReceiver rx;
  CountingSender udp, raw;
  Sender6 ipip;
  NullTun tun;
  Counters counters;
  ReceiveLoop loop(Ingress::kIpip, rx, Sinks{&udp, &raw, &tun, &ipip}, f.table, counters, nullptr, clock_at_7);
  rx.pending = {
      {ipv4("192.0.2.2", "203.0.113.2", {1}), ip6("2001:db8:46::a")},       // to the TUN
      {echo4("192.0.2.2", "192.0.2.1"), ip6("2001:db8:46::a")},             // answered to A
      {ipv4("192.0.2.2", "192.0.2.3", {2}), ip6("2001:db8:46::a")},         // hairpin to B
      {ipv4("192.0.2.2", "203.0.113.2", {3}), ip6("2001:db8:46::c")},       // unknown endpoint
      {ipv4("192.0.2.3", "203.0.113.2", {4}), ip6("2001:db8:46::a")},       // spoofed
  };
  CHECK_EQ(loop.run_once(), 5);
  CHECK_EQ(tun.written, 1u);
  CHECK_EQ(ipip.sent.size(), 2u);
  CHECK(ipip.sent.size() == 2 && ipip.sent[0].second == ip6("2001:db8:46::a") && ipip.sent[0].first[20] == kIcmpEchoReply);
  CHECK(ipip.sent.size() == 2 && ipip.sent[1].second == ip6("2001:db8:46::b"));
  CHECK(udp.sent == 0 && raw.sent == 0);
  CHECK_EQ(counters.get(kDropUnknownEndpoint), 1u);
  CHECK_EQ(counters.get(kDropSpoofedSource), 1u);
  CHECK_EQ(f.va->rx_packets.load(), 3u);
  CHECK_EQ(f.va->last_rx_ms.load(), 7);
  CHECK_EQ(f.vb->tx_packets.load(), 1u);

  ReceiveLoop fromTun(Ingress::kTun, rx, Sinks{&udp, &raw, nullptr, &ipip}, f.table, counters, nullptr, clock_at_7);
  rx.pending = {{ipv4("203.0.113.2", "192.0.2.3", {5}), Ip6{}}, {ipv6("2001:db8:200::1", "2001:db8:f00:3::2", {6}), Ip6{}}};
  CHECK_EQ(fromTun.run_once(), 2);
  CHECK_EQ(ipip.sent.size(), 3u);
  CHECK(ipip.sent.size() == 3 && ipip.sent[2].second == ip6("2001:db8:46::b"));
  CHECK_EQ(raw.sent, 1u);  // the IPv6 packet to the v6v4 tunnel C, beside it
}

TEST("ipv4_packet_length: version, IHL, total length within what arrived; trailing bytes cut off") {
  Bytes p = ipv4("192.0.2.2", "203.0.113.2", {1, 2, 3, 4});
  CHECK_EQ(ipv4_packet_length(p.data(), p.size()), p.size());
  Bytes longer = p;
  longer.push_back(0);
  CHECK_EQ(ipv4_packet_length(longer.data(), longer.size()), p.size());
  CHECK_EQ(ipv4_packet_length(p.data(), p.size() - 1), 0u);  // total length beyond the datagram
  CHECK_EQ(ipv4_packet_length(p.data(), 19), 0u);
  Bytes bad = p;
  bad[0] = 0x44;  // IHL 4
  CHECK_EQ(ipv4_packet_length(bad.data(), bad.size()), 0u);
  bad[0] = 0x4f;  // IHL 15: 60 bytes of header in a 24-byte packet
  CHECK_EQ(ipv4_packet_length(bad.data(), bad.size()), 0u);
  bad[0] = 0x65;
  CHECK_EQ(ipv4_packet_length(bad.data(), bad.size()), 0u);
  bad = p;
  store_be16(&bad[2], 12);  // total length under the header
  CHECK_EQ(ipv4_packet_length(bad.data(), bad.size()), 0u);
}

TEST("forward_from_v4v6: unknown endpoint, malformed, spoofed; the client /32 to the TUN with rx counted") {
  V4Fixture f;
  Bytes p = ipv4("192.0.2.2", "203.0.113.2", {1, 2});
  CHECK_EQ(forward_from_v4v6(p.data(), p.size(), nullptr, 5, f.table).count, kDropUnknownEndpoint);
  CHECK_EQ(forward_from_v4v6(p.data(), 10, f.va, 5, f.table).count, kDropMalformed);
  CHECK_EQ(forward_from_v4v6(p.data(), p.size(), f.vb, 5, f.table).count, kDropSpoofedSource);
  CHECK_EQ(f.vb->rx_packets.load(), 0u);
  Verdict v = forward_from_v4v6(p.data(), p.size(), f.va, 5, f.table);
  CHECK(v.action == Action::kToTun && v.length == p.size());
  CHECK_EQ(f.va->rx_packets.load(), 1u);
  CHECK_EQ(f.va->rx_bytes.load(), p.size());
  CHECK_EQ(f.va->last_rx_ms.load(), 5);
  // The IPv6 tables know nothing of v4v6 endpoints, nor the other way round.
  CHECK(f.table.find_ipip(ip6("2001:db8:f00:1::2")) == nullptr);
  CHECK(f.table.route(ip6("2001:db8:46::a")) == nullptr);
}

TEST("forward_from_v4v6: an echo request to the server's inner IPv4 is answered in place") {
  V4Fixture f;
  Bytes p = echo4("192.0.2.2", "192.0.2.1");
  const Bytes request = p;
  Verdict v = forward_from_v4v6(p.data(), p.size(), f.va, 5, f.table);
  CHECK(v.action == Action::kToTunnel && v.to == f.va && v.count == kEchoReplies && v.length == p.size());
  CHECK(std::memcmp(&p[12], &request[16], 4) == 0 && std::memcmp(&p[16], &request[12], 4) == 0);
  CHECK_EQ(p[8], kReplyHopLimit);
  CHECK_EQ(p[20], kIcmpEchoReply);
  CHECK(checksum_ok(p.data(), 20));
  CHECK(checksum_ok(&p[20], p.size() - 20));
  CHECK(std::memcmp(&p[24], &request[24], p.size() - 24) == 0);
  // A fragment of an echo request goes to the kernel, which reassembles.
  Bytes fragment = echo4("192.0.2.2", "192.0.2.1");
  fragment[6] = 0x20;  // more fragments
  CHECK(forward_from_v4v6(fragment.data(), fragment.size(), f.va, 5, f.table).action == Action::kToTun);
}

TEST("forward_from_v4v6: hairpin to another v4v6 client with the TTL down and the checksum kept right") {
  V4Fixture f;
  Bytes p = ipv4("192.0.2.2", "192.0.2.3", {9}, 17, 30);
  Verdict v = forward_from_v4v6(p.data(), p.size(), f.va, 5, f.table);
  CHECK(v.action == Action::kToTunnel && v.to == f.vb && v.count == kHairpinPackets);
  CHECK_EQ(p[8], 29);
  CHECK(checksum_ok(p.data(), 20));
  Bytes last = ipv4("192.0.2.2", "192.0.2.3", {9}, 17, 1);
  CHECK(forward_from_v4v6(last.data(), last.size(), f.va, 5, f.table).action == Action::kToTun);
  Bytes self = ipv4("192.0.2.2", "192.0.2.2", {9});
  CHECK_EQ(forward_from_v4v6(self.data(), self.size(), f.va, 5, f.table).count, kDropNoRoute);
}

TEST("forward_from_tun: IPv4 by the client /32 to the v4v6 endpoint; no tunnel, malformed") {
  V4Fixture f;
  Bytes p = ipv4("203.0.113.2", "192.0.2.3", {1});
  Verdict v = forward_from_tun(p.data(), p.size(), f.table);
  CHECK(v.action == Action::kToTunnel && v.to == f.vb && v.length == p.size());
  const Encapsulation e = encapsulation_for(*v.to);
  CHECK(e.type == TunnelType::kV4v6 && e.address6 == ip6("2001:db8:46::b"));
  Bytes nowhere = ipv4("203.0.113.2", "192.0.2.9", {1});
  CHECK_EQ(forward_from_tun(nowhere.data(), nowhere.size(), f.table).count, kDropNoRoute);
  CHECK_EQ(forward_from_tun(p.data(), 15, f.table).count, kDropMalformed);
  f.table.remove(11);
  CHECK_EQ(forward_from_tun(p.data(), p.size(), f.table).count, kDropNoRoute);
  CHECK(f.table.find_ipip(ip6("2001:db8:46::b")) == nullptr);
}

TEST("client v4v6: a well-formed IPv4 packet is data, anything else dropped") {
  Bytes p = ipv4("203.0.113.2", "192.0.2.2", {1, 2, 3});
  ClientDatagram d = classify_client_v4v6(p.data(), p.size());
  CHECK(d.kind == ClientInbound::kData && d.offset == 0 && d.length == p.size());
  CHECK(classify_client_v4v6(p.data(), 12).kind == ClientInbound::kDrop);
  const Bytes v6 = ipv6("2001:db8:200::1", "2001:db8:f00:1::2", {1});
  CHECK(classify_client_v4v6(v6.data(), v6.size()).kind == ClientInbound::kDrop);
}

TEST("seeded sweep: mutated IPv4 packets never make a verdict longer than what arrived, nor read past it") {
  V4Fixture f;
  const Bytes seeds[] = {echo4("192.0.2.2", "192.0.2.1"), ipv4("192.0.2.2", "192.0.2.3", {1, 2, 3, 4}, 17, 2),
                         ipv4("192.0.2.2", "203.0.113.2", Bytes(40, 7)), ipv4("203.0.113.2", "192.0.2.2", {5})};
  uint32_t state = V4V6_SWEEP_SEED;  // xorshift32: the same packets every run
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
  };
  size_t bad = 0;
  for (long round = 0; round < V4V6_SWEEP_ROUNDS; round++) {
    Bytes p = seeds[next() % 4];
    const int edits = 1 + static_cast<int>(next() % 4);
    for (int e = 0; e < edits; e++) {
      const uint32_t r = next();
      if (r % 5 == 0 && p.size() > 1) {
        p.resize(next() % p.size());  // truncate (to nothing, at times)
      } else if (!p.empty()) {
        p[next() % p.size()] = static_cast<uint8_t>(r >> 8);
      }
    }
    const size_t available = p.size();  // exactly: under ASan, a read past the packet is a failure
    Tunnel* from = next() % 8 == 0 ? nullptr : f.va;
    const Verdict v = forward_from_v4v6(p.data(), available, from, 1, f.table);
    const Verdict t = forward_from_tun(p.data(), available, f.table);
    if (v.length > available || t.length > available) bad++;
    const size_t h = available >= 20 ? ipv4_header_length(p.data()) : 0;
    if (v.count == kEchoReplies && !(checksum_ok(p.data(), h) && checksum_ok(&p[h], v.length - h))) bad++;
  }
  CHECK_EQ(bad, 0u);
}
