// @module native/engine/tables: the tunnel table. Endpoint hashes (client IPv4 and port for v6udpv4, client IPv4 for
// v6v4, client IPv6 for v4v6) and a longest-prefix match over client /128s and delegated prefixes, a hash of the
// v4v6 clients' inner IPv4 /32s, plus per-tunnel counters.
//
// Concurrency: the forwarding threads take the read lock once per batch (never per packet) and release it
// before their system calls that can block; JavaScript takes the write lock for one add or remove. The lock
// prefers writers, so a steady stream of batches cannot starve an update: the longest an update waits is one
// batch of lookups. Tunnels are owned by the table and only freed under the write lock, so pointers found
// under the read lock are valid until it is released. Counters are atomics inside the tunnel: they survive a
// replace of the same id and are bumped without the write lock.
//
// Change log: the first packet a tunnel counts after a read_changed sets its `changed` flag and appends its id
// to the table's ChangeLog (a short mutex, taken at most once per tunnel between reads, never per packet), so
// read_changed visits the tunnels that moved, not the whole table. The flag is set with a release exchange after
// the counters are bumped, and read_changed clears it with an acquire exchange before reading them: a packet
// is either in the counters read, or its exchange comes after the clear and logs the tunnel again.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "counters.h"
#include "packet.h"

namespace tspdp {

enum class TunnelType : uint8_t { kV6v4 = 0, kV6udpv4 = 1, kV4v6 = 2 };

/** What JavaScript says about a tunnel (parsed from TunnelSpec). Addresses in network order / as Ip6. */
struct TunnelConfig {
  uint32_t id = 0;
  TunnelType type = TunnelType::kV6udpv4;
  uint32_t client_address = 0;  // network order
  uint16_t client_port = 0;     // host order; 0 for v6v4
  Ip6 server_ip6;
  Ip6 client_ip6;
  bool has_delegated = false;
  Ip6 delegated;
  int delegated_length = 0;
  // v4v6 only (then client_address, client_port, server_ip6, client_ip6 and the delegation are unused):
  Ip6 client_endpoint6;     // the client's outer IPv6 address
  uint32_t server_ip4 = 0;  // network order: the server's inner address (echo answered in place)
  uint32_t client_ip4 = 0;  // network order: the client's inner /32, its only allowed source
};

/** Ids of the tunnels that counted a packet since the last TunnelTable::read_changed, in the order they
 *  first did. Appended to by the forwarding threads (under the table's read lock), taken by read_changed. */
class ChangeLog {
 public:
  void push(uint32_t id) {
    std::lock_guard<std::mutex> hold(mutex_);
    ids_.push_back(id);
  }
  /** Moves the log into `into` (cleared first) and leaves it empty: two vectors take turns, so a steady
   *  reader allocates nothing. */
  void take(std::vector<uint32_t>* into) {
    into->clear();
    std::lock_guard<std::mutex> hold(mutex_);
    ids_.swap(*into);
  }
  /** Puts ids a reader had no room for back in the log. */
  void put_back(const uint32_t* first, const uint32_t* last) {
    std::lock_guard<std::mutex> hold(mutex_);
    ids_.insert(ids_.end(), first, last);
  }
  size_t size() {
    std::lock_guard<std::mutex> hold(mutex_);
    return ids_.size();
  }
  /** Keeps the ids `keep` says yes to (under the table's write lock: no forwarding thread appends meanwhile). */
  template <typename Keep>
  void retain(Keep keep) {
    std::lock_guard<std::mutex> hold(mutex_);
    size_t n = 0;
    for (uint32_t id : ids_) {
      if (keep(id)) ids_[n++] = id;
    }
    ids_.resize(n);
  }

 private:
  std::mutex mutex_;
  std::vector<uint32_t> ids_;
};

struct Tunnel {
  TunnelConfig config;
  std::atomic<uint64_t> rx_packets{0}, rx_bytes{0}, tx_packets{0}, tx_bytes{0};
  std::atomic<int64_t> last_rx_ms{0};
  /** Counted since the last read_changed (see the change log above). */
  std::atomic<bool> changed{false};
  ChangeLog* changes = nullptr;  // the owning table's, set by upsert

  /** The client's /128 or anything inside its delegated prefix. */
  bool may_use_source(const Ip6& source) const {
    return source == config.client_ip6 ||
           (config.has_delegated && mask_ip6(source, config.delegated_length) == config.delegated);
  }
  void count_rx(size_t bytes, int64_t now_ms) {
    rx_packets.fetch_add(1, std::memory_order_relaxed);
    rx_bytes.fetch_add(bytes, std::memory_order_relaxed);
    last_rx_ms.store(now_ms, std::memory_order_relaxed);
    mark_changed();
  }
  void count_tx(size_t bytes) {
    tx_packets.fetch_add(1, std::memory_order_relaxed);
    tx_bytes.fetch_add(bytes, std::memory_order_relaxed);
    mark_changed();
  }
  /** After the counters: release, so a reader that clears the flag (acquire) sees them. One exchange per packet
   *  on a cache line the counters have just written; the log's mutex only on the first packet since a read. */
  void mark_changed() {
    if (!changed.exchange(true, std::memory_order_release) && changes != nullptr) changes->push(config.id);
  }
};

class TunnelTable {
 public:
  TunnelTable();
  ~TunnelTable();
  TunnelTable(const TunnelTable&) = delete;
  TunnelTable& operator=(const TunnelTable&) = delete;

  /** Adds or replaces (same id: new endpoint and addresses, counters kept). A key another tunnel holds moves to
   *  this one; the broker never asks for that, and the last writer winning keeps the table consistent. */
  void upsert(const TunnelConfig& config);
  /** Removes the tunnel and the keys it holds. Unknown ids: false. */
  bool remove(uint32_t id);
  /** Fills up to `capacity` records of kCounterStride values (TunnelRecordField order, counters.h); returns the
   *  number of tunnels (which may be larger than `capacity`: call again with more room). */
  size_t read_counters(double* out, size_t capacity);
  /** The records of these ids (unknown ones left out), `out` having room for `n`; returns how many it wrote. */
  size_t read_counters_of(const double* ids, size_t n, double* out);
  /** The records of the tunnels that counted a packet since the last call, each once, up to `capacity` of
   *  them; returns how many it wrote. The ones it had no room for stay logged: a caller that got `capacity`
   *  calls again. Clears each reported tunnel's flag first (see the change log above). One reader at a time. */
  size_t read_changed(double* out, size_t capacity);
  /** Ids in the change log (tests: the log stays bounded). */
  size_t logged_changes() { return changes_.size(); }
  size_t size();

  /** Scoped read lock; lookups below are valid only while one is held. */
  class ReadLock {
   public:
    explicit ReadLock(TunnelTable& t) : t_(t) { pthread_rwlock_rdlock(&t_.lock_); }
    ~ReadLock() { pthread_rwlock_unlock(&t_.lock_); }
    ReadLock(const ReadLock&) = delete;
    ReadLock& operator=(const ReadLock&) = delete;

   private:
    TunnelTable& t_;
  };

  Tunnel* find_udp(uint32_t address, uint16_t port) const {
    auto it = by_udp_.find(udp_key(address, port));
    return it == by_udp_.end() ? nullptr : it->second;
  }
  Tunnel* find_proto41(uint32_t address) const {
    auto it = by_proto41_.find(address);
    return it == by_proto41_.end() ? nullptr : it->second;
  }
  /** The v4v6 tunnel whose client sends from this outer IPv6 address. */
  Tunnel* find_ipip(const Ip6& address) const {
    auto it = by_ipip_.find(address);
    return it == by_ipip_.end() ? nullptr : it->second;
  }
  /** The v4v6 tunnel owning this inner IPv4 (network order): an exact /32 match, one hash lookup. */
  Tunnel* route4(uint32_t destination) const {
    auto it = by_ip4_.find(destination);
    return it == by_ip4_.end() ? nullptr : it->second;
  }
  /** Longest prefix match over the lengths present, longest first (usually just 128 and one delegation size). */
  Tunnel* route(const Ip6& destination) const {
    for (int length : lengths_) {
      const auto& map = by_prefix_[length];
      auto it = map.find(mask_ip6(destination, length));
      if (it != map.end()) return it->second;
    }
    return nullptr;
  }

 private:
  static uint64_t udp_key(uint32_t address, uint16_t port) { return (static_cast<uint64_t>(address) << 16) | port; }
  void index(Tunnel* t);
  void unindex(Tunnel* t);
  void recompute_lengths();

  pthread_rwlock_t lock_;
  ChangeLog changes_;
  std::vector<uint32_t> reading_;  // read_changed's turn of the log
  std::unordered_map<uint32_t, std::unique_ptr<Tunnel>> by_id_;
  std::unordered_map<uint64_t, Tunnel*> by_udp_;
  std::unordered_map<uint32_t, Tunnel*> by_proto41_;
  std::unordered_map<Ip6, Tunnel*, Ip6Hash> by_ipip_;  // v4v6: client's outer IPv6
  std::unordered_map<uint32_t, Tunnel*> by_ip4_;       // v4v6: client's inner IPv4 /32
  std::unordered_map<Ip6, Tunnel*, Ip6Hash> by_prefix_[129];
  std::vector<int> lengths_;  // prefix lengths with at least one entry, longest first
};

}  // namespace tspdp
