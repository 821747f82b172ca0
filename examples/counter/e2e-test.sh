#!/bin/sh
# End-to-end test of counter-server and counter-client (JRaft's counter):
# three real processes on loopback ports chosen at random, increments
# through the leader, reads through read_index, a leader crash, and
# raftkit-cli status on the counter group. Prints one line per check and
# "counter-e2e: N passed, M failed"; exits non-zero on any failure.
set -u
BUILD=${BUILD:-build}
SERVER=$BUILD/counter-server
CLIENT=$BUILD/counter-client
CLI=$BUILD/raftkit-cli
DATA=$(mktemp -d "${TMPDIR:-/tmp}/raftkit-counter-e2e.XXXXXX")
. tests/support/checks.sh
stop() { p=$(cat "$DATA/n$1.pid" 2>/dev/null) || return 0; kill -"${2:-TERM}" "$p" 2>/dev/null; wait "$p" 2>/dev/null; rm -f "$DATA/n$1.pid"; }
cleanup() { for i in 1 2 3; do stop "$i" KILL; done; [ $failed -eq 0 ] && rm -rf "$DATA"; }
trap cleanup EXIT

peer() { echo "127.0.0.1:$((base + $1))"; }
start() {
  "$SERVER" --conf "$DATA/n.conf" --peer "$(peer "$1")" --peers "$P" --data "$DATA/n$1" \
    --election-timeout-ms 300 --log-level warn >>"$DATA/n$1.log" 2>&1 &
  echo $! >"$DATA/n$1.pid"
}
alive() { kill -0 "$(cat "$DATA/n$1.pid" 2>/dev/null)" 2>/dev/null; }
# ready I: waits until node I answers the CLI service (0) or has exited, e.g.
# because its port was taken (1); 10 s at most.
ready() {
  n=0
  while [ $n -lt 100 ]; do
    alive "$1" || return 1
    if "$CLI" --group counter --peers "$(peer "$1")" --timeout-ms 500 status >/dev/null 2>&1; then
      alive "$1"
      return
    fi
    sleep 0.1; n=$((n + 1))
  done
  return 1
}
leader() { # prints the leader once one other than $2 is known among $1 (5 s at most)
  n=0
  while [ $n -lt 50 ]; do
    if x=$("$CLI" --group counter --peers "$1" --timeout-ms 500 get_leader 2>/dev/null) &&
      [ "$x" != "${2:-}" ]; then
      echo "$x"
      return 0
    fi
    sleep 0.1; n=$((n + 1))
  done
  return 1
}

# admin_port from the conf file would collide between the nodes: the
# sed'ed copy below turns it off.
sed '/^admin_port/d' conf/counter/n1.conf >"$DATA/n.conf"
started=0
for attempt in 1 2 3 4 5; do
  base=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
  P="$(peer 1),$(peer 2),$(peer 3)"
  for i in 1 2 3; do start "$i"; done
  if ready 1 && ready 2 && ready 3; then started=1; break; fi
  for i in 1 2 3; do stop "$i" KILL; done
  rm -rf "$DATA"/n[123]
done
[ $started -eq 1 ] || { bad "could not start a cluster on free ports"; exit 1; }

l=$(leader "$P") && ok "a leader is elected ($l)" || bad "no leader"
check "incrementAndGet 5" "5" 0 "$CLIENT" --peers "$P" incrementAndGet 5
check "incrementAndGet 3" "8" 0 "$CLIENT" --peers "$P" incrementAndGet 3
check "get (read_index)" "8" 0 "$CLIENT" --peers "$P" get
st=$("$CLI" --group counter --peers "$P" status 2>&1)
rows=$(echo "$st" | grep -c -E '^127.* (leader|follower) ')
[ "$rows" -eq 3 ] && echo "$st" | grep -q '^replication on the leader' &&
  ok "raftkit-cli status serves the counter group (3 peers and replication)" || bad "status: $st"

# Crash the leader: the other two elect a new one and keep counting.
for i in 1 2 3; do [ "$(peer "$i")" = "$l" ] && dead=$i; done
stop "$dead" KILL
rest=""
for i in 1 2 3; do [ "$i" != "$dead" ] && rest="$rest${rest:+,}$(peer "$i")"; done
nl=$(leader "$rest" "$l") && ok "a new leader after the crash ($nl)" || bad "no new leader"
check "incrementAndGet after the crash" "10" 0 "$CLIENT" --peers "$rest" incrementAndGet 2
start "$dead"
check "restarted node rejoins and the count holds" "11" 0 "$CLIENT" --peers "$P" incrementAndGet 1
out=$("$CLIENT" --peers 127.0.0.1:1 get 2>/dev/null); rc=$?
[ $rc -eq 4 ] && [ "${out%% *}" = "FAIL" ] && ok "nothing reachable: FAIL, exit 4" ||
  bad "nothing reachable: got '$out' (exit $rc)"

# Bad command lines: exit 2 and a reason that names the bad word.
err=$("$CLIENT" --peers "127.0.0.1:0" get 2>&1 >/dev/null); rc=$?
case "$err" in "counter-client: bad --peers '127.0.0.1:0': "*port*)
  [ $rc -eq 2 ] && ok "bad --peers -> exit 2 naming the list" || bad "bad --peers: exit $rc";;
  *) bad "bad --peers: got '$err'";; esac
err=$("$CLIENT" --peers "$P" incrementAndGet 12abc 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && [ "$err" = "counter-client: DELTA '12abc' is not a 64-bit integer" ] &&
  ok "non-numeric DELTA -> exit 2, nothing sent" || bad "bad DELTA: got '$err' (exit $rc)"

for i in 1 2 3; do
  if grep -q -E 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' "$DATA/n$i.log" 2>/dev/null; then
    bad "sanitizer report in node $i's log"
  fi
done
echo "counter-e2e: $passed passed, $failed failed"
[ $failed -eq 0 ]
