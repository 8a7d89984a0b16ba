// @module native/engine/engine: see engine.h for the decisions and where they come from.
#include "engine.h"

#include <cstring>

#include "constants.h"

namespace tspdp {

DatagramKind classify_udp_datagram(const uint8_t* data, size_t length, bool truncated) {
  if (length == 0 || truncated) return DatagramKind::kMalformed;
  if ((data[0] >> 4) == 6) return DatagramKind::kData;
  return length < kControlHeaderBytes ? DatagramKind::kControlTooShort : DatagramKind::kControl;
}

bool parse_proto41(const uint8_t* data, size_t length, bool truncated, Proto41Header* out) {
  const size_t header = length >= kIpv4MinHeaderBytes ? static_cast<size_t>(data[0] & 0x0f) * 4 : 0;
  if (header < kIpv4MinHeaderBytes || header >= length || data[9] != kIpProtoIpv6 || truncated) return false;
  out->length = header;
  std::memcpy(&out->source, data + 12, 4);
  return true;
}

namespace {

Verdict drop(Counter reason) { return {Action::kDrop, reason, nullptr, 0}; }

}  // namespace

Verdict forward_from_tunnel(uint8_t* packet, size_t available, Tunnel* from, int64_t now_ms,
                            const TunnelTable& table) {
  const size_t length = ipv6_packet_length(packet, available);
  if (length == 0) return drop(kDropMalformed);
  if (from == nullptr) return drop(kDropUnknownEndpoint);
  const Ip6 source = load_ip6(packet + 8);
  if (!from->may_use_source(source)) return drop(is_link_local(source) ? kDropLinkLocalSource : kDropSpoofedSource);
  from->count_rx(length, now_ms);

  const Ip6 destination = load_ip6(packet + 24);
  if (destination == from->config.server_ip6 && is_echo_request(packet, length)) {
    make_echo_reply(packet, length);  // the client's keepalive (docs/protocol.md §9.1)
    return {Action::kToTunnel, kEchoReplies, from, length};
  }
  Tunnel* to = table.route(destination);
  if (to == nullptr) return {Action::kToTun, kCounterCount, nullptr, length};
  // Never route back into the tunnel a packet came from (docs/protocol.md §11).
  if (to == from) return drop(kDropNoRoute);
  // An expiring hop limit goes to the kernel, which sends the Time Exceeded we would otherwise have to build.
  if (packet[7] <= 1) return {Action::kToTun, kCounterCount, nullptr, length};
  packet[7]--;  // we are the router between the two tunnels
  return {Action::kToTunnel, kHairpinPackets, to, length};
}

Verdict forward_from_v4v6(uint8_t* packet, size_t available, Tunnel* from, int64_t now_ms,
                          const TunnelTable& table) {
  const size_t length = ipv4_packet_length(packet, available);
  if (length == 0) return drop(kDropMalformed);
  if (from == nullptr) return drop(kDropUnknownEndpoint);
  if (load_ip4(packet + 12) != from->config.client_ip4) return drop(kDropSpoofedSource);
  from->count_rx(length, now_ms);

  const uint32_t destination = load_ip4(packet + 16);
  if (destination == from->config.server_ip4 && is_echo_request4(packet, length)) {
    make_echo_reply4(packet, length);
    return {Action::kToTunnel, kEchoReplies, from, length};
  }
  Tunnel* to = table.route4(destination);
  if (to == nullptr) return {Action::kToTun, kCounterCount, nullptr, length};
  if (to == from) return drop(kDropNoRoute);  // as for IPv6: never back into the tunnel it came from
  if (packet[8] <= 1) return {Action::kToTun, kCounterCount, nullptr, length};  // the kernel's Time Exceeded
  decrement_ttl4(packet);
  return {Action::kToTunnel, kHairpinPackets, to, length};
}

Verdict forward_from_tun(const uint8_t* packet, size_t available, const TunnelTable& table) {
  if (available != 0 && (packet[0] >> 4) == 4) {
    const size_t length = ipv4_packet_length(packet, available);
    if (length == 0) return drop(kDropMalformed);
    Tunnel* to = table.route4(load_ip4(packet + 16));
    if (to == nullptr) return drop(kDropNoRoute);
    return {Action::kToTunnel, kCounterCount, to, length};
  }
  const size_t length = ipv6_packet_length(packet, available);
  if (length == 0) return drop(kDropMalformed);
  Tunnel* to = table.route(load_ip6(packet + 24));
  if (to == nullptr) return drop(kDropNoRoute);
  return {Action::kToTunnel, kCounterCount, to, length};
}

ClientDatagram classify_client_datagram(const uint8_t* data, size_t length, bool udp, uint32_t server_address) {
  ClientDatagram d;
  if (!udp) {
    // A raw socket sees every protocol-41 packet to this host: only the server's are ours.
    const size_t header = length >= kIpv4MinHeaderBytes ? static_cast<size_t>(data[0] & 0x0f) * 4 : 0;
    uint32_t source = 0;
    if (header >= kIpv4MinHeaderBytes && header < length) std::memcpy(&source, data + 12, 4);
    if (source != server_address) return d;
    d.offset = header;
  } else if (length >= kControlHeaderBytes && (data[0] >> 4) == 0xF) {
    d.kind = ClientInbound::kControl;
    return d;
  }
  d.length = ipv6_packet_length(data + d.offset, length - d.offset);
  if (d.length != 0) d.kind = ClientInbound::kData;
  return d;
}

}  // namespace tspdp

namespace tspdp {

ClientDatagram classify_client_v4v6(const uint8_t* data, size_t length) {
  ClientDatagram d;
  d.length = ipv4_packet_length(data, length);
  if (d.length != 0) d.kind = ClientInbound::kData;
  return d;
}

}  // namespace tspdp
