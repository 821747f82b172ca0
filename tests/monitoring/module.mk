# tests/monitoring: contrib/prometheus/raftkit-rules.yml passes promtool, and
# every metric the rules and contrib/grafana/raftkit.json use is exported
# by a running node (tests/monitoring/monitoring_test.py).
TEST_CMDS += tests/monitoring/monitoring_test.py
