// @module native/io/system: errno errors, namespaces, descriptors, threads pinning, clocks and the idle wait,
// shared by every part of the addon's I/O. Imports no N-API: everything under native/src except addon/ is
// plain C++17 over Linux system calls; engine/ does not even make those.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace tspdp {

/** Kernel socket buffers we ask for: enough for a few milliseconds at line rate, so a scheduling hiccup of
 *  the forwarding thread does not turn into drops. Forced past rmem_max/wmem_max when we are root. */
constexpr int kSocketBufferBytes = 4 << 20;

/** A failed system call: `syscall` says which, `err` is the errno, `what()` is the human message. */
class SysError : public std::runtime_error {
 public:
  SysError(const std::string& syscall, int err, const std::string& context);
  const std::string& syscall() const { return syscall_; }
  int err() const { return err_; }

 private:
  std::string syscall_;
  int err_;
};

/** Runs the calling thread inside the named network namespace (/run/netns/NAME, as `ip netns add` makes it)
 *  until the guard is destroyed. Sockets and TUN devices belong to the namespace they were created in, so the
 *  addon opens its descriptors under this guard and may then use them from any thread. Empty name: no-op. */
class NetnsGuard {
 public:
  explicit NetnsGuard(const std::string& name);
  ~NetnsGuard();
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

 private:
  int saved_ = -1;
};

/** Opens /run/netns/NAME (as `ip netns add` makes it) read-only; NAME must be one path component. Throws. */
int open_netns(const std::string& name);

/** An owned descriptor, closed on destruction or reset(); -1 when empty. */
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

/** Parses dotted IPv4 text to network order; throws std::invalid_argument naming `what`. */
uint32_t parse_ipv4(const std::string& text, const char* what);
std::string format_ipv4(uint32_t network_order);
/** Parses IPv6 text (no zone); throws std::invalid_argument naming `what`. */
struct Ip6;
Ip6 parse_ip6_text(const std::string& text, const char* what);

/** Pins the calling thread to one CPU; negative: leave it to the scheduler. */
void pin_to_cpu(int cpu);

/** Grows a socket's buffers to kSocketBufferBytes (forced when privileged). Best effort. */
void grow_socket_buffers(int fd);

/** Blocks until `fd` is readable or `stop_fd` (an eventfd) is signalled. */
void wait_readable(int fd, int stop_fd);

int64_t monotonic_ns();

/** What a forwarding loop does when a non-blocking receive finds nothing: keep polling for up to `spin_us`
 *  (no sleep, so the sender never pays for waking us: on these VMs a cross-CPU wakeup costs more than the
 *  packet), then sleep in poll(). 0 sleeps at once, which is right when the core is shared with other work. */
class IdleWait {
 public:
  IdleWait(int fd, int stop_fd, int spin_us) : fd_(fd), stop_fd_(stop_fd), spin_ns_(int64_t{spin_us} * 1000) {}
  void nothing_received() {
    if (spin_ns_ > 0) {
      const int64_t now = monotonic_ns();
      if (spin_since_ == 0) spin_since_ = now;
      if (now - spin_since_ < spin_ns_) return;
    }
    spin_since_ = 0;
    wait_readable(fd_, stop_fd_);
  }
  void received() { spin_since_ = 0; }

 private:
  int fd_;
  int stop_fd_;
  int64_t spin_ns_;
  int64_t spin_since_ = 0;
};

/** Unix time in milliseconds from the coarse clock (a few ms resolution, no system call). */
int64_t now_unix_ms();

}  // namespace tspdp
