#!/bin/sh
# The storage crash test with many groups in one environment (storage-crash
# -g): every acknowledged entry of every group must survive kill -9 and
# simulated power losses, including groups whose registration is still in
# the journal only. Kills are spread over 300 ms so that children get past
# opening the environment on a slow disk.
set -e
"${BUILD:-build}/tests/storage-crash" -g 16 -t 300 -n 40 "$@"
"${BUILD:-build}/tests/storage-crash" -g 16 -t 300 -p -n 30 "$@"
