{
  # The packet-path addon (docs/design.md, "The packet path"). Linux only: TUN, recvmmsg/sendmmsg, raw sockets.
  #   tspdp      the production addon: src/addon (N-API) over src/engine (pure) and src/io (system calls).
  #   tsp_bench  bench and test tools (packet generator, enterNetns), built only where native/bench/ exists:
  #              the npm package leaves it out, so an install never compiles it; scripts/build-native.mjs
  #              retries without it (tsp_bench=0) if it fails, so it can never cost the broker its addon.
  #   tsp_ebpf   the eBPF fast path's loader (src/ebpf, libbpf), built only where libbpf's headers are
  #              (libbpf-dev); its own addon, so tspdp never needs libbpf. Retried without it (tsp_ebpf=0) too.
  # native/test/engine_test.cc is built by test/unit/dataplane/engine-cxx.test.ts with a plain c++ call.
  "variables": {
    "tsp_bench%": "<!(node -p \"require('fs').existsSync('bench/bench_addon.cc') ? 1 : 0\")",
    "tsp_ebpf%": "<!(node -p \"require('fs').existsSync('/usr/include/bpf/libbpf.h') ? 1 : 0\")"
  },
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra"]
  },
  "targets": [
    {
      "target_name": "tspdp",
      "sources": [
        "src/addon/addon.cc",
        "src/addon/client_handle.cc",
        "src/addon/icmp6_handle.cc",
        "src/client.cc",
        "src/dataplane.cc",
        "src/engine/engine.cc",
        "src/engine/receive_loop.cc",
        "src/engine/tables.cc",
        "src/io/sockets.cc",
        "src/io/icmp6.cc",
        "src/io/system.cc",
        "src/io/threads.cc",
        "src/io/tun.cc",
        "src/io/uring.cc"
      ]
    }
  ],
  "conditions": [
    ["tsp_ebpf==1", {
      "targets": [
        {
          "target_name": "tsp_ebpf",
          "sources": ["src/ebpf/ebpf_addon.cc", "src/ebpf/loader.cc", "src/io/system.cc"],
          "libraries": ["-lbpf"]
        }
      ]
    }],
    ["tsp_bench==1", {
      "targets": [
        {
          "target_name": "tsp_bench",
          "sources": ["bench/bench_addon.cc", "bench/generator.cc", "src/io/system.cc"]
        }
      ]
    }]
  ]
}
