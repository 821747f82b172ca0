#!/bin/sh
# `make run`: starts a 3-node kv cluster from conf/kv/ in a temporary data
# directory and walks through a short session that shows Raft at work:
# replication, reads on the leader and on a follower, a leader crash and the
# failover, the crashed node catching up, a snapshot. Stops everything and
# exits 0 when every step did what it says.
set -u
BUILD=${BUILD:-build}
DATA=$(mktemp -d "${TMPDIR:-/tmp}/raftkit-demo.XXXXXX")
PORTS="8101 8102 8103"
EXTRA="--log-level warn"
. examples/kv/lib.sh

cleanup() { stop_all KILL; rm -rf "$DATA"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -t 1 ]; then B=$(printf '\033[1m'); N=$(printf '\033[0m'); else B=; N=; fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
# shown CMD...: the command as a user would type it: arguments that are
# empty or hold spaces or shell characters in single quotes.
shown() {
  line='$'
  for a in "$@"; do
    case $a in
      '' | *[!A-Za-z0-9_./:,=@+%-]*) line="$line '$(printf '%s' "$a" | sed "s/'/'\\\\''/g")'" ;;
      *) line="$line $a" ;;
    esac
  done
  printf '%s\n' "$line"
}
# show CMD...: prints the command as a user would type it, then runs it.
show() {
  shown "$@"
  "$@"
}
die() {
  printf '\ndemo FAILED: %s\n' "$*" >&2
  for i in 1 2 3; do [ -s "$DATA/n$i.log" ] && { echo "--- node $i log (tail)"; tail -5 "$DATA/n$i.log"; }; done >&2
  exit 1
}
expect() { # expect WANT CMD...: runs CMD (shown), checks its output line
  want=$1; shift
  shown "$@"
  out=$("$@" 2>&1)
  echo "$out"
  [ "$out" = "$want" ] || die "expected '$want' from: $*"
}

P=$(peers_all)

step "Starting a 3-node kv cluster (conf/kv/n1..n3.conf, data in $DATA)"
for i in 1 2 3; do
  echo "$KV_SERVER --conf conf/kv/n$i.conf --data $DATA/n$i &"
  start_node "$i"
done
sleep 0.3
for i in 1 2 3; do
  node_alive "$i" || die "node $i did not start (port in use? is 'make cluster' running?)"
done
leader=$(wait_leader) || die "no leader elected within 10 s"
echo "leader elected: $leader"
show "$CLI" --group kv --peers "$P" status

step "Writes go through the leader and are replicated to a majority before OK"
expect "OK" "$KV_CLIENT" --peers "$P" put greeting hello
expect "OK" "$KV_CLIENT" --peers "$P" put lang C11
expect "OK" "$KV_CLIENT" --peers "$P" cas lang C11 C
expect "MISMATCH" "$KV_CLIENT" --peers "$P" cas lang C11 Rust
for k in 1 2 3 4 5; do "$KV_CLIENT" --peers "$P" put "key$k" "value$k" >/dev/null || die "put key$k"; done
echo "(and key1..key5)"

step "Reads: linearizable on the leader, and on a follower through read_index"
expect "OK hello" "$KV_CLIENT" --peers "$P" get greeting
expect "OK C" "$KV_CLIENT" --peers "$P" --read follower get lang
expect "NOT_FOUND" "$KV_CLIENT" --peers "$P" get nothing-here

step "Crash the leader ($leader) with SIGKILL"
old=$(node_of "$leader")
stop_node "$old" KILL
echo "node $old killed"
expect "OK" "$KV_CLIENT" --peers "$P" put after-crash "written while node $old is down"
newleader=$(wait_leader) || die "no new leader"
[ "$newleader" != "$leader" ] || die "the dead node is still reported leader"
echo "new leader: $newleader"
show "$CLI" --group kv --peers "$P" status

step "No acknowledged write was lost"
expect "OK hello" "$KV_CLIENT" --peers "$P" get greeting
expect "OK C" "$KV_CLIENT" --peers "$P" get lang
expect "OK value5" "$KV_CLIENT" --peers "$P" get key5
expect "OK written while node $old is down" "$KV_CLIENT" --peers "$P" get after-crash

step "Restart node $old: it rejoins as a follower and catches up from the log"
echo "$KV_SERVER --conf conf/kv/n$old.conf --data $DATA/n$old &"
start_node "$old"
nl=$(node_of "$newleader")
target=$(applied "$nl")
wait_caught_up "$old" "$target" || die "node $old did not catch up to index $target"
expect "OK written while node $old is down" "$KV_CLIENT" --peers "$(peer_of "$old")" --read stale get after-crash
show "$CLI" --group kv --peers "$P" status

step "Snapshot: node $nl saves its state and can compact its log"
show "$CLI" --group kv snapshot "$newleader" || die "snapshot failed"
echo "files under $DATA/n$nl/snapshot:"
(cd "$DATA/n$nl/snapshot" && find . -type f | sort | sed 's|^\./|  |')

step "Stopping the cluster"
stop_all TERM
printf '\ndemo finished: replication, leader and follower reads, failover with no lost write,\n'
printf 'catch-up after restart and a snapshot all worked. Try it yourself: make cluster\n'
