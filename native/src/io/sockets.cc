// @module native/io/sockets: see sockets.h.
#include "sockets.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cerrno>

namespace tspdp {

namespace {

/** Let the kernel fragment an oversized encapsulated packet rather than refuse it: the tunnel MTU is the
 *  client's business (1280 by template, docs/protocol.md §2.8); a refused send would just be a silent drop. */
void allow_fragmentation(int fd) {
  const int pmtu = IP_PMTUDISC_DONT;
  setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
}

uint16_t bound_port_of(int fd) {
  sockaddr_in bound;
  socklen_t bound_length = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  return ntohs(bound.sin_port);
}

Fd open_udp(const char* what) {
  Fd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw SysError("socket", errno, what);
  allow_fragmentation(fd.get());
  grow_socket_buffers(fd.get());
  return fd;
}

}  // namespace

Fd open_server_udp(const std::string& listen_address, uint16_t port, uint16_t* bound_port) {
  Fd fd = open_udp("UDP socket");
  const int on = 1;
  setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
  sockaddr_in bind_to;
  fill_sockaddr(&bind_to, parse_ipv4(listen_address, "listenAddress"), port);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&bind_to), sizeof bind_to) != 0) {
    throw SysError("bind", errno, "UDP " + listen_address + ":" + std::to_string(port));
  }
  *bound_port = bound_port_of(fd.get());
  return fd;
}

Fd open_proto41(const std::string& source, const char* what) {
  // The kernel has no sit module here to compete for protocol 41 (docs/design.md).
  Fd fd(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_IPV6));
  if (fd.get() < 0) throw SysError("socket", errno, what);
  allow_fragmentation(fd.get());
  grow_socket_buffers(fd.get());
  if (!source.empty()) {
    sockaddr_in bind_to;
    fill_sockaddr(&bind_to, parse_ipv4(source, "serverIpv4"), 0);
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&bind_to), sizeof bind_to) != 0) {
      throw SysError("bind", errno, std::string(what) + " to " + source);
    }
  }
  return fd;
}

Fd open_ipip6(const std::string& source, const std::string& peer, const char* what) {
  // Nothing else takes next header 4 here: no ip6_tunnel module is loaded (docs/architecture.md).
  Fd fd(socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_IPIP));
  if (fd.get() < 0) throw SysError("socket", errno, what);
  grow_socket_buffers(fd.get());
  if (!source.empty()) {
    sockaddr_in6 bind_to;
    fill_sockaddr6(&bind_to, parse_ip6_text(source, "serverIpv6"));
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&bind_to), sizeof bind_to) != 0) {
      throw SysError("bind", errno, std::string(what) + " to " + source);
    }
  }
  if (!peer.empty()) {
    sockaddr_in6 to;
    fill_sockaddr6(&to, parse_ip6_text(peer, "server.address"));
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
      throw SysError("connect", errno, std::string(what) + " to " + peer);
    }
  }
  return fd;
}

Fd open_client_udp(uint32_t local_address, uint16_t local_port, uint32_t server_address, uint16_t server_port,
                   uint16_t* bound_port) {
  Fd fd = open_udp("client UDP socket");
  sockaddr_in local;
  fill_sockaddr(&local, local_address, local_port);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    throw SysError("bind", errno, "client UDP port " + std::to_string(local_port));
  }
  sockaddr_in server;
  fill_sockaddr(&server, server_address, server_port);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
    throw SysError("connect", errno, "client UDP socket to " + format_ipv4(server_address));
  }
  *bound_port = bound_port_of(fd.get());
  return fd;
}

int DatagramReceiver::receive(RxBatch& rx) {
  rx.rearm(pktinfo_);
  const int n = recvmmsg(fd_, rx.msgs, kBatch, MSG_DONTWAIT, nullptr);
  if (n >= 0) return n;
  // ECONNREFUSED and friends (an ICMP error on a connected socket): the next receive is fine.
  return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
}

void DatagramSender::send(OutBatch& batch) {
  unsigned sent = 0;
  while (sent < batch.count) {
    const int n = sendmmsg(fd_, batch.msgs + sent, batch.count - sent, 0);
    if (n > 0) {
      sent += static_cast<unsigned>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      errors_->fetch_add(1, std::memory_order_relaxed);  // skipped, so it cannot stall the rest of the batch
      sent++;
    }
  }
  batch.count = 0;
}

bool send_datagram(int fd, const sockaddr_in* to, const uint8_t* data, size_t length, std::atomic<uint64_t>* errors) {
  if (fd < 0) return false;
  const ssize_t n = to != nullptr ? sendto(fd, data, length, MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(to), sizeof *to)
                                  : send(fd, data, length, MSG_DONTWAIT);
  if (n >= 0) return true;
  errors->fetch_add(1, std::memory_order_relaxed);
  return false;
}

}  // namespace tspdp
