#!/usr/bin/python3
"""The monitoring files in contrib/ against what a node really exports.

- `promtool check rules` and `promtool test rules` accept
  contrib/prometheus/raftkit-rules.yml and its unit tests;
- a 3-node kv cluster runs and its /metrics are scraped from every node
  (so that leader-only replicator samples are there too);
- every metric name used by a rule or by a query of the Grafana dashboard
  contrib/grafana/raftkit.json is one the nodes export, every label a
  selector matches on is one that metric carries, and every exact label
  value it asks for occurs; every recording rule a query uses is defined;
- the same check rejects a rule naming a metric that does not exist;
- the RaftkitProcess* alerts use only the process series (raftkit_process_*),
  which endpoints serving many groups export without ?groups=all.

Reads the build directory from $BUILD (set by `make test`), default build.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from kvcluster import Checks, start3, wait_for, wait_leader  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
RULES = "contrib/prometheus/raftkit-rules.yml"
RULES_TEST = "contrib/prometheus/raftkit-rules.test.yml"
DASHBOARD = "contrib/grafana/raftkit.json"

check = Checks()


# ---- the exposition ----

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(texts):
    """{metric name: {label: set of values}} over every sample, plus the
    names the TYPE lines promise (a summary f also has f_sum and f_count)."""
    names = {}
    for text in texts:
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, fam, kind = line.split(" ", 3)
                for n in [fam] + ([fam + "_sum", fam + "_count"] if kind in ("summary", "histogram") else []):
                    names.setdefault(n, {})
                continue
            if not line or line.startswith("#"):
                continue
            m = SAMPLE.match(line)
            if not m:
                raise ValueError("unparsable sample line: " + line)
            labels = names.setdefault(m.group(1), {})
            for k, v in LABEL.findall(m.group(2) or ""):
                labels.setdefault(k, set()).add(v)
    return names


# ---- what the monitoring files use ----

def rule_exprs(rules):
    """(where, expr) of every rule, and the set of recording rule names."""
    exprs, records = [], set()
    for g in rules["groups"]:
        for r in g["rules"]:
            name = r.get("record") or r.get("alert")
            exprs.append(("rule " + name, str(r["expr"])))
            if "record" in r:
                records.add(r["record"])
    return exprs, records


def dashboard_exprs(dash):
    out = []

    def walk(o, where):
        if isinstance(o, dict):
            title = o.get("title") or o.get("name") or where
            for k, v in o.items():
                if k in ("expr", "definition") and isinstance(v, str):
                    out.append(("panel " + str(title), v))
                elif k == "query" and isinstance(v, str) and "(" in v:
                    out.append(("variable " + str(title), v))
                else:
                    walk(v, title)
        elif isinstance(o, list):
            for v in o:
                walk(v, where)
    walk(dash, "dashboard")
    return out


# A metric name followed by an optional selector; PromQL functions and
# keywords are not prefixed raftkit_ or raftkit:.
USE = re.compile(r'\b(raftkit[_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?')
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def problems(exprs, records, exported):
    """Every use in exprs of a metric, label or label value the exposition
    lacks, or of an undefined recording rule."""
    bad = []
    for where, expr in exprs:
        for m in USE.finditer(expr):
            name, sel = m.group(1), m.group(2) or ""
            if ":" in name:
                if name not in records:
                    bad.append("%s: recording rule %s is not defined in %s" % (where, name, RULES))
                continue
            if name not in exported:
                bad.append("%s: metric %s is not exported" % (where, name))
                continue
            for label, op, value in MATCHER.findall(sel):
                if label == "__name__":
                    continue
                if label not in exported[name]:
                    bad.append("%s: %s has no label %s" % (where, name, label))
                elif op == "=" and "$" not in value and value not in exported[name][label]:
                    bad.append("%s: %s{%s} never has the value %r" % (where, name, label, value))
    return bad


def main():
    promtool = shutil.which("promtool")
    if not check("promtool is installed (Debian package prometheus, tools/deps.sh)", promtool):
        return
    r = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True)
    check("promtool check rules " + RULES, r.returncode == 0, r.stdout + r.stderr)
    r = subprocess.run([promtool, "test", "rules", RULES_TEST], capture_output=True, text=True)
    check("promtool test rules " + RULES_TEST, r.returncode == 0, r.stdout + r.stderr)

    with open(RULES) as f:
        rules = yaml.safe_load(f)
    with open(DASHBOARD) as f:
        dash = json.load(f)
    rexprs, records = rule_exprs(rules)
    dexprs = dashboard_exprs(dash)
    check("the rules have expressions", len(rexprs) >= 10, str(len(rexprs)))
    check("the dashboard has queries", len(dexprs) >= 20, str(len(dexprs)))

    tmp = tempfile.mkdtemp(prefix="raftkit-monitoring.")
    nodes = []
    try:
        nodes, peers = start3(BUILD, tmp)
        lead = wait_leader(nodes)
        if not check("a 3-node cluster elects a leader", lead is not None):
            return
        # Some writes, so that the latency summaries have samples.
        with subprocess.Popen([os.path.join(BUILD, "kv-client"), "--peers", peers, "--stdin"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True) as c:
            c.communicate("".join("put k%d v%d\n" % (i % 10, i) for i in range(50)), timeout=60)
        # Only followers heard from have a last-contact sample.
        check("the leader has heard from every follower",
              wait_for("contact with every follower", lambda: all(
                  r["last_contact_age_ms"] >= 0 for r in lead.status()["replicators"]), 30))
        exported = parse_exposition(n.get("/metrics") for n in nodes)
    finally:
        for n in nodes:
            n.stop()
        for n in nodes:
            report = n.sanitizer_report()
            check("no sanitizer report in the log of " + n.name, report is None, str(report))
        shutil.rmtree(tmp, ignore_errors=True)

    check("the leader exports replicator samples",
          "follower" in exported.get("raftkit_replicator_log_lags", {}))
    bad = problems(rexprs, records, exported)
    check("every metric, label and value the rules use is exported", not bad, "\n".join(bad))
    bad = problems(dexprs, records, exported)
    check("every metric, label and value the dashboard uses is exported", not bad, "\n".join(bad))
    # Endpoints with more than 16 groups export only the process series by
    # default: the alerts meant for them must need nothing else.
    proc = [(w, e) for w, e in rexprs if w.startswith("rule RaftkitProcess")]
    check("the RaftkitProcess* alerts use only the process series",
          len(proc) >= 3 and all(n.startswith("raftkit_process_") for _, e in proc
                                 for n, _ in USE.findall(e)), str(proc))
    # The check itself: a misspelt metric, a missing label, a state that
    # does not exist and an undefined recording rule are all caught.
    wrong = [("rule X", 'raftkit_no_such_metric > 0'),
             ("rule Y", 'raftkit_term{follower="a"} > 0'),
             ("rule Z", 'raftkit_state{state="SLEEPING"} == 1'),
             ("rule W", 'raftkit:not_recorded:sum > 0')]
    check("the check rejects names, labels and values that do not exist",
          len(problems(wrong, records, exported)) == 4, "\n".join(problems(wrong, records, exported)))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash of the test is a failure, with its reason
        check("monitoring test ran", False, repr(e))
    print("monitoring: %d passed, %d failed" % (check.passed, check.failed))
    sys.exit(0 if check.failed == 0 else 1)
