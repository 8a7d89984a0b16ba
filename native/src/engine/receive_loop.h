// @module native/engine/receive_loop: the one forwarding loop of the broker, parameterised by where its
// packets come from. Each forwarding thread runs one ReceiveLoop over one receiver:
//
//   kUdp:     receiver (UDP socket) --classify_udp_datagram--> ControlQueue | forward_from_tunnel(find_udp)
//   kProto41: receiver (raw 41)     --parse_proto41----------> forward_from_tunnel(find_proto41)
//   kIpip:    receiver (raw IPv6 4) --outer source (recvfrom)-> forward_from_v4v6(find_ipip)
//   kTun:     receiver (TUN)        --forward_from_tun-------> the tunnel's encapsulation
//
//   then, after the table's read lock is released, flush(): TUN writes, one sendmmsg per socket.
//
// Buffer ownership: packets are handled where they landed in the loop's RxBatch; Outputs only point into it,
// so a batch is flushed before the next receive. Nothing is allocated per packet (docs/style.md §6).
#pragma once

#include <atomic>
#include <memory>

#include "../io/io.h"
#include "batch.h"
#include "control_queue.h"
#include "counters.h"
#include "engine.h"
#include "tables.h"

namespace tspdp {

enum class Ingress : uint8_t { kUdp, kProto41, kTun, kIpip };

/** What one received batch produces. */
struct Outputs {
  OutBatch udp;
  OutBatch raw;
  OutBatch ipip;  // v4v6 tunnels: the raw IPv6 next-header-4 socket
  const uint8_t* tun_packet[kBatch];
  size_t tun_length[kBatch];
  unsigned tun_count = 0;

  /** Queues `packet` per `v` and counts what the verdict says; the packet must stay put until flush(). */
  void apply(const Verdict& v, const uint8_t* packet, Counters& counters);
  void to_tunnel(Tunnel* t, const uint8_t* packet, size_t length);
  void to_tun(const uint8_t* packet, size_t length);
};

/** The loop's way out: the encapsulating sockets and the TUN. */
struct Sinks {
  BatchSender* udp;
  BatchSender* raw;
  PacketWriter* tun;   // may be null for a loop that never decapsulates (kTun)
  BatchSender* ipip = nullptr;  // null when v4v6 is off (then the table holds no v4v6 tunnel)
};

/** Sends or writes everything queued in `out` and empties it: the one flush routine of every loop. */
void flush(Outputs& out, const Sinks& sinks, Counters& counters);

class ReceiveLoop {
 public:
  using Clock = int64_t (*)();  // Unix milliseconds: stamps last_rx_ms (now_unix_ms, or a test's clock)

  /** `control` receives the control datagrams of a kUdp loop; null for the others. */
  ReceiveLoop(Ingress ingress, BatchReceiver& receiver, const Sinks& sinks, TunnelTable& table, Counters& counters,
              ControlQueue* control, Clock now_ms);

  /** Receives one batch, decides every packet in it under the table's read lock, then flushes. Returns the
   *  number received (0: nothing waiting, negative: a transient receive error). */
  int run_once();
  /** run_once until `stopping`, idling on the receiver when nothing comes. */
  void run(const std::atomic<bool>& stopping);

  /** Decides datagrams 0..n-1 of `rx` into `out` (the table read lock held by the caller). */
  void decide_batch(RxBatch& rx, unsigned n, int64_t now_ms, Outputs& out);

 private:
  void decide_udp(RxBatch& rx, unsigned i, int64_t now_ms, Outputs& out);

  Ingress ingress_;
  BatchReceiver& receiver_;
  Sinks sinks_;
  TunnelTable& table_;
  Counters& counters_;
  ControlQueue* control_;
  Clock now_ms_;
  std::unique_ptr<RxBatch> rx_;
  std::unique_ptr<Outputs> out_;
};

}  // namespace tspdp
