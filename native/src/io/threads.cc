// @module native/io/threads: see threads.h.
#include "threads.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace tspdp {

ForwardingThreads::ForwardingThreads() : stop_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (stop_fd_.get() < 0) throw SysError("eventfd", errno, "stop signal");
}

void ForwardingThreads::start(const std::vector<std::function<void()>>& bodies, int cpu) {
  if (started_ || stopping_.load()) return;
  started_ = true;
  for (const auto& body : bodies) {
    threads_.emplace_back([body, cpu] {
      pin_to_cpu(cpu);
      body();
    });
  }
}

bool ForwardingThreads::stop() {
  if (stopping_.exchange(true)) return false;
  const uint64_t one = 1;
  (void)!write(stop_fd_.get(), &one, sizeof one);
  for (auto& t : threads_) t.join();
  threads_.clear();
  return true;
}

}  // namespace tspdp
