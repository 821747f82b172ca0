#!/bin/sh
# Builds the Debian packages (make deb), unpacks them into a scratch root
# with dpkg -x, and checks what a user of the packages gets:
#  - each file is in the package it belongs to, and in one package only;
#  - libraftkit.so.0 is the SONAME, and the packaged libraries export the
#    public API only (tests/check-exports.sh on the packaged copies);
#  - libraftkit-dev depends on libraftkit0 of the same version and on the
#    -dev package of every module raftkit.pc requires, and apt can resolve
#    every dependency of the packages (apt-get -s install);
#  - tests/install/hello.c builds with `pkg-config --cflags --libs raftkit`
#    against the scratch root and runs with the packaged library;
#  - the packaged programs start (--help);
#  - lintian reports no error or warning (informational tags are printed).
# Reads the build directory from $BUILD (set by `make test`), default build.
set -eu
build=${BUILD:-build}
debs=$build/deb
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
passed=0
failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
check() { # NAME COMMAND...: ok when the command succeeds
  name=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then ok "$name"; else fail "$name" && sed 's/^/  /' "$tmp/out" | head -40; fi
}

start=$(date +%s)
if ! make -s deb BUILD="$build" >"$tmp/build.log" 2>&1; then
  tail -40 "$tmp/build.log"
  echo "deb-test: 0 passed, 1 failed (make deb)"
  exit 1
fi
echo "make deb: $(($(date +%s) - start)) s"
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
libdir=usr/lib/$ma
deb() { echo "$debs/${1}_${version}_$arch.deb"; }

# ---- contents: which file goes where ----
for p in libraftkit0 libraftkit-dev raftkit-tools raftkit-examples; do
  if [ ! -f "$(deb $p)" ]; then
    fail "package $p built"
    continue
  fi
  dpkg -x "$(deb $p)" "$root"
  # Files and symlinks, without the documentation every package carries.
  dpkg-deb -c "$(deb $p)" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./||' |
    grep -v "^usr/share/doc/$p/" | sort >"$tmp/$p.files"
done
headers=$(cd include && ls raftkit/*.h | sed 's|^|usr/include/|')
printf '%s\n' "$libdir/libraftkit.so.0" "$libdir/libraftkit.so.0.1.0" | sort >"$tmp/want"
check "libraftkit0 holds the shared library only" diff -u "$tmp/want" "$tmp/libraftkit0.files"
printf '%s\n' $headers "$libdir/libraftkit.a" "$libdir/libraftkit.so" \
  "$libdir/pkgconfig/raftkit.pc" | sort >"$tmp/want"
check "libraftkit-dev holds headers, static library, .so link, raftkit.pc" \
  diff -u "$tmp/want" "$tmp/libraftkit-dev.files"
printf '%s\n' usr/bin/raftkit-bench usr/bin/raftkit-cli usr/share/man/man1/raftkit-bench.1.gz \
  usr/share/man/man1/raftkit-cli.1.gz >"$tmp/want"
check "raftkit-tools holds raftkit-cli and raftkit-bench, with manual pages" \
  diff -u "$tmp/want" "$tmp/raftkit-tools.files"
check "raftkit-tools holds the Prometheus rules" \
  cmp contrib/prometheus/raftkit-rules.yml "$root/usr/share/doc/raftkit-tools/examples/raftkit-rules.yml"
check "raftkit-tools holds the Grafana dashboard" \
  cmp contrib/grafana/raftkit.json "$root/usr/share/doc/raftkit-tools/examples/raftkit.json"
printf '%s\n' usr/bin/raftkit-counter-client usr/bin/raftkit-counter-server \
  usr/bin/raftkit-kv-client usr/bin/raftkit-kv-server | sed 'p; s|usr/bin/\(.*\)|usr/share/man/man1/\1.1.gz|' |
  sort >"$tmp/want"
check "raftkit-examples holds the example programs, with manual pages" \
  diff -u "$tmp/want" "$tmp/raftkit-examples.files"
check "raftkit-examples holds the example configurations" \
  test -f "$root/usr/share/doc/raftkit-examples/examples/conf/kv/n1.conf"
cat "$tmp"/*.files | sort | uniq -d >"$tmp/dups"
check "no file is in two packages" test ! -s "$tmp/dups"

# ---- the library ----
so=$root/$libdir/libraftkit.so.0.1.0
soname() { readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'; }
check "SONAME is libraftkit.so.0" test "$(soname)" = libraftkit.so.0
check "the packaged libraries export the public API only" \
  env SO="$so" AR="$root/$libdir/libraftkit.a" BUILD="$build" tests/check-exports.sh

# ---- dependencies ----
depends() { dpkg-deb -f "$(deb "$1")" Depends | tr ',' '\n' | sed 's/^ *//; s/ *$//'; }
depends libraftkit-dev >"$tmp/dev-deps"
check "libraftkit-dev depends on libraftkit0 (= $version)" \
  grep -qx "libraftkit0 (= $version)" "$tmp/dev-deps"
: >"$tmp/bad"
for m in $(pkg-config --print-requires --print-requires-private \
  --with-path="$root/$libdir/pkgconfig" raftkit | awk '{ print $1 }' | sort -u); do
  pc=$(pkg-config --variable=pcfiledir "$m")/$m.pc
  owner=$(dpkg -S "$(readlink -f "$pc")" 2>/dev/null | sed 's/:.*//' | head -1)
  grep -qx "$owner" "$tmp/dev-deps" || echo "$m ($pc, from ${owner:-no package})" >>"$tmp/bad"
done
check "libraftkit-dev depends on the -dev package of every module raftkit.pc requires" \
  test ! -s "$tmp/bad"
[ -s "$tmp/bad" ] && sed 's/^/  missing: /' "$tmp/bad"
# apt resolves every dependency of the four packages (a simulation: the
# machine is left as it is).
check "apt-get can install the packages (simulated)" \
  apt-get -s -o Debug::NoLocking=1 install $(for p in libraftkit0 libraftkit-dev raftkit-tools raftkit-examples; do
    readlink -f "$(deb $p)"; done)
check "libraftkit0 depends on libuv1 (shlibs)" sh -c "dpkg-deb -f '$(deb libraftkit0)' Depends | grep -q 'libuv1 '"

# ---- a program built against the packages ----
export PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_PATH="$root/$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs raftkit)
check "hello.c builds with pkg-config --cflags --libs raftkit" \
  cc -std=c11 -Wall -Wextra -Werror -o "$tmp/hello" tests/install/hello.c $flags
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH
out=$(LD_LIBRARY_PATH="$root/$libdir" "$tmp/hello" 2>&1) || true
echo "  $out"
check "hello runs against the packaged library" sh -c "case '$out' in 'install-check: ok'*) ;; *) exit 1;; esac"
check "hello loads libraftkit.so.0 from the package" \
  sh -c "LD_LIBRARY_PATH='$root/$libdir' ldd '$tmp/hello' | grep -q '=> $root/$libdir/libraftkit.so.0 '"

for prog in raftkit-cli raftkit-bench raftkit-kv-server raftkit-kv-client raftkit-counter-server; do
  check "$prog --help" "$root/usr/bin/$prog" --help
done

# ---- lintian: errors and warnings fail; informational tags are shown ----
if command -v lintian >/dev/null 2>&1; then
  lintian -I --no-tag-display-limit "$debs"/raftkit_"${version}"_"$arch".changes >"$tmp/lintian" 2>&1 || true
  grep -E '^I:' "$tmp/lintian" | sed 's/^/  lintian: /' || true
  check "lintian reports no error or warning" sh -c "! grep -q '^[EW]:' '$tmp/lintian'"
  grep -E '^[EW]:' "$tmp/lintian" || true
else
  fail "lintian installed (tools/deps.sh installs it)"
fi

echo "deb-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
