// @module native/ebpf/loader: loads the TC programs of native/bpf/fastpath.bpf.c through libbpf, attaches them
// (decap on each uplink's clsact ingress, encap on the TUN's egress) and owns their maps: the broker process
// holds every descriptor, nothing is pinned, so the maps live exactly as long as this object. Tunnels go in and
// out of the maps while traffic flows. Plain C++17 over libbpf; the N-API surface is ebpf_addon.cc.
//
// Leftovers: a broker killed with -9 leaves its filters (and the programs and maps they hold) on the uplinks.
// Our filters have a fixed handle and priority (kFilterHandle/kFilterPriority), so a start first removes any
// filter there, and then the clsact qdisc is treated as ours (created by the crashed broker).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

extern "C" {
#include "../bpf/fastpath.h"
}

struct bpf_object;

namespace tspdp {

struct FastPathOptions {
  std::string object_path;            // the compiled fastpath.bpf.o
  std::string netns;                  // empty: the calling thread's namespace
  std::string tun_name;               // encap on its egress
  std::vector<std::string> uplinks;   // decap on each one's ingress
  std::vector<uint32_t> local_ipv4;   // addresses (network order) the TSP port listens on
  uint16_t tsp_port = 3653;
  uint16_t max_inner_bytes = 1280;
  uint32_t proto41_source_ipv4 = 0;   // network order; 0: the address the client's packets arrive at
};

/** One tunnel as the programs see it (addresses in network order, IPv6 as 16 bytes). */
struct FastPathTunnel {
  uint32_t id = 0;
  uint8_t type = 0;  // TSP_FP_*
  uint32_t client_ipv4 = 0;
  uint16_t client_port = 0;  // host order; 0 for v6v4
  uint8_t client_ipv6[16] = {};
  uint8_t server_ipv6[16] = {};
  uint8_t delegated[16] = {};
  uint8_t delegated_length = 0;
};

struct FastPathRecord {
  uint32_t id;
  double rx_packets, rx_bytes, tx_packets, tx_bytes, last_rx_ms;
};

class FastPath {
 public:
  /** Loads, configures and attaches; throws SysError (or std::runtime_error with the verifier's log). */
  explicit FastPath(const FastPathOptions& options);
  ~FastPath() { close(); }
  FastPath(const FastPath&) = delete;
  FastPath& operator=(const FastPath&) = delete;

  /** Idempotent per id: the new keys go in before the old ones go, and the counters stay. Throws when a map
   *  is full. */
  void add_tunnel(const FastPathTunnel& tunnel);
  void remove_tunnel(uint32_t id);
  size_t tunnel_count() const { return tunnels_.size(); }

  std::vector<FastPathRecord> read_counters();
  std::vector<FastPathRecord> read_counters_of(const std::vector<uint32_t>& ids);
  /** The tunnels whose packet counts moved since the previous call: every tunnel's counters are read (in
   *  batches of thousands per system call) and compared with the count last reported, O(tunnels). */
  std::vector<FastPathRecord> read_changed();
  /** The stats array (enum tsp_fp_stat), summed over CPUs. */
  std::vector<uint64_t> read_stats();
  /** Detaches the filters and frees the maps. Idempotent. */
  void close();

 private:
  struct Attachment {
    int ifindex;
    int attach_point;   // BPF_TC_INGRESS or BPF_TC_EGRESS
    bool owns_qdisc;
  };
  void attach(const std::string& device, int attach_point, int prog_fd);
  bool read_one(uint32_t id, FastPathRecord* out);
  FastPathRecord sum(uint32_t id, const tsp_fp_counters* per_cpu) const;
  void each_counter(const std::function<void(const FastPathRecord&)>& visit);
  void delete_keys(const FastPathTunnel& old, const FastPathTunnel* keep);

  FastPathOptions options_;
  bpf_object* object_ = nullptr;
  int endpoints_fd_ = -1, tunnels_fd_ = -1, routes_fd_ = -1, counters_fd_ = -1, learned_fd_ = -1,
      stats_fd_ = -1;
  int cpus_ = 1;
  int64_t unix_offset_ms_ = 0;  // CLOCK_REALTIME - CLOCK_MONOTONIC at start, in ms
  std::vector<Attachment> attached_;
  std::unordered_map<uint32_t, FastPathTunnel> tunnels_;
  std::unordered_map<uint32_t, double> reported_packets_;  // read_changed's last view
};

}  // namespace tspdp
