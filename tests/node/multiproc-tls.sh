#!/bin/sh
# The multi-process kill/stop/restart test (build/tests/node_multiproc) with
# every node on mutual TLS: the rk-test-server processes read their
# certificate from the RK_TEST_TLS_* environment.
set -u
BUILD=${BUILD:-build}
dir=$(mktemp -d "$BUILD/multiproc-tls.XXXXXX")
trap 'rm -rf "$dir"' EXIT
tools/make-certs.sh "$dir" >/dev/null || { echo "multiproc-tls: make-certs failed"; exit 1; }
RK_TEST_TLS_CERT=$dir/node1.crt RK_TEST_TLS_KEY=$dir/node1.key RK_TEST_TLS_CA=$dir/ca.crt \
  RK_TEST_TLS_PEER_NAMES=peer.raftkit "$BUILD/tests/node_multiproc"
