#!/bin/sh
# The storage crash test with simulated power losses instead of process
# crashes (storage-crash -p): acknowledged entries must survive the loss of
# every write that was not synced.
exec "${BUILD:-build}/tests/storage-crash" -p -n 150 "$@"
