// @module native/dataplane: the broker's packet path. Owns the TUN device, the UDP socket on the TSP port and
// the raw protocol-41 socket, and runs one forwarding thread per descriptor:
//
//   udp-rx:  recvmmsg(UDP) --nibble 0xF / not IPv6--> ControlQueue --> JavaScript (onControl)
//                          --IPv6--> find_udp(ip, port) --> classify --> TUN | hairpin | echo reply
//   raw-rx:  recvmmsg(raw 41) --strip IPv4--> find_proto41(ip) --> classify --> TUN | hairpin | echo reply
//   tun-rx:  read(TUN) x batch --> route(destination) --> sendmmsg(UDP) | sendmmsg(raw 41) | drop no_route
//
// classify (docs/design.md, "The packet path"; docs/protocol.md §2.4, §8.3, §9.1, §11):
//   unknown endpoint -> drop; inner source not the client's /128 or delegated prefix -> drop (link-local
//   separately); echo request to the tunnel's server address -> reply in place; destination in another
//   tunnel -> re-encapsulate to it (hop limit decremented); destination back into the same tunnel -> drop;
//   otherwise -> TUN, where the kernel forwards it.
//
// Threads stop when stop() signals an eventfd; every blocking wait polls it too.
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "batch.h"
#include "common.h"
#include "control_queue.h"
#include "tables.h"

namespace tspdp {

class UringWriter;

struct DataPlaneOptions {
  std::string netns;           // empty: the calling thread's namespace
  std::string tun_name = "tsp0";
  std::string listen_address = "0.0.0.0";
  uint16_t port = 3653;
  std::string server_ipv4;     // source of protocol-41 packets; empty: chosen by the kernel's routing
  int cpu = -1;                // pin the forwarding threads to this CPU; -1: no pinning
  int spin_us = 0;             // busy-poll this long before sleeping (IdleWait); 0: sleep at once
  bool tun_uring = true;       // write decapsulated batches to the TUN through io_uring (uring.h)
  size_t control_queue_cap = kDefaultControlQueueCap;
};

class DataPlane {
 public:
  /** Opens the TUN device and both sockets (inside options.netns). Throws SysError naming what failed. */
  explicit DataPlane(const DataPlaneOptions& options);
  ~DataPlane();
  DataPlane(const DataPlane&) = delete;
  DataPlane& operator=(const DataPlane&) = delete;

  /** Starts the forwarding threads. Call once, after control().set_notify(). */
  void start();
  /** Stops and joins the threads, then closes the descriptors (the TUN device disappears). Idempotent. */
  void stop();

  uint16_t udp_port() const { return udp_port_; }
  const std::string& tun_name() const { return tun_name_; }
  TunnelTable& table() { return table_; }
  Counters& counters() { return counters_; }
  ControlQueue& control() { return control_; }

  /** One control reply from the TSP port; never blocks. False if the kernel refused it (counted). */
  bool send_control(uint32_t address, uint16_t port, const uint8_t* data, size_t length);

 private:
  struct Outputs;
  void write_to_tun(Outputs& out, UringWriter& uring);
  void udp_rx_loop();
  void raw_rx_loop();
  void tun_rx_loop();
  void classify(uint8_t* packet, size_t available, Tunnel* from, int64_t now_ms, Outputs& out);
  void close_fds();

  DataPlaneOptions options_;
  std::string tun_name_;
  int tun_fd_ = -1;
  int udp_fd_ = -1;
  int raw_fd_ = -1;
  int stop_fd_ = -1;
  uint16_t udp_port_ = 0;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::vector<std::thread> threads_;
  Counters counters_;
  TunnelTable table_;
  ControlQueue control_;
};

}  // namespace tspdp
