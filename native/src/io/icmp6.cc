// @module native/io/icmp6: see icmp6.h.
#include "icmp6.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <stdexcept>

namespace tspdp {

namespace {

in6_addr parse_ipv6(const std::string& text, const char* what) {
  in6_addr a{};
  if (inet_pton(AF_INET6, text.c_str(), &a) != 1) throw std::invalid_argument(std::string(what) + " is not IPv6");
  return a;
}

void set_option(int fd, int level, int name, const void* value, socklen_t size, const char* what,
                const std::string& ifname) {
  if (setsockopt(fd, level, name, value, size) != 0) throw SysError("setsockopt", errno, what + (" on " + ifname));
}

}  // namespace

Fd open_icmp6(const std::string& ifname, const std::vector<int>& accept_types, const std::string& join_group,
              unsigned* ifindex) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) throw std::invalid_argument("interface name must be 1-15 bytes");
  const unsigned index = if_nametoindex(ifname.c_str());
  if (index == 0) throw SysError("if_nametoindex", errno, "ICMPv6 socket on " + ifname);
  Fd fd(socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6));
  if (fd.get() < 0) throw SysError("socket", errno, "raw ICMPv6 socket on " + ifname);
  set_option(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, ifname.c_str(), static_cast<socklen_t>(ifname.size()),
             "SO_BINDTODEVICE", ifname);
  const int hops = 255;
  set_option(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops, "IPV6_MULTICAST_HOPS", ifname);
  set_option(fd.get(), IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops, "IPV6_UNICAST_HOPS", ifname);
  set_option(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_IF, &index, sizeof index, "IPV6_MULTICAST_IF", ifname);
  const int off = 0, on = 1;
  set_option(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &off, sizeof off, "IPV6_MULTICAST_LOOP", ifname);
  set_option(fd.get(), IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof on, "IPV6_RECVHOPLIMIT", ifname);
  icmp6_filter filter;
  ICMP6_FILTER_SETBLOCKALL(&filter);
  for (int type : accept_types) {
    if (type < 0 || type > 255) throw std::invalid_argument("ICMPv6 types are 0..255");
    ICMP6_FILTER_SETPASS(type, &filter);
  }
  set_option(fd.get(), IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter, "ICMP6_FILTER", ifname);
  if (!join_group.empty()) {
    ipv6_mreq group{};
    group.ipv6mr_multiaddr = parse_ipv6(join_group, "joinGroup");
    group.ipv6mr_interface = index;
    set_option(fd.get(), IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &group, sizeof group, "IPV6_ADD_MEMBERSHIP", ifname);
  }
  *ifindex = index;
  return fd;
}

void send_icmp6(int fd, unsigned ifindex, const std::string& destination, const std::string& source,
                const uint8_t* data, size_t length) {
  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  to.sin6_addr = parse_ipv6(destination, "destination");
  to.sin6_scope_id = ifindex;
  iovec iov{const_cast<uint8_t*>(data), length};
  msghdr msg{};
  msg.msg_name = &to;
  msg.msg_namelen = sizeof to;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
  if (!source.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
    in6_pktinfo info{};
    info.ipi6_addr = parse_ipv6(source, "source");
    info.ipi6_ifindex = ifindex;
    memcpy(CMSG_DATA(c), &info, sizeof info);
  }
  if (sendmsg(fd, &msg, 0) < 0) throw SysError("sendmsg", errno, "ICMPv6 to " + destination);
}

bool receive_icmp6(int fd, Icmp6Message* out) {
  uint8_t buffer[1280];  // the IPv6 minimum MTU: more than any solicitation we answer
  sockaddr_in6 from{};
  iovec iov{buffer, sizeof buffer};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;
    throw SysError("recvmsg", errno, "ICMPv6 socket");
  }
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, &from.sin6_addr, text, sizeof text);
  out->source = text;
  out->hop_limit = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT) memcpy(&out->hop_limit, CMSG_DATA(c), sizeof(int));
  }
  // a message longer than the buffer is cut (MSG_TRUNC): its options cannot be checked, so report it empty
  out->data.assign(buffer, buffer + ((msg.msg_flags & MSG_TRUNC) != 0 ? 0 : n));
  return true;
}

}  // namespace tspdp
