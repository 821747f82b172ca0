#!/usr/bin/python3
"""End-to-end test of the sharded kv store: 3 kv-server processes with
--shards S (groups kv-0 .. kv-(S-1) in each), several kv-client --shards S
processes writing distinct keys across every shard, and process faults:

  1. kill -9 the process that leads the most shards, restart it;
  2. SIGSTOP the process that then leads the most shards, SIGCONT it.

Writes go on during each fault: every shard must take new writes while the
victim is down or stopped. After each fault every acknowledged write of
every shard is read back with a linearizable (read_index) read and must
hold its value; at the end the restarted process must hold every
acknowledged write in its own replicas too (stale reads on it alone).

  tests/shard/sharded_kv_test.py [--shards S] [--clients C] [--build DIR]

Prints one line per check and "shard-e2e: N passed, M failed"; exits
non-zero on any failure. Waits are bounded but measure nothing.
"""
import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import kvcluster  # noqa: E402

GROUP = "kv"


def shard_of(key, shards, xxh=ctypes.CDLL("libxxhash.so.0").XXH64):
    """kv-client's routing (kv_client.c): XXH64 of the key, seed 0, mod S."""
    xxh.restype = ctypes.c_uint64
    xxh.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64)
    b = key.encode()
    return xxh(b, len(b), 0) % shards


class Server:
    """One kv-server process hosting every shard; restartable on its data."""

    def __init__(self, a, tmp, i, port, peers):
        self.a, self.i, self.peer = a, i, "127.0.0.1:%d" % port
        self.data = os.path.join(tmp, "n%d" % i)
        self.log_path = os.path.join(tmp, "n%d.log" % i)
        self.peers = peers
        self.proc = None
        self.stopped = False

    def start(self):
        env = dict(os.environ)
        cmd = [os.path.join(self.a.build, "kv-server"), "--group", GROUP, "--shards",
               str(self.a.shards), "--peer", self.peer, "--peers", self.peers, "--data",
               self.data, "--election-timeout-ms", "1000", "--log-level", "warn"]
        with open(self.log_path, "ab") as log:
            log.write(b"==== start\n")
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def signal(self, sig):
        self.proc.send_signal(sig)
        self.stopped = sig == signal.SIGSTOP

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        if self.stopped:
            self.signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class Client:
    """A long-lived kv-client --stdin: one command line in, one result line out."""

    def __init__(self, a, peers, extra=()):
        cmd = [os.path.join(a.build, "kv-client"), "--peers", peers, "--shards",
               str(a.shards), "--timeout-ms", "10000", "--stdin"] + list(extra)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)

    def run(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().rstrip("\n")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


class Writer(threading.Thread):
    """Puts distinct keys w<id>-<n> until stopped; records each outcome
    with the time it was acknowledged."""

    def __init__(self, wid, a, peers, stop, lock):
        super().__init__(daemon=True)
        self.wid, self.stop_ev, self.lock = wid, stop, lock
        self.client = Client(a, peers)
        self.acked = {}    # key -> (value, monotonic time of the OK)
        self.unknown = []  # keys whose write may or may not have been applied
        self.failed = []   # (key, line): certainly not applied

    def run(self):
        n = 0
        while not self.stop_ev.is_set():
            key, value = "w%d-%d" % (self.wid, n), "v%d" % n
            line = self.client.run("put %s %s" % (key, value))
            if line == "OK":
                with self.lock:
                    self.acked[key] = (value, time.monotonic())
            elif line.startswith("UNKNOWN"):
                self.unknown.append(key)
            else:
                self.failed.append((key, line))
            n += 1
        self.client.close()


def cli(a, peers, group, *args):
    cmd = [os.path.join(a.build, "raftkit-cli"), "--group", group, "--peers", peers,
           "--timeout-ms", "1000"] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout.strip()


def leaders(a, peers):
    """Shard -> leader peer (host:port) for the shards that name one."""
    out = {}
    for s in range(a.shards):
        rc, line = cli(a, peers, "%s-%d" % (GROUP, s), "get_leader")
        if rc == 0 and line:
            out[s] = ":".join(line.split()[-1].split(":")[:2])
    return out


def last_index(a, peers, shard):
    """The highest last log index the nodes of a shard's group report."""
    rc, out = cli(a, peers, "%s-%d" % (GROUP, shard), "status")
    best = 0
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) < 7:
            break  # the blank line before the replication table
        if f[4].isdigit():
            best = max(best, int(f[4]))
    return best


def busiest(servers, lead):
    """The server leading the most shards, and how many it leads."""
    counts = {s.peer: 0 for s in servers}
    for p in lead.values():
        if p in counts:
            counts[p] += 1
    peer = max(counts, key=counts.get)
    return next(s for s in servers if s.peer == peer), counts[peer]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--shards", type=int, default=16)
    ap.add_argument("--clients", type=int, default=4)
    a = ap.parse_args()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    check = kvcluster.Checks()
    tmp = tempfile.mkdtemp(prefix="raftkit-shard-")
    ports = kvcluster.free_ports(3)
    peers = ",".join("127.0.0.1:%d" % p for p in ports)
    servers = [Server(a, tmp, i + 1, ports[i], peers) for i in range(3)]
    writers, stop = [], threading.Event()
    try:
        for s in servers:
            s.start()
        lead = kvcluster.wait_for("a leader in every shard",
                                  lambda: (lambda m: m if len(m) == a.shards else None)(
                                      leaders(a, peers)), 60)
        check("every one of the %d shards elects a leader" % a.shards, lead is not None,
              "shards without a leader")
        if lead is None:
            return finish(check, servers, tmp)

        # One key per shard, found with the documented hash: every group
        # takes a write and serves it back, and the write lands in the log of
        # the group the hash names (its last index grows).
        probe, n = {}, 0
        while len(probe) < a.shards:
            k = "p%d" % n
            probe.setdefault(shard_of(k, a.shards), k)
            n += 1
        before = {s: last_index(a, peers, s) for s in probe}
        c = Client(a, peers)
        got = {s: c.run("put %s shard%d" % (k, s)) for s, k in probe.items()}
        check("a write to every shard is acknowledged", all(v == "OK" for v in got.values()),
              "\n".join("shard %d: %s" % (s, v) for s, v in got.items() if v != "OK"))
        grown = kvcluster.wait_for(
            "every group's log to grow",
            lambda: all(last_index(a, peers, s) > before[s] for s in probe), 30)
        check("each key went to group kv-(XXH64(key) mod %d)" % a.shards, grown,
              "groups whose log did not grow: %s" % [
                  s for s in probe if last_index(a, peers, s) <= before[s]])
        got = {s: c.run("get %s" % k) for s, k in probe.items()}
        check("and read back from every shard",
              all(v == "OK shard%d" % s for s, v in got.items()),
              "\n".join("shard %d: %s" % (s, v) for s, v in got.items()
                        if v != "OK shard%d" % s))
        rc, line = cli(a, peers, GROUP, "get_leader")
        check("the servers host no group named plain %s" % GROUP, rc != 0, line)
        wrong = Client(a, peers, ["--shards", str(a.shards + 1)])
        line = wrong.run("get p0")
        wrong.close()
        check("a client routing with another shard count is refused",
              line.startswith("FAIL") and "routes keys over %d shards" % (a.shards + 1) in line,
              line)

        lock = threading.Lock()
        writers = [Writer(w, a, peers, stop, lock) for w in range(a.clients)]
        for w in writers:
            w.start()

        def acked():
            out = {}
            with lock:
                for w in writers:
                    out.update(w.acked)
            return out

        def all_shards_write_since(t0, what):
            """Waits until every shard acknowledged a write after t0."""
            def done():
                seen = {shard_of(k, a.shards) for k, (_, t) in acked().items() if t > t0}
                return len(seen) == a.shards
            return kvcluster.wait_for(what, done, 90)

        def read_back(what):
            """Every acknowledged write so far, read through the leaders."""
            snap = acked()
            r = Client(a, peers)
            lost = []
            for k, (v, _) in sorted(snap.items()):
                for _ in range(5):
                    line = r.run("get " + k)
                    if not line.startswith(("FAIL", "UNKNOWN")):
                        break
                if line != "OK " + v:
                    lost.append("%s (shard %d): %s, want OK %s" % (k, shard_of(k, a.shards),
                                                                   line, v))
            r.close()
            check("%s: all %d acknowledged writes read back" % (what, len(snap)), not lost,
                  "\n".join(lost))

        check("writes flow into every shard",
              all_shards_write_since(time.monotonic(), "writes in every shard"))

        # ---- kill -9 the process leading the most shards ----
        victim, n = busiest(servers, leaders(a, peers))
        check("%s leads some shards (%d)" % (victim.peer, n), n > 0)
        t0 = time.monotonic()
        victim.kill9()
        check("with %s killed, every shard takes writes" % victim.peer,
              all_shards_write_since(t0, "writes in every shard after the kill"))
        read_back("after kill -9")
        victim.start()
        t0 = time.monotonic()
        check("after the restart every shard takes writes",
              all_shards_write_since(t0, "writes in every shard after the restart"))
        restarted = victim

        # ---- SIGSTOP the process leading the most shards now ----
        lead = leaders(a, peers)
        victim, n = busiest(servers, lead)
        check("%s leads some shards (%d) before SIGSTOP" % (victim.peer, n), n > 0)
        t0 = time.monotonic()
        victim.signal(signal.SIGSTOP)
        check("with %s stopped, every shard takes writes" % victim.peer,
              all_shards_write_since(t0, "writes in every shard during SIGSTOP"))
        victim.signal(signal.SIGCONT)
        t0 = time.monotonic()
        check("after SIGCONT every shard takes writes",
              all_shards_write_since(t0, "writes in every shard after SIGCONT"))
        read_back("after SIGSTOP/SIGCONT")

        stop.set()
        for w in writers:
            w.join()
        nunk = sum(len(w.unknown) for w in writers)
        fails = [f for w in writers for f in w.failed]
        check("no write failed outright (%d OK, %d UNKNOWN)" % (len(acked()), nunk), not fails,
              "\n".join("%s: %s" % f for f in fails[:20]))
        read_back("at the end")

        # The restarted process caught up in every shard: its own replicas
        # (stale reads on it alone) hold every acknowledged write.
        snap = acked()
        local = Client(a, restarted.peer, ["--read", "stale"])

        def caught_up():
            return all(local.run("get " + k) == "OK " + v for k, (v, _) in snap.items())
        check("the restarted %s holds every acknowledged write in every shard" % restarted.peer,
              kvcluster.wait_for("the restarted node to catch up", caught_up, 60))
        local.close()

        # The shard count is part of the data: another count is refused
        # before the server binds anything.
        other = servers[0]
        r = subprocess.run([os.path.join(a.build, "kv-server"), "--shards", str(a.shards * 2),
                            "--peer", other.peer, "--peers", peers, "--data", other.data],
                           capture_output=True, text=True, timeout=60)
        check("a data directory of %d shards refuses --shards %d" % (a.shards, a.shards * 2),
              r.returncode == 1 and "holds the data of %d shards" % a.shards in r.stderr,
              "exit %d: %s" % (r.returncode, r.stderr.strip()))
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM, a closed stdout): no server outlives
        # the test.
        for s in servers:
            if s.proc is not None and s.proc.poll() is None:
                s.kill9()
        raise
    finally:
        stop.set()
        for w in writers:
            if w.is_alive():
                w.join(timeout=60)
    return finish(check, servers, tmp)


def finish(check, servers, tmp):
    codes = [s.stop() for s in servers]
    check("every server stops cleanly on SIGTERM", all(c == 0 for c in codes),
          "exit statuses %s" % codes)
    reports = [r for r in (sanitizer_report(s.log_path) for s in servers) if r]
    check("no sanitizer report in the server logs", not reports, "\n".join(reports))
    print("shard-e2e: %d passed, %d failed" % (check.passed, check.failed))
    if check.failed == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("server data and logs kept in " + tmp)
    return 1 if check.failed else 0


def sanitizer_report(path):
    with open(path, errors="replace") as f:
        for line in f:
            if any(m in line for m in kvcluster.SANITIZER_MARKS):
                return "%s: %s" % (path, line.strip())
    return None


if __name__ == "__main__":
    sys.exit(main())
