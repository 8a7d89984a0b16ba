// @module native/engine/constants: implementation constants of the packet path (ours to tune; docs/style.md §11).
// Specification constants (RFC 8200, 4443, 791) sit apart in packet.h.
#pragma once

#include <cstddef>

namespace tspdp {

/** Datagrams moved per recvmmsg/sendmmsg call. wireguard-go settles on 128; 64 keeps one batch of 1280-byte
 *  packets (80 KiB) inside L2 on these VMs and bounds how long a table writer waits for a reader (one batch). */
constexpr unsigned kBatch = 64;

/** Receive buffer per datagram: a TSP control message may carry up to 8 KiB of Content-length
 *  (docs/protocol.md §11) plus its header lines; data packets are at most 1280 + 8 + 20 bytes on the wire. */
constexpr size_t kBufferBytes = 9216;

/** Default cap on control datagrams waiting for the JavaScript side. A peer can make this grow (docs/style.md §10);
 *  1024 is about 100 times the burst of a broker accepting a few clients per millisecond. */
constexpr size_t kDefaultControlQueueCap = 1024;

/** Shortest control datagram: the 8-byte TSP-over-UDP header (docs/protocol.md §2.4). */
constexpr size_t kControlHeaderBytes = 8;

}  // namespace tspdp
