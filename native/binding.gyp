{
  "targets": [
    {
      "target_name": "pageshare_native",
      "sources": [
        "src/addon.c",
        "src/common.c",
        "src/fd.c",
        "src/process.c",
        "src/pty.c",
        "src/socket.c",
        "src/watch.c"
      ],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-Wall", "-Wextra"],
      "cflags_c": ["-std=gnu11"]
    }
  ]
}
