# Check helpers of the shell end-to-end tests (sourced from the repository
# root): each check prints "ok   NAME" or "FAIL NAME: why" and counts into
# $passed and $failed, which the test reports and exits on at its end.
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
# check NAME WANT_OUTPUT WANT_EXIT CMD...: stdout and exit code
check() {
  name=$1 want=$2 wantrc=$3; shift 3
  out=$("$@" 2>/dev/null)
  rc=$?
  if [ "$out" = "$want" ] && [ "$rc" -eq "$wantrc" ]; then ok "$name"; else
    bad "$name: got '$out' (exit $rc), want '$want' (exit $wantrc)"
  fi
}
# check_rc NAME WANT_EXIT CMD...: exit code only
check_rc() {
  name=$1 wantrc=$2; shift 2
  "$@" >/dev/null 2>&1
  rc=$?
  if [ "$rc" -eq "$wantrc" ]; then ok "$name"; else bad "$name: exit $rc, want $wantrc"; fi
}
