#!/bin/sh
# End-to-end test of kv-server, kv-client and raftkit-cli: real processes on
# loopback, random ports (retried on collision) so parallel runs coexist.
# Prints one line per check and "kv-e2e: N passed, M failed"; exits non-zero
# on any failure.
set -u
BUILD=${BUILD:-build}
DATA=$(mktemp -d "${TMPDIR:-/tmp}/raftkit-e2e.XXXXXX")
EXTRA="--election-timeout-ms 300 --log-level warn"
NO_ADMIN=1
PORTS=""
. examples/kv/lib.sh

. tests/support/checks.sh
cleanup() { stop_all KILL; [ $failed -eq 0 ] && rm -rf "$DATA"; }
trap cleanup EXIT

# ---- configuration errors are reported, not guessed around ----
printf '[raft]\npeer = 127.0.0.1:1\ntypo_key = 1\n' >"$DATA/bad.conf"
out=$("$KV_SERVER" --conf "$DATA/bad.conf" 2>&1); rc=$?
[ $rc -eq 2 ] && [ "$out" = "kv-server: $DATA/bad.conf:3: unknown key 'typo_key' in section [raft]" ] &&
  ok "kv-server names the bad conf line" || bad "bad conf: exit $rc: $out"
out=$("$KV_SERVER" --conf conf/kv/n1.conf --peer 127.0.0.1:9 2>&1); rc=$?
[ $rc -eq 2 ] && ok "kv-server refuses a peer outside peers ($out)" || bad "peer outside peers: exit $rc"

# ---- start a cluster on free ports ----
start_cluster() {
  for attempt in 1 2 3 4 5; do
    base=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
    PORTS="$base $((base + 1)) $((base + 2)) $((base + 3))"
    for i in 1 2 3; do start_node "$i"; done
    if node_ready 1 && node_ready 2 && node_ready 3; then return 0; fi
    stop_all KILL
    rm -rf "$DATA"/n*
  done
  return 1
}
start_cluster || { bad "could not start a cluster on free ports"; exit 1; }
P=$(peers_all)
KV="$KV_CLIENT --peers $P --timeout-ms 5000"
leader=$(wait_leader) && ok "a leader is elected ($leader)" || bad "no leader"

# ---- every kv-client outcome ----
check "put -> OK" "OK" 0 $KV put k1 v1
check "get -> OK value" "OK v1" 0 $KV get k1
check "get absent -> NOT_FOUND" "NOT_FOUND" 1 $KV get nope
check "cas matching -> OK" "OK" 0 $KV cas k1 v1 v2
check "cas other value -> MISMATCH" "MISMATCH" 1 $KV cas k1 v1 v3
check "cas \"\" on absent key creates it" "OK" 0 $KV cas fresh "" f1
check "del -> OK" "OK" 0 $KV del fresh
check "del absent -> NOT_FOUND" "NOT_FOUND" 1 $KV del fresh
check "follower read is linearizable" "OK v2" 0 $KV --read follower get k1
check "stale read on a follower sees the committed value" "OK v2" 0 \
  $KV_CLIENT --peers "$(peer_of "$(node_of "$leader" | awk '{print ($1 % 3) + 1}')")" --read stale get k1
check_rc "usage error -> exit 2" 2 $KV frobnicate k
check_rc "missing --peers -> exit 2" 2 "$KV_CLIENT" get k
err=$("$KV_CLIENT" --peers "$P" --timeout-ms 500ms get k 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] &&
  [ "$err" = "kv-client: --timeout-ms must be a positive number of milliseconds (got '500ms')" ] &&
  ok "--timeout-ms 500ms -> exit 2 naming the value" || bad "--timeout-ms 500ms: got '$err' (exit $rc)"
out=$("$KV_CLIENT" --peers "$(peer_of 1)" --group other --timeout-ms 1000 put k1 x); rc=$?
case "$out" in "FAIL $(peer_of 1): RK_ENOGROUP:"*) [ $rc -eq 4 ] && ok "wrong group -> FAIL (exit 4)" ||
  bad "wrong group: exit $rc";; *) bad "wrong group: got '$out'";; esac
# A value over the entry limit: refused at once, saying what and the limit.
big=$(head -c 700000 /dev/zero | tr '\0' a)
out=$(echo "put big $big" | $KV --stdin)
case "$out" in "FAIL 127.0.0.1:"*": RK_EINVAL: value of 700000 bytes is over max_body_size 524288")
  ok "put of a 700000-byte value -> FAIL naming the size and max_body_size";;
  *) bad "oversized value: got '$(echo "$out" | cut -c1-200)'";; esac
out=$($KV_CLIENT --peers "127.0.0.1:1" --timeout-ms 500 put k x); rc=$?
case "$out" in FAIL*) [ $rc -eq 4 ] && ok "unreachable cluster -> FAIL (exit 4)" || bad "unreachable: exit $rc";;
  *) bad "unreachable cluster: got '$out'";; esac

# ---- redirects: the client is only told about one follower ----
f=$(( $(node_of "$leader") % 3 + 1 ))
check "write via a follower-only --peers list finds the leader" "OK" 0 \
  "$KV_CLIENT" --peers "$(peer_of "$f")" put redirected yes
check "and reads it back" "OK yes" 0 "$KV_CLIENT" --peers "$(peer_of "$f")" get redirected

# ---- --stdin: one result line per command, in order ----
out=$(printf 'put s1 a\nget s1\ncas s1 a b\ncas s1 a c\nget s1\ndel s1\nget s1\nbogus\n' |
  $KV --stdin | tr '\n' '|')
want="OK|OK a|OK|MISMATCH|OK b|OK|NOT_FOUND|FAIL usage: get K | put K V | cas K OLD NEW | del K|"
[ "$out" = "$want" ] && ok "--stdin answers every line in order" || bad "--stdin: got '$out'"
out=$(printf 'put "s 2" "hello world"\nget "s 2"\ncas "s 2" "hello world" "say \\"hi\\""\nget "s 2"\nput s3 ""\nget s3\nput "open\n' |
  $KV --stdin | tr '\n' '|')
want='OK|OK hello world|OK|OK say "hi"|OK|OK |FAIL usage: too many words or an unterminated quote|'
[ "$out" = "$want" ] && ok "--stdin quoted words hold spaces and quotes" || bad "--stdin quoting: got '$out'"

# ---- UNKNOWN: the write was sent, then the whole cluster froze ----
fifo="$DATA/in"; mkfifo "$fifo"
$KV_CLIENT --peers "$P" --timeout-ms 1500 --stdin <"$fifo" >"$DATA/unknown.out" &
cpid=$!
exec 7>"$fifo"
echo "put u1 before" >&7
n=0; while [ $n -lt 50 ] && ! grep -q . "$DATA/unknown.out"; do sleep 0.1; n=$((n + 1)); done
for i in 1 2 3; do kill -STOP "$(node_pid "$i")"; done
echo "put u2 during-freeze" >&7
exec 7>&-
wait $cpid
for i in 1 2 3; do kill -CONT "$(node_pid "$i")"; done
res=$(sed -n 2p "$DATA/unknown.out")
case "$res" in UNKNOWN*) ok "write to a frozen cluster after sending -> UNKNOWN";;
  *) bad "frozen cluster: got '$res' (want UNKNOWN ...)";; esac

# ---- failover: writes during a leader crash are OK or UNKNOWN, never FAIL ----
leader=$(wait_leader)
ln=$(node_of "$leader")
# Half of the writes go first; the leader is killed once 10 of them are
# answered, and the other half follow.
fifo="$DATA/fo.in"; mkfifo "$fifo"
$KV_CLIENT --peers "$P" --timeout-ms 8000 --stdin <"$fifo" >"$DATA/fo.out" &
cpid=$!
exec 8>"$fifo"
i=0; while [ $i -lt 30 ]; do echo "put f$i v$i" >&8; i=$((i + 1)); done
n=0; while [ $n -lt 100 ] && [ "$(wc -l <"$DATA/fo.out")" -lt 10 ]; do sleep 0.1; n=$((n + 1)); done
stop_node "$ln" KILL
while [ $i -lt 60 ]; do echo "put f$i v$i" >&8; i=$((i + 1)); done
exec 8>&-
wait $cpid
nfail=$(grep -c '^FAIL' "$DATA/fo.out")
nok=$(grep -c '^OK' "$DATA/fo.out")
nlines=$(wc -l <"$DATA/fo.out")
[ "$nlines" -eq 60 ] && [ "$nfail" -eq 0 ] && ok "60 writes across a leader crash: $nok OK, none FAIL" ||
  bad "failover writes: $nlines lines, $nfail FAIL"
# Followers name the dead leader until their election timeout: wait for
# the new one.
n=0
while newleader=$(wait_leader) && [ "$newleader" = "$leader" ] && [ $n -lt 50 ]; do
  sleep 0.1; n=$((n + 1))
done
[ "$newleader" != "$leader" ] && ok "a new leader took over ($newleader)" ||
  bad "no new leader after the crash"
lost=0; i=0
while [ $i -lt 60 ]; do
  if [ "$(sed -n "$((i + 1))p" "$DATA/fo.out")" = "OK" ]; then
    [ "$($KV get f$i)" = "OK v$i" ] || lost=$((lost + 1))
  fi
  i=$((i + 1))
done
[ $lost -eq 0 ] && ok "every acknowledged write survived the crash" || bad "$lost acknowledged writes lost"
start_node "$ln"
target=$(applied "$(node_of "$newleader")")
wait_caught_up "$ln" "$target" && ok "the crashed node restarted and caught up to $target" ||
  bad "node $ln did not catch up"

# ---- raftkit-cli: every command ----
RC="$CLI --group kv --peers $P"
check "raftkit-cli get_leader" "$newleader" 0 $RC get_leader
check "raftkit-cli get_peers" "$P" 0 $RC get_peers
# The leader counts a voter alive once it heard from it within an election
# timeout; give the restarted node time to be heard (up to ~15 s on a
# loaded 2-core machine: this waits, it does not measure).
n=0
while [ "$($RC get_peers --alive)" != "$P" ] && [ $n -lt 150 ]; do sleep 0.1; n=$((n + 1)); done
check "raftkit-cli get_peers --alive" "$P" 0 $RC get_peers --alive
st=$($RC status); rows=$(echo "$st" | grep -c -E '^[0-9.:]+ +(leader|follower) ')
[ "$rows" -eq 3 ] && ok "raftkit-cli status shows 3 live peers" || bad "status: $st"
reps=$(echo "$st" | sed -n '/^replication on the leader/,$p' | grep -c -E '^127\.0\.0\.1:[0-9]+ +yes ')
[ "$reps" -eq 2 ] && ok "raftkit-cli status shows the leader's replication to 2 followers" ||
  bad "status replication: $st"
check "raftkit-cli snapshot" "OK snapshot saved on $(peer_of 2)" 0 $CLI --group kv snapshot "$(peer_of 2)"
tgt=$(peer_of $(( $(node_of "$newleader") % 3 + 1 )))
check "raftkit-cli transfer_leader" "OK leader $tgt" 0 $RC transfer_leader "$tgt"
start_node 4
check "raftkit-cli add_learners" "OK peers $P,$(peer_of 4)/learner" 0 $RC add_learners "$(peer_of 4)"
check "raftkit-cli remove_learners" "OK peers $P" 0 $RC remove_learners "$(peer_of 4)"
check "raftkit-cli reset_learners" "OK peers $P,$(peer_of 4)/learner" 0 $RC reset_learners "$(peer_of 4)"
check "raftkit-cli reset_learners to none" "OK peers $P" 0 $RC reset_learners ""
check "raftkit-cli add_peer" "OK peers $P,$(peer_of 4)" 0 $RC add_peer "$(peer_of 4)"
check "raftkit-cli remove_peer" "OK peers $P" 0 $RC remove_peer "$(peer_of 4)"
check "raftkit-cli change_peers" "OK peers $P,$(peer_of 4)" 0 $RC change_peers "$P,$(peer_of 4)"
check "raftkit-cli change_peers back" "OK peers $P" 0 $RC change_peers "$P"
stop_node 4
check_rc "raftkit-cli remove_peer of a non-member -> exit 1" 1 $RC remove_peer 127.0.0.1:1
err=$($RC transfer_leader 127.0.0.1:1 2>&1 >/dev/null); rc=$?
case "$err" in
  *"unknown peer -- unknown peer"*) bad "transfer_leader to a non-member repeats itself: '$err'";;
  "raftkit-cli: transfer_leader: RK_EUNKNOWNPEER: unknown peer"*)
    [ $rc -eq 1 ] && ok "raftkit-cli transfer_leader to a non-member -> RK_EUNKNOWNPEER (exit 1)" ||
      bad "transfer_leader to a non-member: exit $rc";;
  *) bad "transfer_leader to a non-member: got '$err'";; esac
check_rc "raftkit-cli unknown group -> exit 1" 1 $CLI --group nope --peers "$P" get_leader
check_rc "raftkit-cli unreachable peers -> exit 3" 3 $CLI --group kv --peers 127.0.0.1:1 get_leader
check_rc "raftkit-cli bad arguments -> exit 2" 2 $RC add_peer
for c in get_leader get_peers add_peer remove_peer change_peers reset_peer add_learners \
  remove_learners reset_learners transfer_leader snapshot status; do
  "$CLI" "$c" --help | grep -q "usage: raftkit-cli" || bad "raftkit-cli $c --help"
done
ok "raftkit-cli <command> --help for every command"

# ---- restart all three: data intact (log + snapshot) ----
check "write before full restart" "OK" 0 $KV put durable yes
stop_all TERM
for i in 1 2 3; do start_node "$i"; done
wait_leader >/dev/null && ok "cluster restarted" || bad "no leader after restart"
check "data intact after restarting all nodes" "OK yes" 0 $KV get durable
check "older data intact too" "OK v2" 0 $KV get k1

# ---- reset_peer: disaster recovery with one survivor ----
stop_node 2 KILL
stop_node 3 KILL
check "raftkit-cli reset_peer" "OK" 0 $CLI --group kv reset_peer "$(peer_of 1)" "$(peer_of 1)"
l=$(wait_leader "$(peer_of 1)") && ok "the survivor leads alone after reset_peer" || bad "no leader after reset_peer"
check "and takes writes" "OK" 0 "$KV_CLIENT" --peers "$(peer_of 1)" put alone yes

stop_all TERM
# Under `make asan` the servers are sanitized: a report in any log fails.
if grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$DATA"/n*.log 2>/dev/null; then
  bad "sanitizer report in a server log (kept in $DATA)"
else
  ok "no sanitizer report in the server logs"
fi

echo "kv-e2e: $passed passed, $failed failed"
[ $failed -eq 0 ]
