#!/bin/sh
# Parses raftkit's Prometheus exposition with the reference Python parser
# (Debian's python3-prometheus-client) and checks a few values survive.
# Reads the build directory from $BUILD (set by `make test`), default build.
set -eu
build=${BUILD:-build}
py=/usr/bin/python3 # the Debian interpreter that has the Debian module
if ! $py -c 'import prometheus_client' 2>/dev/null; then
  echo "prom_client_check: python3-prometheus-client missing (tools/deps.sh installs it)"
  echo "prom_client_check: 0 passed, 1 failed"
  exit 1
fi
"$build/tools/metrics_expo_sample" | $py -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
def sample(fam, name, **labels):
    for s in fams[fam].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise SystemExit("missing %s %s" % (name, labels))
g = dict(group="counter", peer="127.0.0.1:8081")
assert fams["raftkit_append_logs_seconds"].type == "summary"
assert sample("raftkit_append_logs_seconds", "raftkit_append_logs_seconds_count", **g) == 1000
assert sample("raftkit_append_logs_count", "raftkit_append_logs_count_sum", **g) == sum(1 + i % 32 for i in range(1000))
assert sample("raftkit_apply_tasks", "raftkit_apply_tasks_total", **g) == 1000
assert sample("raftkit_state", "raftkit_state", state="LEADER", **g) == 1
assert sample("raftkit_state", "raftkit_state", group="kv \"q\"", state="FOLLOWER") == 1
assert sample("raftkit_replicator_next_index", "raftkit_replicator_next_index", follower="127.0.0.1:8083", **g) == 11
p50 = sample("raftkit_append_logs_seconds", "raftkit_append_logs_seconds", quantile="0.5", **g)
assert abs(p50 - (10000 + 500 * 37) * 1e-9) < 0.02 * p50, p50
assert sample("raftkit_process_groups", "raftkit_process_groups") == 2
assert sample("raftkit_process_groups_state", "raftkit_process_groups_state", state="LEADER") == 1
assert sample("raftkit_process_apply_tasks", "raftkit_process_apply_tasks_total") == 1000
assert sample("raftkit_process_append_logs_seconds", "raftkit_process_append_logs_seconds_count") == 1000
assert "group" not in fams["raftkit_process_append_logs_seconds"].samples[0].labels
print("prom_client_check: %d families parsed" % len(fams))
'
echo "prom_client_check: 1 passed, 0 failed"
