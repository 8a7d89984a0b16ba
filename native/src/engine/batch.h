// @module native/engine/batch: preallocated receive and send batches, shaped for recvmmsg/sendmmsg so io/ hands
// them to the kernel without copying (docs/style.md §6). Plain data: nothing here makes a system call.
//
// Buffer ownership: an RxBatch owns kBatch buffers of kBufferBytes. Packets are processed where they landed;
// an OutBatch only points into those buffers (iovec), so a batch must be flushed before the next receive
// into the same RxBatch. Nothing is allocated per packet.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstring>
#include <memory>

#include "constants.h"
#include "packet.h"

namespace tspdp {

inline void fill_sockaddr(sockaddr_in* sa, uint32_t addr_be, uint16_t port) {
  sa->sin_family = AF_INET;
  sa->sin_port = htons(port);
  sa->sin_addr.s_addr = addr_be;
  for (auto& z : sa->sin_zero) z = 0;
}

inline void fill_sockaddr6(sockaddr_in6* sa, const Ip6& address) {
  std::memset(sa, 0, sizeof *sa);
  sa->sin6_family = AF_INET6;
  store_ip6(sa->sin6_addr.s6_addr, address);
}

/** A datagram's peer: IPv4 for the UDP and protocol-41 sockets, IPv6 for the v4v6 (next header 4) socket. */
union PeerAddress {
  sockaddr_in v4;
  sockaddr_in6 v6;
};

/** Room for one IP_PKTINFO control message per datagram. */
constexpr size_t kControlBytes = CMSG_SPACE(sizeof(in_pktinfo));

struct RxBatch {
  std::unique_ptr<uint8_t[]> storage{new uint8_t[kBatch * kBufferBytes]};
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  PeerAddress from[kBatch];
  alignas(cmsghdr) uint8_t control[kBatch][kControlBytes];

  RxBatch() {
    std::memset(msgs, 0, sizeof msgs);
    for (unsigned i = 0; i < kBatch; i++) {
      iov[i] = {buffer(i), kBufferBytes};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
    }
  }
  uint8_t* buffer(unsigned i) { return storage.get() + i * kBufferBytes; }
  size_t length(unsigned i) const { return msgs[i].msg_len; }
  bool truncated(unsigned i) const { return (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0; }

  /** recvmmsg overwrites the name and control lengths; restore them before each call. */
  void rearm(bool with_pktinfo) {
    for (unsigned i = 0; i < kBatch; i++) {
      msgs[i].msg_hdr.msg_namelen = sizeof(PeerAddress);
      msgs[i].msg_hdr.msg_control = with_pktinfo ? control[i] : nullptr;
      msgs[i].msg_hdr.msg_controllen = with_pktinfo ? kControlBytes : 0;
      msgs[i].msg_hdr.msg_flags = 0;
    }
  }

  /** The local IPv4 address datagram `i` was sent to (IP_PKTINFO), or 0. */
  uint32_t local_address(unsigned i) {
    msghdr* h = &msgs[i].msg_hdr;
    for (cmsghdr* c = CMSG_FIRSTHDR(h); c != nullptr; c = CMSG_NXTHDR(h, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo info;
        std::memcpy(&info, CMSG_DATA(c), sizeof info);
        return info.ipi_addr.s_addr;
      }
    }
    return 0;
  }
};

/** Datagrams waiting for one sendmmsg on one socket. */
struct OutBatch {
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  PeerAddress to[kBatch];
  unsigned count = 0;

  OutBatch() { std::memset(msgs, 0, sizeof msgs); }

  /** `connected`: the socket has a peer, so no address is given. */
  void add(const uint8_t* data, size_t length, uint32_t address, uint16_t port, bool connected = false) {
    const unsigned i = count++;
    iov[i] = {const_cast<uint8_t*>(data), length};
    msghdr& h = msgs[i].msg_hdr;
    h.msg_iov = &iov[i];
    h.msg_iovlen = 1;
    if (connected) {
      h.msg_name = nullptr;
      h.msg_namelen = 0;
    } else {
      fill_sockaddr(&to[i].v4, address, port);
      h.msg_name = &to[i].v4;
      h.msg_namelen = sizeof(sockaddr_in);
    }
  }
  /** A datagram to an IPv6 address (the v4v6 raw socket: no port). */
  void add6(const uint8_t* data, size_t length, const Ip6& address) {
    const unsigned i = count++;
    iov[i] = {const_cast<uint8_t*>(data), length};
    msghdr& h = msgs[i].msg_hdr;
    h.msg_iov = &iov[i];
    h.msg_iovlen = 1;
    fill_sockaddr6(&to[i].v6, address);
    h.msg_name = &to[i].v6;
    h.msg_namelen = sizeof(sockaddr_in6);
  }
  bool full() const { return count == kBatch; }

};

}  // namespace tspdp
