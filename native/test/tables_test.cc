// @module native/test/tables_test: the tunnel table's reads for the broker's periodic work (engine/tables.h):
// read_changed reports the tunnels that counted a packet since the last read, each once, and nothing for idle
// ones; what does not fit waits for the next read; removed tunnels are not reported and the log stays bounded
// while tunnels come and go; no packet is lost between a read and a forwarding thread; read_counters_of reads
// by id. Run with engine_test.cc (its main) by test/unit/dataplane/engine-cxx.test.ts.
// Addresses are documentation ranges only (2001:db8::/32, 198.51.100.0/24).
#include <atomic>
#include <cstdio>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "engine/receive_loop.h"
#include "fixtures.h"
#include "harness.h"

using namespace tspdp;

namespace {

/** Tunnel `id`: client 198.51.100.7 port `id`, inner address 2001:db8:f00:<id in hex>::2. */
TunnelConfig numbered(uint32_t id) {
  char inner[64];
  std::snprintf(inner, sizeof inner, "2001:db8:f00:%x::2", id);
  return udp_tunnel(id, inner, static_cast<uint16_t>(id));
}

struct Record {
  uint32_t id;
  uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
  int64_t last_rx_ms;
};

/** One read_changed with room for `capacity` records, as records. */
std::vector<Record> read_changed(TunnelTable& t, size_t capacity) {
  std::vector<double> out(capacity * kCounterStride + 1);
  const size_t n = t.read_changed(out.data(), capacity);
  std::vector<Record> records;
  for (size_t i = 0; i < n; i++) {
    const double* r = &out[i * kCounterStride];
    records.push_back({static_cast<uint32_t>(r[kRecordId]), static_cast<uint64_t>(r[kRecordRxPackets]),
                       static_cast<uint64_t>(r[kRecordRxBytes]), static_cast<uint64_t>(r[kRecordTxPackets]),
                       static_cast<uint64_t>(r[kRecordTxBytes]), static_cast<int64_t>(r[kRecordLastRxMs])});
  }
  return records;
}

std::set<uint32_t> ids_of(const std::vector<Record>& records) {
  std::set<uint32_t> ids;
  for (const Record& r : records) ids.insert(r.id);
  return ids;
}

}  // namespace

TEST("read_changed: only the tunnels that counted since the last read, each once, with their counters") {
  Fixture f;
  CHECK_EQ(read_changed(f.table, 8).size(), 0u);  // nothing has moved
  Bytes p = ipv6("2001:db8:f00:1::2", "2001:db8:200::1", {1, 2, 3, 4});
  forward_from_tunnel(p.data(), p.size(), f.a, 1000, f.table);  // rx on A
  forward_from_tunnel(p.data(), p.size(), f.a, 2000, f.table);
  auto out = std::make_unique<Outputs>();
  out->to_tunnel(f.c, p.data(), p.size());  // tx on C (a packet from the TUN)
  const std::vector<Record> first = read_changed(f.table, 8);
  CHECK(ids_of(first) == (std::set<uint32_t>{1, 3}));
  CHECK_EQ(first.size(), 2u);
  for (const Record& r : first) {
    if (r.id == 1) {
      CHECK_EQ(r.rx_packets, 2u);
      CHECK_EQ(r.rx_bytes, 2 * p.size());
      CHECK_EQ(r.last_rx_ms, 2000);
      CHECK_EQ(r.tx_packets, 0u);
    } else {
      CHECK_EQ(r.tx_packets, 1u);
      CHECK_EQ(r.tx_bytes, p.size());
      CHECK_EQ(r.rx_packets, 0u);
    }
  }
  CHECK_EQ(read_changed(f.table, 8).size(), 0u);  // taken: nothing moved since
  // A packet the source check refuses counts nothing, so it changes nothing.
  Bytes spoofed = ipv6("2001:db8:f00:9::9", "2001:db8:200::1", {1});
  forward_from_tunnel(spoofed.data(), spoofed.size(), f.b, 3000, f.table);
  CHECK_EQ(read_changed(f.table, 8).size(), 0u);
  // Other reads leave the changes alone.
  forward_from_tunnel(p.data(), p.size(), f.a, 4000, f.table);
  double all[3 * kCounterStride];
  CHECK_EQ(f.table.read_counters(all, 3), 3u);
  const double ids[] = {1};
  CHECK_EQ(f.table.read_counters_of(ids, 1, all), 1u);
  const std::vector<Record> again = read_changed(f.table, 8);
  CHECK_EQ(again.size(), 1u);
  CHECK_EQ(again[0].rx_packets, 3u);
}

TEST("read_changed: what does not fit stays for the next read, none twice") {
  TunnelTable t;
  for (uint32_t id = 1; id <= 5; id++) t.upsert(numbered(id));
  for (uint32_t id = 1; id <= 5; id++) t.find_udp(ip4("198.51.100.7"), static_cast<uint16_t>(id))->count_tx(10);
  const std::vector<Record> first = read_changed(t, 2);
  CHECK_EQ(first.size(), 2u);
  const std::vector<Record> rest = read_changed(t, 8);
  CHECK_EQ(rest.size(), 3u);
  std::set<uint32_t> all = ids_of(first);
  for (uint32_t id : ids_of(rest)) all.insert(id);
  CHECK(all == (std::set<uint32_t>{1, 2, 3, 4, 5}));
  CHECK_EQ(read_changed(t, 8).size(), 0u);
}

TEST("read_changed: a removed tunnel is not reported; its id added again only once it counts there") {
  TunnelTable t;
  t.upsert(numbered(1));
  t.upsert(numbered(2));
  t.find_udp(ip4("198.51.100.7"), 1)->count_tx(10);
  t.find_udp(ip4("198.51.100.7"), 2)->count_tx(10);
  CHECK(t.remove(1));
  t.upsert(numbered(2));  // a replace keeps the counters, and the change
  const std::vector<Record> read = read_changed(t, 8);
  CHECK_EQ(read.size(), 1u);
  CHECK_EQ(read[0].id, 2u);
  CHECK_EQ(read[0].tx_packets, 1u);
  t.upsert(numbered(1));  // the old entry's log line must not speak for the new one
  t.find_udp(ip4("198.51.100.7"), 2)->count_tx(10);
  CHECK(t.remove(2));
  CHECK_EQ(read_changed(t, 8).size(), 0u);
  t.find_udp(ip4("198.51.100.7"), 1)->count_rx(40, 7);
  const std::vector<Record> fresh = read_changed(t, 8);
  CHECK_EQ(fresh.size(), 1u);
  CHECK_EQ(fresh[0].id, 1u);
  CHECK_EQ(fresh[0].rx_packets, 1u);  // the new entry's counters, from zero
}

TEST("the change log stays bounded while tunnels come and go and nobody reads") {
  TunnelTable t;
  t.upsert(numbered(1));
  t.find_udp(ip4("198.51.100.7"), 1)->count_tx(10);  // one live tunnel logged throughout
  for (uint32_t id = 2; id < 20000; id++) {
    t.upsert(numbered(id));
    t.find_udp(ip4("198.51.100.7"), static_cast<uint16_t>(id))->count_tx(10);
    t.remove(id);
  }
  CHECK(t.logged_changes() <= t.size() + 1024);
  const std::vector<Record> read = read_changed(t, 8);
  CHECK_EQ(read.size(), 1u);
  CHECK_EQ(read[0].id, 1u);
}

TEST("read_changed under traffic: the last read after the traffic stops has every packet") {
  TunnelTable t;
  t.upsert(numbered(1));
  Tunnel* one = t.find_udp(ip4("198.51.100.7"), 1);
  constexpr uint64_t kPackets = 200000;
  std::atomic<bool> done{false};
  std::thread sender([&] {
    for (uint64_t i = 0; i < kPackets; i++) {
      TunnelTable::ReadLock lock(t);
      one->count_rx(1, static_cast<int64_t>(i));
    }
    done = true;
  });
  // Reports only grow, and the newest is what a reader keeps: after the traffic, one more read brings it level.
  uint64_t last = 0;
  while (!done) {
    for (const Record& r : read_changed(t, 4)) last = r.rx_packets;
  }
  sender.join();
  for (const Record& r : read_changed(t, 4)) last = r.rx_packets;
  CHECK_EQ(last, kPackets);
}

TEST("read_counters_of: the records of the ids asked for, unknown and invalid ones left out") {
  Fixture f;
  f.b->count_tx(10);
  const double ids[] = {2, 99, -1, 4294967296.0, 1};
  double out[5 * kCounterStride];
  CHECK_EQ(f.table.read_counters_of(ids, 5, out), 2u);
  CHECK_EQ(out[kRecordId], 2);
  CHECK_EQ(out[kRecordTxPackets], 1);
  CHECK_EQ(out[kCounterStride + kRecordId], 1);
}
