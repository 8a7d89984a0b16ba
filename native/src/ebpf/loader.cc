// @module native/ebpf/loader: see loader.h.
#include "loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <mutex>
#include <stdexcept>

#include "../io/system.h"

namespace tspdp {

namespace {

/** Our filters' identity on every hook: "ts" in the handle, a priority far from tc's defaults (49152 down). */
constexpr uint32_t kFilterHandle = 0x7473;
constexpr uint32_t kFilterPriority = 0x7473;
/** libbpf's messages while loading (the verifier's log on failure), kept for the error we throw. */
std::mutex log_mutex;
std::string* load_log = nullptr;

/** Installed for good: libbpf's notices outside a load (an existing clsact qdisc, a filter not there to
 *  detach) are expected here and would only clutter the broker's stderr. */
int capture_log(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG || load_log == nullptr) return 0;
  char line[1024];
  vsnprintf(line, sizeof line, format, args);
  if (load_log->size() < 16384) load_log->append(line);
  return 0;
}

int map_fd(bpf_object* object, const char* name) {
  const int fd = bpf_object__find_map_fd_by_name(object, name);
  if (fd < 0) throw std::runtime_error(std::string("fastpath.bpf.o has no map ") + name);
  return fd;
}

void check(int rc, const char* call, const std::string& context) {
  if (rc < 0) throw SysError(call, -rc, context);
}

tsp_fp_endpoint endpoint_of(const FastPathTunnel& t) {
  tsp_fp_endpoint e{};
  e.address = t.client_ipv4;
  e.port = htons(t.client_port);
  e.type = t.type;
  return e;
}

tsp_fp_route_key route_of(const uint8_t* address, uint32_t length) {
  tsp_fp_route_key k{};
  k.prefixlen = length;
  std::memcpy(k.address, address, 16);
  return k;
}

bool same_endpoint(const FastPathTunnel& a, const FastPathTunnel& b) {
  return a.client_ipv4 == b.client_ipv4 && a.client_port == b.client_port && a.type == b.type;
}

}  // namespace

FastPath::FastPath(const FastPathOptions& options) : options_(options) {
  timespec real{}, mono{};
  clock_gettime(CLOCK_REALTIME, &real);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  unix_offset_ms_ = (int64_t{real.tv_sec} - mono.tv_sec) * 1000 + (int64_t{real.tv_nsec} - mono.tv_nsec) / 1000000;
  NetnsGuard netns(options.netns);
  std::string log;
  {
    std::lock_guard<std::mutex> lock(log_mutex);
    load_log = &log;
    libbpf_set_print(capture_log);
    object_ = bpf_object__open_file(options.object_path.c_str(), nullptr);
    int rc = object_ == nullptr ? -errno : bpf_object__load(object_);
    load_log = nullptr;
    if (rc < 0) {
      if (object_ != nullptr) bpf_object__close(object_);
      object_ = nullptr;
      throw SysError("bpf_object__load", -rc, options.object_path + (log.empty() ? "" : ": " + log));
    }
  }
  try {
    endpoints_fd_ = map_fd(object_, "endpoints");
    tunnels_fd_ = map_fd(object_, "tunnels");
    routes_fd_ = map_fd(object_, "routes");
    counters_fd_ = map_fd(object_, "counters");
    learned_fd_ = map_fd(object_, "learned");
    stats_fd_ = map_fd(object_, "stats");
    cpus_ = libbpf_num_possible_cpus();
    if (cpus_ <= 0) throw SysError("libbpf_num_possible_cpus", -cpus_, "possible CPUs");

    tsp_fp_config config{};
    config.tsp_port = htons(options.tsp_port);
    config.max_inner_bytes = options.max_inner_bytes;
    config.proto41_source_ipv4 = options.proto41_source_ipv4;
    const uint32_t zero = 0;
    check(bpf_map_update_elem(map_fd(object_, "config"), &zero, &config, BPF_ANY), "bpf_map_update_elem", "config");
    const int locals_fd = map_fd(object_, "locals");
    for (uint32_t address : options.local_ipv4) {
      const uint8_t one = 1;
      check(bpf_map_update_elem(locals_fd, &address, &one, BPF_ANY), "bpf_map_update_elem", "locals");
    }

    bpf_program* encap = bpf_object__find_program_by_name(object_, "tsp_encap");
    bpf_program* decap = bpf_object__find_program_by_name(object_, "tsp_decap");
    if (encap == nullptr || decap == nullptr) throw std::runtime_error("fastpath.bpf.o lacks its programs");
    attach(options.tun_name, BPF_TC_EGRESS, bpf_program__fd(encap));
    for (const std::string& uplink : options.uplinks) attach(uplink, BPF_TC_INGRESS, bpf_program__fd(decap));
  } catch (...) {
    close();
    throw;
  }
}

void FastPath::attach(const std::string& device, int attach_point, int prog_fd) {
  const int ifindex = static_cast<int>(if_nametoindex(device.c_str()));
  if (ifindex == 0) throw SysError("if_nametoindex", errno, "device " + device);
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = static_cast<bpf_tc_attach_point>(attach_point));
  int rc = bpf_tc_hook_create(&hook);
  bool owns_qdisc = rc == 0;
  if (rc < 0 && rc != -EEXIST) check(rc, "bpf_tc_hook_create", "clsact on " + device);
  // A filter of ours already there is a crashed broker's: take it away, and its qdisc with ours at close.
  LIBBPF_OPTS(bpf_tc_opts, query, .handle = kFilterHandle, .priority = kFilterPriority);
  if (bpf_tc_query(&hook, &query) == 0) {
    owns_qdisc = true;
    LIBBPF_OPTS(bpf_tc_opts, leftover, .handle = kFilterHandle, .priority = kFilterPriority);
    bpf_tc_detach(&hook, &leftover);
  }
  attached_.push_back({ifindex, attach_point, owns_qdisc});
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE, .handle = kFilterHandle,
              .priority = kFilterPriority);
  check(bpf_tc_attach(&hook, &opts), "bpf_tc_attach", device);
}

void FastPath::close() {
  if (object_ == nullptr) return;
  {
    NetnsGuard netns(options_.netns);
    for (auto it = attached_.rbegin(); it != attached_.rend(); ++it) {
      LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = it->ifindex,
                  .attach_point = static_cast<bpf_tc_attach_point>(it->attach_point));
      LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kFilterHandle, .priority = kFilterPriority);
      bpf_tc_detach(&hook, &opts);  // gone already if the device went (the TUN closes before us at worst)
      if (!it->owns_qdisc) continue;
      // Both directions: libbpf deletes the clsact qdisc only so (one direction would flush its filters).
      hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
      bpf_tc_hook_destroy(&hook);
    }
  }
  attached_.clear();
  bpf_object__close(object_);
  object_ = nullptr;
  tunnels_.clear();
  reported_packets_.clear();
}

void FastPath::add_tunnel(const FastPathTunnel& t) {
  if (object_ == nullptr) throw std::runtime_error("fast path closed");
  tsp_fp_tunnel value{};
  value.id = t.id;
  value.client_ipv4 = t.client_ipv4;
  value.client_port = htons(t.client_port);
  value.type = t.type;
  value.delegated_length = t.delegated_length;
  std::memcpy(value.client_ipv6, t.client_ipv6, 16);
  std::memcpy(value.server_ipv6, t.server_ipv6, 16);
  std::memcpy(value.delegated, t.delegated, 16);
  const std::string what = "tunnel " + std::to_string(t.id);
  // Zeroed counters only for a new id: an existing one keeps its own (EEXIST is that case).
  std::vector<tsp_fp_counters> zero(static_cast<size_t>(cpus_));
  const int rc = bpf_map_update_elem(counters_fd_, &t.id, zero.data(), BPF_NOEXIST);
  if (rc < 0 && rc != -EEXIST) check(rc, "bpf_map_update_elem", what + " counters");
  check(bpf_map_update_elem(tunnels_fd_, &t.id, &value, BPF_ANY), "bpf_map_update_elem", what);
  const tsp_fp_endpoint endpoint = endpoint_of(t);
  check(bpf_map_update_elem(endpoints_fd_, &endpoint, &t.id, BPF_ANY), "bpf_map_update_elem", what + " endpoint");
  const tsp_fp_route_key host = route_of(t.client_ipv6, 128);
  check(bpf_map_update_elem(routes_fd_, &host, &t.id, BPF_ANY), "bpf_map_update_elem", what + " route");
  if (t.delegated_length != 0) {
    const tsp_fp_route_key prefix = route_of(t.delegated, t.delegated_length);
    check(bpf_map_update_elem(routes_fd_, &prefix, &t.id, BPF_ANY), "bpf_map_update_elem", what + " prefix");
  }
  auto old = tunnels_.find(t.id);
  if (old != tunnels_.end()) {
    delete_keys(old->second, &t);
    if (!same_endpoint(old->second, t)) bpf_map_delete_elem(learned_fd_, &t.id);
  }
  tunnels_[t.id] = t;
}

/** Deletes `old`'s endpoint and routes that `keep` (the same id's new entry) does not use, and only while they
 *  still name this id (another tunnel may own the key by now). */
void FastPath::delete_keys(const FastPathTunnel& old, const FastPathTunnel* keep) {
  auto drop_if_ours = [&](int fd, const void* key) {
    uint32_t owner = 0;
    if (bpf_map_lookup_elem(fd, key, &owner) == 0 && owner == old.id) bpf_map_delete_elem(fd, key);
  };
  if (keep == nullptr || !same_endpoint(old, *keep)) {
    const tsp_fp_endpoint endpoint = endpoint_of(old);
    drop_if_ours(endpoints_fd_, &endpoint);
  }
  if (keep == nullptr || std::memcmp(old.client_ipv6, keep->client_ipv6, 16) != 0) {
    const tsp_fp_route_key host = route_of(old.client_ipv6, 128);
    drop_if_ours(routes_fd_, &host);
  }
  if (old.delegated_length != 0 &&
      (keep == nullptr || keep->delegated_length != old.delegated_length ||
       std::memcmp(old.delegated, keep->delegated, 16) != 0)) {
    const tsp_fp_route_key prefix = route_of(old.delegated, old.delegated_length);
    drop_if_ours(routes_fd_, &prefix);
  }
}

void FastPath::remove_tunnel(uint32_t id) {
  auto it = tunnels_.find(id);
  if (it == tunnels_.end() || object_ == nullptr) return;
  delete_keys(it->second, nullptr);
  bpf_map_delete_elem(tunnels_fd_, &id);
  bpf_map_delete_elem(counters_fd_, &id);
  bpf_map_delete_elem(learned_fd_, &id);
  reported_packets_.erase(id);
  tunnels_.erase(it);
}

FastPathRecord FastPath::sum(uint32_t id, const tsp_fp_counters* per_cpu) const {
  FastPathRecord out{id, 0, 0, 0, 0, 0};
  uint64_t last_ns = 0;
  for (int cpu = 0; cpu < cpus_; cpu++) {
    const tsp_fp_counters& c = per_cpu[cpu];
    out.rx_packets += static_cast<double>(c.rx_packets);
    out.rx_bytes += static_cast<double>(c.rx_bytes);
    out.tx_packets += static_cast<double>(c.tx_packets);
    out.tx_bytes += static_cast<double>(c.tx_bytes);
    if (c.last_rx_ns > last_ns) last_ns = c.last_rx_ns;
  }
  // bpf_ktime_get_ns is CLOCK_MONOTONIC: carried to Unix time through the clocks' offset taken at start, so
  // two reads of the same packet give the same time (a later step of the wall clock is not followed).
  if (last_ns != 0) out.last_rx_ms = static_cast<double>(unix_offset_ms_ + static_cast<int64_t>(last_ns / 1000000));
  return out;
}

bool FastPath::read_one(uint32_t id, FastPathRecord* out) {
  std::vector<tsp_fp_counters> per_cpu(static_cast<size_t>(cpus_));
  if (bpf_map_lookup_elem(counters_fd_, &id, per_cpu.data()) != 0) return false;
  *out = sum(id, per_cpu.data());
  return true;
}

void FastPath::each_counter(const std::function<void(const FastPathRecord&)>& visit) {
  // kCountersBatch entries per system call (a per-CPU value each: cpus x 40 bytes), not one call per tunnel.
  constexpr uint32_t kCountersBatch = 4096;
  std::vector<uint32_t> keys(kCountersBatch);
  std::vector<tsp_fp_counters> values(static_cast<size_t>(kCountersBatch) * static_cast<size_t>(cpus_));
  uint32_t in_batch = 0, out_batch = 0;
  bool first = true;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (;;) {
    uint32_t count = kCountersBatch;
    const int rc = bpf_map_lookup_batch(counters_fd_, first ? nullptr : &in_batch, &out_batch, keys.data(),
                                        values.data(), &count, &opts);
    if (rc < 0 && rc != -ENOENT) {
      if (!first) throw SysError("bpf_map_lookup_batch", -rc, "counters");
      FastPathRecord r;  // a kernel without batch lookups: one lookup per tunnel
      for (const auto& entry : tunnels_)
        if (read_one(entry.first, &r)) visit(r);
      return;
    }
    for (uint32_t i = 0; i < count; i++) visit(sum(keys[i], &values[static_cast<size_t>(i) * cpus_]));
    if (rc == -ENOENT) return;  // the last batch
    in_batch = out_batch;
    first = false;
  }
}

std::vector<FastPathRecord> FastPath::read_counters() {
  std::vector<FastPathRecord> out;
  out.reserve(tunnels_.size());
  each_counter([&](const FastPathRecord& r) { out.push_back(r); });
  return out;
}

std::vector<FastPathRecord> FastPath::read_counters_of(const std::vector<uint32_t>& ids) {
  std::vector<FastPathRecord> out;
  FastPathRecord r;
  for (uint32_t id : ids)
    if (tunnels_.count(id) != 0 && read_one(id, &r)) out.push_back(r);
  return out;
}

std::vector<FastPathRecord> FastPath::read_changed() {
  std::vector<FastPathRecord> out;
  each_counter([&](const FastPathRecord& r) {
    const double packets = r.rx_packets + r.tx_packets;
    double& reported = reported_packets_[r.id];  // 0 for a tunnel not reported since it was added
    if (packets == reported) return;
    reported = packets;
    out.push_back(r);
  });
  return out;
}

std::vector<uint64_t> FastPath::read_stats() {
  std::vector<uint64_t> out(TSP_FP_STAT_COUNT, 0);
  if (object_ == nullptr) return out;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus_));
  for (uint32_t i = 0; i < TSP_FP_STAT_COUNT; i++) {
    if (bpf_map_lookup_elem(stats_fd_, &i, per_cpu.data()) != 0) continue;
    for (uint64_t v : per_cpu) out[i] += v;
  }
  return out;
}

}  // namespace tspdp
