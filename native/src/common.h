// @module native/common: constants, counters, errno errors and small system helpers shared by every part of
// the addon. Imports no N-API: everything under native/src except addon.cc is plain C++17 over Linux system
// calls, so the forwarding code can be read (and one day tested) without Node.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace tspdp {

// Implementation constants (ours to tune; docs/style.md §11).

/** Datagrams moved per recvmmsg/sendmmsg call. wireguard-go settles on 128; 64 keeps one batch of 1280-byte
 *  packets (80 KiB) inside L2 on these VMs and bounds how long a table writer waits for a reader (one batch). */
constexpr unsigned kBatch = 64;

/** Receive buffer per datagram: a TSP control message may carry up to 8 KiB of Content-length
 *  (docs/protocol.md §11) plus its header lines; data packets are at most 1280 + 8 + 20 bytes on the wire. */
constexpr size_t kBufferBytes = 9216;

/** Kernel socket buffers we ask for: enough for a few milliseconds at line rate, so a scheduling hiccup of
 *  the forwarding thread does not turn into drops. Forced past rmem_max/wmem_max when we are root. */
constexpr int kSocketBufferBytes = 4 << 20;

/** Default cap on control datagrams waiting for the JavaScript side. A peer can make this grow (docs/style.md §10);
 *  1024 is about 100 times the burst of a broker accepting a few clients per millisecond. */
constexpr size_t kDefaultControlQueueCap = 1024;

/** Every counter the addon keeps outside the tunnels. The first six are the DataPlane DropReason keys, in the
 *  order of src/dataplane/native.ts NATIVE_COUNTER_NAMES; the rest are addon diagnostics. */
enum Counter : unsigned {
  kDropUnknownEndpoint,
  kDropSpoofedSource,
  kDropLinkLocalSource,
  kDropNoRoute,
  kDropMalformed,
  kDropControlTooShort,
  kControlQueueFull,  // control datagrams dropped because JavaScript fell behind
  kControlDelivered,
  kEchoReplies,       // keepalives answered in place
  kHairpinPackets,    // client-to-client packets re-encapsulated without touching the TUN
  kTunWritePackets,
  kTunWriteErrors,
  kSendErrors,        // sendmmsg/sendto failures other than back-pressure
  kCounterCount,
};

/** Counters written by several threads with relaxed atomics: they are statistics, nobody orders on them. */
struct Counters {
  std::atomic<uint64_t> value[kCounterCount] = {};
  void add(Counter c, uint64_t n = 1) { value[c].fetch_add(n, std::memory_order_relaxed); }
};

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

/** Moves the calling thread into the named namespace for good (tests that run entirely inside one). */
void enter_netns(const std::string& name);

/** Opens (creating if needed) the non-persistent TUN device `name` (IFF_TUN | IFF_NO_PI), non-blocking.
 *  The device disappears when the last descriptor closes, even on kill -9, taking its routes with it.
 *  Writes the name the kernel chose (for patterns like "tsp%d") to `actual`. */
int open_tun(const std::string& name, std::string* actual);

/** Parses dotted IPv4 text to network order; throws std::invalid_argument naming `what`. */
uint32_t parse_ipv4(const std::string& text, const char* what);
std::string format_ipv4(uint32_t network_order);

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

inline void fill_sockaddr(sockaddr_in* sa, uint32_t addr_be, uint16_t port) {
  sa->sin_family = AF_INET;
  sa->sin_port = htons(port);
  sa->sin_addr.s_addr = addr_be;
  for (auto& z : sa->sin_zero) z = 0;
}

}  // namespace tspdp
