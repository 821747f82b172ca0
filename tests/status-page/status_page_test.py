#!/usr/bin/python3
"""The admin endpoint's status page in a real browser (headless Chromium).

Starts a 3-node kv cluster with admin endpoints, loads the leader's "/" in
Chromium (--dump-dom, after the page's script ran and refreshed from
/status) and checks the rendered DOM: the leader is shown, both followers
are listed as reachable; then kills a follower with SIGKILL and reloads the
page until that follower's row turns unreachable (at most 60 s). Saves a
screenshot to $BUILD/status-page.png. A second, single-node cluster whose
group id is HTML checks that cluster data is rendered as text. Also checks
the headers (Content-Type with charset, a Content-Security-Policy without
inline script) and that the page's script builds no markup from strings.
Last, 250 groups served by tools/metrics_bench --serve: the page shows
their summary and pages of 100 (#offset=200 is the last page).

Reads the build directory from $BUILD (set by `make test`), default build.
"""
import html.parser
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from kvcluster import Checks, Node, free_ports, start3, wait_for, wait_leader  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
KV_SERVER = os.path.join(BUILD, "kv-server")
KV_CLIENT = os.path.join(BUILD, "kv-client")
METRICS_BENCH = os.path.join(BUILD, "tools", "metrics_bench")
EVIL_GROUP = "<img src=x onerror=\"document.title='pwned'\"><b>x</b>&amp;"

check = Checks()


def chromium(tmp, url, *extra, budget_ms=5000):
    """Loads url in headless Chromium; returns stdout (the DOM with --dump-dom).
    The page gets budget_ms of virtual time: its script runs and refreshes a
    few times from /status before the DOM or the screenshot is taken."""
    args = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + os.path.join(tmp, "profile"),
            "--virtual-time-budget=%d" % budget_ms] + list(extra) + [url]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         start_new_session=True, text=True)
    try:
        out, _ = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise OSError("chromium did not finish within 90 s")
    return out


class Dom(html.parser.HTMLParser):
    """Elements of the dumped DOM: tag, attributes, and their text."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements, self.open = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        e = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(e)
        if tag not in ("meta", "link", "br", "img", "input", "hr"):
            self.open.append(e)

    def handle_endtag(self, tag):
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i]["tag"] == tag:
                del self.open[i:]
                break

    def handle_data(self, data):
        for e in self.open:
            e["text"] += data

    def find(self, tag=None, cls=None, **attrs):
        out = []
        for e in self.elements:
            if tag and e["tag"] != tag:
                continue
            if cls and cls not in (e["attrs"].get("class") or "").split():
                continue
            if any(e["attrs"].get(k.replace("_", "-")) != v for k, v in attrs.items()):
                continue
            out.append(e)
        return out


def follower_rows(dom):
    return {e["attrs"]["data-peer"]: e for e in dom.find("tr", cls="follower")}


def main():
    for prog in (KV_SERVER, KV_CLIENT, METRICS_BENCH):
        if not os.access(prog, os.X_OK):
            print("status-page: %s not built" % prog)
            return 1
    if shutil.which("chromium") is None:
        print("status-page: chromium missing (tools/deps.sh installs it)")
        print("status-page: 0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="raftkit-status-page.")
    nodes = []
    try:
        rc = run(tmp, nodes)
    finally:
        for n in nodes:
            n.stop()
        for n in nodes:
            report = n.sanitizer_report()
            check("no sanitizer report in the log of " + n.name, report is None, str(report))
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


def run(tmp, nodes):
    started, peers = start3(BUILD, tmp)
    nodes.extend(started)
    lead = wait_leader(nodes)
    if not check("the cluster elects a leader", lead is not None):
        return 1
    followers = [n for n in nodes if n is not lead]
    page = "http://127.0.0.1:%d/" % lead.admin

    # ---- headers and the page's own files ----
    with urllib.request.urlopen(page, timeout=5) as r:
        body = r.read().decode()
        ctype, csp = r.headers.get("Content-Type"), r.headers.get("Content-Security-Policy") or ""
    check("/ is text/html; charset=utf-8", ctype == "text/html; charset=utf-8", str(ctype))
    check("the CSP allows only this origin's script, no inline script",
          "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp, csp)
    check("the page loads nothing from another origin",
          not re.search(r'(src|href)\s*=\s*"(https?:)?//', body), body[:200])
    with urllib.request.urlopen(page + "status.js", timeout=5) as r:
        js = r.read().decode()
        jtype = r.headers.get("Content-Type")
    check("/status.js is served as text/javascript; charset=utf-8",
          jtype == "text/javascript; charset=utf-8", str(jtype))
    check("the script builds no markup from strings",
          not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", js))

    # ---- the rendered page: leader and followers ----
    with subprocess.Popen([KV_CLIENT, "--peers", peers, "--stdin"], stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, text=True) as client:
        client.communicate("".join("put k%d v%d\n" % (i % 20, i) for i in range(200)), timeout=60)
    dom = Dom(chromium(tmp, page, "--dump-dom"))
    sec = dom.find("section", cls="group", data_group="kv")
    check("the page shows group kv", len(sec) == 1)
    check("the page shows this node as LEADER",
          [e["text"] for e in dom.find("span", cls="badge")] == ["LEADER"])
    lead_dd = dom.find("dd", cls="leader")
    check("the page names the leader", len(lead_dd) == 1 and lead_dd[0]["text"] == lead.peer,
          str(lead_dd))
    rows = follower_rows(dom)
    check("both followers are listed", sorted(rows) == sorted(n.peer for n in followers),
          str(sorted(rows)))
    check("both followers are shown reachable",
          all("unreachable" not in r["attrs"]["class"] for r in rows.values()))
    check("the page shows the applied entries",
          any(re.search(r"applied (\d+)", e["text"]) and int(re.search(r"applied (\d+)", e["text"]).group(1)) >= 200
              for e in dom.find("dd")))
    check("the page draws the apply-rate chart", len(dom.find("polyline")) == 1)

    # ---- a killed follower turns unreachable ----
    victim = followers[1]
    victim.stop(signal.SIGKILL)

    def shown_unreachable():
        rows = follower_rows(Dom(chromium(tmp, page, "--dump-dom")))
        r = rows.get(victim.peer)
        return r is not None and "unreachable" in r["attrs"]["class"].split() and \
            "UNREACHABLE" in r["text"] and rows
    rows = wait_for("the killed follower shown unreachable", shown_unreachable, 60)
    check("a killed follower turns unreachable on the page", rows is not None)
    if rows:
        other = rows.get(followers[0].peer)
        check("the live follower stays reachable on the page",
              other is not None and "unreachable" not in other["attrs"]["class"].split())
    shot = os.path.join(BUILD, "status-page.png")
    if os.path.exists(shot):
        os.unlink(shot)
    # With writes going on, so that the chart has something to show.
    with subprocess.Popen([KV_CLIENT, "--peers", peers, "--stdin"], stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, text=True) as client:
        client.stdin.write("".join("put k%d v%d\n" % (i % 20, i) for i in range(3000)))
        client.stdin.flush()
        chromium(tmp, page, "--window-size=900,520", "--screenshot=" + os.path.abspath(shot),
                 budget_ms=30000)
        client.communicate(timeout=120)
    check("a screenshot is saved in " + shot, os.path.getsize(shot) > 10000 if os.path.exists(shot) else False)

    # ---- many groups: the summary and pages of 100 ----
    bench = subprocess.Popen([METRICS_BENCH, "--groups", "250", "--serve"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        m, line = None, "(nothing)"
        while m is None and line:  # it prints its figures first
            line = bench.stdout.readline()
            m = re.match(r"serving on port (\d+)", line)
        if check("metrics_bench serves 250 groups", m is not None, line):
            many = "http://127.0.0.1:%s/" % m.group(1)
            dom = Dom(chromium(tmp, many, "--dump-dom"))
            counts = [e["text"] for e in dom.find("span", cls="count")]
            check("the summary counts 250 groups, 84 leading here",
                  counts[:2] == ["250", "84"], str(counts))
            ids = [e["text"] for e in dom.find("span", cls="group-id")]
            check("the first page shows groups 1 to 100",
                  ids == ["g%05d" % i for i in range(100)], str(ids[:3]) + "... %d" % len(ids))
            rng = [e["text"] for e in dom.find("span", id="range")]
            check("the pager says where we are", rng == ["groups 1-100 of 250"], str(rng))
            dom = Dom(chromium(tmp, many + "#offset=200", "--dump-dom"))
            ids = [e["text"] for e in dom.find("span", cls="group-id")]
            check("#offset=200 shows the last 50 groups",
                  ids == ["g%05d" % i for i in range(200, 250)], str(ids[:3]) + "... %d" % len(ids))
            nxt = dom.find("button", id="next")
            check("the last page has no next page", len(nxt) == 1 and "disabled" in nxt[0]["attrs"])
    finally:
        bench.stdin.close()
        bench.wait(timeout=30)

    # ---- cluster data is text, never markup ----
    port, admin = free_ports(2)
    evil = Node(BUILD, tmp, "evil", EVIL_GROUP, port, admin, "127.0.0.1:%d" % port)
    nodes.append(evil)
    ok = wait_for("the single-node group to lead", lambda: evil.status()["state"] == "LEADER", 30)
    check("a group whose id is HTML starts", bool(ok))
    out = chromium(tmp, "http://127.0.0.1:%d/" % evil.admin, "--dump-dom")
    dom = Dom(out)
    ids = [e["text"] for e in dom.find("span", cls="group-id")]
    check("the HTML group id is shown as text", ids == [EVIL_GROUP], str(ids))
    check("no element was made from it", not dom.find("img") and not dom.find("b"),
          str([e["tag"] for e in dom.find("img") + dom.find("b")]))
    check("its script did not run", "pwned" not in [e["text"] for e in dom.find("title")])
    return 0


if __name__ == "__main__":
    rc = 1
    try:
        rc = main()
    except Exception as e:  # a crash of the test is a failure, with its reason
        check("status-page test ran", False, repr(e))
    print("status-page: %d passed, %d failed" % (check.passed, check.failed))
    sys.exit(0 if rc == 0 and check.failed == 0 else 1)
