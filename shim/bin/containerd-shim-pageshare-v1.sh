#!/bin/sh
# containerd-shim-pageshare-v1 (installed by `make build`, which fills in the two paths).
#
# containerd runs `<shim> ... start` once per container. When the namespace's shim server
# already runs, start only has to print where it listens, and Node's own start-up (~50-100
# ms) would be most of a container's start latency. So this script answers that case
# itself, reading the files the server wrote (shim/bootstrap/shim-socket.ts,
# shim/bootstrap/protocol.ts: keep them in step); anything else, or anything unusual,
# goes to the real entry point.
NODE='@NODE@'
MAIN='@MAIN@'

slow() { exec "$NODE" "$MAIN" "$@"; }

namespace='' address='' bundle='' action='' want=''
i=0
for arg in "$@"; do
  i=$((i + 1))
  case "$want" in
    namespace) namespace=$arg; want=''; continue ;;
    address) address=$arg; want=''; continue ;;
    bundle) bundle=$arg; want=''; continue ;;
    skip) want=''; continue ;;
  esac
  case "$arg" in
    -namespace|--namespace) want=namespace ;;
    -address|--address) want=address ;;
    -bundle|--bundle) want=bundle ;;
    -id|--id|-publish-binary|--publish-binary) want=skip ;;
    -debug|--debug) ;;
    start) [ "$i" -eq "$#" ] && action=start ;;
    *) slow "$@" ;;
  esac
done
[ "$action" = start ] && [ -n "$namespace" ] && [ -n "$address" ] || slow "$@"

# SERVER_FORMAT in shim-socket.ts: 2
key=$(printf '%s\000%s\0002' "$address" "$namespace" | sha256sum | cut -c1-24) || slow "$@"
base="${PAGESHARE_SHIM_DIR:-/run/pageshare/s}/$key"
[ -S "$base.sock" ] && [ -S "$base.ttrpc" ] && [ -r "$base.json" ] && [ -r "$base.pid" ] || slow "$@"
read -r pid < "$base.pid" || [ -n "$pid" ] || slow "$@"
# The pid is our server's (not a reused one): its command line names this containerd.
grep -qa serve "/proc/$pid/cmdline" 2>/dev/null && grep -qaF -- "$address" "/proc/$pid/cmdline" || slow "$@"
read -r endpoints < "$base.json" || [ -n "$endpoints" ] || slow "$@"

# {"version":2,"grpc":"/run/.../x.sock","ttrpc":"/run/.../x.ttrpc"}, as the server writes it.
version=${endpoints#*\"version\":}; version=${version%%,*}
grpc=${endpoints#*\"grpc\":\"}; grpc=${grpc%%\"*}
ttrpc=${endpoints#*\"ttrpc\":\"}; ttrpc=${ttrpc%%\"*}
case "$version" in 2|3) ;; *) slow "$@" ;; esac

case "${PAGESHARE_SHIM_PROTOCOL:-auto}" in
  grpc) protocol=grpc ;;
  ttrpc) protocol=ttrpc ;;
  auto) protocol=ttrpc ;;
  *) slow "$@" ;;
esac
if [ "$protocol" = grpc ]; then address_out=$grpc; else address_out="unix://$ttrpc"; fi

json=$(printf '{"version":%s,"address":"%s","protocol":"%s"}' "$version" "$address_out" "$protocol")
printf '%s' "$json" > "${bundle:-.}/address" || slow "$@"
printf '%s' "$json"
