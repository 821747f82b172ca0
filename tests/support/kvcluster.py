"""A kv-server cluster on loopback for Python tests: free ports, one conf
file per node with an admin endpoint, start/stop, /status and /metrics
reads, bounded waits, a scan of the node logs for sanitizer reports, and
the ok/FAIL check counter of the tests that use it."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class Checks:
    """check(name, cond, detail) prints "ok   name" or "FAIL name" with the
    detail (up to 40 lines), counts into passed and failed, returns cond."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def __call__(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok   " + name)
            return cond
        self.failed += 1
        lines = str(detail).splitlines()
        if len(lines) == 1:
            print("FAIL %s: %s" % (name, lines[0]))
        else:
            print("FAIL " + name)
            for line in lines[:40]:
                print("  " + line)
        return cond


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Node:
    """One kv-server process; peers is the initial configuration. The
    election timeout is twice the default, so that a busy test machine does
    not move leadership while a test watches the leader."""

    def __init__(self, build, tmp, name, group, port, admin, peers):
        self.name, self.peer, self.admin = name, "127.0.0.1:%d" % port, admin
        conf = os.path.join(tmp, name + ".conf")
        with open(conf, "w") as f:
            f.write("[raft]\ngroup = %s\npeer = %s\npeers = %s\ndata = %s\n"
                    "election_timeout_ms = 2000\nadmin_port = %d\n[log]\nlevel = info\n"
                    % (group, self.peer, peers, os.path.join(tmp, name), admin))
        self.log_path = os.path.join(tmp, name + ".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([os.path.join(build, "kv-server"), "--conf", conf],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def get(self, path):
        url = "http://127.0.0.1:%d%s" % (self.admin, path)
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()

    def status(self):
        return json.loads(self.get("/status"))

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()

    def sanitizer_report(self):
        """The first line of a sanitizer report in the node's log, or None."""
        with open(self.log_path, errors="replace") as f:
            for line in f:
                if any(m in line for m in SANITIZER_MARKS):
                    return line.strip()
        return None


def start3(build, tmp, group="kv"):
    """Three nodes of one group; returns (nodes, peers string)."""
    ports = free_ports(6)
    peers = ",".join("127.0.0.1:%d" % p for p in ports[:3])
    nodes = [Node(build, tmp, "n%d" % (i + 1), group, ports[i], ports[3 + i], peers)
             for i in range(3)]
    return nodes, peers


def wait_for(what, fn, timeout):
    """Polls fn() every 0.2 s until it returns something true (returned);
    None after timeout seconds. OSError and ValueError count as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
            if v:
                return v
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            print("timed out waiting for " + what)
            return None
        time.sleep(0.2)


def wait_leader(nodes, timeout=30):
    """The node that leads with every other node reachable, or None."""
    def leader():
        for n in nodes:
            st = n.status()
            reps = st.get("replicators", [])
            if st["state"] == "LEADER" and len(reps) == len(nodes) - 1 and \
                    all(r["reachable"] for r in reps):
                return n
        return None
    return wait_for("a leader that reaches every follower", leader, timeout)
