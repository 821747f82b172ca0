# Shell helpers shared by the kv demo (make run), make cluster and the kv
# end-to-end test: start and stop kv-server processes, wait for a leader,
# wait for a node to catch up. Source it after setting:
#   BUILD   build directory (build/)
#   DATA    directory for data and logs
#   PORTS   "p1 p2 p3": the ports of nodes 1..3 on 127.0.0.1
#   EXTRA   extra kv-server flags (optional)
#   NO_ADMIN set: start nodes without the conf files' admin ports (tests, so
#           that parallel runs and a running `make cluster` don't collide)
#   CONF_DIR the nodes' conf files (default conf/kv; conf/kv-tls for TLS)
#   KV_SHARDS the nodes' --shards (default 1); above 1 the helpers that ask
#           one group (node_ready, wait_leader, applied) ask kv-0

KV_SERVER=${BUILD:-build}/kv-server
KV_CLIENT=${BUILD:-build}/kv-client
CLI=${BUILD:-build}/raftkit-cli
KV_SHARDS=${KV_SHARDS:-1}
GROUP=kv
SHARD_FLAGS=""
if [ "$KV_SHARDS" -gt 1 ]; then GROUP=kv-0; SHARD_FLAGS="--shards $KV_SHARDS"; fi

peer_of() { echo "127.0.0.1:$(echo $PORTS | cut -d' ' -f"$1")"; }
# The first three nodes: the initial configuration.
peers_all() {
  out=""
  for p in $(echo $PORTS | cut -d' ' -f1-3); do out="$out${out:+,}127.0.0.1:$p"; done
  echo "$out"
}

# start_node I [extra flags]: starts node I in the background; its pid goes
# to $DATA/nI.pid, its output to $DATA/nI.log. Nodes past 3 (new peers to
# add) start with the initial configuration plus themselves.
start_node() {
  i=$1; shift
  conf=${CONF_DIR:-conf/kv}/n$i.conf
  peers=$(peers_all)
  if [ ! -f "$conf" ]; then
    # n1's conf without its admin port, which node 1 already listens on
    grep -v '^admin_port' "${CONF_DIR:-conf/kv}/n1.conf" >"$DATA/n$i.conf"
    conf=$DATA/n$i.conf; peers="$peers,$(peer_of "$i")"
  elif [ -n "${NO_ADMIN:-}" ]; then
    grep -v '^admin_port' "$conf" >"$DATA/n$i.conf"
    conf=$DATA/n$i.conf
  fi
  "$KV_SERVER" --conf "$conf" --peer "$(peer_of "$i")" --peers "$peers" \
    --data "$DATA/n$i" $SHARD_FLAGS $EXTRA "$@" >>"$DATA/n$i.log" 2>&1 &
  echo $! >"$DATA/n$i.pid"
}

node_pid() { cat "$DATA/n$1.pid" 2>/dev/null; }

node_alive() { p=$(node_pid "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# node_ready I: waits until node I answers the CLI service on its port
# (returns 0) or has exited, e.g. because the port was taken (returns 1);
# 10 s at most.
node_ready() {
  n=0
  while [ $n -lt 100 ]; do
    node_alive "$1" || return 1
    if "$CLI" --group $GROUP --peers "$(peer_of "$1")" --timeout-ms 500 status >/dev/null 2>&1; then
      node_alive "$1"
      return
    fi
    sleep 0.1
    n=$((n + 1))
  done
  return 1
}

# stop_node I [SIGNAL]: TERM (clean) by default, KILL to crash it.
stop_node() {
  p=$(node_pid "$1")
  [ -n "$p" ] || return 0
  kill -"${2:-TERM}" "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  rm -f "$DATA/n$1.pid"
}

stop_all() { for i in 1 2 3 4; do stop_node "$i" "${1:-TERM}"; done; }

# wait_leader [PEERS]: prints the leader once one is known (10 s at most).
wait_leader() {
  n=0
  while [ $n -lt 100 ]; do
    if l=$("$CLI" --group $GROUP --peers "${1:-$(peers_all)}" --timeout-ms 500 get_leader 2>/dev/null); then
      echo "$l"
      return 0
    fi
    sleep 0.1
    n=$((n + 1))
  done
  return 1
}

# node_of PEER: the node number (1..3) listening at PEER.
node_of() {
  i=1
  for p in $PORTS; do
    [ "127.0.0.1:$p" = "$1" ] && { echo $i; return; }
    i=$((i + 1))
  done
}

# applied I: node I's applied index (empty if it does not answer).
applied() {
  "$CLI" --group $GROUP --peers "$(peer_of "$1")" --timeout-ms 500 status 2>/dev/null |
    awk 'NR == 2 && $2 != "DOWN" { print $NF }'
}

# wait_caught_up I TARGET: until node I has applied TARGET (10 s at most).
wait_caught_up() {
  n=0
  while [ $n -lt 100 ]; do
    a=$(applied "$1")
    [ -n "$a" ] && [ "$a" -ge "$2" ] && return 0
    sleep 0.1
    n=$((n + 1))
  done
  return 1
}
