#!/bin/sh
# End-to-end test of a kv cluster secured with mutual TLS: real kv-server,
# kv-client and raftkit-cli processes on loopback with the certificates of
# tools/make-certs.sh. Clients without TLS or with a certificate from
# another CA get nothing; an application client may read, write and ask
# for the leader but not change membership; the admin may; a leader killed
# with SIGKILL loses no acknowledged write and catches up after a restart,
# all over TLS. Prints one line per check and "kv-e2e-tls: N passed, M
# failed"; exits non-zero on any failure.
set -u
BUILD=${BUILD:-build}
DATA=$(mktemp -d "$BUILD/e2e-tls.XXXXXX")
EXTRA="--election-timeout-ms 300 --log-level warn"
NO_ADMIN=1
PORTS=""
. examples/kv/lib.sh

. tests/support/checks.sh
cleanup() { stop_all KILL; [ $failed -eq 0 ] && rm -rf "$DATA"; }
trap cleanup EXIT

C=$DATA/certs
tools/make-certs.sh "$C" --test >/dev/null || { bad "make-certs"; exit 1; }
TRUST="--tls-ca $C/ca.crt --tls-peer-names peer.raftkit"
# Clients as wrapper commands, so that lib.sh's helpers speak TLS too.
wrap() { printf '#!/bin/sh\nexec %s %s "$@"\n' "$2" "$3" >"$DATA/$1"; chmod +x "$DATA/$1"; }
wrap cli-admin "$CLI" "$TRUST --tls-cert $C/admin.crt --tls-key $C/admin.key"
wrap cli-client "$CLI" "$TRUST --tls-cert $C/client.crt --tls-key $C/client.key"
wrap kv "$KV_CLIENT" "$TRUST --tls-cert $C/client.crt --tls-key $C/client.key"
wrap kv-stranger "$KV_CLIENT" "$TRUST --tls-cert $C/stranger.crt --tls-key $C/stranger.key"
PLAIN_KV=$KV_CLIENT
CLI=$DATA/cli-admin

start_tls_node() {
  start_node "$1" --tls-cert "$C/node$1.crt" --tls-key "$C/node$1.key" --tls-ca "$C/ca.crt" \
    --tls-peer-names peer.raftkit --tls-admin-names admin.raftkit
}
started=no
for attempt in 1 2 3 4 5; do
  base=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
  PORTS="$base $((base + 1)) $((base + 2)) $((base + 3))"
  for i in 1 2 3; do start_tls_node "$i"; done
  if node_ready 1 && node_ready 2 && node_ready 3; then started=yes; break; fi
  stop_all KILL
  rm -rf "$DATA"/n*
done
[ $started = yes ] || { bad "could not start a TLS cluster on free ports"; exit 1; }
P=$(peers_all)
KV="$DATA/kv --peers $P --timeout-ms 5000"
leader=$(wait_leader) && ok "TLS cluster elected $leader" || bad "no leader"

check "put over TLS" "OK" 0 $KV put k1 v1
check "get over TLS" "OK v1" 0 $KV get k1
check "follower read over TLS" "OK v1" 0 $KV --read follower get k1

# ---- refused clients ----
out=$("$PLAIN_KV" --peers "$P" --timeout-ms 1500 get k1 2>/dev/null); rc=$?
[ $rc -eq 4 ] && ok "plaintext kv-client gets nothing (exit 4: $out)" || bad "plaintext client: exit $rc: $out"
grep -q "plaintext raftkit client on a TLS port" "$DATA"/n*.log &&
  ok "a node logs the plaintext client" || bad "no log line for the plaintext client"
out=$("$DATA/kv-stranger" --peers "$P" --timeout-ms 1500 get k1 2>/dev/null); rc=$?
[ $rc -eq 4 ] && ok "client certificate from another CA gets nothing" || bad "stranger: exit $rc: $out"
grep -q "signed by an unknown CA" "$DATA"/n*.log &&
  ok "a node logs the unknown CA" || bad "no log line for the unknown CA"

# ---- roles ----
CC="$DATA/cli-client --group kv --peers $P"
check "client certificate: get_leader" "$leader" 0 $CC get_leader
out=$($CC status 2>/dev/null); rc=$?
[ $rc -eq 0 ] && ok "client certificate: status" || bad "client status: exit $rc"
err=$($CC reset_peer "$(peer_of 1)" "$(peer_of 1)" 2>&1 >/dev/null); rc=$?
case "$err" in *RK_EPERM*) [ $rc -eq 1 ] && ok "client certificate: reset_peer refused (RK_EPERM)" ||
  bad "reset_peer: exit $rc";; *) bad "reset_peer by a client: '$err' (exit $rc)";; esac
err=$($CC change_peers "$(peer_of 1)" 2>&1 >/dev/null); rc=$?
case "$err" in *RK_EPERM*) [ $rc -eq 1 ] && ok "client certificate: change_peers refused (RK_EPERM)" ||
  bad "change_peers: exit $rc";; *) bad "change_peers by a client: '$err' (exit $rc)";; esac
check "membership unchanged" "$P" 0 $CLI --group kv --peers "$P" get_peers
RC="$CLI --group kv --peers $P"
check "admin certificate: snapshot" "OK snapshot saved on $(peer_of 2)" 0 $CLI --group kv snapshot "$(peer_of 2)"
tgt=$(peer_of $(( $(node_of "$leader") % 3 + 1 )))
check "admin certificate: transfer_leader" "OK leader $tgt" 0 $RC transfer_leader "$tgt"

# ---- SIGKILL the leader mid-writes: nothing acknowledged is lost ----
leader=$(wait_leader)
ln=$(node_of "$leader")
i=0
while [ $i -lt 30 ]; do $KV put "w$i" "$i" >/dev/null 2>&1 && echo "w$i" >>"$DATA/acked"; i=$((i + 1)); done
stop_node "$ln" KILL
# Followers name the dead leader until their election timeout: wait for
# the new one.
n=0
while newleader=$(wait_leader) && [ "$newleader" = "$leader" ] && [ $n -lt 50 ]; do
  sleep 0.1; n=$((n + 1))
done
[ "$newleader" != "$leader" ] && ok "new leader $newleader after SIGKILL" || bad "no new leader after SIGKILL"
check "writes go on" "OK" 0 $KV put after kill
lost=0
for k in $(cat "$DATA/acked"); do
  [ "$($KV get "$k" 2>/dev/null)" = "OK ${k#w}" ] || lost=$((lost + 1))
done
[ $lost -eq 0 ] && ok "every acknowledged write survived" || bad "$lost acknowledged writes lost"
start_tls_node "$ln"
target=$(applied "$(node_of "$newleader")")
wait_caught_up "$ln" "$target" && ok "the killed node restarted over TLS and caught up to $target" ||
  bad "node $ln did not catch up"

stop_all TERM
if grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$DATA"/n*.log 2>/dev/null; then
  bad "sanitizer report in a server log (kept in $DATA)"
else
  ok "no sanitizer report in the server logs"
fi
echo "kv-e2e-tls: $passed passed, $failed failed"
[ $failed -eq 0 ]
