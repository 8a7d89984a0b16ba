// @module native/dataplane: forwarding threads and classification. See dataplane.h for the pipeline.
#include "dataplane.h"

#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "uring.h"

namespace tspdp {

/** What one received batch produces; flushed after the table's read lock is released. */
struct DataPlane::Outputs {
  OutBatch udp;
  OutBatch raw;
  const uint8_t* tun_packet[kBatch];
  size_t tun_length[kBatch];
  unsigned tun_count = 0;

  void to_tunnel(Tunnel* t, const uint8_t* packet, size_t length) {
    t->count_tx(length);
    if (t->config.type == TunnelType::kV6udpv4) {
      udp.add(packet, length, t->config.client_address, t->config.client_port);
    } else {
      raw.add(packet, length, t->config.client_address, 0);
    }
  }
  void to_tun(const uint8_t* packet, size_t length) {
    tun_packet[tun_count] = packet;
    tun_length[tun_count] = length;
    tun_count++;
  }
};

DataPlane::DataPlane(const DataPlaneOptions& options)
    : options_(options), control_(options.control_queue_cap, &counters_) {
  try {
    NetnsGuard in_namespace(options.netns);
    tun_fd_ = open_tun(options.tun_name, &tun_name_);

    // Blocking for sends (back-pressure, see OutBatch::flush); receives use MSG_DONTWAIT plus poll.
    udp_fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (udp_fd_ < 0) throw SysError("socket", errno, "UDP socket");
    const int on = 1;
    setsockopt(udp_fd_, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
    // Let the kernel fragment an oversized encapsulated packet rather than refuse it: the tunnel MTU is the
    // client's business (1280 by template, docs/protocol.md §2.8); a refused send would just be a silent drop.
    const int pmtu = IP_PMTUDISC_DONT;
    setsockopt(udp_fd_, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
    grow_socket_buffers(udp_fd_);
    sockaddr_in bind_to;
    fill_sockaddr(&bind_to, parse_ipv4(options.listen_address, "listenAddress"), options.port);
    if (bind(udp_fd_, reinterpret_cast<sockaddr*>(&bind_to), sizeof bind_to) != 0) {
      throw SysError("bind", errno, "UDP " + options.listen_address + ":" + std::to_string(options.port));
    }
    sockaddr_in bound;
    socklen_t bound_length = sizeof bound;
    getsockname(udp_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_length);
    udp_port_ = ntohs(bound.sin_port);

    // Protocol 41 (v6v4): the kernel has no sit module here to compete for it (docs/design.md), and without
    // IP_HDRINCL it builds the outer IPv4 header for us.
    raw_fd_ = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_IPV6);
    if (raw_fd_ < 0) throw SysError("socket", errno, "raw protocol-41 socket");
    setsockopt(raw_fd_, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
    grow_socket_buffers(raw_fd_);
    if (!options.server_ipv4.empty()) {
      sockaddr_in source;
      fill_sockaddr(&source, parse_ipv4(options.server_ipv4, "serverIpv4"), 0);
      if (bind(raw_fd_, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0) {
        throw SysError("bind", errno, "raw protocol-41 socket to " + options.server_ipv4);
      }
    }
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) throw SysError("eventfd", errno, "stop signal");
  } catch (...) {
    close_fds();
    throw;
  }
}

DataPlane::~DataPlane() { stop(); }

void DataPlane::start() {
  if (started_) return;
  started_ = true;
  threads_.emplace_back(&DataPlane::udp_rx_loop, this);
  threads_.emplace_back(&DataPlane::raw_rx_loop, this);
  threads_.emplace_back(&DataPlane::tun_rx_loop, this);
}

void DataPlane::stop() {
  if (stopping_.exchange(true)) return;
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  close_fds();
}

void DataPlane::close_fds() {
  for (int* fd : {&tun_fd_, &udp_fd_, &raw_fd_, &stop_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

bool DataPlane::send_control(uint32_t address, uint16_t port, const uint8_t* data, size_t length) {
  if (udp_fd_ < 0) return false;
  sockaddr_in to;
  fill_sockaddr(&to, address, port);
  if (sendto(udp_fd_, data, length, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
    counters_.add(kSendErrors);
    return false;
  }
  return true;
}

void DataPlane::classify(uint8_t* packet, size_t available, Tunnel* from, int64_t now_ms, Outputs& out) {
  const size_t length = ipv6_packet_length(packet, available);
  if (length == 0) {
    counters_.add(kDropMalformed);
    return;
  }
  if (from == nullptr) {
    counters_.add(kDropUnknownEndpoint);
    return;
  }
  const Ip6 source = load_ip6(packet + 8);
  if (!from->may_use_source(source)) {
    counters_.add(is_link_local(source) ? kDropLinkLocalSource : kDropSpoofedSource);
    return;
  }
  from->rx_packets.fetch_add(1, std::memory_order_relaxed);
  from->rx_bytes.fetch_add(length, std::memory_order_relaxed);
  from->last_rx_ms.store(now_ms, std::memory_order_relaxed);

  const Ip6 destination = load_ip6(packet + 24);
  if (destination == from->config.server_ip6 && is_echo_request(packet, length)) {
    make_echo_reply(packet, length);  // the client's keepalive (docs/protocol.md §9.1)
    counters_.add(kEchoReplies);
    out.to_tunnel(from, packet, length);
    return;
  }
  Tunnel* to = table_.route(destination);
  if (to == nullptr) {
    out.to_tun(packet, length);
    return;
  }
  if (to == from || packet[7] <= 1) {
    // Never route back into the tunnel a packet came from (docs/protocol.md §11). An expiring hop limit goes to
    // the kernel, which sends the Time Exceeded we would otherwise have to build.
    if (to == from) {
      counters_.add(kDropNoRoute);
    } else {
      out.to_tun(packet, length);
    }
    return;
  }
  packet[7]--;  // we are the router between the two tunnels
  counters_.add(kHairpinPackets);
  out.to_tunnel(to, packet, length);
}

void DataPlane::write_to_tun(Outputs& out, UringWriter& uring) {
  if (out.tun_count == 0) return;
  if (uring.ready()) {
    counters_.add(kTunWriteErrors, uring.write_batch(tun_fd_, out.tun_packet, out.tun_length, out.tun_count));
  } else {
    for (unsigned i = 0; i < out.tun_count; i++) {
      if (write(tun_fd_, out.tun_packet[i], out.tun_length[i]) < 0) counters_.add(kTunWriteErrors);
    }
  }
  counters_.add(kTunWritePackets, out.tun_count);
  out.tun_count = 0;
}

void DataPlane::udp_rx_loop() {
  pin_to_cpu(options_.cpu);
  auto rx = std::make_unique<RxBatch>();
  auto out = std::make_unique<Outputs>();
  IdleWait idle(udp_fd_, stop_fd_, options_.spin_us);
  UringWriter uring;
  if (options_.tun_uring) (void)uring.init(kBatch);  // else, or if unavailable: one write() per packet
  while (!stopping_.load(std::memory_order_relaxed)) {
    rx->rearm(true);
    int n = recvmmsg(udp_fd_, rx->msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) idle.nothing_received();
      continue;
    }
    idle.received();
    const int64_t now = now_unix_ms();
    {
      TunnelTable::ReadLock lock(table_);
      for (int i = 0; i < n; i++) {
        uint8_t* data = rx->buffer(i);
        const size_t length = rx->msgs[i].msg_len;
        const sockaddr_in& from = rx->from[i];
        const bool truncated = (rx->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
        // docs/protocol.md §2.4: the high nibble of byte 0 tells control (0xF) from IPv6 data (6); anything that
        // is not IPv6 goes to the control plane too, which may know an old client's quirk.
        if (length == 0 || truncated) {
          counters_.add(kDropMalformed);
        } else if ((data[0] >> 4) != 6) {
          if (length < 8) {
            counters_.add(kDropControlTooShort);
          } else {
            control_.push(from.sin_addr.s_addr, ntohs(from.sin_port), rx->local_address(i), data, length);
          }
        } else {
          classify(data, length, table_.find_udp(from.sin_addr.s_addr, ntohs(from.sin_port)), now, *out);
        }
      }
    }
    write_to_tun(*out, uring);
    if (out->udp.count) out->udp.flush(udp_fd_, &counters_);
    if (out->raw.count) out->raw.flush(raw_fd_, &counters_);
  }
}

void DataPlane::raw_rx_loop() {
  pin_to_cpu(options_.cpu);
  auto rx = std::make_unique<RxBatch>();
  auto out = std::make_unique<Outputs>();
  IdleWait idle(raw_fd_, stop_fd_, options_.spin_us);
  UringWriter uring;
  if (options_.tun_uring) (void)uring.init(kBatch);  // else, or if unavailable: one write() per packet
  while (!stopping_.load(std::memory_order_relaxed)) {
    rx->rearm(false);
    int n = recvmmsg(raw_fd_, rx->msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) idle.nothing_received();
      continue;
    }
    idle.received();
    const int64_t now = now_unix_ms();
    {
      TunnelTable::ReadLock lock(table_);
      for (int i = 0; i < n; i++) {
        uint8_t* data = rx->buffer(i);
        const size_t length = rx->msgs[i].msg_len;
        // A raw IPv4 socket hands over the whole datagram, outer header included.
        const size_t header = length >= kIpv4MinHeaderBytes ? static_cast<size_t>(data[0] & 0x0f) * 4 : 0;
        if (header < kIpv4MinHeaderBytes || header >= length || data[9] != kIpProtoIpv6 ||
            (rx->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0) {
          counters_.add(kDropMalformed);
          continue;
        }
        uint32_t source;
        std::memcpy(&source, data + 12, 4);
        classify(data + header, length - header, table_.find_proto41(source), now, *out);
      }
    }
    write_to_tun(*out, uring);
    if (out->udp.count) out->udp.flush(udp_fd_, &counters_);
    if (out->raw.count) out->raw.flush(raw_fd_, &counters_);
  }
}

void DataPlane::tun_rx_loop() {
  pin_to_cpu(options_.cpu);
  auto rx = std::make_unique<RxBatch>();
  auto out = std::make_unique<Outputs>();
  size_t lengths[kBatch];
  IdleWait idle(tun_fd_, stop_fd_, options_.spin_us);
  while (!stopping_.load(std::memory_order_relaxed)) {
    // A TUN descriptor yields one packet per read; gather up to a batch so the sends can be batched.
    unsigned n = 0;
    while (n < kBatch) {
      ssize_t r = read(tun_fd_, rx->buffer(n), kBufferBytes);
      if (r < 0) {
        if (errno == EINTR) continue;
        break;  // EAGAIN: the queue is empty for now
      }
      lengths[n++] = static_cast<size_t>(r);
    }
    if (n == 0) {
      idle.nothing_received();
      continue;
    }
    idle.received();
    {
      TunnelTable::ReadLock lock(table_);
      for (unsigned i = 0; i < n; i++) {
        const uint8_t* packet = rx->buffer(i);
        const size_t length = ipv6_packet_length(packet, lengths[i]);
        if (length == 0) {
          counters_.add(kDropMalformed);
          continue;
        }
        Tunnel* to = table_.route(load_ip6(packet + 24));
        if (to == nullptr) {
          counters_.add(kDropNoRoute);
          continue;
        }
        out->to_tunnel(to, packet, length);
      }
    }
    if (out->udp.count) out->udp.flush(udp_fd_, &counters_);
    if (out->raw.count) out->raw.flush(raw_fd_, &counters_);
  }
}

}  // namespace tspdp
