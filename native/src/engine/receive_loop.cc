// @module native/engine/receive_loop: see receive_loop.h.
#include "receive_loop.h"

#include <arpa/inet.h>

namespace tspdp {

void Outputs::to_tunnel(Tunnel* t, const uint8_t* packet, size_t length) {
  t->count_tx(length);
  const Encapsulation e = encapsulation_for(*t);
  if (e.type == TunnelType::kV4v6) {
    ipip.add6(packet, length, e.address6);
  } else {
    (e.type == TunnelType::kV6udpv4 ? udp : raw).add(packet, length, e.address, e.port);
  }
}

void Outputs::to_tun(const uint8_t* packet, size_t length) {
  tun_packet[tun_count] = packet;
  tun_length[tun_count] = length;
  tun_count++;
}

void Outputs::apply(const Verdict& v, const uint8_t* packet, Counters& counters) {
  if (v.count != kCounterCount) counters.add(v.count);
  if (v.action == Action::kToTunnel) {
    to_tunnel(v.to, packet, v.length);
  } else if (v.action == Action::kToTun) {
    to_tun(packet, v.length);
  }
}

void flush(Outputs& out, const Sinks& sinks, Counters& counters) {
  if (out.tun_count != 0 && sinks.tun != nullptr) {
    // Counted before the write, as to_tunnel() counts tx before the send: the write delivers the packet (the
    // kernel may hand it to its receiver inside the call), and whoever sees it arrive must see it counted.
    counters.add(kTunWritePackets, out.tun_count);
    counters.add(kTunWriteErrors, sinks.tun->write(out.tun_packet, out.tun_length, out.tun_count));
  }
  out.tun_count = 0;
  if (out.udp.count != 0) sinks.udp->send(out.udp);
  if (out.raw.count != 0) sinks.raw->send(out.raw);
  if (out.ipip.count != 0) {
    if (sinks.ipip != nullptr) sinks.ipip->send(out.ipip);
    out.ipip.count = 0;
  }
}

ReceiveLoop::ReceiveLoop(Ingress ingress, BatchReceiver& receiver, const Sinks& sinks, TunnelTable& table,
                         Counters& counters, ControlQueue* control, Clock now_ms)
    : ingress_(ingress),
      receiver_(receiver),
      sinks_(sinks),
      table_(table),
      counters_(counters),
      control_(control),
      now_ms_(now_ms),
      rx_(new RxBatch()),
      out_(new Outputs()) {}

void ReceiveLoop::decide_udp(RxBatch& rx, unsigned i, int64_t now_ms, Outputs& out) {
  uint8_t* data = rx.buffer(i);
  const size_t length = rx.length(i);
  const sockaddr_in& from = rx.from[i].v4;
  switch (classify_udp_datagram(data, length, rx.truncated(i))) {
    case DatagramKind::kMalformed:
      counters_.add(kDropMalformed);
      break;
    case DatagramKind::kControlTooShort:
      counters_.add(kDropControlTooShort);
      break;
    case DatagramKind::kControl:
      if (control_ != nullptr) control_->push(from.sin_addr.s_addr, ntohs(from.sin_port), rx.local_address(i), data, length);
      break;
    case DatagramKind::kData: {
      Tunnel* tunnel = table_.find_udp(from.sin_addr.s_addr, ntohs(from.sin_port));
      out.apply(forward_from_tunnel(data, length, tunnel, now_ms, table_), data, counters_);
      break;
    }
  }
}

void ReceiveLoop::decide_batch(RxBatch& rx, unsigned n, int64_t now_ms, Outputs& out) {
  for (unsigned i = 0; i < n; i++) {
    uint8_t* data = rx.buffer(i);
    if (ingress_ == Ingress::kUdp) {
      decide_udp(rx, i, now_ms, out);
    } else if (ingress_ == Ingress::kProto41) {
      Proto41Header outer;
      if (!parse_proto41(data, rx.length(i), rx.truncated(i), &outer)) {
        counters_.add(kDropMalformed);
        continue;
      }
      uint8_t* inner = data + outer.length;
      Tunnel* tunnel = table_.find_proto41(outer.source);
      out.apply(forward_from_tunnel(inner, rx.length(i) - outer.length, tunnel, now_ms, table_), inner, counters_);
    } else if (ingress_ == Ingress::kIpip) {
      // A raw IPv6 socket hands over the payload (the inner IPv4) without the IPv6 header; the outer source is
      // the datagram's sender.
      if (rx.truncated(i)) {
        counters_.add(kDropMalformed);
        continue;
      }
      Tunnel* tunnel = table_.find_ipip(load_ip6(rx.from[i].v6.sin6_addr.s6_addr));
      out.apply(forward_from_v4v6(data, rx.length(i), tunnel, now_ms, table_), data, counters_);
    } else {
      out.apply(forward_from_tun(data, rx.length(i), table_), data, counters_);
    }
  }
}

int ReceiveLoop::run_once() {
  const int n = receiver_.receive(*rx_);
  if (n <= 0) return n;
  const int64_t now = now_ms_();
  {
    TunnelTable::ReadLock lock(table_);  // once per batch, released before the sends that can block
    decide_batch(*rx_, static_cast<unsigned>(n), now, *out_);
  }
  flush(*out_, sinks_, counters_);
  return n;
}

void ReceiveLoop::run(const std::atomic<bool>& stopping) {
  while (!stopping.load(std::memory_order_relaxed)) {
    const int n = run_once();
    if (n == 0) {
      receiver_.idle();
    } else if (n > 0) {
      receiver_.busy();
    }
  }
}

}  // namespace tspdp
