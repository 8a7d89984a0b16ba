// @module native/bpf/fastpath: the layout shared by the TC programs (fastpath.bpf.c) and their loader
// (native/src/ebpf/loader.cc). Plain C over <linux/types.h>, so both clang -target bpf and the addon's C++
// compile it; a change here changes both sides in one build (the object and the addon are built together).
#pragma once

#include <linux/types.h>

/** Tunnel types the fast path carries; everything else (v4v6) never enters its maps. */
#define TSP_FP_V6UDPV4 1
#define TSP_FP_V6V4 2

/** Bounds of the maps: a tunnel has one endpoint, one /128 and at most one delegated prefix, so 2 routes.
 *  The broker's own limit on live tunnels stays far below this; an insert past it fails and the tunnel is
 *  carried by the slow path alone (counted by the loader). */
#define TSP_FP_MAX_TUNNELS 262144
#define TSP_FP_MAX_ROUTES (2 * TSP_FP_MAX_TUNNELS)
#define TSP_FP_MAX_LOCALS 64

/** endpoints: (client IPv4, UDP port or 0, type) -> tunnel id. Network byte order for address and port. */
struct tsp_fp_endpoint {
  __u32 address;
  __u16 port;
  __u16 type;
};

/** tunnels: id -> what both directions need. Addresses in network byte order. */
struct tsp_fp_tunnel {
  __u32 id;
  __u32 client_ipv4;
  __u16 client_port;  // 0 for v6v4
  __u8 type;          // TSP_FP_*
  __u8 delegated_length;  // 0: no delegated prefix
  __u8 client_ipv6[16];
  __u8 server_ipv6[16];
  __u8 delegated[16];
};

/** routes: LPM trie key (the client's /128 and the delegated prefix) -> tunnel id. */
struct tsp_fp_route_key {
  __u32 prefixlen;
  __u8 address[16];
};

/** counters: per-CPU, id -> traffic the programs carried (the addon counts what it carries itself). */
struct tsp_fp_counters {
  __u64 rx_packets;
  __u64 rx_bytes;
  __u64 tx_packets;
  __u64 tx_bytes;
  __u64 last_rx_ns;  // bpf_ktime_get_ns (CLOCK_MONOTONIC); 0: none
};

/** config: one entry, written by the loader before the programs are attached. */
struct tsp_fp_config {
  __u16 tsp_port;          // network order
  __u16 max_inner_bytes;   // inner IPv6 packets longer than this go to the slow path (the TUN's MTU)
  __u32 proto41_source_ipv4;  // the configured source of protocol-41 packets (serverIpv4); 0: the learned one
};

/** learned: per tunnel, the local address and the interface its client's packets arrive on (tsp_decap writes
 *  it from every packet that passes the source check). tsp_encap sends from there; until a client has sent
 *  something, its traffic goes through the addon, whose socket lets the kernel route. */
struct tsp_fp_learned {
  __u32 local_ipv4;
  __u32 ifindex;
};

/** stats: per-CPU array indexed by these; the loader sums the CPUs. Drops use the DataPlane's names. */
enum tsp_fp_stat {
  TSP_FP_DECAP_PACKETS,       // decapsulated and handed to the kernel's IPv6 stack
  TSP_FP_ENCAP_PACKETS,       // encapsulated and redirected to an uplink
  TSP_FP_DROP_SPOOFED,        // spoofed_source
  TSP_FP_DROP_LINK_LOCAL,     // link_local_source
  TSP_FP_SLOW_DECAP,          // tunnel traffic left to the addon (echo, hairpin, odd headers, GRO, unknown)
  TSP_FP_SLOW_ENCAP,          // TUN traffic left to the addon (no tunnel, oversize, no source yet)
  TSP_FP_ENCAP_FAILED,        // a helper refused after the packet was changed: dropped
  TSP_FP_STAT_COUNT,
};
