// @module native/io/sockets: the UDP and raw protocol-41 sockets, and the BatchReceiver / BatchSender (io.h)
// over them. Sockets are blocking for sends (back-pressure, see DatagramSender) and receive with MSG_DONTWAIT
// plus poll, so a thread can always notice the stop signal.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "io.h"
#include "system.h"

namespace tspdp {

/** The broker's UDP socket on the TSP port, bound to `listen_address`:`port` (0: any free port), with
 *  IP_PKTINFO so a control reply can say which local address a client reached. Writes the bound port. */
Fd open_server_udp(const std::string& listen_address, uint16_t port, uint16_t* bound_port);

/** A raw IPv4 socket for protocol 41 (v6v4). Without IP_HDRINCL the kernel builds the outer header; bound to
 *  `source` when given (the offer's server IPv4), else the kernel's routing picks the source. */
Fd open_proto41(const std::string& source, const char* what);

/** A raw IPv6 socket for next header 4 (IPv4 in IPv6, v4v6). The kernel builds the outer IPv6 header and hands
 *  over received payloads without it. Bound to `source` when given (the broker's or the client's IPv6 address:
 *  the source of what it sends, and only packets to it are received), else the kernel's routing picks; connected
 *  to `peer` when given (the client's end: only the server's packets are received). */
Fd open_ipip6(const std::string& source, const std::string& peer, const char* what);

/** The client's UDP socket: bound to the local port the TSP session used (0: ephemeral), connected to the
 *  broker so the kernel filters everyone else out. Writes the bound port. */
Fd open_client_udp(uint32_t local_address, uint16_t local_port, uint32_t server_address, uint16_t server_port,
                   uint16_t* bound_port);

/** recvmmsg over a UDP or raw socket, idling per IdleWait. */
class DatagramReceiver final : public BatchReceiver {
 public:
  /** `pktinfo`: collect each datagram's local address (the TSP port's socket). */
  DatagramReceiver(int fd, bool pktinfo, int stop_fd, int spin_us) : fd_(fd), pktinfo_(pktinfo), idle_(fd, stop_fd, spin_us) {}
  int receive(RxBatch& rx) override;
  void idle() override { idle_.nothing_received(); }
  void busy() override { idle_.received(); }

 private:
  int fd_;
  bool pktinfo_;
  IdleWait idle_;
};

/** sendmmsg over a UDP or raw socket; refused datagrams count on `errors`. Stateless: shareable by threads. */
class DatagramSender final : public BatchSender {
 public:
  DatagramSender(int fd, std::atomic<uint64_t>* errors) : fd_(fd), errors_(errors) {}
  void send(OutBatch& batch) override;

 private:
  int fd_;
  std::atomic<uint64_t>* errors_;
};

/** One datagram, never blocking (control replies). `to` null: the socket's connected peer. False when the
 *  kernel refused it, counted on `errors`. */
bool send_datagram(int fd, const sockaddr_in* to, const uint8_t* data, size_t length, std::atomic<uint64_t>* errors);

}  // namespace tspdp
