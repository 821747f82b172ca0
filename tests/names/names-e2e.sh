#!/bin/sh
# End to end with host names: a 3-node kv cluster configured only with names
# (kv-1:8101, kv-2:8101, kv-3:8101), resolved through a hosts file this test
# owns. The test re-runs itself in private network and mount namespaces
# (unshare, as root) and bind-mounts its hosts file over /etc/hosts there,
# so nothing outside sees it; every node listens on port 8101 of its own
# loopback address (127.0.0.2, .3, .4, ...).
#
# Checked: kv-3 is listed before its name exists and the others still elect
# a leader and take writes (the failure is logged once per node, not per
# retry); kv-3 starts anyway thanks to --listen and catches up once its name
# appears; writes, reads on the leader and followers, a leader killed with
# SIGKILL and its restart; then a node is killed, its name moved to a NEW
# address, and it restarts there: the others reconnect to it by name, it
# catches up and can lead.
#
# Needs root, unshare(1) and ip(8) (CI runs as root): without them it FAILS
# saying so, it never passes without having run.
set -u
BUILD=${BUILD:-build}

if [ -z "${RK_NAMES_NS:-}" ]; then
  why=""
  [ "$(id -u)" = 0 ] || why="not root"
  command -v unshare >/dev/null 2>&1 || why="${why:+$why, }no unshare(1)"
  command -v ip >/dev/null 2>&1 || why="${why:+$why, }no ip(8) (Debian package iproute2)"
  if [ -z "$why" ] && ! unshare --net --mount true 2>/dev/null; then
    why="unshare --net --mount is refused here"
  fi
  if [ -n "$why" ]; then
    echo "names-e2e: FAIL: cannot create private network and mount namespaces: $why."
    echo "names-e2e: this test needs root (CI runs as root); it does not pass without running."
    exit 1
  fi
  RK_NAMES_NS=1 unshare --net --mount --propagation private sh "$0" "$@"
  exit $?
fi

KV_SERVER=$BUILD/kv-server
KV_CLIENT=$BUILD/kv-client
CLI=$BUILD/raftkit-cli
DATA=$(mktemp -d "${TMPDIR:-/tmp}/raftkit-names.XXXXXX")
HOSTS=$DATA/hosts
P=kv-1:8101,kv-2:8101,kv-3:8101
KV="$KV_CLIENT --peers $P --timeout-ms 8000"

. tests/support/checks.sh
# Here a check compares stdout and stderr together, whatever the exit code.
check() {
  name=$1 want=$2; shift 2
  out=$("$@" 2>&1)
  if [ "$out" = "$want" ]; then ok "$name"; else bad "$name: got '$out', want '$want'"; fi
}

# The hosts file is rewritten in place (same inode), so the bind mount keeps
# showing the current content; glibc reads it on every lookup.
set_hosts() {
  { echo "127.0.0.1 localhost"; for l in "$@"; do echo "$l"; done; } >"$HOSTS"
}

pid_of() { cat "$DATA/n$1.pid" 2>/dev/null; }
start_node() {
  i=$1; shift
  "$KV_SERVER" --group kv --peer "kv-$i:8101" --peers "$P" --data "$DATA/n$i" \
    --election-timeout-ms 300 --log-level info "$@" >>"$DATA/n$i.log" 2>&1 &
  echo $! >"$DATA/n$i.pid"
}
stop_node() {
  p=$(pid_of "$1")
  [ -n "$p" ] || return 0
  kill -"${2:-TERM}" "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  rm -f "$DATA/n$1.pid"
}
stop_all() { for i in 1 2 3; do stop_node "$i" "${1:-TERM}"; done; }
cleanup() { stop_all KILL; [ $failed -eq 0 ] && rm -rf "$DATA"; }
trap cleanup EXIT

# Bounded polls (they wait for an event; nothing here measures time).
wait_leader() {
  n=0
  while [ $n -lt 300 ]; do
    l=$("$CLI" --group kv --peers "${1:-$P}" --timeout-ms 500 get_leader 2>/dev/null) &&
      { echo "$l"; return 0; }
    sleep 0.1; n=$((n + 1))
  done
  return 1
}
applied() {
  "$CLI" --group kv --peers "$1" --timeout-ms 500 status 2>/dev/null |
    awk 'NR == 2 && $2 != "DOWN" { print $NF }'
}
wait_caught_up() {
  n=0
  while [ $n -lt 300 ]; do
    a=$(applied "$1")
    [ -n "$a" ] && [ "$a" -ge "$2" ] && return 0
    sleep 0.1; n=$((n + 1))
  done
  return 1
}
num_of() { echo "$1" | sed -n 's/^kv-\([0-9]\):8101$/\1/p'; }

ip link set lo up || { bad "cannot bring lo up in the private namespace"; exit 1; }
set_hosts "127.0.0.2 kv-1" "127.0.0.3 kv-2"
mount --bind "$HOSTS" /etc/hosts || { bad "cannot bind-mount the hosts file"; exit 1; }
getent hosts kv-1 | grep -q '^127\.0\.0\.2 ' && ok "kv-1 resolves through the test's hosts file" ||
  { bad "the hosts override does not work: $(getent hosts kv-1)"; exit 1; }

# ---- a name that does not resolve ----
out=$("$KV_SERVER" --group kv --peer kv-3:8101 --peers "$P" --data "$DATA/x" 2>&1); rc=$?
case "$out" in *"cannot resolve 'kv-3'"*"listen"*) [ $rc -ne 0 ] &&
  ok "without --listen, a node whose own name does not resolve says so and exits ($rc)" ||
  bad "own name unresolvable: exit 0";;
  *) bad "own name unresolvable: got '$out' (exit $rc)";; esac
out=$("$KV_SERVER" --group kv --peer kv-1:8101 --peers "$P" --listen kv_1:8101 --data "$DATA/x" 2>&1)
case "$out" in *"bad listen 'kv_1:8101'"*"bad character '_'"*) ok "a bad --listen name is refused saying why";;
  *) bad "bad --listen: got '$out'";; esac

start_node 1
start_node 2
# kv-3 has no address yet: it binds its --listen address meanwhile.
start_node 3 --listen 127.0.0.4:8101
leader=$(wait_leader kv-1:8101,kv-2:8101) && ok "kv-1 and kv-2 elect a leader ($leader) while kv-3 does not resolve" ||
  bad "no leader while kv-3 does not resolve"
check "put while kv-3 does not resolve" "OK" $KV put early yes
kill -0 "$(pid_of 3)" 2>/dev/null && ok "kv-3 runs although its own name does not resolve (--listen)" ||
  bad "kv-3 exited: $(tail -3 "$DATA/n3.log")"
# Several retries go by (backoff up to 1 s): each node logs the failure once.
sleep 3
for i in 1 2; do
  c=$(grep -c "rpc: cannot resolve 'kv-3'" "$DATA/n$i.log")
  [ "$c" -eq 1 ] && ok "kv-$i logged the unresolvable kv-3 once over its retries" ||
    bad "kv-$i logged 'cannot resolve kv-3' $c times"
done

set_hosts "127.0.0.2 kv-1" "127.0.0.3 kv-2" "127.0.0.4 kv-3"
target=$(applied "$leader")
wait_caught_up kv-3:8101 "${target:-1}" && ok "kv-3 is reached by name once it resolves and catches up to $target" ||
  bad "kv-3 did not catch up after its name appeared"
check "stale read on kv-3 sees the early write" "OK yes" \
  "$KV_CLIENT" --peers kv-3:8101 --read stale get early

# ---- the kv checks, by name ----
check "put -> OK" "OK" $KV put k1 v1
check "get -> OK value" "OK v1" $KV get k1
check "cas -> OK" "OK" $KV cas k1 v1 v2
check "cas mismatch -> MISMATCH" "MISMATCH" $KV cas k1 v1 v3
check "follower read is linearizable" "OK v2" $KV --read follower get k1
check "raftkit-cli get_peers names the peers" "$P" "$CLI" --group kv --peers "$P" get_peers

# ---- leader crash ----
leader=$(wait_leader)
ln=$(num_of "$leader")
fifo="$DATA/fo.in"; mkfifo "$fifo"
$KV_CLIENT --peers "$P" --timeout-ms 8000 --stdin <"$fifo" >"$DATA/fo.out" &
cpid=$!
exec 8>"$fifo"
i=0; while [ $i -lt 20 ]; do echo "put f$i v$i" >&8; i=$((i + 1)); done
n=0; while [ $n -lt 100 ] && [ "$(wc -l <"$DATA/fo.out")" -lt 10 ]; do sleep 0.1; n=$((n + 1)); done
stop_node "$ln" KILL
while [ $i -lt 40 ]; do echo "put f$i v$i" >&8; i=$((i + 1)); done
exec 8>&-
wait $cpid
nfail=$(grep -c '^FAIL' "$DATA/fo.out")
nlines=$(wc -l <"$DATA/fo.out")
[ "$nlines" -eq 40 ] && [ "$nfail" -eq 0 ] && ok "40 writes across the crash of leader $leader: none FAIL" ||
  bad "failover writes: $nlines lines, $nfail FAIL"
n=0
while newleader=$(wait_leader) && [ "$newleader" = "$leader" ] && [ $n -lt 100 ]; do
  sleep 0.1; n=$((n + 1))
done
[ "$newleader" != "$leader" ] && ok "a new leader took over ($newleader)" || bad "no new leader"
lost=0; i=0
while [ $i -lt 40 ]; do
  if [ "$(sed -n "$((i + 1))p" "$DATA/fo.out")" = "OK" ]; then
    [ "$($KV get f$i)" = "OK v$i" ] || lost=$((lost + 1))
  fi
  i=$((i + 1))
done
[ $lost -eq 0 ] && ok "every acknowledged write survived the crash" || bad "$lost acknowledged writes lost"
start_node "$ln"
target=$(applied "$newleader")
wait_caught_up "$leader" "${target:-1}" && ok "the crashed node restarted and caught up to $target" ||
  bad "$leader did not catch up"

# ---- a node comes back at a NEW address under its name ----
leader=$(wait_leader)
m=$(( $(num_of "$leader") % 3 + 1 ))
old=$(getent hosts "kv-$m" | awk '{print $1}')
new=127.0.1.$m
stop_node "$m" KILL
entry() {
  if [ "$1" = "$m" ]; then echo "$new kv-$1"; else echo "$(getent hosts "kv-$1" | awk '{print $1}') kv-$1"; fi
}
set_hosts "$(entry 1)" "$(entry 2)" "$(entry 3)"
check "while kv-$m is down, writes go on" "OK" $KV put moved-1 a
start_node "$m"   # no --listen: it binds its name, which now means $new
# Which addresses listen on 8101 (ss(8), from iproute2 like ip(8)).
listening() { ss -Hltn 2>/dev/null | awk '{print $4}' | grep -qx "$1:8101"; }
n=0; while [ $n -lt 100 ] && ! listening "$new"; do sleep 0.1; n=$((n + 1)); done
listening "$new" && ok "kv-$m restarted bound to its new address $new (was $old)" ||
  bad "nothing listens at $new:8101: $(ss -Hltn)"
listening "$old" && bad "something still listens at kv-$m's old address $old" ||
  ok "nothing listens at the old address $old"
check "write after the move" "OK" $KV put moved-2 b
target=$(applied "$leader")
wait_caught_up "kv-$m:8101" "${target:-1}" && ok "the others reconnect to kv-$m by name and it catches up to $target" ||
  bad "kv-$m did not catch up at its new address"
check "stale read on the moved node sees the latest write" "OK b" \
  "$KV_CLIENT" --peers "kv-$m:8101" --read stale get moved-2
c=$(grep -c "'kv-$m' resolves to $new (address changed)" "$DATA/n$(num_of "$leader").log")
[ "$c" -eq 1 ] && ok "the leader logged kv-$m's new address once" ||
  bad "the leader logged kv-$m's address change $c times"
check "leadership moves to the moved node" "OK leader kv-$m:8101" \
  "$CLI" --group kv --peers "$P" transfer_leader "kv-$m:8101"
check "and it takes writes as leader" "OK" $KV put moved-3 c
check "every node has the write" "OK c|OK c|OK c" sh -c \
  "for i in 1 2 3; do $KV_CLIENT --peers kv-\$i:8101 --read follower get moved-3; done | paste -sd'|'"

stop_all TERM
if grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$DATA"/n*.log 2>/dev/null; then
  bad "sanitizer report in a server log (kept in $DATA)"
else
  ok "no sanitizer report in the server logs"
fi
[ $failed -eq 0 ] || echo "names-e2e: logs kept in $DATA"
echo "names-e2e: $passed passed, $failed failed"
[ $failed -eq 0 ]
