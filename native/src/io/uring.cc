// @module native/io/uring: see uring.h. Follows the ring layout of io_uring_setup(2).
#include "uring.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace tspdp {

namespace {

int io_uring_setup(unsigned entries, io_uring_params* p) {
  return static_cast<int>(syscall(__NR_io_uring_setup, entries, p));
}

int io_uring_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags) {
  return static_cast<int>(syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, nullptr, 0));
}

unsigned* at(void* base, uint32_t offset) { return reinterpret_cast<unsigned*>(static_cast<uint8_t*>(base) + offset); }

unsigned load_acquire(const unsigned* p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
void store_release(unsigned* p, unsigned v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

}  // namespace

UringWriter::~UringWriter() {
  if (sqes_ != nullptr) munmap(sqes_, sqes_bytes_);
  if (cq_ring_ != nullptr && cq_ring_ != sq_ring_) munmap(cq_ring_, cq_ring_bytes_);
  if (sq_ring_ != nullptr) munmap(sq_ring_, sq_ring_bytes_);
  if (ring_fd_ >= 0) close(ring_fd_);
}

bool UringWriter::init(unsigned entries) {
  io_uring_params p;
  std::memset(&p, 0, sizeof p);
  // Only this thread submits, and completions are reaped inside io_uring_enter: the kernel may skip the
  // cross-thread machinery (both flags are hints; older kernels reject them, so retry without).
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
  int fd = io_uring_setup(entries, &p);
  if (fd < 0 && errno == EINVAL) {
    std::memset(&p, 0, sizeof p);
    fd = io_uring_setup(entries, &p);
  }
  if (fd < 0) return false;
  ring_fd_ = fd;
  entries_ = p.sq_entries;

  sq_ring_bytes_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  cq_ring_bytes_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
  const bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single && cq_ring_bytes_ > sq_ring_bytes_) sq_ring_bytes_ = cq_ring_bytes_;
  void* sq = mmap(nullptr, sq_ring_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  if (sq == MAP_FAILED) return false;
  sq_ring_ = sq;
  if (single) {
    cq_ring_ = sq;
  } else {
    void* cq =
        mmap(nullptr, cq_ring_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
    if (cq == MAP_FAILED) return false;
    cq_ring_ = cq;
  }
  sqes_bytes_ = p.sq_entries * sizeof(io_uring_sqe);
  void* sqes = mmap(nullptr, sqes_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (sqes == MAP_FAILED) return false;
  sqes_ = static_cast<io_uring_sqe*>(sqes);

  sq_tail_ = at(sq_ring_, p.sq_off.tail);
  sq_mask_ = at(sq_ring_, p.sq_off.ring_mask);
  sq_array_ = at(sq_ring_, p.sq_off.array);
  cq_head_ = at(cq_ring_, p.cq_off.head);
  cq_tail_ = at(cq_ring_, p.cq_off.tail);
  cq_mask_ = at(cq_ring_, p.cq_off.ring_mask);
  cqes_ = reinterpret_cast<io_uring_cqe*>(static_cast<uint8_t*>(cq_ring_) + p.cq_off.cqes);
  return true;
}

unsigned UringWriter::write_batch(int fd, const uint8_t* const* packets, const size_t* lengths, unsigned count) {
  unsigned failed = 0;
  for (unsigned done = 0; done < count;) {
    const unsigned n = count - done < entries_ ? count - done : entries_;
    unsigned tail = *sq_tail_;  // only we write it
    const unsigned mask = *sq_mask_;
    for (unsigned i = 0; i < n; i++, tail++) {
      io_uring_sqe* sqe = &sqes_[tail & mask];
      std::memset(sqe, 0, sizeof *sqe);
      sqe->opcode = IORING_OP_WRITE;
      sqe->fd = fd;
      sqe->addr = reinterpret_cast<uint64_t>(packets[done + i]);
      sqe->len = static_cast<uint32_t>(lengths[done + i]);
      sqe->off = 0;  // a TUN device has no file position
      sq_array_[tail & mask] = tail & mask;
    }
    store_release(sq_tail_, tail);
    int submitted;
    do {
      submitted = io_uring_enter(ring_fd_, n, n, IORING_ENTER_GETEVENTS);
    } while (submitted < 0 && errno == EINTR);
    if (submitted < 0) return failed + (count - done);  // ring unusable: report the rest as failed
    // Reap exactly the n completions this submission produced.
    unsigned reaped = 0;
    while (reaped < n) {
      unsigned head = *cq_head_;
      const unsigned ready = load_acquire(cq_tail_);
      if (head == ready) {
        // Should not happen with min_complete = n; wait rather than spin if it does.
        if (io_uring_enter(ring_fd_, 0, n - reaped, IORING_ENTER_GETEVENTS) < 0 && errno != EINTR) break;
        continue;
      }
      for (; head != ready && reaped < n; head++, reaped++) {
        if (cqes_[head & *cq_mask_].res < 0) failed++;
      }
      store_release(cq_head_, head);
    }
    done += n;
  }
  return failed;
}

}  // namespace tspdp
