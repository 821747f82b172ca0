#!/bin/sh
# Installs raftkit into a temporary prefix (with DESTDIR, as packagers do),
# then builds and runs a small program against it twice: with only
# `pkg-config --cflags --libs raftkit` (the shared library), and against the
# installed static archive and the shared libraries of its dependencies (no
# libraftkit.so needed at run time).
set -eu
build=${BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
make -s install BUILD="$build" DESTDIR="$tmp/dest" PREFIX="$prefix" >/dev/null
mv "$tmp/dest$prefix" "$prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
passed=0
failed=0
run() { # NAME BINARY
  out=$("$2") || true
  echo "$1: $out"
  case "$out" in
    "install-check: ok"*) passed=$((passed + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
}
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/hello" tests/install/hello.c \
  $(pkg-config --cflags --libs raftkit)
run shared "$tmp/hello"
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/hello-static" tests/install/hello.c \
  $(pkg-config --cflags raftkit) "$prefix/lib/libraftkit.a" \
  $(pkg-config --libs $(pkg-config --print-requires-private raftkit)) -lpthread -lm
if readelf -d "$tmp/hello-static" | grep -q 'NEEDED.*libraftkit'; then
  echo "static: linked against libraftkit.so"
  failed=$((failed + 1))
else
  run static "$tmp/hello-static"
fi
echo "install-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
