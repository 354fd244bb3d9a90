#!/usr/bin/env bash
# Installs the real external parts the tests need (Debian 12 bookworm, as root).
#
#   System packages (bookworm, plain apt-get, only if missing): runc, iptables, busybox-static, openjdk-17-jdk-headless (the GC hook's JVM tests).
#   Private copies under .deps/ (no change to /etc/apt or the system's glibc), fetched with a
#   private apt state from the machine's own Debian mirror and unpacked with dpkg-deb -x:
#     .deps/containerd-1.7/bin   containerd 1.7.x   (trixie `containerd`)
#     .deps/containerd-2.1/bin   containerd 2.1.x   (forky  `containerd`)
#     .deps/docker/bin           dockerd, docker, docker-init (tini-static), docker-proxy (forky)
#     .deps/criu/bin/criu        CRIU 4.1.x (trixie) run through a private glibc prefix, unless
#                                the system's own `criu check` already passes.
#   Contract: .deps/paths.env and .deps/paths.json with RUNC, BUSYBOX, CONTAINERD_17_BIN,
#   CONTAINERD_21_BIN, DOCKER_BIN, CRIU_BIN (absolute paths).
#
# Idempotent: each part leaves a stamp .deps/.stamp-<part>; downloaded .deb files are cached in
# .deps/debs/, so a second run needs no network and takes well under a second.
# Environment: INSTALL_DEPS_FORCE=1 re-extracts every private part (from the .deb cache).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
DEPS="$ROOT/.deps"
DEBS="$DEPS/debs"
ARCH_TRIPLET=x86_64-linux-gnu

# Wanted versions: exact ones are checked, a different patch level is accepted with a note.
CONTAINERD_17_WANT=1.7.24
CONTAINERD_21_WANT=2.1.9
DOCKER_WANT=28.5
CRIU_WANT=4.1.1

# CRIU and the trixie libraries it needs (ENVIRONMENT.md), run through trixie's own loader.
CRIU_PKGS=(criu libcompel1 libc6 libbsd0 libgnutls30t64 libnet1 libnftables1 libnl-3-200
  libprotobuf-c1 libuuid1 libmd0 libnftnl11 libmnl0 libjansson4 libxtables12 libp11-kit0
  libidn2-0 libunistring5 libtasn1-6 libnettle8t64 libhogweed6t64 libgmp10 libffi8 libedit2
  libtinfo6)

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() { printf 'install-deps: ERROR: %s\n' "$*" >&2; exit 1; }

TMP=""
cleanup() { if [[ -n "$TMP" ]]; then rm -rf "$TMP"; fi; }
trap cleanup EXIT
# The run's temporary folder sits inside .deps (same filesystem, so mv is a rename); it is made
# by need_tmp in the main shell (not in a $(...) subshell) so that the EXIT trap removes it.
need_tmp() { if [[ -z "$TMP" ]]; then TMP=$(mktemp -d "$DEPS/.tmp.XXXXXX"); fi; }
tmpdir() { mktemp -d "$TMP/$1.XXXXXX"; }

FORCE=${INSTALL_DEPS_FORCE:-0}
mkdir -p "$DEPS"

# ---------------------------------------------------------------------------------------------
# 1. System packages from bookworm
# ---------------------------------------------------------------------------------------------
pkg_installed() { [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]; }

missing=()
for p in runc iptables busybox-static openjdk-17-jdk-headless; do pkg_installed "$p" || missing+=("$p"); done
command -v dpkg-deb >/dev/null || die "dpkg-deb not found: this script needs Debian's dpkg"
if ((${#missing[@]})); then
  [[ $EUID -eq 0 ]] || die "must run as root to install: ${missing[*]}"
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  out=$(mktemp)
  if ! { apt-get -q update && apt-get -q -y install --no-install-recommends "${missing[@]}"; } >"$out" 2>&1; then
    tail -n 30 "$out" >&2; rm -f "$out"; die "apt-get install ${missing[*]} failed"
  fi
  rm -f "$out"
fi

RUNC=$(PATH="$PATH:/usr/sbin:/sbin" command -v runc) || die "runc not found after install"
BUSYBOX=/bin/busybox
[[ -x "$BUSYBOX" ]] || die "$BUSYBOX missing (package busybox-static)"
PATH="$PATH:/usr/sbin:/sbin" command -v iptables-restore >/dev/null || die "iptables-restore not found"

# ---------------------------------------------------------------------------------------------
# Private apt state: trixie + forky lists under .deps/apt, download only.
# ---------------------------------------------------------------------------------------------
APT_OPTS=()
APT_READY=0
apt_private() {
  ((APT_READY)) && return 0
  local src=/etc/apt/sources.list.d/debian.sources uri="" A="$DEPS/apt" s out
  if [[ -r "$src" ]]; then
    # the first URIs line whose stanza is not the security archive
    uri=$(awk '/^URIs:/{u=$2} /^Suites:/{ if ($0 !~ /-security/ && u != "") { print u; exit } }' "$src")
  fi
  if [[ -z "$uri" && -r /etc/apt/sources.list ]]; then
    uri=$(awk '$1=="deb" && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [[ -n "$uri" ]] || die "could not read the Debian mirror URI from $src"
  mkdir -p "$A/parts" "$A/prefs" "$A/lists/partial" "$A/cache/archives/partial"
  for s in trixie forky; do
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uri" "$s" >"$A/parts/$s.sources"
  done
  APT_OPTS=(-q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$A/parts"
    -o Dir::Etc::Preferences=/dev/null -o "Dir::Etc::PreferencesParts=$A/prefs"
    -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o APT::Sandbox::User=root)
  log "apt-get update (private state: trixie, forky)"
  out=$(mktemp)
  if ! apt-get "${APT_OPTS[@]}" update >"$out" 2>&1; then
    tail -n 30 "$out" >&2; rm -f "$out"; die "private apt-get update failed"
  fi
  rm -f "$out"
  APT_READY=1
}

# fetch_debs NAME PKG/SUITE... : makes sure .deps/debs/NAME.list names cached .deb files.
fetch_debs() {
  local name=$1 list="$DEBS/$1.list" f ok=1 d out
  shift
  if [[ -s "$list" ]]; then
    while IFS= read -r f; do [[ -s "$DEBS/$f" ]] || ok=0; done <"$list"
    ((ok)) && return 0
  fi
  apt_private
  log "download $name: $*"
  need_tmp
  d=$(tmpdir dl)
  out=$(mktemp)
  if ! (cd "$d" && apt-get "${APT_OPTS[@]}" download "$@") >"$out" 2>&1; then
    tail -n 30 "$out" >&2; rm -f "$out"; die "apt-get download $* failed"
  fi
  rm -f "$out"
  mkdir -p "$DEBS"
  (cd "$d" && ls -1 -- *.deb) >"$d/.list" || die "no .deb downloaded for $name"
  mv -f "$d"/*.deb "$DEBS/"
  mv -f "$d/.list" "$list"
}

# extract_debs NAME DEST : unpacks every cached .deb of NAME into DEST.
extract_debs() {
  local f
  while IFS= read -r f; do dpkg-deb -x "$DEBS/$f" "$2" || die "dpkg-deb -x $f failed"; done <"$DEBS/$1.list"
}

first_version() { grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1; }

# check_version WHAT GOT WANT : GOT must start with WANT's major.minor; other patch is a note.
check_version() {
  local what=$1 got=$2 want=$3 series
  series=$(printf '%s' "$want" | cut -d. -f1,2)
  [[ -n "$got" ]] || die "$what: could not read its version"
  [[ "$got" == "$series" || "$got" == "$series".* ]] || die "$what: got version $got, wanted $want"
  if [[ "$got" != "$want" && "$want" == *.*.* ]]; then log "note: $what is $got (wanted $want): accepted"; fi
}

stamp_ok() { [[ "$FORCE" != 1 && -f "$DEPS/.stamp-$1" ]]; }

# replace_dir NEW DEST : puts NEW in place of DEST.
replace_dir() { chmod 755 "$1"; rm -rf "$2"; mkdir -p "$(dirname "$2")"; mv "$1" "$2"; }

# ---------------------------------------------------------------------------------------------
# 2a. containerd 1.7 (trixie) and 2.1 (forky)
# ---------------------------------------------------------------------------------------------
install_containerd() { # SERIES SUITE WANT
  local series=$1 suite=$2 want=$3 dir="$DEPS/containerd-$1" x new got b
  if stamp_ok "containerd-$series"; then
    [[ -x "$dir/bin/containerd" && -x "$dir/bin/ctr" && -x "$dir/bin/containerd-shim-runc-v2" ]] && return 0
  fi
  fetch_debs "containerd-$series" "containerd/$suite"
  need_tmp
  x=$(tmpdir x); new=$(tmpdir new)
  extract_debs "containerd-$series" "$x"
  mkdir -p "$new/bin"
  cp -a "$x/usr/bin/." "$new/bin/"
  for b in containerd ctr containerd-shim-runc-v2; do
    [[ -x "$new/bin/$b" ]] || die "containerd $suite package has no usr/bin/$b"
  done
  got=$("$new/bin/containerd" --version 2>&1 | first_version) || true
  check_version "containerd ($suite)" "$got" "$want"
  replace_dir "$new" "$dir"
  printf '%s\n' "$got" >"$DEPS/.stamp-containerd-$series"
  log "containerd $got -> $dir/bin"
}

# ---------------------------------------------------------------------------------------------
# 2b. dockerd + docker CLI + tini-static (forky)
# ---------------------------------------------------------------------------------------------
install_docker() {
  local dir="$DEPS/docker" x new got gotc b d
  if stamp_ok docker; then
    [[ -x "$dir/bin/dockerd" && -x "$dir/bin/docker" && -x "$dir/bin/docker-init" ]] && return 0
  fi
  fetch_debs docker docker.io/forky docker-cli/forky tini-static/forky
  need_tmp
  x=$(tmpdir x); new=$(tmpdir new)
  extract_debs docker "$x"
  mkdir -p "$new/bin"
  for b in dockerd docker docker-proxy tini-static; do
    for d in usr/bin usr/sbin usr/libexec/docker bin sbin; do
      if [[ -f "$x/$d/$b" && ! -L "$x/$d/$b" ]]; then cp -a "$x/$d/$b" "$new/bin/$b"; break; fi
    done
  done
  [[ -x "$new/bin/tini-static" ]] || die "tini-static package has no tini-static binary"
  ln -s tini-static "$new/bin/docker-init"
  for b in dockerd docker; do [[ -x "$new/bin/$b" ]] || die "docker packages have no $b binary"; done
  got=$("$new/bin/dockerd" --version 2>&1) || die "dockerd --version failed: $got"
  gotc=$("$new/bin/docker" --version 2>&1) || die "docker --version failed: $gotc"
  "$new/bin/docker-init" --version >/dev/null 2>&1 || die "docker-init (tini-static) does not run"
  got=$(printf '%s' "$got" | first_version); gotc=$(printf '%s' "$gotc" | first_version)
  check_version dockerd "$got" "$DOCKER_WANT"
  check_version "docker CLI" "$gotc" "$DOCKER_WANT"
  replace_dir "$new" "$dir"
  printf '%s %s\n' "$got" "$gotc" >"$DEPS/.stamp-docker"
  log "dockerd $got, docker CLI $gotc -> $dir/bin"
}

# ---------------------------------------------------------------------------------------------
# 2c. CRIU: the system's if its `criu check` passes, else trixie's in a private glibc prefix
# ---------------------------------------------------------------------------------------------
CRIU_BIN=""
criu_check() { # CRIU-BINARY : true if `criu check` says "Looks good"
  local out
  out=$("$1" check 2>&1) || true
  [[ "$out" == *"Looks good"* ]]
}

install_criu() {
  local dir="$DEPS/criu" x prefix ld lp lib got sys missing_libs
  if stamp_ok criu; then
    CRIU_BIN=$(sed -n 's/^CRIU_BIN=//p' "$DEPS/.stamp-criu")
    [[ -n "$CRIU_BIN" && -x "$CRIU_BIN/criu" ]] && return 0
  fi
  [[ $EUID -eq 0 ]] || die "must run as root (criu check needs it)"
  sys=$(PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$dir/bin" | paste -sd:):/usr/sbin:/sbin" \
    command -v criu 2>/dev/null) || sys=""
  if [[ -n "$sys" ]] && criu_check "$sys"; then
    CRIU_BIN=$(cd "$(dirname "$sys")" && pwd -P)
    got=$("$sys" --version 2>&1 | first_version) || true
    log "system criu $got passes criu check: using $CRIU_BIN"
    printf 'VERSION=%s\nCRIU_BIN=%s\n' "$got" "$CRIU_BIN" >"$DEPS/.stamp-criu"
    return 0
  fi
  [[ -n "$sys" ]] && log "system criu ($sys) fails criu check: installing a private CRIU"
  local pkgs=() p
  for p in "${CRIU_PKGS[@]}"; do pkgs+=("$p/trixie"); done
  fetch_debs criu "${pkgs[@]}"
  need_tmp
  x=$(tmpdir x)
  prefix="$x/prefix"
  mkdir -p "$prefix" "$x/bin"
  extract_debs criu "$prefix"
  [[ -x "$prefix/usr/sbin/criu" ]] || die "criu package has no usr/sbin/criu"
  ld=""
  for lib in usr/lib/$ARCH_TRIPLET lib/$ARCH_TRIPLET usr/lib64 lib64; do
    if [[ -e "$prefix/$lib/ld-linux-x86-64.so.2" ]]; then ld="$lib/ld-linux-x86-64.so.2"; break; fi
  done
  [[ -n "$ld" ]] || die "trixie libc6 has no ld-linux-x86-64.so.2"
  replace_dir "$x/prefix" "$dir/prefix"
  mkdir -p "$dir/bin"
  prefix="$dir/prefix"
  lp="$prefix/usr/lib/$ARCH_TRIPLET:$prefix/lib/$ARCH_TRIPLET"
  cat >"$dir/bin/criu.new" <<EOF
#!/bin/sh
# CRIU from Debian trixie, run with its own glibc through the prefix's loader
# (written by scripts/install-deps.sh).
exec "$prefix/$ld" --library-path "$lp" "$prefix/usr/sbin/criu" "\$@"
EOF
  chmod 755 "$dir/bin/criu.new"
  mv -f "$dir/bin/criu.new" "$dir/bin/criu"
  # every shared library must resolve, and from the prefix
  missing_libs=$("$prefix/$ld" --library-path "$lp" --list "$prefix/usr/sbin/criu" 2>&1 | grep 'not found' || true)
  [[ -z "$missing_libs" ]] || die "private CRIU misses libraries: $missing_libs"
  "$prefix/$ld" --library-path "$lp" --list "$prefix/usr/sbin/criu" 2>&1 \
    | awk -v p="$prefix/" '/=>/ && index($3, p) != 1 { print "install-deps: note: criu uses the system'"'"'s " $3 }' >&2
  got=$("$dir/bin/criu" --version 2>&1 | first_version) || true
  check_version criu "$got" "$CRIU_WANT"
  criu_check "$dir/bin/criu" || die "private CRIU: criu check failed: $("$dir/bin/criu" check 2>&1 | tail -n 5)"
  CRIU_BIN="$dir/bin"
  printf 'VERSION=%s\nCRIU_BIN=%s\n' "$got" "$CRIU_BIN" >"$DEPS/.stamp-criu"
  log "criu $got (private prefix, criu check: Looks good) -> $CRIU_BIN/criu"
}

install_containerd 1.7 trixie "$CONTAINERD_17_WANT"
install_containerd 2.1 forky "$CONTAINERD_21_WANT"
install_docker
install_criu

# ---------------------------------------------------------------------------------------------
# 3. The contract: .deps/paths.env and .deps/paths.json
# ---------------------------------------------------------------------------------------------
KEYS=(RUNC BUSYBOX CONTAINERD_17_BIN CONTAINERD_21_BIN DOCKER_BIN CRIU_BIN)
CONTAINERD_17_BIN="$DEPS/containerd-1.7/bin"
CONTAINERD_21_BIN="$DEPS/containerd-2.1/bin"
DOCKER_BIN="$DEPS/docker/bin"
env_text="" json_text="{"
sep=""
for k in "${KEYS[@]}"; do
  v=${!k}
  [[ "$v" == /* ]] || die "$k is not an absolute path: $v"
  [[ "$v" =~ ^[A-Za-z0-9_./+@%,:=-]+$ ]] || die "$k has characters unsafe for paths.env: $v"
  env_text+="$k=$v"$'\n'
  json_text+="$sep"$'\n'"  \"$k\": \"$v\""
  sep=","
done
json_text+=$'\n'"}"$'\n'
write_if_changed() { # FILE TEXT
  if [[ -f "$1" && "$(cat "$1"; printf x)" == "$2"x ]]; then return 0; fi
  printf '%s' "$2" >"$1.new" && mv -f "$1.new" "$1"
}
write_if_changed "$DEPS/paths.env" "$env_text"
write_if_changed "$DEPS/paths.json" "$json_text"
log "ok: $DEPS/paths.env"
