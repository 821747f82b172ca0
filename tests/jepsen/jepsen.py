#!/usr/bin/python3
"""`make jepsen`: is what kv clients observe linearizable under faults?

Starts an N-node kv cluster of real kv-server processes on 127.0.0.1,
drives it with concurrent workers (one long-lived `kv-client --stdin` each)
doing get/put/cas/del on a small key set, records every operation's
invocation and completion, injects faults from a seeded nemesis (kill -9 and
restart, SIGSTOP/SIGCONT, network partitions, membership churn, power
loss, clock jumps), heals them,
does final reads, and checks each key's history for linearizability
(linearizability.py). The last line is

  jepsen: valid|INVALID seed=S ops=N ok=N unknown=N faults=N nonlinearizable_keys=...

and the exit status is 0 only when the history is valid and enough
operations completed. Run with --help for the options.

Partitions: each node runs under its own uid (setpriv) and an iptables chain
this run creates drops the TCP packets that one node's uid sends to another
node's port (owner match, loopback only). The chain and every process are
removed at exit, also on Ctrl-C or failure. Without root or iptables the
partition faults are left out, with a message.

Power loss: with the powerloss fault the nodes run build/tests/kv-server-pl,
which logs every write to its LMDB file and journal as unsynced until an
fdatasync covers it (the storage power-loss test's tracking). The fault
kills a minority, or every node at once, with SIGKILL and then, with
powerloss-cut, lets each page written but not synced survive or not at
random, as a power cut may; what was acknowledged must still be there.
Writes before a node's data files exist (its very first start) are not
covered, nor directory entries; snapshot files count as synced once written.

Shards: with --shards S every node hosts the groups kv-0 .. kv-(S-1) and
every client routes each key to its group (kv-server and kv-client
--shards S); the membership fault removes and re-adds a node in every group,
and leader-directed faults follow kv-0's leader. The powerloss fault needs
the node's log in DATA/log and is left out while sharded nodes keep a log
per group.

Clock jumps: with the clock fault every node runs under libfaketime (Debian's
faketime package) with its own offset file; the fault moves the clocks of a
minority (often the leader) forward or back by up to a few seconds, which
libuv's timers see as monotonic time jumping: a jump back stalls a node's
ticks (heartbeats, election and lease timers) while its I/O goes on. Reads in
the default mode must stay linearizable; lease reads (--server-flags
"--read-only lease") assume bounded clock drift, which these jumps break.
"""
import argparse
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linearizability as lin  # noqa: E402

ALL_FAULTS = ("kill", "pause", "partition", "membership", "powerloss", "clock")
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def log(msg):
    print("jepsen: [%6.1f] %s" % (time.monotonic() - T0, msg), flush=True)


T0 = time.monotonic()


def now():
    return time.monotonic_ns()


def free_port_base(n, rng):
    """A base port such that base+1..base+n are free on 127.0.0.1."""
    for _ in range(200):
        base = rng.randrange(20000, 30000 - n - 1)
        ok = True
        for i in range(1, n + 1):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", base + i))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return base
    raise SystemExit("jepsen: no free ports found")


class Cluster:
    def __init__(self, a, out):
        self.a, self.out, self.n = a, out, a.nodes
        # Where the node processes' binaries, data and logs live: the build
        # and run directories, unless other uids cannot reach them (probe).
        self.bin, self.nodes_dir, self.scratch = a.build, out, None
        self.base = free_port_base(self.n, random.Random())
        self.root = os.geteuid() == 0
        self.iptables = shutil.which("iptables") if self.root else None
        self.chain = "RKJEP%d" % os.getpid()
        self.chain_made = False
        # Per-node uids only when partitions are wanted: a node under another
        # uid cannot read root's files (TLS keys, for instance).
        self.use_uids = ("partition" in a.faults and self.root and self.iptables is not None
                         and self.probe())
        self.procs = {}
        self.paused = set()
        self.crashes = []  # (node, exit status) of nodes that ended unasked
        self.lock = threading.Lock()
        self.members = set(range(1, self.n + 1))
        # The groups of each node (one, or one per shard), and per node the
        # groups it was removed from and is not back in yet.
        self.groups = ["kv"] if a.shards == 1 else ["kv-%d" % s for s in range(a.shards)]
        self.removed = {}
        self.powerloss = "powerloss" in a.faults
        self.pl_ready = set()  # nodes whose data files existed at their start
        self.clock = "clock" in a.faults
        self.skew = {}  # node -> clock offset in seconds (clock fault)

    def reachable(self):
        u = str(self.uid(1))
        return subprocess.run(["setpriv", "--reuid=" + u, "--regid=" + u, "--clear-groups",
                               "test", "-x", os.path.join(self.bin, "kv-server"), "-a", "-x",
                               self.nodes_dir], capture_output=True).returncode == 0

    def probe(self):
        """Partitions need each node under its own uid, which must reach the
        binaries and the run directory, and an iptables chain of our own.
        When a parent directory is closed to other uids (a checkout under
        /root), the nodes run from a scratch directory of their own: copies
        of the server binaries, data and logs, moved to the run directory at
        teardown."""
        if not self.reachable():
            self.scratch = tempfile.mkdtemp(prefix="raftkit-jepsen-")
            os.chmod(self.scratch, 0o755)
            self.bin = os.path.join(self.scratch, "bin")
            os.makedirs(os.path.join(self.bin, "tests"))
            for b in ("kv-server", os.path.join("tests", "kv-server-pl")):
                if os.path.exists(os.path.join(self.a.build, b)):
                    shutil.copy2(os.path.join(self.a.build, b), os.path.join(self.bin, b))
            self.nodes_dir = os.path.join(self.scratch, "nodes")
            os.makedirs(self.nodes_dir, mode=0o755)
            log("%s is closed to other uids: nodes run from %s" %
                (os.path.abspath(self.a.build), self.scratch))
        if not self.reachable():
            log("partitions left out: another uid cannot reach %s" % self.nodes_dir)
            return False
        if self.ipt("-N", self.chain).returncode != 0:
            log("partitions left out: iptables cannot create a chain here")
            return False
        self.chain_made = True
        if self.ipt("-I", "OUTPUT", "-j", self.chain).returncode != 0:
            log("partitions left out: iptables cannot hook OUTPUT here")
            return False
        return True

    def port(self, i):
        return self.base + i

    def peer(self, i):
        return "127.0.0.1:%d" % self.port(i)

    def peers(self, nodes=None):
        return ",".join(self.peer(i) for i in sorted(nodes or range(1, self.n + 1)))

    def uid(self, i):
        # Unique per run (ports are), so runs side by side never share rules.
        return 300000 + self.port(i)

    def data(self, i):
        return os.path.join(self.nodes_dir, "n%d" % i)

    def log_dir(self, i):
        return os.path.join(self.data(i), "log")

    def clock_file(self, i):
        return os.path.join(self.nodes_dir, "n%d.faketime" % i)

    def set_clock(self, i, offset):
        """Node i's clocks run offset seconds from the real ones (libfaketime
        reads the file at most once a second)."""
        self.skew[i] = offset
        tmp = self.clock_file(i) + ".tmp"
        with open(tmp, "w") as f:
            f.write("%+.3f\n" % offset)
        os.chmod(tmp, 0o644)
        os.rename(tmp, self.clock_file(i))

    def pl_tool(self, *args):
        r = subprocess.run([os.path.join(self.a.build, "tests", "powerloss-cut")] + list(args),
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("powerloss-cut %s: %s" % (" ".join(args), r.stderr.strip()))
        return r.stdout.strip()

    def start(self, i):
        d = self.data(i)
        os.makedirs(d, exist_ok=True)
        env = None
        server = "kv-server"
        if self.powerloss:
            # What is in the files now is on the disk; from here on, writes
            # are tracked until synced. A node without files yet creates
            # them untracked: it cannot lose power before its next start.
            server = os.path.join("tests", "kv-server-pl")
            env = dict(os.environ, RAFTKIT_POWERLOSS_DIR=self.log_dir(i))
            self.pl_ready.discard(i)
            if os.path.exists(os.path.join(self.log_dir(i), "data.mdb")):
                self.pl_tool("init", self.log_dir(i))
                self.pl_ready.add(i)
        pre = []
        if self.clock:
            # Through env(1), so that only kv-server loads libfaketime (not
            # setpriv, whose shared clock state the node's uid cannot open).
            self.set_clock(i, self.skew.get(i, 0.0))
            pre = ["env", "LD_PRELOAD=" + FAKETIME_LIB,
                   "FAKETIME_TIMESTAMP_FILE=" + os.path.abspath(self.clock_file(i)),
                   "FAKETIME_CACHE_DURATION=1", "FAKETIME_DONT_RESET=1",
                   "ASAN_OPTIONS=%s:verify_asan_link_order=0" % os.environ.get("ASAN_OPTIONS", "")]
        cmd = pre + [os.path.join(self.bin, server), "--group", "kv", "--shards",
                     str(self.a.shards), "--peer", self.peer(i), "--peers", self.peers(),
                     "--data", d, "--snapshot-interval-s", "5", "--election-timeout-ms",
                     str(self.a.election_timeout_ms), "--log-level", "info"]
        cmd += self.a.server_flags.split()
        if self.use_uids:
            u = self.uid(i)
            for dirpath, _, files in os.walk(d):
                os.chown(dirpath, u, u)
                for f in files:
                    os.chown(os.path.join(dirpath, f), u, u)
            cmd = ["setpriv", "--reuid=%d" % u, "--regid=%d" % u, "--clear-groups"] + cmd
        lf = open(os.path.join(self.nodes_dir, "n%d.log" % i), "ab")
        lf.write(b"==== jepsen: start node %d\n" % i)
        lf.flush()
        self.procs[i] = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        lf.close()

    def kill(self, i, sig=signal.SIGKILL):
        p = self.procs.pop(i, None)
        if p is None:
            return
        try:
            p.send_signal(sig)  # SIGKILL also ends a stopped process
            p.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            p.kill()
            p.wait()
        self.paused.discard(i)

    def reap(self):
        """Notes nodes that exited without being killed: a crash."""
        for i, p in list(self.procs.items()):
            if p.poll() is not None:
                self.crashes.append((i, p.returncode))
                log("node %d exited by itself with status %d (see n%d.log)" % (i, p.returncode, i))
                del self.procs[i]
                self.paused.discard(i)

    def sanitizer_reports(self):
        """Nodes whose log holds an ASan/UBSan report (sanitized builds)."""
        bad = []
        for i in range(1, self.n + 1):
            try:
                with open(os.path.join(self.out, "n%d.log" % i), "rb") as f:
                    text = f.read()
            except OSError:
                continue
            if b"ERROR: AddressSanitizer" in text or b"runtime error:" in text or \
                    b"ERROR: LeakSanitizer" in text:
                bad.append(i)
        return bad

    def signal(self, i, sig):
        p = self.procs.get(i)
        if p is not None and p.poll() is None:
            p.send_signal(sig)
            if sig == signal.SIGSTOP:
                self.paused.add(i)
            elif sig == signal.SIGCONT:
                self.paused.discard(i)

    def cli(self, *args, peers=None, timeout_ms=3000, group=None):
        """raftkit-cli on group (default: the first group, kv or kv-0)."""
        cmd = [os.path.join(self.a.build, "raftkit-cli"), "--group", group or self.groups[0],
               "--peers",
               peers or self.peers(), "--timeout-ms", str(timeout_ms)] + \
            self.a.cli_flags.split() + list(args)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_ms / 1000 + 10)
        except subprocess.TimeoutExpired:
            return 3, "timeout"
        return r.returncode, (r.stdout + r.stderr).strip()

    # ---- partitions (iptables owner match) ----
    def ipt(self, *args):
        return subprocess.run([self.iptables, "-w"] + list(args), capture_output=True, text=True)

    def cut(self, pairs):
        """Drops packets from node a's uid to node b's port, for (a, b) in pairs."""
        for a, b in pairs:
            self.ipt("-A", self.chain, "-o", "lo", "-p", "tcp", "-d", "127.0.0.1", "--dport",
                     str(self.port(b)), "-m", "owner", "--uid-owner", str(self.uid(a)), "-j",
                     "DROP")

    def heal_net(self):
        if self.chain_made:
            self.ipt("-F", self.chain)

    def teardown(self):
        for i in list(self.procs):
            self.signal(i, signal.SIGCONT)
            self.kill(i)
        if self.chain_made:
            self.ipt("-D", "OUTPUT", "-j", self.chain)
            self.ipt("-F", self.chain)
            self.ipt("-X", self.chain)
            self.chain_made = False
        if self.scratch is not None:
            for name in os.listdir(self.nodes_dir):
                shutil.move(os.path.join(self.nodes_dir, name), os.path.join(self.out, name))
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch, self.nodes_dir, self.bin = None, self.out, self.a.build

    def leader_node(self):
        """The node the cluster names as leader now, or None."""
        rc, out = self.cli("get_leader", timeout_ms=1000)
        if rc != 0 or not out:
            return None
        for i in range(1, self.n + 1):
            if ":".join(out.split()[-1].split(":")[:2]) == self.peer(i):
                return i
        return None

    def wait_leader(self, limit_s=30):
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            rc, out = self.cli("get_leader", timeout_ms=1000)
            if rc == 0:
                return out.split()[-1] if out else ""
            time.sleep(0.2)
        return None


class Worker(threading.Thread):
    def __init__(self, wid, a, cluster, keys, history, hlock, stop, seed, shared):
        super().__init__(daemon=True)
        self.wid, self.a, self.c, self.keys = wid, a, cluster, keys
        self.history, self.hlock, self.stop = history, hlock, stop
        self.rng = random.Random(seed)
        self.shared = shared
        self.proc = None
        self.seq = 0

    def spawn(self):
        cmd = [os.path.join(self.a.build, "kv-client"), "--peers", self.c.peers(), "--shards",
               str(self.a.shards), "--timeout-ms", str(self.a.op_timeout_ms), "--stdin"] + \
            self.a.client_flags.split()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, bufsize=0)

    def close(self):
        if self.proc:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def request(self, line):
        """Sends one command; returns the answer line, or None on timeout."""
        if self.proc is None:
            self.spawn()
        try:
            self.proc.stdin.write((line + "\n").encode())
        except OSError:
            self.close()
            return None
        limit = time.monotonic() + self.a.op_timeout_ms / 1000 + 10
        buf = b""
        fd = self.proc.stdout.fileno()
        while time.monotonic() < limit:
            r, _, _ = select.select([fd], [], [], max(0.0, limit - time.monotonic()))
            if not r:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            if b"\n" in buf:
                return buf.split(b"\n", 1)[0].decode(errors="replace")
        self.close()  # no answer: its outcome is unknown; start a new client
        return None

    def one(self, key):
        self.seq += 1
        r = self.rng.random()
        op = {"p": self.wid, "k": key}
        if r < 0.4:
            op["f"] = "get"
            line = "get %s" % key
        elif r < 0.65:
            op["f"], op["v"] = "put", "w%d-%d" % (self.wid, self.seq)
            line = "put %s %s" % (key, op["v"])
        elif r < 0.9:
            old = self.shared.get(key) or "w0-0"
            op["f"], op["old"], op["new"] = "cas", old, "w%d-%d" % (self.wid, self.seq)
            line = "cas %s %s %s" % (key, old, op["new"])
        else:
            op["f"] = "del"
            line = "del %s" % key
        self.record(op, line)

    def record(self, op, line):
        op["t0"] = now()
        ans = self.request(line)
        op["t1"] = now()
        if ans is None:
            op["r"] = "unknown"
        else:
            word = ans.split(" ", 1)
            op["r"] = {"OK": "ok", "NOT_FOUND": "not_found", "MISMATCH": "mismatch",
                       "UNKNOWN": "unknown", "FAIL": "fail"}.get(word[0], "fail")
            if op["r"] == "fail" or op["r"] == "unknown":
                op["why"] = ans
            if op["f"] == "get" and op["r"] == "ok":
                op["got"] = word[1] if len(word) > 1 else ""
                self.shared[op["k"]] = op["got"]
            elif op["r"] == "ok" and op["f"] in ("put", "cas"):
                self.shared[op["k"]] = op.get("v") or op.get("new")
        with self.hlock:
            self.history.append(op)

    def run(self):
        try:
            # Paced (exponential gaps around 1/rate) so that per-key
            # histories stay checkable while operations still overlap.
            while not self.stop.is_set():
                self.one(self.rng.choice(self.keys))
                if self.a.rate > 0:
                    self.stop.wait(self.rng.expovariate(self.a.rate))
        finally:
            self.close()


class Nemesis(threading.Thread):
    def __init__(self, a, c, rng, stop, events):
        super().__init__(daemon=True)
        self.a, self.c, self.rng, self.stop, self.events = a, c, rng, stop, events
        self.faults = [f for f in a.faults if f in ALL_FAULTS]
        if not c.use_uids:
            for f in ("partition",):
                if f in self.faults:
                    self.faults.remove(f)
                    log("partition fault left out (needs root, iptables and per-node uids)")
        if a.shards > 1 and "powerloss" in self.faults:
            self.faults.remove("powerloss")
            log("powerloss fault left out (sharded nodes keep a log per group)")
        self.count = 0
        self.error = None
        if not self.faults and a.faults:
            log("no faults left to inject")

    def sleep(self, s):
        return self.stop.wait(s)

    def note(self, what, fault=False):
        self.count += fault
        self.events.append((now(), what))
        log(what)

    def run(self):
        try:
            while not self.sleep(self.rng.uniform(1.0, 3.0)):
                self.c.reap()
                if not self.faults:
                    continue
                f = self.rng.choice(self.faults)
                getattr(self, "f_" + f)()
        except Exception as e:  # reported by the main thread
            self.error = e

    def hold(self):
        self.sleep(self.rng.uniform(2.0, 6.0))

    def minority(self):
        nodes = sorted(self.c.members)
        k = self.rng.randint(1, (len(nodes) - 1) // 2 or 1)
        return self.rng.sample(nodes, k)

    def f_kill(self):
        victims = self.minority()
        for i in victims:
            self.c.kill(i)
        self.note("kill -9 %s" % victims, True)
        self.hold()
        for i in victims:
            self.c.start(i)
        self.note("restart %s" % victims)

    def f_powerloss(self):
        # A minority, or the whole cluster at once (only a majority losing
        # unsynced writes together can lose an acknowledged one).
        nodes = sorted(self.c.members)
        victims = nodes if self.rng.random() < 0.4 else self.minority()
        lost = []
        for i in victims:
            self.c.kill(i)
        for i in victims:
            if i in self.c.pl_ready:
                out = self.c.pl_tool("cut", self.c.log_dir(i), str(self.rng.randrange(2**63)))
                lost.append("%d: %s" % (i, out.split(": ")[-1]))
            else:
                lost.append("%d: files new since start, plain kill" % i)
        self.note("power loss %s (%s)" % (victims, "; ".join(lost)), True)
        self.hold()
        for i in victims:
            self.c.start(i)
        self.note("restart %s" % victims)

    def f_clock(self):
        nodes = sorted(self.c.members)
        leader = self.c.leader_node()
        if leader is not None and self.c.use_uids and self.rng.random() < 0.4:
            # The case leases are about: the leader's clock falls behind (its
            # election and lease timers stand still) while it is cut off and
            # the others elect a new leader. Under load a stalled leader
            # still sends entries, so without the cut nobody would notice.
            delta = -self.rng.uniform(2.5, 5.0)
            self.c.set_clock(leader, self.c.skew.get(leader, 0.0) + delta)
            # libfaketime reads the file within a second: the cut comes when
            # the stall has begun, and it outlasts an election.
            self.sleep(1.1)
            others = [j for j in range(1, self.c.n + 1) if j != leader]
            self.c.cut([(leader, j) for j in others] + [(j, leader) for j in others])
            self.note("clock jump %d %+.1fs (leader), partition [%d] | rest" %
                      (leader, delta, leader), True)
            self.hold()
            self.c.heal_net()
            self.note("heal network")
        else:
            victims = self.minority()
            jumps = []
            for i in victims:
                delta = self.rng.choice([-1, 1]) * self.rng.uniform(0.5, 4.0)
                self.c.set_clock(i, self.c.skew.get(i, 0.0) + delta)
                jumps.append("%d %+.1fs" % (i, delta))
            self.note("clock jump %s" % ", ".join(jumps), True)
            self.hold()
        if self.rng.random() < 0.5:
            for i in nodes:
                self.c.set_clock(i, 0.0)
            self.note("clocks reset")

    def f_pause(self):
        victims = self.minority()
        for i in victims:
            self.c.signal(i, signal.SIGSTOP)
        self.note("SIGSTOP %s" % victims, True)
        self.hold()
        for i in victims:
            self.c.signal(i, signal.SIGCONT)
        self.note("SIGCONT %s" % victims)

    def f_partition(self):
        nodes = list(range(1, self.c.n + 1))
        self.rng.shuffle(nodes)
        kind = self.rng.choice(["halves", "isolate", "bridge", "oneway"])
        pairs = []
        if kind == "halves" or (kind == "bridge" and len(nodes) < 3):
            k = len(nodes) // 2
            a, b = nodes[:k], nodes[k:]
            pairs = [(x, y) for x in a for y in b] + [(y, x) for x in a for y in b]
            desc = "%s | %s" % (sorted(a), sorted(b))
        elif kind == "isolate":
            a, b = nodes[:1], nodes[1:]
            pairs = [(x, y) for x in a for y in b] + [(y, x) for x in a for y in b]
            desc = "%s | %s" % (a, sorted(b))
        elif kind == "bridge":
            # Two sides that only the bridge node talks to.
            mid = nodes[0]
            rest = nodes[1:]
            k = len(rest) // 2
            a, b = rest[:k], rest[k:]
            pairs = [(x, y) for x in a for y in b] + [(y, x) for x in a for y in b]
            desc = "%s | %d | %s (bridge)" % (sorted(a), mid, sorted(b))
        else:
            # One way: the victim's packets to the others are dropped, theirs reach it.
            v = nodes[0]
            pairs = [(v, y) for y in nodes[1:]]
            desc = "%d -/-> others (one-way)" % v
        self.c.cut(pairs)
        self.note("partition %s" % desc, True)
        self.hold()
        self.c.heal_net()
        self.note("heal network")

    def f_membership(self):
        nodes = sorted(self.c.members)
        if len(nodes) < 3:
            return
        v = self.rng.choice(nodes)
        removed, out = set(), ""
        for g in self.c.groups:
            rc, out = self.c.cli("remove_peer", self.c.peer(v), group=g)
            if rc == 0:
                removed.add(g)
        if not removed:
            self.note("remove_peer %d refused (%s)" % (v, out.splitlines()[-1] if out else rc))
            return
        # Its data may go only when no group counts it as a member any more.
        wipe = len(removed) == len(self.c.groups) and self.rng.random() < 0.5
        self.c.members.discard(v)
        self.c.removed[v] = removed
        self.note("remove_peer %d%s" % (v, "" if len(removed) == len(self.c.groups) else
                                        " from %d of %d groups" % (len(removed),
                                                                   len(self.c.groups))), True)
        self.c.kill(v)
        if wipe:
            shutil.rmtree(self.c.data(v), ignore_errors=True)
        self.c.start(v)
        self.hold()
        self.readd(v, wipe)

    def readd(self, v, wipe=False):
        """Adds v back to every group it was removed from."""
        pending = self.c.removed.get(v, set(self.c.groups))
        out = ""
        for _ in range(20):
            for g in sorted(pending):
                rc, out = self.c.cli("add_peer", self.c.peer(v), group=g)
                if rc == 0:
                    pending.discard(g)
            if not pending:
                self.c.removed.pop(v, None)
                self.c.members.add(v)
                self.note("add_peer %d%s" % (v, " (empty data directory)" if wipe else ""))
                return True
            time.sleep(0.5)
        log("add_peer %d still refused after 20 tries (%s)" % (v, out.splitlines()[-1] if out else rc))
        return False

    def heal(self):
        self.c.heal_net()
        if self.c.clock:
            for i in range(1, self.c.n + 1):
                self.c.set_clock(i, 0.0)
        self.c.reap()
        for i in range(1, self.c.n + 1):
            self.c.signal(i, signal.SIGCONT)
            if i not in self.c.procs:
                self.c.start(i)
        for i in range(1, self.c.n + 1):
            if i not in self.c.members:
                self.readd(i)


def to_ops(history, final_reads):
    """History records -> per-key lists of checker operations."""
    keys = {}
    for h in history + final_reads:
        if h["r"] == "fail":
            continue
        if h["r"] == "unknown":
            if h["f"] == "get":
                continue
            o = lin.Op(h["t0"], None, h["f"], None, h.get("v"), h.get("old"), h.get("new"), h)
        else:
            o = lin.Op(h["t0"], h["t1"], h["f"], h["r"], h.get("got", h.get("v")), h.get("old"),
                       h.get("new"), h)
        keys.setdefault(h["k"], []).append(o)
    return keys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--time", type=float, default=60, help="seconds of load and faults")
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--workers", type=int, default=0, help="default 2 x nodes")
    ap.add_argument("--keys", type=int, default=0,
                    help="default one per node or shard, whichever is more")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--faults", default=",".join(ALL_FAULTS),
                    help="comma-separated subset of %s, or none" % ",".join(ALL_FAULTS))
    ap.add_argument("--shards", type=int, default=1,
                    help="groups per node, each key in one (kv-server and kv-client --shards)")
    ap.add_argument("--server-flags", default="", help="extra kv-server flags")
    ap.add_argument("--client-flags", default="", help="extra kv-client flags (e.g. --read follower)")
    ap.add_argument("--cli-flags", default="",
                    help="extra raftkit-cli flags (membership faults; e.g. TLS as admin)")
    ap.add_argument("--rate", type=float, default=50, help="ops/s per worker (0: no pause)")
    ap.add_argument("--op-timeout-ms", type=int, default=2000)
    ap.add_argument("--election-timeout-ms", type=int, default=500)
    ap.add_argument("--min-ok", type=int, default=200, help="fewest completed ops for a pass")
    ap.add_argument("--out", default=None, help="default BUILD/jepsen/run-SEED")
    a = ap.parse_args()
    a.faults = [] if a.faults == "none" else [f for f in a.faults.split(",") if f]
    for f in a.faults:
        if f not in ALL_FAULTS:
            ap.error("unknown fault %r" % f)
    if a.nodes < 1:
        ap.error("--nodes must be at least 1")
    if a.shards < 1:
        ap.error("--shards must be at least 1")
    if "--shards" in (a.server_flags + " " + a.client_flags).split():
        ap.error("give the shard count with --shards (make jepsen SHARDS=N): servers, clients "
                 "and raftkit-cli's questions all depend on it")
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 2**31)
    a.workers = a.workers or 2 * a.nodes
    nkeys = a.keys or max(a.nodes, a.shards)
    need = ["kv-server", "kv-client", "raftkit-cli"]
    if "powerloss" in a.faults:
        need += ["tests/kv-server-pl", "tests/powerloss-cut"]
    if "clock" in a.faults and not os.path.exists(FAKETIME_LIB):
        sys.exit("jepsen: the clock fault needs %s (Debian package faketime; make deps)"
                 % FAKETIME_LIB)
    for b in need:
        if not os.access(os.path.join(a.build, b), os.X_OK):
            sys.exit("jepsen: %s/%s missing; run make first" % (a.build, b))
    # Absolute paths: a node under another uid cannot resolve a relative one
    # when a parent of the working directory is closed to it (/root).
    a.build = os.path.abspath(a.build)
    out = os.path.abspath(a.out or os.path.join(a.build, "jepsen", "run-%d" % a.seed))
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    os.chmod(out, 0o755)
    rng = random.Random(a.seed)
    log("seed=%d nodes=%d shards=%d workers=%d keys=%d time=%gs faults=%s out=%s" %
        (a.seed, a.nodes, a.shards, a.workers, nkeys, a.time, ",".join(a.faults) or "none", out))

    c = Cluster(a, out)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    history, hlock, events = [], threading.Lock(), []
    keys = ["k%d" % i for i in range(nkeys)]
    try:
        for i in range(1, a.nodes + 1):
            c.start(i)
        if c.wait_leader() is None:
            log("no leader after 30 s")
            print("jepsen: INVALID seed=%d ops=0 ok=0 unknown=0 faults=0 "
                  "nonlinearizable_keys=none (no leader)" % a.seed)
            return 1
        stop, nstop = threading.Event(), threading.Event()
        shared = {}
        workers = [Worker(w, a, c, keys, history, hlock, stop, rng.randrange(2**31), shared)
                   for w in range(a.workers)]
        nem = Nemesis(a, c, random.Random(rng.randrange(2**31)), nstop, events)
        for w in workers:
            w.start()
        nem.start()
        time.sleep(a.time)
        nstop.set()
        nem.join()
        if nem.error:
            raise nem.error
        nem.heal()
        log("healed; load goes on for a moment")
        time.sleep(2)
        stop.set()
        for w in workers:
            w.join()
        if c.wait_leader() is None:
            log("no leader after healing")
        # Final reads: each key, until the answer is definite.
        final = []
        fw = Worker(a.workers, a, c, keys, final, threading.Lock(), stop, 0, {})
        for k in keys:
            for _ in range(30):
                op = {"p": a.workers, "k": k, "f": "get", "final": True}
                fw.record(op, "get %s" % k)
                if op["r"] in ("ok", "not_found"):
                    break
                time.sleep(0.5)
        fw.close()
        faults = nem.count
        c.reap()
    finally:
        c.teardown()

    with open(os.path.join(out, "history.jsonl"), "w") as f:
        for h in sorted(history + final, key=lambda h: h["t0"]):
            f.write(json.dumps(h) + "\n")
    with open(os.path.join(out, "nemesis.log"), "w") as f:
        for t, what in events:
            f.write("%d %s\n" % (t, what))

    nops = len(history) + len(final)
    nok = sum(1 for h in history + final if h["r"] in ("ok", "not_found", "mismatch"))
    nunk = sum(1 for h in history + final if h["r"] == "unknown")
    definite = {h["k"] for h in final if h["r"] in ("ok", "not_found")}
    finals_ok = all(k in definite for k in keys)
    if not finals_ok:
        log("no definite final read of keys %s" % ",".join(k for k in keys if k not in definite))
    bad, unchecked = [], []
    for k, ops in sorted(to_ops(history, final).items()):
        res = lin.check_key(ops)
        if res.valid is None:
            unchecked.append(k)
        elif not res.valid:
            bad.append(k)
            w = lin.smallest_window(ops)
            log("key %s is not linearizable; smallest failing window (%d ops, times in ns):" %
                (k, len(w)))
            for o in sorted(w, key=lambda o: o.call):
                print("    p%s %r" % (o.ident.get("p"), o), flush=True)
    valid = not bad and not unchecked
    enough = nok >= a.min_ok and finals_ok
    san = c.sanitizer_reports()
    if san:
        log("sanitizer reports in the logs of nodes %s" % san)
    healthy = not c.crashes and not san  # a crash fails the run whatever the history
    if valid and not enough:
        log("too few operations completed (%d, need %d, and a definite final read of every key)"
            % (nok, a.min_ok))
    if unchecked:
        log("search budget exhausted on keys %s" % ",".join(unchecked))
    if valid and enough and healthy:
        for i in range(1, a.nodes + 1):
            shutil.rmtree(c.data(i), ignore_errors=True)
    else:
        log("history, nemesis log and node logs kept in %s" % out)
    why = []  # a valid history still fails the run for these
    if c.crashes:
        why.append("nodes exited by themselves: %s" %
                   ",".join(sorted({str(i) for i, _ in c.crashes})))
    if san:
        why.append("sanitizer reports: nodes %s" % ",".join(map(str, san)))
    if nok < a.min_ok:
        why.append("too few completed operations")
    if not finals_ok:
        why.append("no definite final read")
    if unchecked:
        why.append("search budget exhausted")
    print("jepsen: %s seed=%d ops=%d ok=%d unknown=%d faults=%d nonlinearizable_keys=%s%s" %
          ("valid" if valid else "INVALID", a.seed, nops, nok, nunk, faults,
           ",".join(bad) or "none", " (run failed: %s)" % "; ".join(why) if why else ""),
          flush=True)
    return 0 if valid and enough and healthy else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        print("jepsen: interrupted (%s); cluster stopped, rules removed" % e, file=sys.stderr)
        sys.exit(130)
