// @module native/io/tun: see tun.h.
#include "tun.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tspdp {

Fd open_tun(const std::string& name, std::string* actual) {
  if (name.empty() || name.size() >= IFNAMSIZ) throw std::invalid_argument("invalid TUN device name: " + name);
  Fd fd(open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) throw SysError("open", errno, "/dev/net/tun");
  ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  if (ioctl(fd.get(), TUNSETIFF, &ifr) != 0) throw SysError("ioctl(TUNSETIFF)", errno, "TUN device " + name);
  if (actual != nullptr) *actual = std::string(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  return fd;
}

int TunReceiver::receive(RxBatch& rx) {
  unsigned n = 0;
  while (n < kBatch) {
    const ssize_t r = read(fd_, rx.buffer(n), kBufferBytes);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;  // EAGAIN: the queue is empty for now
    }
    rx.msgs[n].msg_len = static_cast<unsigned>(r);
    rx.msgs[n].msg_hdr.msg_flags = 0;
    n++;
  }
  return static_cast<int>(n);
}

TunWriter::TunWriter(int fd, bool use_uring) : fd_(fd) {
  if (use_uring) (void)uring_.init(kBatch);  // unavailable: one write() per packet
}

unsigned TunWriter::write(const uint8_t* const* packets, const size_t* lengths, unsigned count) {
  if (uring_.ready()) return uring_.write_batch(fd_, packets, lengths, count);
  unsigned failed = 0;
  for (unsigned i = 0; i < count; i++) {
    if (::write(fd_, packets[i], lengths[i]) < 0) failed++;
  }
  return failed;
}

}  // namespace tspdp
