// @module native/test/receive_loop_test: the one receive loop over in-memory receivers, senders and a TUN
// (io/io.h), and the bounded control queue: no root, no sockets.
#include <arpa/inet.h>

#include <cstring>
#include <vector>

#include "engine/receive_loop.h"
#include "fixtures.h"
#include "harness.h"

using namespace tspdp;

namespace {

struct Datagram {
  Bytes bytes;
  uint32_t address;
  uint16_t port;
};

struct FakeReceiver : BatchReceiver {
  std::vector<Datagram> pending;
  int receive(RxBatch& rx) override {
    const unsigned n = static_cast<unsigned>(pending.size() < kBatch ? pending.size() : kBatch);
    for (unsigned i = 0; i < n; i++) {
      std::memcpy(rx.buffer(i), pending[i].bytes.data(), pending[i].bytes.size());
      rx.msgs[i].msg_len = static_cast<unsigned>(pending[i].bytes.size());
      rx.msgs[i].msg_hdr.msg_flags = 0;
      rx.msgs[i].msg_hdr.msg_controllen = 0;
      fill_sockaddr(&rx.from[i].v4, pending[i].address, pending[i].port);
    }
    pending.erase(pending.begin(), pending.begin() + n);
    return static_cast<int>(n);
  }
  void idle() override {}
  void busy() override {}
};

struct FakeSender : BatchSender {
  std::vector<Datagram> sent;
  void send(OutBatch& batch) override {
    for (unsigned i = 0; i < batch.count; i++) {
      const auto* p = static_cast<const uint8_t*>(batch.iov[i].iov_base);
      sent.push_back({Bytes(p, p + batch.iov[i].iov_len), batch.to[i].v4.sin_addr.s_addr, ntohs(batch.to[i].v4.sin_port)});
    }
    batch.count = 0;
  }
};

struct FakeTun : PacketWriter {
  std::vector<Bytes> written;
  unsigned write(const uint8_t* const* packets, const size_t* lengths, unsigned count) override {
    for (unsigned i = 0; i < count; i++) written.emplace_back(packets[i], packets[i] + lengths[i]);
    return 0;
  }
};

int64_t fixed_clock() { return 123456; }

}  // namespace

TEST("receive loop (UDP): control queued, data to the TUN, echo answered, hairpin re-sent, all flushed once") {
  Fixture f;
  FakeReceiver rx;
  FakeSender udp, raw;
  FakeTun tun;
  Counters counters;
  ControlQueue control(8, &counters.value[kControlQueueFull]);
  ReceiveLoop loop(Ingress::kUdp, rx, Sinks{&udp, &raw, &tun}, f.table, counters, &control, fixed_clock);
  const uint32_t client = ip4("198.51.100.7");
  rx.pending = {
      {{0xF0, 0, 0, 1, 0, 0, 0, 0, 'V', 'E', 'R'}, client, 40001},
      {ipv6("2001:db8:f00:1::2", "2001:db8:200::1", {1}), client, 40001},
      {echo_request("2001:db8:f00:2::2", "2001:db8:f00::1"), client, 40002},
      {ipv6("2001:db8:f00:2::2", "2001:db8:f00:3::2", {2}), client, 40002},  // B -> C (v6v4)
      {ipv6("2001:db8:f00:1::2", "2001:db8:200::1", {3}), client, 49999},    // unknown endpoint
      {{0xF0, 0}, client, 40001},                                            // control too short
  };
  CHECK_EQ(loop.run_once(), 6);
  std::vector<ControlItem> items;
  control.drain(&items);
  CHECK_EQ(items.size(), 1u);
  CHECK_EQ(items[0].from_port, 40001);
  CHECK_EQ(tun.written.size(), 1u);
  CHECK_EQ(udp.sent.size(), 1u);  // the echo reply, back to B's endpoint
  CHECK_EQ(udp.sent[0].port, 40002);
  CHECK_EQ(udp.sent[0].bytes[kIpv6HeaderBytes], kIcmpv6EchoReply);
  CHECK_EQ(raw.sent.size(), 1u);  // the hairpin to C's IPv4
  CHECK_EQ(raw.sent[0].address, ip4("192.0.2.9"));
  CHECK_EQ(counters.get(kTunWritePackets), 1u);
  CHECK_EQ(counters.get(kEchoReplies), 1u);
  CHECK_EQ(counters.get(kHairpinPackets), 1u);
  CHECK_EQ(counters.get(kDropUnknownEndpoint), 1u);
  CHECK_EQ(counters.get(kDropControlTooShort), 1u);
  CHECK_EQ(f.b->rx_packets.load(), 2u);
  CHECK_EQ(f.b->last_rx_ms.load(), 123456);
  CHECK_EQ(f.c->tx_packets.load(), 1u);
  CHECK_EQ(loop.run_once(), 0);  // nothing waiting
}

TEST("receive loop (protocol 41 and TUN): outer header stripped and looked up; TUN packets encapsulated") {
  Fixture f;
  FakeReceiver rx;
  FakeSender udp, raw;
  FakeTun tun;
  Counters counters;
  ReceiveLoop from41(Ingress::kProto41, rx, Sinks{&udp, &raw, &tun}, f.table, counters, nullptr, fixed_clock);
  const Bytes inner = ipv6("2001:db8:f00:3::2", "2001:db8:200::1", {1, 2});
  rx.pending = {{proto41("192.0.2.9", inner), 0, 0}, {proto41("192.0.2.10", inner), 0, 0}, {{0x45, 0}, 0, 0}};
  CHECK_EQ(from41.run_once(), 3);
  CHECK_EQ(tun.written.size(), 1u);
  CHECK(tun.written[0] == inner);
  CHECK_EQ(counters.get(kDropUnknownEndpoint), 1u);
  CHECK_EQ(counters.get(kDropMalformed), 1u);

  ReceiveLoop fromTun(Ingress::kTun, rx, Sinks{&udp, &raw, nullptr}, f.table, counters, nullptr, fixed_clock);
  rx.pending = {{ipv6("2001:db8:200::1", "2001:db8:f00:1::2", {1}), 0, 0},
                {ipv6("2001:db8:200::1", "2001:db8:f00:3::2", {1}), 0, 0},
                {ipv6("2001:db8:200::1", "2001:db8:f01::2", {1}), 0, 0}};
  CHECK_EQ(fromTun.run_once(), 3);
  CHECK_EQ(udp.sent.size(), 1u);
  CHECK_EQ(udp.sent[0].port, 40001);
  CHECK_EQ(raw.sent.size(), 1u);
  CHECK_EQ(counters.get(kDropNoRoute), 1u);
  CHECK_EQ(f.a->tx_bytes.load(), 41u);
}

TEST("control queue: bounded, counting overflow on the counter it was given") {
  std::atomic<uint64_t> overflow{0};
  ControlQueue q(2, &overflow);
  int notified = 0;
  q.set_notify([&] { notified++; });
  const uint8_t d[8] = {0xF0};
  for (int i = 0; i < 5; i++) q.push(1, 2, 0, d, sizeof d);
  CHECK_EQ(notified, 1);  // once per non-empty episode
  CHECK_EQ(overflow.load(), 3u);
  std::vector<ControlItem> items;
  q.drain(&items);
  CHECK_EQ(items.size(), 2u);
  q.push(1, 2, 0, d, sizeof d);
  CHECK_EQ(notified, 2);
}

