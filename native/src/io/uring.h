// @module native/io/uring: a minimal io_uring (raw system calls, no liburing) for one job: writing a batch of
// packets to the TUN device with one system call instead of one per packet. docs/design.md's measurements:
// TUN writes were the costliest step of decapsulation on these VMs, and io_uring batching helped them always.
//
// Use from one thread only. Writes to a non-blocking TUN complete during submission (the kernel never needs
// to wait), so write_batch submits and reaps in the same io_uring_enter call.
#pragma once

#include <linux/io_uring.h>

#include <cstddef>
#include <cstdint>

namespace tspdp {

class UringWriter {
 public:
  UringWriter() = default;
  ~UringWriter();
  UringWriter(const UringWriter&) = delete;
  UringWriter& operator=(const UringWriter&) = delete;

  /** Sets up a ring of `entries` (a power of two, at least the largest batch). False when io_uring is not
   *  available (old kernel, disabled by sysctl or seccomp): the caller falls back to write(). */
  bool init(unsigned entries);
  bool ready() const { return ring_fd_ >= 0; }

  /** Writes each packet to `fd`; returns how many failed. */
  unsigned write_batch(int fd, const uint8_t* const* packets, const size_t* lengths, unsigned count);

 private:
  int ring_fd_ = -1;
  unsigned entries_ = 0;
  void* sq_ring_ = nullptr;
  size_t sq_ring_bytes_ = 0;
  void* cq_ring_ = nullptr;
  size_t cq_ring_bytes_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  size_t sqes_bytes_ = 0;
  unsigned* sq_tail_ = nullptr;
  unsigned* sq_mask_ = nullptr;
  unsigned* sq_array_ = nullptr;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  unsigned* cq_mask_ = nullptr;
  io_uring_cqe* cqes_ = nullptr;
};

}  // namespace tspdp
