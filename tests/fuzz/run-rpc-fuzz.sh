#!/bin/sh
# Runs the RPC fuzzers for a bounded time each (default 20 s) when they were
# built (clang present); otherwise says why and succeeds:
# fuzz_rpc_frame (frames and messages) and fuzz_rpc_tls (a TLS port before
# the handshake completes).
#   tests/fuzz/run-rpc-fuzz.sh [seconds]
set -u
build=${BUILD:-build}
secs=${1:-${RPC_FUZZ_SECONDS:-20}}
passed=0
failed=0
for name in fuzz_rpc_frame fuzz_rpc_tls; do
  bin=$build/fuzz/$name
  if [ ! -x "$bin" ]; then
    echo "rpc-fuzz: $name skipped: clang with libFuzzer not found (install clang and libclang-rt-14-dev, then make fuzz)"
    continue
  fi
  corpus=$build/fuzz/corpus-$name
  [ $name = fuzz_rpc_frame ] && corpus=$build/fuzz/corpus-rpc
  mkdir -p "$corpus"
  # the TLS target writes its throwaway key files into the working directory
  (cd "$build/fuzz" && "./$name" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
    -artifact_prefix="./" -print_final_stats=1 "$(basename "$corpus")" 2>"last-run-$name.log")
  rc=$?
  grep -E "^(stat::|Done|INFO: Running|==[0-9]+==ERROR|SUMMARY)" "$build/fuzz/last-run-$name.log" | tail -n 12
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "rpc-fuzz: $name failed (crash input in $build/fuzz/, log $build/fuzz/last-run-$name.log)"
  fi
done
echo "rpc-fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
