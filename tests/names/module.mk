# Host names end to end (tests/names/names-e2e.sh): a 3-node kv cluster known
# only by names, resolved through the test's own hosts file in private
# network and mount namespaces; needs root (CI runs as root) and fails,
# saying so, without it. Uses kv-server, kv-client and raftkit-cli from BINS.
TEST_CMDS += tests/names/names-e2e.sh
