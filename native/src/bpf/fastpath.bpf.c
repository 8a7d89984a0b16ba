// @module native/bpf/fastpath.bpf.c: the kernel fast path of `dataplane.driver: "ebpf"` (docs/architecture.md,
// "The eBPF fast path"). Two TC programs over the maps of fastpath.h, loaded by native/src/ebpf/loader.cc:
//
//   tsp_decap (clsact ingress of each uplink):  IPv4 UDP to the TSP port carrying IPv6, or protocol 41, from a
//       known client endpoint, inner source the tunnel's /128 or in its delegated prefix --> outer header
//       removed, handed to the kernel's IPv6 stack on the uplink (TC_ACT_OK), counted per tunnel
//   tsp_encap (clsact egress of the TUN):       IPv6 whose destination is a tunnel's /128 or delegated prefix
//       --> IPv4 (+ UDP from the TSP port) prepended, redirected to the interface the client's packets arrive on
//       (learned by tsp_decap; before the client has sent anything, the addon carries its traffic)
//
// The rule: a packet the programs cannot carry exactly as the addon would is left untouched (TC_ACT_OK), so
// it reaches the addon's socket or TUN reader and the slow path decides and counts it: control datagrams,
// a UDP checksum that does not verify (the kernel's UDP drops it), unknown endpoints, IPv4 options and fragments, GRO-merged packets, a length that does not add up, an
// expiring hop limit, echo requests to the tunnel's server address (the addon answers them), inner
// destinations inside a tunnel (hairpin, or back into the same tunnel: the addon's rules), oversize packets,
// neighbour discovery, MLD, multicast and link-local destinations and protocols other than TCP, UDP, ESP, GRE,
// SCTP and ICMPv6 (decapsulated packets enter the kernel on the uplink: nothing may act on its link), and
// anything to no tunnel, and on the way out TCP and UDP whose checksum the kernel has not finished. Only
// spoofed and link-local inner sources are dropped here, counted by reason.
// Verifier note (clang 14): data and data_end are read again after every helper that may move the packet.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "fastpath.h"

// Linux 6.3 flags, absent from older uapi headers: the shrunk packet's skb->protocol becomes IPv6.
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV6
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif

#define IPPROTO_IPV6_IN_IPV4 41
#define IPV4_HEADER 20
#define UDP_HEADER 8
#define IPV6_HEADER 40
#define OUTER_TTL 64

char LICENSE[] SEC("license") = "GPL";

// The per-tunnel maps are not preallocated (BPF_F_NO_PREALLOC): their memory follows the tunnels loaded, not
// the bound. Entries are inserted by the loader, outside the packet path; only `learned` is written by a program,
// once per tunnel and again when its client moves.

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, TSP_FP_MAX_TUNNELS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct tsp_fp_endpoint);
  __type(value, __u32);
} endpoints SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, TSP_FP_MAX_TUNNELS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);
  __type(value, struct tsp_fp_tunnel);
} tunnels SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, TSP_FP_MAX_ROUTES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct tsp_fp_route_key);
  __type(value, __u32);
} routes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, TSP_FP_MAX_TUNNELS);
  __uint(map_flags, BPF_F_NO_PREALLOC);  // preallocated, 262,144 x CPUs x 40 bytes: 671 MB on 64 CPUs
  __type(key, __u32);
  __type(value, struct tsp_fp_counters);
} counters SEC(".maps");

/** The host's own IPv4 addresses the TSP port listens on: only packets to them are ours to decapsulate. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, TSP_FP_MAX_LOCALS);
  __type(key, __u32);
  __type(value, __u8);
} locals SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, TSP_FP_MAX_TUNNELS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);
  __type(value, struct tsp_fp_learned);
} learned SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct tsp_fp_config);
} config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, TSP_FP_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} stats SEC(".maps");

static __always_inline void count_stat(__u32 which) {
  __u64* value = bpf_map_lookup_elem(&stats, &which);
  if (value) *value += 1;
}

static __always_inline int slow_decap(void) {
  count_stat(TSP_FP_SLOW_DECAP);
  return TC_ACT_OK;
}

static __always_inline int slow_encap(void) {
  count_stat(TSP_FP_SLOW_ENCAP);
  return TC_ACT_OK;
}

static __always_inline int same_ipv6(const __u8* a, const __u8* b) {
  const __u64* x = (const __u64*)a;
  const __u64* y = (const __u64*)b;
  return x[0] == y[0] && x[1] == y[1];
}

/** Whether `address` lies in prefix/length (length 1..128). */
static __always_inline int in_prefix(const __u8* address, const __u8* prefix, __u32 length) {
  __u64 a0 = bpf_be64_to_cpu(((const __u64*)address)[0]);
  __u64 a1 = bpf_be64_to_cpu(((const __u64*)address)[1]);
  __u64 p0 = bpf_be64_to_cpu(((const __u64*)prefix)[0]);
  __u64 p1 = bpf_be64_to_cpu(((const __u64*)prefix)[1]);
  if (length == 0 || length > 128) return 0;
  if (length <= 64) {
    __u64 mask = length == 64 ? ~0ULL : ~((~0ULL) >> length);
    return (a0 & mask) == (p0 & mask);
  }
  __u64 mask = length == 128 ? ~0ULL : ~((~0ULL) >> (length - 64));
  return a0 == p0 && (a1 & mask) == (p1 & mask);
}

static __always_inline int is_link_local(const __u8* address) {
  return address[0] == 0xfe && (address[1] & 0xc0) == 0x80;
}

/** Whether the kernel may take the inner packet as received on the uplink's link. Decapsulated packets enter
 *  the kernel on the uplink (TC_ACT_OK), not on the TUN as the addon's do: neighbour discovery and MLD (an
 *  unsolicited Neighbor Advertisement would rewrite the uplink's neighbour cache), link-scope and multicast
 *  destinations, and anything the kernel might parse further (extension headers, other protocols) stay with
 *  the addon. Carried here: TCP, UDP, ESP, GRE, SCTP and ICMPv6 other than ND/MLD, to unicast beyond the link. */
static __always_inline int uplink_safe(struct ipv6hdr* inner, void* data_end) {
  const __u8* destination = inner->daddr.in6_u.u6_addr8;
  if (destination[0] == 0xff || is_link_local(destination)) return 0;
  switch (inner->nexthdr) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_ESP:
    case IPPROTO_GRE:
    case IPPROTO_SCTP:
      return 1;
    case IPPROTO_ICMPV6: {
      const __u8* type = (void*)(inner + 1);
      if ((void*)(type + 1) > data_end) return 0;
      return !((*type >= 130 && *type <= 137) || *type == 143);  // MLD, RS/RA/NS/NA/Redirect, MLDv2
    }
    default:
      return 0;
  }
}

/** The decap decision once the outer headers are known good: 1 carry, 0 slow path, -1 drop. */
static __always_inline int check_inner(struct ipv6hdr* inner, const struct tsp_fp_tunnel* t) {
  const __u8* source = inner->saddr.in6_u.u6_addr8;
  if (!same_ipv6(source, t->client_ipv6) &&
      !(t->delegated_length && in_prefix(source, t->delegated, t->delegated_length))) {
    count_stat(is_link_local(source) ? TSP_FP_DROP_LINK_LOCAL : TSP_FP_DROP_SPOOFED);
    return -1;
  }
  const __u8* destination = inner->daddr.in6_u.u6_addr8;
  if (same_ipv6(destination, t->server_ipv6)) return 0;  // echo and the like: the addon answers in place
  struct tsp_fp_route_key key = {.prefixlen = 128};
  __builtin_memcpy(key.address, destination, 16);
  if (bpf_map_lookup_elem(&routes, &key)) return 0;  // hairpin or back into the tunnel: the addon's rules
  if (inner->hop_limit <= 1) return 0;               // the kernel's Time Exceeded, via the addon
  return 2;  // the caller still checks uplink_safe()
}

static __always_inline void count_rx(__u32 id, __u32 bytes) {
  struct tsp_fp_counters* c = bpf_map_lookup_elem(&counters, &id);
  if (!c) return;
  c->rx_packets += 1;
  c->rx_bytes += bytes;
  c->last_rx_ns = bpf_ktime_get_ns();
}

static __always_inline void learn(__u32 id, __u32 local_ipv4, __u32 ifindex) {
  struct tsp_fp_learned* l = bpf_map_lookup_elem(&learned, &id);
  if (l && l->local_ipv4 == local_ipv4 && l->ifindex == ifindex) return;
  struct tsp_fp_learned fresh = {.local_ipv4 = local_ipv4, .ifindex = ifindex};
  bpf_map_update_elem(&learned, &id, &fresh, BPF_ANY);
}

/** The longest UDP datagram whose checksum tsp_decap verifies itself (in loads of CHECKSUM_CHUNK bytes); a longer
 *  one with a checksum goes to the slow path, where the kernel's UDP verifies it. */
#define CHECKSUM_CHUNK 256
#define CHECKSUM_MAX_BYTES (8 * CHECKSUM_CHUNK)

/** Whether the outer UDP checksum lets the datagram in, as the kernel's UDP would before the addon's socket: none
 *  (0, allowed over IPv4), verified by the device (CHECKSUM_UNNECESSARY), or equal to the pseudo-header sum (a
 *  CHECKSUM_PARTIAL datagram from a local or veth sender that the kernel takes as good; see
 *  maybe_partial_checksum for the 1 in 65,536 complete checksum that looks the same), or summing right over the
 *  pseudo-header, the header and the data. Without this a corrupted datagram the kernel would drop reached the
 *  internet: the outer UDP checksum is all that covers the inner IPv6 header. */
static __always_inline int udp_checksum_ok(struct __sk_buff* skb, const struct iphdr* ip, const struct udphdr* udp) {
  if (udp->check == 0) return 1;
  if (bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY) >= 0) return 1;
  const __u32 length = bpf_ntohs(udp->len);
  struct {
    __be32 source;
    __be32 destination;
    __u8 zero;
    __u8 protocol;
    __be16 length;
  } pseudo = {.source = ip->saddr, .destination = ip->daddr, .protocol = IPPROTO_UDP, .length = udp->len};
  __s64 sum = bpf_csum_diff(0, 0, (__be32*)&pseudo, sizeof(pseudo), 0);
  if (sum < 0) return 0;
  __u32 folded = (__u32)sum;
  folded = (folded & 0xffff) + (folded >> 16);
  folded = (folded & 0xffff) + (folded >> 16);
  if (udp->check == (__u16)folded) return 1;  // CHECKSUM_PARTIAL: the field holds the pseudo-header sum
  if (length > CHECKSUM_MAX_BYTES) return 0;
  __u8 chunk[CHECKSUM_CHUNK];
  const __u32 at = ETH_HLEN + IPV4_HEADER;
#pragma unroll
  for (__u32 i = 0; i < CHECKSUM_MAX_BYTES / CHECKSUM_CHUNK; i++) {
    const __u32 offset = i * CHECKSUM_CHUNK;
    if (offset >= length) break;
    __u32 n = length - offset;
    n = ((n - 1) & (CHECKSUM_CHUNK - 1)) + 1;  // 1..256: the verifier sees the bound
    if (length - offset >= CHECKSUM_CHUNK) n = CHECKSUM_CHUNK;
    __builtin_memset(chunk, 0, sizeof(chunk));  // an odd tail is summed padded with zeros (RFC 768)
    if (bpf_skb_load_bytes(skb, at + offset, chunk, n) < 0) return 0;
    const __u32 padded = ((n + 3) >> 2) << 2;
    sum = bpf_csum_diff(0, 0, (__be32*)chunk, padded, (__wsum)sum);
    if (sum < 0) return 0;
  }
  folded = (__u32)sum;
  folded = (folded & 0xffff) + (folded >> 16);
  folded = (folded & 0xffff) + (folded >> 16);
  return folded == 0xffff;
}

SEC("tc")
int tsp_decap(struct __sk_buff* skb) {
  if (skb->protocol != bpf_htons(ETH_P_IP)) return TC_ACT_OK;
  __u32 zero = 0;
  const struct tsp_fp_config* cfg = bpf_map_lookup_elem(&config, &zero);
  if (!cfg) return TC_ACT_OK;
  void* data = (void*)(long)skb->data;
  void* data_end = (void*)(long)skb->data_end;
  struct iphdr* ip = data + ETH_HLEN;
  if ((void*)(ip + 1) > data_end) return TC_ACT_OK;
  if (ip->version != 4 || ip->ihl != 5) return TC_ACT_OK;  // IPv4 options: not ours to judge here
  struct tsp_fp_endpoint endpoint = {.address = ip->saddr};
  __u32 outer;
  __u32 inner_length_on_wire;
  if (ip->protocol == IPPROTO_UDP) {
    struct udphdr* udp = (void*)(ip + 1);
    if ((void*)(udp + 1) > data_end) return TC_ACT_OK;
    if (udp->dest != cfg->tsp_port) return TC_ACT_OK;
    __u8* first = (void*)(udp + 1);
    if ((void*)(first + 1) > data_end) return TC_ACT_OK;
    if ((*first >> 4) != 6) return TC_ACT_OK;  // a control datagram (0xF) or anything else: the socket's
    endpoint.port = udp->source;
    endpoint.type = TSP_FP_V6UDPV4;
    outer = IPV4_HEADER + UDP_HEADER;
    inner_length_on_wire = bpf_ntohs(udp->len) - UDP_HEADER;
  } else if (ip->protocol == IPPROTO_IPV6_IN_IPV4) {
    endpoint.type = TSP_FP_V6V4;
    outer = IPV4_HEADER;
    inner_length_on_wire = bpf_ntohs(ip->tot_len) - IPV4_HEADER;
  } else {
    return TC_ACT_OK;
  }
  if (!bpf_map_lookup_elem(&locals, &ip->daddr)) return TC_ACT_OK;  // passing through, not to us
  // From here on it is tunnel data to us: anything odd is the addon's to judge and count.
  if (ip->frag_off & bpf_htons(0x3fff)) return slow_decap();  // a fragment (MF or an offset)
  if (skb->gso_segs > 1) return slow_decap();                  // GRO-merged: adjust_room refuses those
  struct ipv6hdr* inner = (void*)ip + outer;
  if ((void*)(inner + 1) > data_end) return slow_decap();
  const __u32 inner_length = IPV6_HEADER + bpf_ntohs(inner->payload_len);
  if (inner->version != 6 || inner_length != inner_length_on_wire ||
      bpf_ntohs(ip->tot_len) != outer + inner_length || skb->len != ETH_HLEN + outer + inner_length)
    return slow_decap();
  // A bad UDP checksum: the kernel drops it before the addon's socket, as without the programs.
  if (endpoint.type == TSP_FP_V6UDPV4 && !udp_checksum_ok(skb, ip, (void*)(ip + 1))) return slow_decap();
  const __u32* id = bpf_map_lookup_elem(&endpoints, &endpoint);
  if (!id) return slow_decap();  // unknown_endpoint, counted by the addon
  const __u32 tunnel_id = *id;
  const struct tsp_fp_tunnel* t = bpf_map_lookup_elem(&tunnels, &tunnel_id);
  if (!t) return slow_decap();
  const int verdict = check_inner(inner, t);
  if (verdict < 0) return TC_ACT_SHOT;
  learn(tunnel_id, ip->daddr, skb->ifindex);  // the keepalives the addon answers teach the way back too
  if (verdict == 0 || !uplink_safe(inner, data_end)) return slow_decap();
  if (bpf_skb_adjust_room(skb, -(__s32)outer, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_DECAP_L3_IPV6))
    return slow_decap();  // refused: the packet is unchanged
  data = (void*)(long)skb->data;
  data_end = (void*)(long)skb->data_end;
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return TC_ACT_SHOT;
  eth->h_proto = bpf_htons(ETH_P_IPV6);
  count_rx(tunnel_id, inner_length);
  count_stat(TSP_FP_DECAP_PACKETS);
  return TC_ACT_OK;
}

static __always_inline __u16 ipv4_checksum(const struct iphdr* ip) {
  const __u16* words = (const __u16*)ip;
  __u32 sum = 0;
#pragma unroll
  for (int i = 0; i < IPV4_HEADER / 2; i++) sum += words[i];
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)~sum;
}

/** Whether the inner TCP or UDP checksum may still be the kernel's partial one (CHECKSUM_PARTIAL: the field holds
 *  the pseudo-header sum and the device is to finish it). A packet from a local socket or forwarded from a veth
 *  is like that; the addon's TUN read finishes it, a redirect to a veth or the loopback would not, and the
 *  client would get a wrong checksum. TC cannot see ip_summed, so the field is compared with the pseudo-header
 *  sum: such packets (and the one complete checksum in 65,536 that happens to be equal) go to the slow path.
 *  Extension headers go there too, since the transport header is not where this looks. */
static __always_inline int maybe_partial_checksum(struct ipv6hdr* ip6, void* data_end) {
  const __u8 next = ip6->nexthdr;
  if (next == 0 || next == 43 || next == 44 || next == 60) return 1;  // hop-by-hop, routing, fragment, dst opts
  __u32 at;
  if (next == IPPROTO_TCP) at = 16;
  else if (next == IPPROTO_UDP) at = 6;
  else return 0;
  __u16* field = (void*)(ip6 + 1) + at;
  if ((void*)(field + 1) > data_end) return 1;
  const __u16* words = (const __u16*)&ip6->saddr;
  __u32 sum = bpf_htons(bpf_ntohs(ip6->payload_len)) + bpf_htons(next);
#pragma unroll
  for (int i = 0; i < 16; i++) sum += words[i];
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return *field == (__u16)sum;
}

SEC("tc")
int tsp_encap(struct __sk_buff* skb) {
  if (skb->protocol != bpf_htons(ETH_P_IPV6)) return TC_ACT_OK;
  __u32 zero = 0;
  const struct tsp_fp_config* cfg = bpf_map_lookup_elem(&config, &zero);
  if (!cfg) return TC_ACT_OK;
  void* data = (void*)(long)skb->data;
  void* data_end = (void*)(long)skb->data_end;
  struct ipv6hdr* ip6 = data;  // a TUN has no link-layer header
  if ((void*)(ip6 + 1) > data_end) return TC_ACT_OK;
  if (ip6->version != 6) return TC_ACT_OK;
  struct tsp_fp_route_key key = {.prefixlen = 128};
  __builtin_memcpy(key.address, ip6->daddr.in6_u.u6_addr8, 16);
  const __u32* id = bpf_map_lookup_elem(&routes, &key);
  if (!id) return TC_ACT_OK;  // no_route, counted by the addon (the kernel's own RS and MLD included)
  const __u32 tunnel_id = *id;
  const __u32 inner_length = IPV6_HEADER + bpf_ntohs(ip6->payload_len);
  if (inner_length != skb->len || inner_length > cfg->max_inner_bytes || skb->gso_segs > 1) return slow_encap();
  if (maybe_partial_checksum(ip6, data_end)) return slow_encap();
  const struct tsp_fp_tunnel* t = bpf_map_lookup_elem(&tunnels, &tunnel_id);
  if (!t) return slow_encap();
  const struct tsp_fp_learned* l = bpf_map_lookup_elem(&learned, &tunnel_id);
  if (!l) return slow_encap();  // the client has sent nothing yet: the addon's socket lets the kernel route
  __u32 source = l->local_ipv4;
  if (t->type == TSP_FP_V6V4 && cfg->proto41_source_ipv4) source = cfg->proto41_source_ipv4;
  const __u32 ifindex = l->ifindex;
  const int udp = t->type == TSP_FP_V6UDPV4;
  const __u32 client_ipv4 = t->client_ipv4;
  const __u16 client_port = t->client_port;
  const __u32 outer = udp ? IPV4_HEADER + UDP_HEADER : IPV4_HEADER;
  const __u64 flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | (udp ? BPF_F_ADJ_ROOM_ENCAP_L4_UDP : 0);
  if (bpf_skb_adjust_room(skb, outer, BPF_ADJ_ROOM_MAC, flags)) return slow_encap();  // unchanged
  if (bpf_skb_change_head(skb, ETH_HLEN, 0)) {  // bpf_redirect_neigh wants a link-layer header to replace
    count_stat(TSP_FP_ENCAP_FAILED);
    return TC_ACT_SHOT;
  }
  data = (void*)(long)skb->data;
  data_end = (void*)(long)skb->data_end;
  struct ethhdr* eth = data;
  struct iphdr* ip = data + ETH_HLEN;
  if ((void*)(ip + 1) > data_end) {
    count_stat(TSP_FP_ENCAP_FAILED);
    return TC_ACT_SHOT;
  }
  __builtin_memset(eth, 0, ETH_HLEN);
  eth->h_proto = bpf_htons(ETH_P_IP);
  ip->version = 4;
  ip->ihl = 5;
  ip->tos = 0;
  ip->tot_len = bpf_htons(outer + inner_length);
  ip->id = 0;
  ip->frag_off = bpf_htons(0x4000);  // DF, as the kernel sets it on the addon's UDP socket
  ip->ttl = OUTER_TTL;
  ip->protocol = udp ? IPPROTO_UDP : IPPROTO_IPV6_IN_IPV4;
  ip->check = 0;
  ip->saddr = source;
  ip->daddr = client_ipv4;
  ip->check = ipv4_checksum(ip);
  if (udp) {
    struct udphdr* u = (void*)(ip + 1);
    if ((void*)(u + 1) > data_end) {
      count_stat(TSP_FP_ENCAP_FAILED);
      return TC_ACT_SHOT;
    }
    u->source = cfg->tsp_port;
    u->dest = client_port;
    u->len = bpf_htons(UDP_HEADER + inner_length);
    u->check = 0;  // optional over IPv4 (RFC 768); the inner packet carries its own
  }
  struct tsp_fp_counters* c = bpf_map_lookup_elem(&counters, &tunnel_id);
  if (c) {
    c->tx_packets += 1;
    c->tx_bytes += inner_length;
  }
  count_stat(TSP_FP_ENCAP_PACKETS);
  return bpf_redirect_neigh(ifindex, 0, 0, 0);
}
