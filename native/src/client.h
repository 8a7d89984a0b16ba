// @module native/client: the client end of one tunnel, as our tspc needs it after TSP negotiation:
//
//   tun->net: read(TUN) x batch --IPv6--> sendmmsg(UDP connected to the server) | sendmmsg(raw 41 to server)
//                               --IPv4 (v4v6)--> sendmmsg(raw IPv6 next header 4, connected to the server)
//   net->tun: recvmmsg(UDP | raw 41 | raw IPv6 4) --classify_client_datagram / _v4v6--> write(TUN)
//                                                                | control (UDP only) --> ControlQueue --> JS
//
// The UDP socket is bound to the local port the TSP session used (so the NAT binding the broker saw is the one
// the data uses) and connected to the broker, so the kernel filters datagrams from anyone else. The same io/
// pieces as the broker's DataPlane: TunReceiver, DatagramReceiver/Sender, TunWriter, ForwardingThreads.
#pragma once

#include <memory>
#include <string>

#include "engine/constants.h"
#include "engine/control_queue.h"
#include "engine/counters.h"
#include "io/sockets.h"
#include "io/threads.h"

namespace tspdp {

struct ClientOptions {
  std::string netns;
  std::string tun_name = "tun0";
  bool udp = true;              // v6udpv4; false: v6v4 (protocol 41) or v4v6
  bool v4v6 = false;            // IPv4 in IPv6 (next header 4): the TUN carries IPv4, the addresses are IPv6
  std::string server_address;   // broker IPv4 (IPv6 for v4v6)
  uint16_t server_port = 3653;  // v6udpv4 only
  std::string local_address;    // empty: any (IPv6 for v4v6)
  uint16_t local_port = 0;      // v6udpv4 only; 0: ephemeral
  int cpu = -1;
  size_t control_queue_cap = kDefaultControlQueueCap;
};

class ClientTunnel {
 public:
  /** Opens the TUN device and the socket (inside options.netns). Throws SysError naming what failed. */
  explicit ClientTunnel(const ClientOptions& options);
  ~ClientTunnel() { stop(); }
  ClientTunnel(const ClientTunnel&) = delete;
  ClientTunnel& operator=(const ClientTunnel&) = delete;

  void start();
  /** Stops and joins the threads, then closes the descriptors. Idempotent. */
  void stop();
  const std::string& tun_name() const { return tun_name_; }
  uint16_t local_port() const { return local_port_; }
  ControlQueue& control() { return control_; }
  uint64_t counter(ClientCounter c) const { return counters_.get(c); }
  /** A control datagram to the broker over the tunnel's UDP flow (v6udpv4 only); a refusal counts as a send
   *  error, as the broker's control replies do. */
  bool send_control(const uint8_t* data, size_t length);

 private:
  void tun_to_net();
  void net_to_tun();

  ClientOptions options_;
  ClientCounters counters_;
  ControlQueue control_;
  std::string tun_name_;
  uint32_t server_address_ = 0;
  Fd tun_fd_;
  Fd net_fd_;
  uint16_t local_port_ = 0;
  std::unique_ptr<DatagramSender> sender_;
  ForwardingThreads threads_;  // last: destroyed (joined) first
};

}  // namespace tspdp
