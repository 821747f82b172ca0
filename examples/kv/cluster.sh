#!/bin/sh
# `make cluster`: starts the 3-node kv cluster of conf/kv/ in the foreground
# (data in ./data/kv, kept between runs) until Ctrl-C, for trying kv-client
# and raftkit-cli by hand.
set -u
BUILD=${BUILD:-build}
DATA=data/kv
PORTS="8101 8102 8103"
EXTRA=""
mkdir -p "$DATA"
. examples/kv/lib.sh

trap 'echo; echo "stopping..."; stop_all TERM; exit 0' INT TERM
for i in 1 2 3; do start_node "$i"; done
sleep 0.3
for i in 1 2 3; do
  if ! node_alive "$i"; then
    echo "node $i did not start:" >&2; tail -3 "$DATA/n$i.log" >&2; stop_all TERM; exit 1
  fi
done
P=$(peers_all)
leader=$(wait_leader) || leader="(none yet)"
cat <<MSG
kv cluster running: $P (leader $leader)
data and logs in $DATA/ (n1.log, n2.log, n3.log); Ctrl-C stops the cluster.

Try, in another terminal:
  $KV_CLIENT --peers $P put hello world
  $KV_CLIENT --peers $P get hello
  $KV_CLIENT --peers $P --read follower get hello
  $KV_CLIENT --peers $P cas hello world raft
  $CLI --group kv --peers $P status
  $CLI --group kv --peers $P transfer_leader 127.0.0.1:8102
  kill \$(cat $DATA/n1.pid)   # then watch the others elect a leader
MSG
# Wait for Ctrl-C, restarting nothing: a node killed by hand stays down
# (start it again with: $KV_SERVER --conf conf/kv/nI.conf).
while :; do sleep 1; done
