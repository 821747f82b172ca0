#!/usr/bin/python3
"""Tests of the linearizability checker: it must reject known
non-linearizable register histories (a stale read, a lost acknowledged write,
a cas that took effect twice, ...) and accept linearizable ones, including
histories with indeterminate operations. Run by `make test`."""
import os
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from linearizability import (ANY, MISMATCH, NOT_FOUND, OK, Op,  # noqa: E402
                             check_key, smallest_window)


def put(c, r, v, res=OK):
    return Op(c, r, "put", res, value=v)


def get(c, r, v=None, res=OK):
    return Op(c, r, "get", NOT_FOUND if v is None and res == OK else res, value=v)


def cas(c, r, old, new, res=OK):
    return Op(c, r, "cas", res, old=old, new=new)


def dele(c, r, res=OK):
    return Op(c, r, "del", res)


def unknown(op):
    op.ret, op.result = None, None
    return op


class Invalid(unittest.TestCase):
    def assertInvalid(self, ops):
        res = check_key(ops)
        self.assertIs(res.valid, False)
        self.assertIsNotNone(res.blocked)

    def test_stale_read_after_acknowledged_write(self):
        # put 1 completes, then put 2 completes, then a read returns 1.
        self.assertInvalid([put(0, 1, "1"), put(2, 3, "2"), get(4, 5, "1")])

    def test_lost_acknowledged_write(self):
        # An acknowledged put, then the final read finds the key absent.
        self.assertInvalid([put(0, 1, "a"), get(2, 3, None)])

    def test_cas_took_effect_twice(self):
        # Both cas a->b and cas a->c succeed although nothing set a again.
        self.assertInvalid([put(0, 1, "a"), cas(2, 5, "a", "b"), cas(3, 6, "a", "c")])

    def test_read_of_value_never_written(self):
        self.assertInvalid([put(0, 1, "a"), get(2, 3, "zz")])

    def test_read_flips_back(self):
        # Sequential reads see b, a, b while the two writes run: each
        # write happens once, so the register cannot return to b.
        self.assertInvalid([put(0, 10, "a"), put(0, 10, "b"), get(1, 2, "b"), get(3, 4, "a"),
                            get(11, 12, "b")])

    def test_mismatch_although_value_matched(self):
        self.assertInvalid([put(0, 1, "a"), cas(2, 3, "a", "b", MISMATCH)])

    def test_delete_not_found_after_write(self):
        self.assertInvalid([put(0, 1, "a"), dele(2, 3, NOT_FOUND)])

    def test_indeterminate_write_cannot_take_effect_before_its_call(self):
        # The read returns before the unknown put was even invoked.
        self.assertInvalid([get(0, 1, "x"), unknown(put(2, 3, "x"))])

    def test_indeterminate_cas_cannot_apply_to_wrong_value(self):
        self.assertInvalid([put(0, 1, "a"), unknown(cas(2, 3, "q", "b")), get(4, 5, "b")])

    def test_smallest_window_is_itself_invalid_and_short(self):
        ops = [put(i * 10, i * 10 + 1, str(i)) for i in range(50)]
        ops += [get(i * 10 + 2, i * 10 + 3, str(i)) for i in range(50)]
        ops.append(get(1000, 1001, "7"))  # stale read at the end
        self.assertIs(check_key(ops).valid, False)
        w = smallest_window(ops)
        self.assertLess(len(w), 5)
        self.assertIn("7", [o.value for o in w if o.f == "get"])
        self.assertIs(check_key(w, ANY).valid, False)


class Valid(unittest.TestCase):
    def assertValid(self, ops):
        self.assertIs(check_key(ops).valid, True)

    def test_empty_history(self):
        self.assertValid([])

    def test_sequential_register(self):
        self.assertValid([get(0, 1, None), put(2, 3, "a"), get(4, 5, "a"), cas(6, 7, "a", "b"),
                          cas(8, 9, "a", "c", MISMATCH), get(10, 11, "b"), dele(12, 13),
                          dele(14, 15, NOT_FOUND), get(16, 17, None)])

    def test_concurrent_reads_see_either_order(self):
        # put a and put b overlap; reads after both see b, so b was last.
        self.assertValid([put(0, 5, "a"), put(1, 6, "b"), get(2, 3, "a"), get(7, 8, "b")])

    def test_indeterminate_write_took_effect_late(self):
        # The unknown put is seen long after its invocation.
        self.assertValid([unknown(put(0, 1, "x")), put(2, 3, "y"), get(4, 5, "y"),
                          get(6, 7, "x")])

    def test_indeterminate_write_never_took_effect(self):
        self.assertValid([unknown(put(0, 1, "x")), get(2, 3, None), put(4, 5, "y"),
                          get(6, 7, "y")])

    def test_indeterminate_cas_and_del(self):
        self.assertValid([put(0, 1, "a"), unknown(cas(2, 3, "a", "b")), get(4, 5, "a"),
                          unknown(dele(6, 7)), get(8, 9, "a"), get(10, 11, "b"),
                          get(12, 13, None)])

    def test_failed_ops_are_left_out_by_the_caller(self):
        # A cas that mismatched leaves the value alone.
        self.assertValid([put(0, 1, "a"), cas(2, 3, "b", "c", MISMATCH), get(4, 5, "a")])

    def test_many_concurrent_writers_and_readers(self):
        # 12 overlapping writes, then reads of the last-linearized one: the
        # search must find the order without blowing up.
        ops = [put(i, 100 + i, "v%d" % i) for i in range(12)]
        ops += [get(200, 201, "v5"), get(202, 203, "v5")]
        self.assertValid(ops)


if __name__ == "__main__":
    unittest.main(verbosity=2)
