#!/bin/sh
# Runs each test command given as an argument in turn, lets cmocka print its
# summaries, and ends with one "N passed, N failed" line over the suites.
# Exits non-zero when any suite failed.
passed=0
failed=0
failures=""
for t in "$@"; do
  echo "=== $t"
  if CMOCKA_MESSAGE_OUTPUT=stdout "$t"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures="$failures $t"
  fi
done
[ -n "$failures" ] && echo "failed suites:$failures"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
