/* Interned configurations (src/core/conf_intern.c): equal configurations
 * share one copy, any difference (order, priority, flags) keeps them apart,
 * and the last reference frees the copy -- also when many cores hold them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "tests/support/core_harness.h"

static core_conf_t conf_of(int n, int first)
{
    core_conf_t c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < n; i++)
        c.cur.peers[c.cur.n_peers++] = h_peer(first + i);
    return c;
}

static void test_equal_configurations_share_one_copy(void **state)
{
    (void)state;
    core_conf_t a = conf_of(3, 0), b = conf_of(3, 0);
    /* bytes past the counts and the host's NUL are not part of the value */
    memset(&b.cur.peers[3], 0x5a, sizeof b.cur.peers[3]);
    b.cur.peers[0].endpoint.host[RK_HOST_MAX - 1] = 'x';
    const core_conf_t *ia = core_conf_intern(&a), *ib = core_conf_intern(&b);
    assert_non_null(ia);
    assert_ptr_equal(ia, ib);
    assert_int_equal(core_conf_interned(), 1);
    assert_true(core_conf_same(ia, &a));
    assert_int_equal(ia->cur.n_peers, 3);
    assert_ptr_equal(core_conf_ref(ia), ia);
    core_conf_release(ia);
    core_conf_release(ib);
    assert_int_equal(core_conf_interned(), 1);
    core_conf_release(ia);
    assert_int_equal(core_conf_interned(), 0);
    core_conf_release(NULL);
}

static void test_any_difference_keeps_copies_apart(void **state)
{
    (void)state;
    core_conf_t v[6];
    v[0] = conf_of(3, 0);
    v[1] = conf_of(3, 0);
    v[1].cur.peers[2].priority = 5; /* an attribute, yet readers see it */
    v[2] = conf_of(3, 0);
    v[2].cur.peers[0] = h_peer(1); /* same set, other order */
    v[2].cur.peers[1] = h_peer(0);
    v[3] = conf_of(3, 0);
    v[3].joint = true;
    v[3].old = conf_of(2, 0).cur;
    v[4] = v[3];
    v[4].manual_leave = true;
    v[5] = conf_of(3, 0);
    v[5].cur.learners[v[5].cur.n_learners++] = h_peer(4);
    const core_conf_t *in[6];
    for (int i = 0; i < 6; i++) {
        in[i] = core_conf_intern(&v[i]);
        assert_non_null(in[i]);
        assert_true(core_conf_same(in[i], &v[i]));
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(in[i], in[j]);
    }
    assert_int_equal(core_conf_interned(), 6);
    for (int i = 0; i < 6; i++)
        core_conf_release(in[i]);
    assert_int_equal(core_conf_interned(), 0);
}

static int no_term(void *arg, uint64_t index, uint64_t *term)
{
    (void)arg, (void)index, (void)term;
    return RK_ENOTFOUND;
}

static int no_entries(void *arg, uint64_t lo, uint64_t hi, size_t max_bytes, core_entry_t *out,
                      size_t *n)
{
    (void)arg, (void)lo, (void)hi, (void)max_bytes, (void)out, (void)n;
    return RK_ENOTFOUND;
}

#define N_CORES 1000

/* A multi-raft process: many cores with the same members hold one copy of
 * their configuration (and one of the empty snapshot configuration); cores
 * of other memberships add theirs; freeing every core empties the table. */
static void test_many_cores_share_and_free(void **state)
{
    (void)state;
    static core_t *cores[N_CORES];
    core_storage_t st = {.term = no_term, .entries = no_entries};
    for (int i = 0; i < N_CORES; i++) {
        core_init_t in;
        memset(&in, 0, sizeof in);
        h_default_opts(&in.opts);
        in.opts.self = h_peer(0);
        /* one group in ten has members of its own */
        in.conf = conf_of(3, i % 10 == 0 ? i : 0);
        in.prev_conf = in.conf;
        int err;
        cores[i] = core_new(&in, &st, &err);
        assert_non_null(cores[i]);
        assert_true(core_conf_same(core_get_conf(cores[i], NULL), &in.conf));
    }
    /* the shared membership (i = 0 included), 99 others, the empty one */
    assert_int_equal(core_conf_interned(), 1 + 99 + 1);
    assert_ptr_equal(core_get_conf(cores[1], NULL), core_get_conf(cores[N_CORES - 1], NULL));
    for (int i = 0; i < N_CORES; i++)
        core_free(cores[i]);
    assert_int_equal(core_conf_interned(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_configurations_share_one_copy),
        cmocka_unit_test(test_any_difference_keeps_copies_apart),
        cmocka_unit_test(test_many_cores_share_and_free),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed + h_conf_leaked();
}
