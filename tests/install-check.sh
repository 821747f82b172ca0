#!/bin/sh
# Installs raftkit into a temporary prefix, then builds and runs a small
# program against it using only `pkg-config --cflags --libs raftkit`.
set -eu
build=${BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -s install BUILD="$build" PREFIX="$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs raftkit)
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/hello" tests/install/hello.c $flags
out=$("$tmp/hello")
echo "$out"
case "$out" in
  "install-check: ok"*) echo "install-check: 1 passed, 0 failed" ;;
  *) echo "install-check: 0 passed, 1 failed"; exit 1 ;;
esac
