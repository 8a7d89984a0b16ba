// @module native/io/threads: the forwarding threads of a data plane or client tunnel, and how they stop.
//
//   start(bodies) --one pinned thread per body--> each body loops until stopping() ...
//   stop() --stopping = true, eventfd signalled (wakes every poll on stop_fd())--> join all
//
// Shared by the broker's DataPlane and the ClientTunnel, so both start and stop the same way.
#pragma once

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "system.h"

namespace tspdp {

class ForwardingThreads {
 public:
  /** Creates the stop signal (an eventfd); throws SysError. */
  ForwardingThreads();
  ~ForwardingThreads() { stop(); }
  ForwardingThreads(const ForwardingThreads&) = delete;
  ForwardingThreads& operator=(const ForwardingThreads&) = delete;

  /** Starts one thread per body, each pinned to `cpu` (-1: anywhere). Only the first call does anything. */
  void start(const std::vector<std::function<void()>>& bodies, int cpu);
  /** Signals and joins the threads. True on the first call only, so the owner closes its descriptors once. */
  bool stop();

  int stop_fd() const { return stop_fd_.get(); }
  const std::atomic<bool>& stopping() const { return stopping_; }

 private:
  Fd stop_fd_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace tspdp
