// @module native/client: the client end of one tunnel, as our tspc needs it after TSP negotiation:
//
//   tun->net: read(TUN) x batch --IPv6--> sendmmsg(UDP connected to the server) | sendmmsg(raw 41 to server)
//   net->tun: recvmmsg(UDP | raw 41) --IPv6 from the server--> write(TUN)
//                                    --nibble 0xF (UDP only)--> ControlQueue --> JavaScript
//
// The UDP socket is bound to the local port the TSP session used (so the NAT binding the broker saw is the one
// the data uses) and connected to the broker, so the kernel filters datagrams from anyone else.
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common.h"
#include "control_queue.h"

namespace tspdp {

struct ClientOptions {
  std::string netns;
  std::string tun_name = "tun0";
  bool udp = true;              // v6udpv4; false: v6v4 (protocol 41)
  std::string server_address;   // broker IPv4
  uint16_t server_port = 3653;  // v6udpv4 only
  std::string local_address;    // empty: any
  uint16_t local_port = 0;      // v6udpv4 only; 0: ephemeral
  int cpu = -1;
  size_t control_queue_cap = kDefaultControlQueueCap;
};

/** Client counters, in the order src/dataplane/native.ts CLIENT_COUNTER_NAMES reads them. */
enum ClientCounter : unsigned {
  kClientTxPackets,
  kClientTxBytes,
  kClientRxPackets,
  kClientRxBytes,
  kClientDropped,  // not IPv6, not from the server, or refused by the TUN
  kClientCounterCount,
};

class ClientTunnel {
 public:
  explicit ClientTunnel(const ClientOptions& options);
  ~ClientTunnel();
  ClientTunnel(const ClientTunnel&) = delete;
  ClientTunnel& operator=(const ClientTunnel&) = delete;

  void start();
  void stop();
  const std::string& tun_name() const { return tun_name_; }
  uint16_t local_port() const { return local_port_; }
  ControlQueue& control() { return control_; }
  uint64_t counter(ClientCounter c) const { return counters_[c].load(std::memory_order_relaxed); }
  /** A control datagram to the broker over the tunnel's UDP flow (v6udpv4 only). */
  bool send_control(const uint8_t* data, size_t length);

 private:
  void tun_to_net_loop();
  void net_to_tun_loop();
  void add(ClientCounter c, uint64_t n = 1) { counters_[c].fetch_add(n, std::memory_order_relaxed); }
  void close_fds();

  ClientOptions options_;
  std::string tun_name_;
  uint32_t server_address_ = 0;
  int tun_fd_ = -1;
  int net_fd_ = -1;
  int stop_fd_ = -1;
  uint16_t local_port_ = 0;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::vector<std::thread> threads_;
  std::atomic<uint64_t> counters_[kClientCounterCount] = {};
  Counters shared_counters_;  // for the control queue's overflow count
  ControlQueue control_;
};

}  // namespace tspdp
