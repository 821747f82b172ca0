#!/bin/sh
# Installs the Debian packages raftkit needs to build and test, when missing.
# Run by `make deps` and, as a cheap check, before `make`, `make test`, `make run`.
# Without root or apt it prints the exact command to run and fails.
# OPTIONAL packages (clang + libFuzzer runtime, for `make fuzz`) are installed
# along with missing required ones, or with --with-optional; their absence is
# never an error (the fuzz run is skipped with a message).
set -eu
OPTIONAL="clang libclang-rt-14-dev"
with_optional=no
[ "${1:-}" = "--with-optional" ] && with_optional=yes
PKGS="build-essential pkg-config libuv1-dev libprotobuf-c-dev protobuf-c-compiler
liblmdb-dev libcmocka-dev libinih-dev libxxhash-dev libmicrohttpd-dev libjansson-dev
libssl-dev openssl
python3-prometheus-client clang-format
iptables faketime iproute2
debhelper dpkg-dev fakeroot lintian
xxd chromium
prometheus python3-yaml"
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
opt_missing=""
for p in $OPTIONAL; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    opt_missing="$opt_missing $p"
  fi
done
install_optional() {
  [ -n "$opt_missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 0
  echo "raftkit: installing optional:$opt_missing" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y $opt_missing >&2 ||
    echo "raftkit: optional packages not installed (fuzzing will be skipped)" >&2
}
if [ -z "$missing" ]; then
  [ "$with_optional" = yes ] && install_optional
  exit 0
fi
echo "raftkit: missing Debian packages:$missing" >&2
cmd="apt-get update && apt-get install -y$missing"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "raftkit: no apt-get here; install the equivalents of:$missing" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    cmd="sudo sh -c '$cmd'"
  else
    echo "raftkit: not root; run as root:  $cmd" >&2
    exit 1
  fi
fi
echo "raftkit: installing:$missing" >&2
DEBIAN_FRONTEND=noninteractive sh -c "$cmd" >&2
install_optional
