// @module native/io/system: see system.h.
#include "system.h"

#include "../engine/packet.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tspdp {

namespace {

std::string errno_text(int err) {
  const char* name = strerrorname_np(err);
  return std::string(name != nullptr ? name : "E?") + " " + strerror(err);
}


}  // namespace

int open_netns(const std::string& name) {
  // A name is one path component: refuse anything that could walk out of /run/netns.
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    throw std::invalid_argument("invalid network namespace name: " + name);
  }
  const std::string path = "/run/netns/" + name;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw SysError("open", errno, "network namespace " + path);
  return fd;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

SysError::SysError(const std::string& syscall, int err, const std::string& context)
    : std::runtime_error(context + ": " + syscall + " failed: " + errno_text(err)), syscall_(syscall), err_(err) {}

NetnsGuard::NetnsGuard(const std::string& name) {
  if (name.empty()) return;
  int target = open_netns(name);
  saved_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (saved_ < 0) {
    int err = errno;
    close(target);
    throw SysError("open", err, "current network namespace");
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int err = errno;
    close(target);
    close(saved_);
    saved_ = -1;
    throw SysError("setns", err, "network namespace " + name);
  }
  close(target);
}

NetnsGuard::~NetnsGuard() {
  if (saved_ < 0) return;
  // Cannot fail for a namespace we were just in; if it did, the thread would stay in the other namespace,
  // which only matters for descriptors opened later on it.
  (void)setns(saved_, CLONE_NEWNET);
  close(saved_);
}

uint32_t parse_ipv4(const std::string& text, const char* what) {
  in_addr a;
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) {
    throw std::invalid_argument(std::string(what) + ": not an IPv4 address: " + text);
  }
  return a.s_addr;
}

Ip6 parse_ip6_text(const std::string& text, const char* what) {
  uint8_t bytes[16];
  if (inet_pton(AF_INET6, text.c_str(), bytes) != 1) {
    throw std::invalid_argument(std::string(what) + ": not an IPv6 address: " + text);
  }
  return load_ip6(bytes);
}

std::string format_ipv4(uint32_t network_order) {
  char text[INET_ADDRSTRLEN];
  in_addr a;
  a.s_addr = network_order;
  inet_ntop(AF_INET, &a, text, sizeof text);
  return text;
}

void pin_to_cpu(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);  // best effort: a missing CPU is no error
}

void grow_socket_buffers(int fd) {
  int bytes = kSocketBufferBytes;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0) {
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) != 0) {
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  }
}

void wait_readable(int fd, int stop_fd) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  (void)poll(fds, 2, -1);  // EINTR and errors: the caller's loop retries and checks its stop flag
}

int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t now_unix_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace tspdp
