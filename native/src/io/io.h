// @module native/io/io: the seams between the packet engine and the kernel. The engine (engine/receive_loop.h)
// sees only these interfaces; io/sockets.h and io/tun.h implement them over UDP, raw protocol 41 and the TUN
// device, and native/test/ implements them in memory, so the whole receive path runs without root or sockets.
//
// Buffers: a receiver fills the caller's RxBatch; senders and writers only read the bytes they are given and
// keep no pointer after they return. Each interface is used by one thread at a time per instance, except the
// senders, which are stateless over a blocking socket and shared by the forwarding threads.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../engine/batch.h"

namespace tspdp {

/** A source of datagrams or packets (UDP socket, raw protocol-41 socket, TUN device). */
class BatchReceiver {
 public:
  virtual ~BatchReceiver() = default;
  /** Fills `rx` with up to kBatch datagrams (bytes, msg_len, sender, flags) without blocking. Returns how
   *  many; 0 when nothing is waiting; negative on a transient error (the caller retries at once). */
  virtual int receive(RxBatch& rx) = 0;
  /** Nothing was waiting: spin or sleep until the source is readable or the threads are told to stop. */
  virtual void idle() = 0;
  /** Something was received: the next idle() starts a fresh spin window. */
  virtual void busy() = 0;
};

/** Where encapsulated datagrams leave: the UDP socket (v6udpv4) or the raw protocol-41 socket (v6v4). */
class BatchSender {
 public:
  virtual ~BatchSender() = default;
  /** Sends every datagram queued in `batch` and empties it. Blocks while the socket buffer is full
   *  (back-pressure); a datagram the kernel refuses is counted as a send error and skipped. */
  virtual void send(OutBatch& batch) = 0;
};

/** Where decapsulated packets go: the TUN device. */
class PacketWriter {
 public:
  virtual ~PacketWriter() = default;
  /** Writes `count` whole IPv6 packets; returns how many the device refused. */
  virtual unsigned write(const uint8_t* const* packets, const size_t* lengths, unsigned count) = 0;
};

}  // namespace tspdp
