"""Linearizability checker for per-key registers with get/put/cas/del.

A history is a list of operations on one key; each has an invocation time, a
completion time (None when the outcome is unknown: such an operation may take
effect at any point after its invocation, or never), a function and its
outcome. check_key() decides whether some total order of the operations
respects real time (an operation that completed before another was invoked
comes first) and the register's sequential specification.

The search is Wing & Gong's, with Lowe's memoization of (set of linearized
operations, register state) configurations, as in Knossos and Porcupine;
keys are checked separately (P-compositionality: a history of independent
registers is linearizable iff each key's subhistory is).

Register states are a value (str), ABSENT (None) or ANY: an unknown state,
used as the initial state of a window cut out of the middle of a history.
"""

ANY = ("<any>",)  # a unique, hashable sentinel
ABSENT = None

# Outcomes of an operation that completed.
OK, NOT_FOUND, MISMATCH = "ok", "not_found", "mismatch"


class Op:
    """One operation on one key.

    f: "get", "put", "cas" or "del"; value: put's value, get's result (OK);
    old/new: cas arguments; result: OK, NOT_FOUND or MISMATCH, or None when
    indeterminate (then ret is None too). call/ret: times (any comparable
    numbers, ret None = never returned). ident: the caller's id for reports.
    """

    __slots__ = ("call", "ret", "f", "value", "old", "new", "result", "ident")

    def __init__(self, call, ret, f, result, value=None, old=None, new=None, ident=None):
        self.call, self.ret, self.f, self.result = call, ret, f, result
        self.value, self.old, self.new, self.ident = value, old, new, ident

    def __repr__(self):
        args = {"get": "", "put": " %s" % self.value, "del": "",
                "cas": " %s->%s" % (self.old, self.new)}[self.f]
        res = "UNKNOWN" if self.result is None else self.result.upper()
        if self.f == "get" and self.result == OK:
            res += " " + str(self.value)
        ret = "?" if self.ret is None else self.ret
        return "[%s..%s] %s%s => %s" % (self.call, ret, self.f, args, res)


def step(state, op):
    """Applies op to state; returns (allowed, new state)."""
    f, r = op.f, op.result
    anyst = state is ANY
    if r is None:
        # Indeterminate: linearizing it means it took effect. Not taking
        # effect is modelled by never linearizing it.
        if f == "put":
            return True, op.value
        if f == "cas":
            return anyst or state == op.old, op.new
        if f == "del":
            return anyst or state is not ABSENT, ABSENT
        return False, state  # a read without a result constrains nothing
    if f == "get":
        if r == OK:
            return anyst or state == op.value, op.value
        return anyst or state is ABSENT, ABSENT
    if f == "put":
        return True, op.value
    if f == "cas":
        if r == OK:
            return anyst or state == op.old, op.new
        return anyst or state != op.old, state
    if f == "del":
        if r == OK:
            return anyst or state is not ABSENT, ABSENT
        return anyst or state is ABSENT, ABSENT
    raise ValueError("unknown function %r" % f)


class Result:
    """valid: True, False, or None when the search budget ran out.
    blocked: on False, the operation whose completion no linearization of
    the ops before it could reach (the deepest point of the search)."""

    def __init__(self, valid, blocked=None, steps=0):
        self.valid, self.blocked, self.steps = valid, blocked, steps


def check_key(ops, init=ABSENT, budget=50_000_000):
    """Wing & Gong search with memoization over one key's operations."""
    ops = [o for o in ops if not (o.result is None and o.f == "get")]
    events = []
    for i, o in enumerate(ops):
        events.append((o.call, 0, i))
        if o.ret is not None:
            if o.ret < o.call:
                raise ValueError("operation returns before its call: %r" % o)
            events.append((o.ret, 1, i))
    # At equal times calls sort first: touching operations count as
    # concurrent, which only ever allows more orders.
    events.sort(key=lambda e: (e[0], e[1]))
    m = len(events)
    head = m
    # A doubly linked list of events; index m is its head.
    nxt = list(range(1, m + 1)) + [0 if m else -1]
    if m:
        nxt[m - 1] = -1
    prv = [head] + list(range(0, m - 1)) + [-1]
    ret_pos = [-1] * len(ops)
    for pos, (_, kind, i) in enumerate(events):
        if kind == 1:
            ret_pos[i] = pos
    remaining = sum(1 for o in ops if o.ret is not None)

    def unlink(p):
        nxt[prv[p]] = nxt[p]
        if nxt[p] != -1:
            prv[nxt[p]] = prv[p]

    def relink(p):
        nxt[prv[p]] = p
        if nxt[p] != -1:
            prv[nxt[p]] = p

    cache = set()
    stack = []
    bits, state = 0, init
    entry = nxt[head]
    deepest, blocked, steps = -1, None, 0
    while remaining:
        steps += 1
        if steps > budget:
            return Result(None, steps=steps)
        _, kind, i = events[entry]
        if kind == 0:
            ok, ns = step(state, ops[i])
            if ok:
                nb = bits | (1 << i)
                if (nb, ns) not in cache:
                    cache.add((nb, ns))
                    stack.append((entry, i, state))
                    bits, state = nb, ns
                    unlink(entry)
                    if ret_pos[i] >= 0:
                        unlink(ret_pos[i])
                        remaining -= 1
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
        else:
            if len(stack) > deepest:
                deepest, blocked = len(stack), ops[i]
            if not stack:
                return Result(False, blocked, steps)
            entry, i, state = stack.pop()
            bits &= ~(1 << i)
            if ret_pos[i] >= 0:
                relink(ret_pos[i])
                remaining += 1
            relink(entry)
            entry = nxt[entry]
    return Result(True, steps=steps)


def _window(ops, tstart, tend):
    """The operations of a window (tstart, tend) of a history, built so that
    a window that is not linearizable from an unknown initial state (ANY)
    proves the whole history is not:
    - operations that returned by tstart are summarized by the ANY state;
    - operations running at tstart or at tend may have taken effect outside
      the window, so their reads (get, NOT_FOUND, MISMATCH) are dropped and
      their writes become indeterminate (may happen in the window, or not);
    - operations invoked after tend are left out.
    """
    out = []
    for o in ops:
        if o.call >= tend:
            continue
        if o.ret is not None and o.ret <= tstart:
            continue
        if o.ret is not None and (o.call < tstart or o.ret > tend):
            if o.f == "get" or o.result in (NOT_FOUND, MISMATCH):
                continue
            o = Op(o.call, None, o.f, None, o.value, o.old, o.new, o.ident)
        out.append(o)
    return out


def smallest_window(ops, budget=5_000_000):
    """For a non-linearizable key history, a short window (list of ops) that
    is non-linearizable on its own, found by first shrinking the end then
    moving the start forward. Returns the whole history if no check fits in
    the budget."""
    rets = sorted({o.ret for o in ops if o.ret is not None})
    if not rets:
        return ops
    first_call = min(o.call for o in ops)

    def fails(tstart, tend):
        init = ABSENT if tstart < first_call else ANY
        return check_key(_window(ops, tstart, tend), init, budget).valid is False

    # The smallest end: binary search over completion times.
    lo, hi = 0, len(rets) - 1
    before = first_call - 1
    if not fails(before, rets[hi] + 1):
        return ops
    while lo < hi:
        mid = (lo + hi) // 2
        if fails(before, rets[mid] + 1):
            hi = mid
        else:
            lo = mid + 1
    tend = rets[lo] + 1
    # The latest start that still fails (scan back from the end).
    starts = [r for r in rets if r < tend]
    for tstart in reversed(starts):
        if fails(tstart, tend):
            return _window(ops, tstart, tend)
    return _window(ops, before, tend)
