#!/bin/sh
# Runs the RPC frame/message fuzzer for a bounded time (default 20 s) when it
# was built (clang present); otherwise says why and succeeds.
#   tests/fuzz/run-rpc-fuzz.sh [seconds]
set -u
build=${BUILD:-build}
secs=${1:-${RPC_FUZZ_SECONDS:-20}}
bin=$build/fuzz/fuzz_rpc_frame
if [ ! -x "$bin" ]; then
  echo "rpc-fuzz: skipped: clang with libFuzzer not found (install clang and libclang-rt-14-dev, then make fuzz)"
  echo "rpc-fuzz: 0 passed, 0 failed, 1 skipped"
  exit 0
fi
corpus=$build/fuzz/corpus-rpc
mkdir -p "$corpus"
"$bin" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
  -artifact_prefix="$build/fuzz/" -print_final_stats=1 "$corpus" 2>"$build/fuzz/last-run.log"
rc=$?
grep -E "^(stat::|Done|INFO: Running|==[0-9]+==ERROR|SUMMARY)" "$build/fuzz/last-run.log" | tail -n 12
if [ $rc -eq 0 ]; then
  echo "rpc-fuzz: 1 passed, 0 failed"
else
  echo "rpc-fuzz: 0 passed, 1 failed (crash input in $build/fuzz/, log $build/fuzz/last-run.log)"
fi
exit $rc
