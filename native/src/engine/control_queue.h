// @module native/engine/control_queue: the bounded hand-off of control datagrams from a receive thread to JavaScript.
//
//   receive thread --push--> [queue, at most `cap` datagrams] --notify (once per non-empty episode)--> JS thread
//   JS thread --drain (takes everything queued)--> one onControl(batch) call
//
// `notify` is only called when the queue goes from "nobody scheduled" to "scheduled", so a burst of datagrams
// costs one cross-thread call, not one per datagram (docs/style.md §6). A full queue drops and counts (§10).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include <atomic>

namespace tspdp {

struct ControlItem {
  uint32_t from_address = 0;   // network order
  uint16_t from_port = 0;      // host order
  uint32_t local_address = 0;  // network order, 0 when unknown
  std::vector<uint8_t> data;
};

class ControlQueue {
 public:
  /** `overflow` counts the datagrams dropped because the queue was full (the server's control_queue_full, the
   *  client's controlQueueFull); it must outlive the queue. */
  ControlQueue(size_t cap, std::atomic<uint64_t>* overflow) : cap_(cap), overflow_(overflow) {}

  /** Called with no lock held, on a receive thread, when JavaScript should drain. Set before threads start. */
  void set_notify(std::function<void()> notify) { notify_ = std::move(notify); }

  void push(uint32_t from_address, uint16_t from_port, uint32_t local_address, const uint8_t* data, size_t length) {
    bool schedule = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (items_.size() >= cap_) {
        overflow_->fetch_add(1, std::memory_order_relaxed);
        return;
      }
      ControlItem item;
      item.from_address = from_address;
      item.from_port = from_port;
      item.local_address = local_address;
      item.data.assign(data, data + length);
      items_.push_back(std::move(item));
      if (!scheduled_) scheduled_ = schedule = true;
    }
    if (schedule && notify_) notify_();
  }

  /** On the JavaScript thread: takes everything queued and re-arms notification. */
  void drain(std::vector<ControlItem>* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    out->swap(items_);
    items_.clear();
    scheduled_ = false;
  }

 private:
  const size_t cap_;
  std::atomic<uint64_t>* overflow_;
  std::function<void()> notify_;
  std::mutex mutex_;
  std::vector<ControlItem> items_;
  bool scheduled_ = false;
};

}  // namespace tspdp
