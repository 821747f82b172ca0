#!/bin/sh
# The short linearizability run of `make test`: a 5-node kv cluster under
# all faults for 40 s (tests/jepsen/jepsen.py; `make jepsen` is the long run),
# in one directory that each run replaces.
exec /usr/bin/python3 "$(dirname "$0")/jepsen.py" --build "${BUILD:-build}" --time 40 \
  --out "${BUILD:-build}/jepsen/short-run" "$@"
