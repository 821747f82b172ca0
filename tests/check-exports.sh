#!/bin/sh
# Checks that the libraries raftkit installs expose its API and nothing else:
#  1. every dynamic symbol libraftkit.so defines is declared in include/raftkit
#     and carries the RAFTKIT_0.1 version;
#  2. every global symbol the installed static archive defines is declared in
#     include/raftkit (internal names such as buf_new must be local there);
#  3. every function include/raftkit declares (macros and static inline
#     functions aside) is defined by both, so no declaration was left hidden.
# "Declared" means written as rk_NAME( in a public header.
# SO and AR name other copies to check (the packaged ones, tests/deb).
set -eu
build=${BUILD:-build}
so=${SO:-$build/libraftkit.so}
ar=${AR:-$build/public/libraftkit.a}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
passed=0

cat include/raftkit/*.h | grep -o '\brk_[A-Za-z0-9_]*(' | sed 's/($//' |
  sort -u >"$tmp/declared"
# Function-like macros and static inline functions are declared but defined
# by no library.
cat include/raftkit/*.h |
  sed -n -e 's/^#define \(rk_[A-Za-z0-9_]*\)(.*/\1/p' \
         -e 's/^static inline [^(]*\b\(rk_[A-Za-z0-9_]*\)(.*/\1/p' |
  sort -u >"$tmp/header-only"
comm -23 "$tmp/declared" "$tmp/header-only" >"$tmp/functions"

# nm -D prints NAME@@VERSION (or NAME@VERSION); the version node itself is an
# absolute symbol named after the node.
nm -D --defined-only "$so" | awk '$2 != "A" { print $3 }' | sort -u >"$tmp/so-all"
sed 's/@.*//' "$tmp/so-all" | sort -u >"$tmp/so"
nm -g --defined-only "$ar" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/ar"

check() { # NAME FILE-OF-OFFENDERS
  if [ -s "$2" ]; then
    echo "FAIL $1:"
    sed 's/^/  /' "$2" | head -50
    failed=$((failed + 1))
  else
    echo "ok   $1"
    passed=$((passed + 1))
  fi
}

comm -23 "$tmp/so" "$tmp/declared" >"$tmp/bad"
check "$so exports only names declared in include/raftkit" "$tmp/bad"
grep -v '@@\?RAFTKIT_0\.1$' "$tmp/so-all" >"$tmp/bad" || true
check "$so versions every export RAFTKIT_0.1" "$tmp/bad"
comm -23 "$tmp/ar" "$tmp/declared" >"$tmp/bad"
check "$ar defines only global names declared in include/raftkit" "$tmp/bad"
comm -13 "$tmp/so" "$tmp/functions" >"$tmp/bad"
check "$so exports every function include/raftkit declares" "$tmp/bad"
comm -13 "$tmp/ar" "$tmp/functions" >"$tmp/bad"
check "$ar defines every function include/raftkit declares" "$tmp/bad"

echo "check-exports: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
