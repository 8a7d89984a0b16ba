// @module native/dataplane: the broker's packet path. Owns the TUN device, the UDP socket on the TSP port and
// the raw protocol-41 socket, and runs one forwarding thread per descriptor, each a ReceiveLoop
// (engine/receive_loop.h) over that descriptor's receiver:
//
//   udp-rx:  recvmmsg(UDP) --nibble 0xF / not IPv6--> ControlQueue --> JavaScript (onControl)
//                          --IPv6--> find_udp(ip, port) --> forward_from_tunnel --> TUN | hairpin | echo reply
//   raw-rx:  recvmmsg(raw 41) --strip IPv4--> find_proto41(ip) --> forward_from_tunnel --> (the same)
//   ipip-rx: recvmmsg(raw IPv6, next header 4; only with options.v4v6) --outer source--> find_ipip(ip6)
//            --> forward_from_v4v6 --> TUN | hairpin | ICMP echo reply
//   tun-rx:  read(TUN) x batch --> forward_from_tun --> sendmmsg(UDP) | sendmmsg(raw 41) | sendmmsg(raw IPv6 4)
//                                                     | drop no_route
//
// The decisions are engine/engine.h's; this file only wires descriptors to loops. Threads stop when stop()
// signals an eventfd; every blocking wait polls it too (io/threads.h).
#pragma once

#include <memory>
#include <string>

#include "engine/constants.h"
#include "engine/control_queue.h"
#include "engine/counters.h"
#include "engine/receive_loop.h"
#include "engine/tables.h"
#include "io/sockets.h"
#include "io/threads.h"

namespace tspdp {

struct DataPlaneOptions {
  std::string netns;           // empty: the calling thread's namespace
  std::string tun_name = "tsp0";
  std::string listen_address = "0.0.0.0";
  uint16_t port = 3653;
  std::string server_ipv4;     // source of protocol-41 packets; empty: chosen by the kernel's routing
  bool v4v6 = false;           // open the raw IPv6 next-header-4 socket (v4v6 tunnels)
  std::string server_ipv6;     // its bound address, the source of v4v6 packets; empty: the kernel's choice
  int cpu = -1;                // pin the forwarding threads to this CPU; -1: no pinning
  int spin_us = 0;             // busy-poll this long before sleeping (IdleWait); 0: sleep at once
  bool tun_uring = true;       // write decapsulated batches to the TUN through io_uring (io/uring.h)
  size_t control_queue_cap = kDefaultControlQueueCap;
};

class DataPlane {
 public:
  /** Opens the TUN device and both sockets (inside options.netns). Throws SysError naming what failed. */
  explicit DataPlane(const DataPlaneOptions& options);
  ~DataPlane() { stop(); }
  DataPlane(const DataPlane&) = delete;
  DataPlane& operator=(const DataPlane&) = delete;

  /** Starts the forwarding threads. Call once, after control().set_notify(). */
  void start();
  /** Stops and joins the threads, then closes the descriptors (the TUN device disappears). Idempotent. */
  void stop();

  uint16_t udp_port() const { return udp_port_; }
  const std::string& tun_name() const { return tun_name_; }
  TunnelTable& table() { return table_; }
  bool carries_v4v6() const { return ipip_fd_.get() >= 0; }
  Counters& counters() { return counters_; }
  ControlQueue& control() { return control_; }

  /** One control reply from the TSP port; never blocks. False if the kernel refused it (counted). */
  bool send_control(uint32_t address, uint16_t port, const uint8_t* data, size_t length);

 private:
  void forward(Ingress ingress);

  DataPlaneOptions options_;
  Counters counters_;
  TunnelTable table_;
  ControlQueue control_;
  std::string tun_name_;
  Fd tun_fd_;
  Fd udp_fd_;
  Fd raw_fd_;
  Fd ipip_fd_;  // -1 unless options.v4v6
  uint16_t udp_port_ = 0;
  std::unique_ptr<DatagramSender> udp_sender_;
  std::unique_ptr<DatagramSender> raw_sender_;
  std::unique_ptr<DatagramSender> ipip_sender_;
  ForwardingThreads threads_;  // last: destroyed (joined) first
};

}  // namespace tspdp
