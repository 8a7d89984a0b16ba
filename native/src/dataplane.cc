// @module native/dataplane: wiring of descriptors to receive loops. See dataplane.h for the pipeline.
#include "dataplane.h"

#include "io/tun.h"

namespace tspdp {

DataPlane::DataPlane(const DataPlaneOptions& options)
    : options_(options), control_(options.control_queue_cap, &counters_.value[kControlQueueFull]) {
  NetnsGuard in_namespace(options.netns);
  tun_fd_ = open_tun(options.tun_name, &tun_name_);
  udp_fd_ = open_server_udp(options.listen_address, options.port, &udp_port_);
  raw_fd_ = open_proto41(options.server_ipv4, "raw protocol-41 socket");
  udp_sender_ = std::make_unique<DatagramSender>(udp_fd_.get(), &counters_.value[kSendErrors]);
  raw_sender_ = std::make_unique<DatagramSender>(raw_fd_.get(), &counters_.value[kSendErrors]);
  if (options.v4v6) {
    ipip_fd_ = open_ipip6(options.server_ipv6, "", "raw IPv6 next-header-4 socket");
    ipip_sender_ = std::make_unique<DatagramSender>(ipip_fd_.get(), &counters_.value[kSendErrors]);
  }
}

void DataPlane::start() {
  std::vector<std::function<void()>> bodies = {[this] { forward(Ingress::kUdp); },
                                               [this] { forward(Ingress::kProto41); },
                                               [this] { forward(Ingress::kTun); }};
  if (carries_v4v6()) bodies.push_back([this] { forward(Ingress::kIpip); });
  threads_.start(bodies, options_.cpu);
}

void DataPlane::stop() {
  if (!threads_.stop()) return;
  for (Fd* fd : {&tun_fd_, &udp_fd_, &raw_fd_, &ipip_fd_}) fd->reset();
}

bool DataPlane::send_control(uint32_t address, uint16_t port, const uint8_t* data, size_t length) {
  sockaddr_in to;
  fill_sockaddr(&to, address, port);
  return send_datagram(udp_fd_.get(), &to, data, length, &counters_.value[kSendErrors]);
}

/** One forwarding thread: its receiver, its own TUN writer (the io_uring ring is per thread), one loop. */
void DataPlane::forward(Ingress ingress) {
  std::unique_ptr<BatchReceiver> receiver;
  if (ingress == Ingress::kTun) {
    receiver = std::make_unique<TunReceiver>(tun_fd_.get(), threads_.stop_fd(), options_.spin_us);
  } else {
    const int fd = ingress == Ingress::kUdp ? udp_fd_.get() : ingress == Ingress::kIpip ? ipip_fd_.get() : raw_fd_.get();
    receiver = std::make_unique<DatagramReceiver>(fd, ingress == Ingress::kUdp, threads_.stop_fd(), options_.spin_us);
  }
  TunWriter tun(tun_fd_.get(), options_.tun_uring && ingress != Ingress::kTun);
  const Sinks sinks{udp_sender_.get(), raw_sender_.get(), &tun, ipip_sender_.get()};
  ControlQueue* control = ingress == Ingress::kUdp ? &control_ : nullptr;
  ReceiveLoop loop(ingress, *receiver, sinks, table_, counters_, control, now_unix_ms);
  loop.run(threads_.stopping());
}

}  // namespace tspdp
