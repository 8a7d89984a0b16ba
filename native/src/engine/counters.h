// @module native/engine/counters: every counter the addon keeps, their names and the per-tunnel record layout.
// The names are exported by the addon (COUNTER_NAMES, TUNNEL_RECORD_FIELDS, CLIENT_COUNTER_NAMES) and
// src/dataplane/native-addon.ts refuses to load an addon whose layout differs from its own, so the enums below
// and the TypeScript cannot drift apart silently. Append new counters at the end and add them on both sides.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace tspdp {

/** The broker's counters outside the tunnels. The first seven are the DataPlane DropReason keys; the rest are
 *  addon diagnostics. */
enum Counter : unsigned {
  kDropUnknownEndpoint,
  kDropSpoofedSource,
  kDropLinkLocalSource,
  kDropNoRoute,
  kDropMalformed,
  kDropControlTooShort,
  kControlQueueFull,  // control datagrams dropped because JavaScript fell behind
  kControlDelivered,
  kEchoReplies,       // keepalives answered in place
  kHairpinPackets,    // client-to-client packets re-encapsulated without touching the TUN
  kTunWritePackets,
  kTunWriteErrors,
  kSendErrors,        // sendmmsg/sendto failures other than back-pressure
  kCounterCount,
};

/** `Counter` names, in enum order, as the TypeScript spells them. */
constexpr const char* kCounterNames[] = {
    "unknown_endpoint", "spoofed_source",     "link_local_source", "no_route",       "malformed",
    "control_too_short", "control_queue_full", "control_delivered", "echo_replies",   "hairpin_packets",
    "tun_write_packets", "tun_write_errors",   "send_errors",
};
static_assert(sizeof kCounterNames / sizeof kCounterNames[0] == kCounterCount, "a Counter without a name");

/** Counters written by several threads with relaxed atomics: they are statistics. A path counts a packet before
 *  the system call that delivers it (receive_loop.cc), so whoever sees the packet arrive also sees it counted. */
struct Counters {
  std::atomic<uint64_t> value[kCounterCount] = {};
  void add(Counter c, uint64_t n = 1) { value[c].fetch_add(n, std::memory_order_relaxed); }
  uint64_t get(Counter c) const { return value[c].load(std::memory_order_relaxed); }
};

/** One tunnel's record in TunnelTable::read_counters' output: these offsets, kCounterStride values each. */
enum TunnelRecordField : unsigned {
  kRecordId,
  kRecordRxPackets,
  kRecordRxBytes,
  kRecordTxPackets,
  kRecordTxBytes,
  kRecordLastRxMs,
  kCounterStride,
};
constexpr const char* kTunnelRecordFields[] = {"id", "rxPackets", "rxBytes", "txPackets", "txBytes", "lastRxMs"};
static_assert(sizeof kTunnelRecordFields / sizeof kTunnelRecordFields[0] == kCounterStride, "a field without a name");

/** The client tunnel's counters (tspc's end). */
enum ClientCounter : unsigned {
  kClientTxPackets,
  kClientTxBytes,
  kClientRxPackets,
  kClientRxBytes,
  kClientDropped,           // not IPv6, not from the server, or refused by the TUN
  kClientSendErrors,        // datagrams the kernel refused to send (the server's send_errors)
  kClientControlQueueFull,  // control datagrams dropped because JavaScript fell behind (control_queue_full)
  kClientCounterCount,
};
constexpr const char* kClientCounterNames[] = {"txPackets", "txBytes",    "rxPackets",       "rxBytes",
                                               "dropped",   "sendErrors", "controlQueueFull"};
static_assert(sizeof kClientCounterNames / sizeof kClientCounterNames[0] == kClientCounterCount,
              "a ClientCounter without a name");

struct ClientCounters {
  std::atomic<uint64_t> value[kClientCounterCount] = {};
  void add(ClientCounter c, uint64_t n = 1) { value[c].fetch_add(n, std::memory_order_relaxed); }
  uint64_t get(ClientCounter c) const { return value[c].load(std::memory_order_relaxed); }
};

}  // namespace tspdp
