{
  # The packet-path addon (docs/design.md, "The packet path"). Linux only: TUN, recvmmsg/sendmmsg, raw sockets.
  "targets": [
    {
      "target_name": "tspdp",
      "sources": [
        "src/addon.cc",
        "src/client.cc",
        "src/common.cc",
        "src/dataplane.cc",
        "src/generator.cc",
        "src/tables.cc",
        "src/uring.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra"]
    }
  ]
}
