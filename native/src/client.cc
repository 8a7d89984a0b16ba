// @module native/client: see client.h.
#include "client.h"

#include <arpa/inet.h>

#include "engine/engine.h"
#include "io/tun.h"

namespace tspdp {

ClientTunnel::ClientTunnel(const ClientOptions& options)
    : options_(options), control_(options.control_queue_cap, &counters_.value[kClientControlQueueFull]) {
  if (options.v4v6) {
    parse_ip6_text(options.server_address, "server.address");  // fails before any descriptor is opened
    if (!options.local_address.empty()) parse_ip6_text(options.local_address, "localAddress");
  } else {
    server_address_ = parse_ipv4(options.server_address, "server.address");
  }
  const uint32_t local =
      options.local_address.empty() || options.v4v6 ? 0 : parse_ipv4(options.local_address, "localAddress");
  NetnsGuard in_namespace(options.netns);
  tun_fd_ = open_tun(options.tun_name, &tun_name_);
  if (options.v4v6) {
    net_fd_ = open_ipip6(options.local_address, options.server_address, "client raw IPv6 next-header-4 socket");
  } else if (options.udp) {
    net_fd_ = open_client_udp(local, options.local_port, server_address_, options.server_port, &local_port_);
  } else {
    net_fd_ = open_proto41(options.local_address, "client raw protocol-41 socket");
  }
  sender_ = std::make_unique<DatagramSender>(net_fd_.get(), &counters_.value[kClientSendErrors]);
}

void ClientTunnel::start() {
  threads_.start({[this] { tun_to_net(); }, [this] { net_to_tun(); }}, options_.cpu);
}

void ClientTunnel::stop() {
  if (!threads_.stop()) return;
  tun_fd_.reset();
  net_fd_.reset();
}

bool ClientTunnel::send_control(const uint8_t* data, size_t length) {
  if (!options_.udp) return false;
  return send_datagram(net_fd_.get(), nullptr, data, length, &counters_.value[kClientSendErrors]);
}

void ClientTunnel::tun_to_net() {
  TunReceiver receiver(tun_fd_.get(), threads_.stop_fd(), 0);
  auto rx = std::make_unique<RxBatch>();
  auto out = std::make_unique<OutBatch>();
  while (!threads_.stopping().load(std::memory_order_relaxed)) {
    const int n = receiver.receive(*rx);
    if (n <= 0) {
      receiver.idle();
      continue;
    }
    for (int i = 0; i < n; i++) {
      const size_t length = options_.v4v6 ? ipv4_packet_length(rx->buffer(i), rx->length(i))
                                          : ipv6_packet_length(rx->buffer(i), rx->length(i));
      if (length == 0) {
        counters_.add(kClientDropped);
        continue;
      }
      // UDP and v4v6 sockets are connected to the server: no address per datagram.
      out->add(rx->buffer(i), length, server_address_, 0, options_.udp || options_.v4v6);
      counters_.add(kClientTxPackets);
      counters_.add(kClientTxBytes, length);
    }
    if (out->count != 0) sender_->send(*out);
  }
}

void ClientTunnel::net_to_tun() {
  DatagramReceiver receiver(net_fd_.get(), false, threads_.stop_fd(), 0);
  TunWriter tun(tun_fd_.get(), false);
  auto rx = std::make_unique<RxBatch>();
  while (!threads_.stopping().load(std::memory_order_relaxed)) {
    const int n = receiver.receive(*rx);
    if (n <= 0) {
      if (n == 0) receiver.idle();
      continue;
    }
    for (int i = 0; i < n; i++) {
      const uint8_t* data = rx->buffer(i);
      const ClientDatagram d = options_.v4v6
                                   ? classify_client_v4v6(data, rx->length(i))
                                   : classify_client_datagram(data, rx->length(i), options_.udp, server_address_);
      if (d.kind == ClientInbound::kControl) {
        control_.push(rx->from[i].v4.sin_addr.s_addr, ntohs(rx->from[i].v4.sin_port), 0, data, rx->length(i));
        continue;
      }
      const uint8_t* packet = data + d.offset;
      if (d.kind == ClientInbound::kDrop || tun.write(&packet, &d.length, 1) != 0) {
        counters_.add(kClientDropped);
        continue;
      }
      counters_.add(kClientRxPackets);
      counters_.add(kClientRxBytes, d.length);
    }
  }
}

}  // namespace tspdp
