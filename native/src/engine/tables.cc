// @module native/engine/tables: see tables.h for the locking rules.
#include "tables.h"

namespace tspdp {

namespace {

/** Writer-preferring, so updates from JavaScript are not starved by three threads taking batches. */
void init_writer_preferring(pthread_rwlock_t* lock) {
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(lock, &attr);
  pthread_rwlockattr_destroy(&attr);
}

class WriteLock {
 public:
  explicit WriteLock(pthread_rwlock_t* lock) : lock_(lock) { pthread_rwlock_wrlock(lock_); }
  ~WriteLock() { pthread_rwlock_unlock(lock_); }
  WriteLock(const WriteLock&) = delete;
  WriteLock& operator=(const WriteLock&) = delete;

 private:
  pthread_rwlock_t* lock_;
};

template <typename Map, typename Key>
void erase_if_owner(Map& map, const Key& key, const Tunnel* owner) {
  auto it = map.find(key);
  if (it != map.end() && it->second == owner) map.erase(it);
}

void write_record(const Tunnel& t, double* r) {
  r[kRecordId] = t.config.id;
  r[kRecordRxPackets] = static_cast<double>(t.rx_packets.load(std::memory_order_relaxed));
  r[kRecordRxBytes] = static_cast<double>(t.rx_bytes.load(std::memory_order_relaxed));
  r[kRecordTxPackets] = static_cast<double>(t.tx_packets.load(std::memory_order_relaxed));
  r[kRecordTxBytes] = static_cast<double>(t.tx_bytes.load(std::memory_order_relaxed));
  r[kRecordLastRxMs] = static_cast<double>(t.last_rx_ms.load(std::memory_order_relaxed));
}

/** The change log holds at most one id per live tunnel, plus the ids of tunnels removed while logged; past
 *  this many more than the table holds, remove() drops those (docs/style.md §10: tunnels come and go as fast
 *  as peers reconnect, and a reader may be slow). */
constexpr size_t kStaleChangesAllowed = 1024;

}  // namespace

TunnelTable::TunnelTable() { init_writer_preferring(&lock_); }
TunnelTable::~TunnelTable() { pthread_rwlock_destroy(&lock_); }

void TunnelTable::upsert(const TunnelConfig& config) {
  WriteLock lock(&lock_);
  auto it = by_id_.find(config.id);
  Tunnel* t;
  if (it == by_id_.end()) {
    auto fresh = std::make_unique<Tunnel>();
    t = fresh.get();
    t->changes = &changes_;
    by_id_.emplace(config.id, std::move(fresh));
  } else {
    t = it->second.get();
    unindex(t);
  }
  t->config = config;
  index(t);
  recompute_lengths();
}

bool TunnelTable::remove(uint32_t id) {
  WriteLock lock(&lock_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  unindex(it->second.get());
  by_id_.erase(it);
  recompute_lengths();
  if (changes_.size() > by_id_.size() + kStaleChangesAllowed) {
    // Under the write lock no forwarding thread is counting, so no flag changes while the log is filtered: keep
    // each logged tunnel once (clearing the flag as it is kept, restored below), drop the removed ones.
    std::vector<Tunnel*> kept;
    changes_.retain([&](uint32_t logged) {
      auto found = by_id_.find(logged);
      if (found == by_id_.end() || !found->second->changed.exchange(false)) return false;
      kept.push_back(found->second.get());
      return true;
    });
    for (Tunnel* t : kept) t->changed.store(true);
  }
  return true;
}

size_t TunnelTable::read_counters(double* out, size_t capacity) {
  // The read lock is enough: counters are atomics and the set of tunnels cannot change under it.
  ReadLock lock(*this);
  size_t i = 0;
  for (const auto& entry : by_id_) {
    if (i < capacity) write_record(*entry.second, out + i * kCounterStride);
    i++;
  }
  return i;
}

size_t TunnelTable::read_counters_of(const double* ids, size_t n, double* out) {
  ReadLock lock(*this);
  size_t written = 0;
  for (size_t i = 0; i < n; i++) {
    if (!(ids[i] >= 0 && ids[i] <= 0xffffffffU)) continue;
    auto it = by_id_.find(static_cast<uint32_t>(ids[i]));
    if (it != by_id_.end()) write_record(*it->second, out + written++ * kCounterStride);
  }
  return written;
}

size_t TunnelTable::read_changed(double* out, size_t capacity) {
  ReadLock lock(*this);
  changes_.take(&reading_);
  size_t written = 0;
  size_t i = 0;
  for (; i < reading_.size() && written < capacity; i++) {
    auto it = by_id_.find(reading_[i]);
    // Removed since it was logged, or logged twice (removed and added again): not reported, or only once.
    if (it == by_id_.end() || !it->second->changed.exchange(false, std::memory_order_acquire)) continue;
    write_record(*it->second, out + written++ * kCounterStride);
  }
  if (i < reading_.size()) changes_.put_back(reading_.data() + i, reading_.data() + reading_.size());
  return written;
}

size_t TunnelTable::size() {
  ReadLock lock(*this);
  return by_id_.size();
}

void TunnelTable::index(Tunnel* t) {
  const TunnelConfig& c = t->config;
  if (c.type == TunnelType::kV4v6) {
    by_ipip_[c.client_endpoint6] = t;
    by_ip4_[c.client_ip4] = t;
    return;
  }
  if (c.type == TunnelType::kV6udpv4) {
    by_udp_[udp_key(c.client_address, c.client_port)] = t;
  } else {
    by_proto41_[c.client_address] = t;
  }
  by_prefix_[128][c.client_ip6] = t;
  if (c.has_delegated) by_prefix_[c.delegated_length][c.delegated] = t;
}

void TunnelTable::unindex(Tunnel* t) {
  const TunnelConfig& c = t->config;
  if (c.type == TunnelType::kV4v6) {
    erase_if_owner(by_ipip_, c.client_endpoint6, t);
    erase_if_owner(by_ip4_, c.client_ip4, t);
    return;
  }
  if (c.type == TunnelType::kV6udpv4) {
    erase_if_owner(by_udp_, udp_key(c.client_address, c.client_port), t);
  } else {
    erase_if_owner(by_proto41_, c.client_address, t);
  }
  erase_if_owner(by_prefix_[128], c.client_ip6, t);
  if (c.has_delegated) erase_if_owner(by_prefix_[c.delegated_length], c.delegated, t);
}

void TunnelTable::recompute_lengths() {
  lengths_.clear();
  for (int length = 128; length >= 0; length--) {
    if (!by_prefix_[length].empty()) lengths_.push_back(length);
  }
}

}  // namespace tspdp
