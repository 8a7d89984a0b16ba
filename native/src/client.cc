// @module native/client: see client.h.
#include "client.h"

#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "batch.h"
#include "packet.h"

namespace tspdp {

ClientTunnel::ClientTunnel(const ClientOptions& options)
    : options_(options), control_(options.control_queue_cap, &shared_counters_) {
  try {
    server_address_ = parse_ipv4(options.server_address, "server.address");
    NetnsGuard in_namespace(options.netns);
    tun_fd_ = open_tun(options.tun_name, &tun_name_);
    const int pmtu = IP_PMTUDISC_DONT;
    sockaddr_in local;
    fill_sockaddr(&local, options.local_address.empty() ? 0 : parse_ipv4(options.local_address, "localAddress"),
                  options.udp ? options.local_port : 0);
    if (options.udp) {
      net_fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (net_fd_ < 0) throw SysError("socket", errno, "client UDP socket");
      setsockopt(net_fd_, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
      grow_socket_buffers(net_fd_);
      if (bind(net_fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
        throw SysError("bind", errno, "client UDP port " + std::to_string(options.local_port));
      }
      sockaddr_in server;
      fill_sockaddr(&server, server_address_, options.server_port);
      if (connect(net_fd_, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
        throw SysError("connect", errno, "client UDP socket to " + options.server_address);
      }
      sockaddr_in bound;
      socklen_t bound_length = sizeof bound;
      getsockname(net_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_length);
      local_port_ = ntohs(bound.sin_port);
    } else {
      net_fd_ = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_IPV6);
      if (net_fd_ < 0) throw SysError("socket", errno, "client raw protocol-41 socket");
      setsockopt(net_fd_, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
      grow_socket_buffers(net_fd_);
      if (!options.local_address.empty() &&
          bind(net_fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
        throw SysError("bind", errno, "client raw socket to " + options.local_address);
      }
    }
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) throw SysError("eventfd", errno, "stop signal");
  } catch (...) {
    close_fds();
    throw;
  }
}

ClientTunnel::~ClientTunnel() { stop(); }

void ClientTunnel::start() {
  if (started_) return;
  started_ = true;
  threads_.emplace_back(&ClientTunnel::tun_to_net_loop, this);
  threads_.emplace_back(&ClientTunnel::net_to_tun_loop, this);
}

void ClientTunnel::stop() {
  if (stopping_.exchange(true)) return;
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  close_fds();
}

void ClientTunnel::close_fds() {
  for (int* fd : {&tun_fd_, &net_fd_, &stop_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

bool ClientTunnel::send_control(const uint8_t* data, size_t length) {
  if (!options_.udp || net_fd_ < 0) return false;
  return send(net_fd_, data, length, MSG_DONTWAIT) >= 0;
}

void ClientTunnel::tun_to_net_loop() {
  pin_to_cpu(options_.cpu);
  auto rx = std::make_unique<RxBatch>();
  auto out = std::make_unique<OutBatch>();
  Counters send_errors;
  while (!stopping_.load(std::memory_order_relaxed)) {
    unsigned n = 0;
    while (n < kBatch) {
      ssize_t r = read(tun_fd_, rx->buffer(n), kBufferBytes);
      if (r < 0) {
        if (errno == EINTR) continue;
        break;
      }
      const size_t length = ipv6_packet_length(rx->buffer(n), static_cast<size_t>(r));
      if (length == 0) {
        add(kClientDropped);
        continue;
      }
      out->add(rx->buffer(n), length, server_address_, 0, options_.udp);
      add(kClientTxPackets);
      add(kClientTxBytes, length);
      n++;
    }
    if (n == 0) {
      wait_readable(tun_fd_, stop_fd_);
      continue;
    }
    out->flush(net_fd_, &send_errors);
  }
}

void ClientTunnel::net_to_tun_loop() {
  pin_to_cpu(options_.cpu);
  auto rx = std::make_unique<RxBatch>();
  while (!stopping_.load(std::memory_order_relaxed)) {
    rx->rearm(false);
    int n = recvmmsg(net_fd_, rx->msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) {
      // ECONNREFUSED and friends: an ICMP error on the connected socket; the next receive is fine.
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) wait_readable(net_fd_, stop_fd_);
      continue;
    }
    for (int i = 0; i < n; i++) {
      uint8_t* data = rx->buffer(i);
      size_t length = rx->msgs[i].msg_len;
      if (!options_.udp) {
        const size_t header = length >= kIpv4MinHeaderBytes ? static_cast<size_t>(data[0] & 0x0f) * 4 : 0;
        uint32_t source = 0;
        if (header >= kIpv4MinHeaderBytes && header < length) std::memcpy(&source, data + 12, 4);
        if (source != server_address_) {
          add(kClientDropped);
          continue;
        }
        data += header;
        length -= header;
      } else if (length >= 8 && (data[0] >> 4) == 0xF) {
        control_.push(rx->from[i].sin_addr.s_addr, ntohs(rx->from[i].sin_port), 0, data, length);
        continue;
      }
      const size_t packet = ipv6_packet_length(data, length);
      if (packet == 0 || write(tun_fd_, data, packet) < 0) {
        add(kClientDropped);
        continue;
      }
      add(kClientRxPackets);
      add(kClientRxBytes, packet);
    }
  }
}

}  // namespace tspdp
