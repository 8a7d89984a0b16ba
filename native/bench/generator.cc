// @module native/bench/generator: see generator.h.
#include "generator.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include "../src/engine/batch.h"
#include "../src/io/system.h"

namespace tspdp {

namespace {

double monotonic_seconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

int open_generator_socket(bool ipv6) {
  // IPPROTO_RAW implies "header included" for both families: the packets carry their own IP header.
  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) throw SysError("socket", errno, "generator raw socket");
  grow_socket_buffers(fd);
  return fd;
}

GeneratorResult run_generator(int fd, bool ipv6, const std::vector<std::vector<uint8_t>>& packets, double seconds,
                              int cpu) {
  GeneratorResult result;
  if (packets.empty()) return result;
  pin_to_cpu(cpu);
  const size_t count = packets.size();
  std::vector<mmsghdr> msgs(count);
  std::vector<iovec> iov(count);
  std::vector<sockaddr_in6> to6(count);
  std::vector<sockaddr_in> to4(count);
  for (size_t i = 0; i < count; i++) {
    const std::vector<uint8_t>& p = packets[i];
    iov[i] = {const_cast<uint8_t*>(p.data()), p.size()};
    std::memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    // The kernel routes by this address; it must match the header's destination.
    if (ipv6) {
      std::memset(&to6[i], 0, sizeof to6[i]);
      to6[i].sin6_family = AF_INET6;
      if (p.size() >= 40) std::memcpy(&to6[i].sin6_addr, p.data() + 24, 16);
      msgs[i].msg_hdr.msg_name = &to6[i];
      msgs[i].msg_hdr.msg_namelen = sizeof to6[i];
    } else {
      uint32_t destination = 0;
      if (p.size() >= 20) std::memcpy(&destination, p.data() + 16, 4);
      fill_sockaddr(&to4[i], destination, 0);
      msgs[i].msg_hdr.msg_name = &to4[i];
      msgs[i].msg_hdr.msg_namelen = sizeof to4[i];
    }
  }
  const double start = monotonic_seconds();
  double now = start;
  size_t position = 0;
  unsigned rounds = 0;
  while (now - start < seconds) {
    const unsigned window = static_cast<unsigned>(std::min<size_t>(kBatch, count - position));
    int n = sendmmsg(fd, msgs.data() + position, window, 0);
    if (n > 0) {
      result.sent += static_cast<uint64_t>(n);
      position = (position + static_cast<size_t>(n)) % count;
    } else {
      result.errors++;  // ENOBUFS under overload: keep going, it is the receiver we measure
      position = (position + 1) % count;
    }
    if ((++rounds & 63) == 0) now = monotonic_seconds();
  }
  result.seconds = monotonic_seconds() - start;
  return result;
}

}  // namespace tspdp
