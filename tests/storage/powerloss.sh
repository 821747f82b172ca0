#!/bin/sh
# The storage crash test with simulated power losses instead of process
# crashes (storage-crash -p): acknowledged entries must survive the loss of
# every write that was not synced. Run with the journal (the default) and
# without it (LMDB's own deferred meta sync).
set -e
"${BUILD:-build}/tests/storage-crash" -p -n 150 "$@"
RAFTKIT_JOURNAL=0 "${BUILD:-build}/tests/storage-crash" -p -n 100 "$@"
