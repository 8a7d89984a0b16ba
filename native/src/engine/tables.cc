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
  return true;
}

size_t TunnelTable::read_counters(double* out, size_t capacity) {
  // The read lock is enough: counters are atomics and the set of tunnels cannot change under it.
  ReadLock lock(*this);
  size_t i = 0;
  for (const auto& entry : by_id_) {
    if (i < capacity) {
      const Tunnel& t = *entry.second;
      double* r = out + i * kCounterStride;
      r[kRecordId] = t.config.id;
      r[kRecordRxPackets] = static_cast<double>(t.rx_packets.load(std::memory_order_relaxed));
      r[kRecordRxBytes] = static_cast<double>(t.rx_bytes.load(std::memory_order_relaxed));
      r[kRecordTxPackets] = static_cast<double>(t.tx_packets.load(std::memory_order_relaxed));
      r[kRecordTxBytes] = static_cast<double>(t.tx_bytes.load(std::memory_order_relaxed));
      r[kRecordLastRxMs] = static_cast<double>(t.last_rx_ms.load(std::memory_order_relaxed));
    }
    i++;
  }
  return i;
}

size_t TunnelTable::size() {
  ReadLock lock(*this);
  return by_id_.size();
}

void TunnelTable::index(Tunnel* t) {
  const TunnelConfig& c = t->config;
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
