// @module native/bench/generator: a packet generator for bench/dataplane.ts. Sends prebuilt whole IP packets
// (header included) through a raw IPPROTO_RAW socket with sendmmsg, cycling through them, for a fixed time on
// one pinned thread. Written in C++ because a JavaScript send loop tops out far below what we measure.
#pragma once

#include <cstdint>
#include <vector>

namespace tspdp {

struct GeneratorResult {
  uint64_t sent = 0;
  uint64_t errors = 0;
  double seconds = 0;
};

/** Opens the raw socket for `ipv6` packets (inside `netns`); throws SysError. */
int open_generator_socket(bool ipv6);

/** Sends `packets` round robin on `fd` for `seconds`, pinned to `cpu` (-1: anywhere). Blocks the caller. */
GeneratorResult run_generator(int fd, bool ipv6, const std::vector<std::vector<uint8_t>>& packets, double seconds,
                              int cpu);

}  // namespace tspdp
