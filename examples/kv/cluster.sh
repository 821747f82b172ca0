#!/bin/sh
# `make cluster`: starts the 3-node kv cluster of conf/kv/ in the foreground
# (data in ./data/kv, kept between runs) until Ctrl-C, for trying kv-client
# and raftkit-cli by hand. `make cluster TLS=1` starts the mutual-TLS
# cluster of conf/kv-tls/ instead (data in ./data/kv-tls, certificates from
# tools/make-certs.sh in ./data/certs, made on first use). `make cluster
# SHARDS=16` starts every node with --shards 16: groups kv-0 .. kv-15 on
# the same ports, data in ./data/kv-shards16 (or ./data/kv-tls-shards16).
set -u
BUILD=${BUILD:-build}
KV_SHARDS=${SHARDS:-1}
DATA=data/kv
PORTS="8101 8102 8103"
EXTRA=""
SEC=""
if [ -n "${TLS:-}" ] && [ "${TLS}" != 0 ]; then
  DATA=data/kv-tls
  PORTS="8301 8302 8303"
  CONF_DIR=conf/kv-tls
  [ -f data/certs/ca.crt ] || tools/make-certs.sh data/certs || exit 1
  TRUST="--tls-ca data/certs/ca.crt --tls-peer-names peer.raftkit"
  SEC=" $TRUST --tls-cert data/certs/client.crt --tls-key data/certs/client.key"
  ADMIN=" $TRUST --tls-cert data/certs/admin.crt --tls-key data/certs/admin.key"
fi
case "$KV_SHARDS" in
  '' | *[!0-9]* | 0*) echo "SHARDS must be a positive number (got '$KV_SHARDS')" >&2; exit 2;;
  1) ;;
  *) DATA=$DATA-shards$KV_SHARDS;;
esac
mkdir -p "$DATA"
. examples/kv/lib.sh
if [ -n "$SEC" ]; then
  # lib.sh's helpers call "$CLI": make it the admin's TLS client.
  printf '#!/bin/sh\nexec %s%s "$@"\n' "$CLI" "$ADMIN" >"$DATA/raftkit-cli-admin"
  chmod +x "$DATA/raftkit-cli-admin"
  PLAIN_CLI=$CLI
  CLI=$DATA/raftkit-cli-admin
fi

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
KV="$KV_CLIENT$SEC --peers $P"
SHARDS_NOTE=""
if [ "$KV_SHARDS" -gt 1 ]; then
  KV="$KV --shards $KV_SHARDS"
  leader="$leader in kv-0"
  SHARDS_NOTE="
$KV_SHARDS groups kv-0 .. kv-$((KV_SHARDS - 1)) per node; kv-client --shards $KV_SHARDS sends each
key to its group (XXH64 of the key mod $KV_SHARDS), raftkit-cli --group kv-I asks one.
"
fi
cat <<MSG
kv cluster running: $P (leader $leader)
data and logs in $DATA/ (n1.log, n2.log, n3.log); Ctrl-C stops the cluster.
$SHARDS_NOTE
Try, in another terminal:
  $KV put hello world
  $KV get hello
  $KV --read follower get hello
  $KV cas hello world raft
  $CLI --group $GROUP --peers $P status
  $CLI --group $GROUP --peers $P transfer_leader $(peer_of 2)
  kill \$(cat $DATA/n1.pid)   # then watch the others elect a leader
MSG
# Wait for Ctrl-C, restarting nothing: a node killed by hand stays down
# (start it again with: $KV_SERVER --conf ${CONF_DIR:-conf/kv}/nI.conf).
while :; do sleep 1; done
