// @module native/io/tun: the TUN device, and the BatchReceiver / PacketWriter (io.h) over it.
#pragma once

#include <memory>
#include <string>

#include "io.h"
#include "system.h"
#include "uring.h"

namespace tspdp {

/** Opens (creating if needed) the non-persistent TUN device `name` (IFF_TUN | IFF_NO_PI), non-blocking.
 *  The device disappears when the last descriptor closes, even on kill -9, taking its routes with it.
 *  Writes the name the kernel chose (for patterns like "tsp%d") to `actual`. */
Fd open_tun(const std::string& name, std::string* actual);

/** Reads the TUN device: it yields one packet per read(), so receive() gathers up to a batch. */
class TunReceiver final : public BatchReceiver {
 public:
  TunReceiver(int fd, int stop_fd, int spin_us) : fd_(fd), idle_(fd, stop_fd, spin_us) {}
  int receive(RxBatch& rx) override;
  void idle() override { idle_.nothing_received(); }
  void busy() override { idle_.received(); }

 private:
  int fd_;
  IdleWait idle_;
};

/** Writes packets to the TUN device: one io_uring submission per batch when `use_uring` and the kernel allow
 *  (docs/design.md: TUN writes were the costliest step of decapsulation), else one write() per packet. One
 *  thread only (the ring is the thread's own). */
class TunWriter final : public PacketWriter {
 public:
  TunWriter(int fd, bool use_uring);
  unsigned write(const uint8_t* const* packets, const size_t* lengths, unsigned count) override;

 private:
  int fd_;
  UringWriter uring_;
};

}  // namespace tspdp
