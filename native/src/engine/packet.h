// @module native/engine/packet: IPv6 header access, prefixes as two 64-bit words, the ICMPv6 checksum and the
// in-place echo reply; the same for the IPv4 packets of v4v6 tunnels (header check, ICMP echo reply, TTL).
// Header-only and allocation-free: it runs once per packet.
#pragma once

#include <endian.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace tspdp {

// Specification constants (RFC 8200, RFC 4443, RFC 791): change only with the RFCs.
constexpr size_t kIpv6HeaderBytes = 40;
constexpr size_t kIpv4MinHeaderBytes = 20;
constexpr uint8_t kNextHeaderIcmpv6 = 58;
constexpr uint8_t kIpProtoIpv6 = 41;  // IPv6 encapsulated in IPv4 (RFC 4213)
constexpr uint8_t kIpProtoIpip = 4;   // IPv4 encapsulated (in IPv6: RFC 2473)
constexpr uint8_t kIpProtoIcmp = 1;
constexpr uint8_t kIcmpEchoRequest = 8;  // RFC 792
constexpr uint8_t kIcmpEchoReply = 0;
constexpr uint8_t kIcmpv6EchoRequest = 128;
constexpr uint8_t kIcmpv6EchoReply = 129;
constexpr uint8_t kReplyHopLimit = 64;

/** An IPv6 address as two host-order words, so masking and hashing are integer operations. */
struct Ip6 {
  uint64_t hi = 0;
  uint64_t lo = 0;
  bool operator==(const Ip6& o) const { return hi == o.hi && lo == o.lo; }
  bool operator!=(const Ip6& o) const { return !(*this == o); }
};

inline Ip6 load_ip6(const uint8_t* p) {
  uint64_t hi, lo;
  std::memcpy(&hi, p, 8);
  std::memcpy(&lo, p + 8, 8);
  return {be64toh(hi), be64toh(lo)};
}

inline void store_ip6(uint8_t* p, const Ip6& a) {
  uint64_t hi = htobe64(a.hi), lo = htobe64(a.lo);
  std::memcpy(p, &hi, 8);
  std::memcpy(p + 8, &lo, 8);
}

/** Keeps the first `length` bits (0..128). */
inline Ip6 mask_ip6(const Ip6& a, int length) {
  if (length <= 0) return {0, 0};
  if (length < 64) return {a.hi & (~0ULL << (64 - length)), 0};
  if (length == 64) return {a.hi, 0};
  if (length < 128) return {a.hi, a.lo & (~0ULL << (128 - length))};
  return a;
}

/** fe80::/10: the client kernel's router solicitations and the like (docs/protocol.md §8.3). */
inline bool is_link_local(const Ip6& a) { return (a.hi >> 54) == (0xfe80ULL >> 6); }

struct Ip6Hash {
  size_t operator()(const Ip6& a) const {
    // splitmix64 finaliser over both words: std::hash<uint64_t> is the identity in libstdc++, and pool
    // addresses differ only in a few bits.
    uint64_t x = a.hi ^ (a.lo * 0x9E3779B97F4A7C15ULL);
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return static_cast<size_t>(x);
  }
};

inline uint16_t load_be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

inline uint32_t sum_words(const uint8_t* p, size_t n, uint32_t sum) {
  for (; n > 1; p += 2, n -= 2) sum += load_be16(p);
  if (n == 1) sum += static_cast<uint32_t>(p[0]) << 8;
  return sum;
}

/** The ICMPv6 checksum of `packet` (a whole IPv6 packet without extension headers), with the checksum field
 *  taken as zero: pseudo-header (source, destination, upper-layer length, next header) plus the message. */
inline uint16_t icmpv6_checksum(const uint8_t* packet, size_t length) {
  const size_t message = length - kIpv6HeaderBytes;
  uint32_t sum = sum_words(packet + 8, 32, 0);  // source and destination
  sum += static_cast<uint32_t>(message >> 16) + static_cast<uint32_t>(message & 0xffff);
  sum += kNextHeaderIcmpv6;
  sum = sum_words(packet + kIpv6HeaderBytes, 2, sum);                                   // type, code
  sum = sum_words(packet + kIpv6HeaderBytes + 4, message - 4, sum);                     // skip checksum
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

/** True for an ICMPv6 echo request carried directly after the IPv6 header (what gogoc sends, §9.1). */
inline bool is_echo_request(const uint8_t* packet, size_t length) {
  return packet[6] == kNextHeaderIcmpv6 && length >= kIpv6HeaderBytes + 8 &&
         packet[kIpv6HeaderBytes] == kIcmpv6EchoRequest && packet[kIpv6HeaderBytes + 1] == 0;
}

/** Turns an echo request into its reply in place: addresses swapped, fresh hop limit, type 129, checksum
 *  recomputed. Identifier, sequence and payload stay, as RFC 4443 §4.2 requires. */
inline void make_echo_reply(uint8_t* packet, size_t length) {
  uint8_t source[16];
  std::memcpy(source, packet + 8, 16);
  std::memcpy(packet + 8, packet + 24, 16);
  std::memcpy(packet + 24, source, 16);
  packet[7] = kReplyHopLimit;
  packet[kIpv6HeaderBytes] = kIcmpv6EchoReply;
  store_be16(packet + kIpv6HeaderBytes + 2, icmpv6_checksum(packet, length));
}

/** Length of the IPv6 packet at `p` if it is well formed within `available` bytes (version 6, header present,
 *  payload length fits), else 0. Trailing bytes beyond the payload length are ignored, as a router does. */
inline size_t ipv6_packet_length(const uint8_t* p, size_t available) {
  if (available < kIpv6HeaderBytes || (p[0] >> 4) != 6) return 0;
  const size_t total = kIpv6HeaderBytes + load_be16(p + 4);
  return total <= available ? total : 0;
}

// ----- IPv4 (the inner packets of v4v6 tunnels; RFC 791, RFC 792) ------------------------------------------------

/** Length of the IPv4 packet at `p` if it is well formed within `available` bytes (version 4, IHL at least 5,
 *  the header and the total length inside what arrived, total length not shorter than the header), else 0.
 *  Trailing bytes beyond the total length are ignored, as for IPv6. */
inline size_t ipv4_packet_length(const uint8_t* p, size_t available) {
  if (available < kIpv4MinHeaderBytes || (p[0] >> 4) != 4) return 0;
  const size_t header = static_cast<size_t>(p[0] & 0x0f) * 4;
  const size_t total = load_be16(p + 2);
  if (header < kIpv4MinHeaderBytes || total < header || total > available) return 0;
  return total;
}

/** The IPv4 header's length in bytes (call on a packet ipv4_packet_length accepted). */
inline size_t ipv4_header_length(const uint8_t* p) { return static_cast<size_t>(p[0] & 0x0f) * 4; }

inline uint32_t load_ip4(const uint8_t* p) {  // network order, as the tables keep it
  uint32_t a;
  std::memcpy(&a, p, 4);
  return a;
}

inline uint16_t fold_checksum(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

/** The Internet checksum of `n` bytes with the 16-bit field at offset `skip` taken as zero. */
inline uint16_t checksum_skipping(const uint8_t* p, size_t n, size_t skip) {
  uint32_t sum = sum_words(p, skip, 0);
  sum = sum_words(p + skip + 2, n - skip - 2, sum);
  return fold_checksum(sum);
}

/** True for an unfragmented ICMP echo request (type 8, code 0) whose 8-byte header fits in `length`. */
inline bool is_echo_request4(const uint8_t* packet, size_t length) {
  const size_t header = ipv4_header_length(packet);
  const bool fragment = (load_be16(packet + 6) & 0x3fff) != 0;  // more fragments, or an offset
  return packet[9] == kIpProtoIcmp && !fragment && length >= header + 8 && packet[header] == kIcmpEchoRequest &&
         packet[header + 1] == 0;
}

/** Turns an ICMP echo request into its reply in place: addresses swapped, fresh TTL, type 0, both checksums
 *  recomputed. Identifier, sequence and data stay (RFC 792). */
inline void make_echo_reply4(uint8_t* packet, size_t length) {
  const size_t header = ipv4_header_length(packet);
  uint8_t source[4];
  std::memcpy(source, packet + 12, 4);
  std::memcpy(packet + 12, packet + 16, 4);
  std::memcpy(packet + 16, source, 4);
  packet[8] = kReplyHopLimit;
  store_be16(packet + 10, checksum_skipping(packet, header, 10));
  packet[header] = kIcmpEchoReply;
  store_be16(packet + header + 2, checksum_skipping(packet + header, length - header, 2));
}

/** One less TTL, the header checksum updated incrementally (RFC 1624 eqn. 3): a router's hop. TTL above 1. */
inline void decrement_ttl4(uint8_t* packet) {
  const uint16_t old_word = load_be16(packet + 8);
  packet[8]--;
  const uint16_t new_word = load_be16(packet + 8);
  uint32_t sum = static_cast<uint16_t>(~load_be16(packet + 10)) + static_cast<uint16_t>(~old_word) + new_word;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  store_be16(packet + 10, static_cast<uint16_t>(~sum));
}

}  // namespace tspdp
