// @module native/io/icmp6: a raw ICMPv6 socket on one interface, for tspc's router advertisements on its LAN
// (src/client/ra-builtin.ts). Node has no raw sockets; this is the smallest piece that needs one. Plain C++17
// over Linux system calls, like the rest of io/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "system.h"

namespace tspdp {

/** One ICMPv6 message as received: who sent it, the hop limit it arrived with (RFC 4861 §6.1.1 wants 255) and
 *  the ICMPv6 bytes (type first). */
struct Icmp6Message {
  std::string source;
  int hop_limit = -1;
  std::vector<uint8_t> data;
};

/** A non-blocking raw ICMPv6 socket bound to `ifname` (SO_BINDTODEVICE) that receives only the ICMPv6 types
 *  in `accept_types` (ICMP6_FILTER), with hop limit 255 on everything it sends (RFC 4861 §6.1.2: hosts drop
 *  an RA with any other), its multicast sent out of `ifname` and not looped back, the hop limit of what
 *  arrives reported, and membership of `join_group` (e.g. ff02::2, where Router Solicitations go; empty: none).
 *  Writes the interface index. Needs CAP_NET_RAW. */
Fd open_icmp6(const std::string& ifname, const std::vector<int>& accept_types, const std::string& join_group,
              unsigned* ifindex);

/** Sends one ICMPv6 message (checksum left to the kernel, RFC 3542 §3.1) to `destination` on `ifindex` (the
 *  scope of a link-local or multicast destination), from `source` when given (IPV6_PKTINFO: the interface's
 *  link-local address, which RAs must come from), else from whatever the kernel picks. Throws SysError. */
void send_icmp6(int fd, unsigned ifindex, const std::string& destination, const std::string& source,
                const uint8_t* data, size_t length);

/** Receives one waiting message without blocking; false when none is waiting. Throws SysError on a real error. */
bool receive_icmp6(int fd, Icmp6Message* out);

}  // namespace tspdp
