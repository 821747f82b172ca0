/* The LMDB log store: append, reads, truncation at every boundary, reset,
 * reopen after each operation, several groups in one environment, the
 * recent-entries cache and the hard state that rides along with a batch.
 * The log operations run a second time with payloads of up to 5000 bytes,
 * where runs of large entries share one LMDB record, so that truncations cut
 * records in the middle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "storage/log_store.h"
#include "storage/meta_store.h"
#include "tools/common/storage_util.h"

/* Largest test payload: 300 (one record per entry), 5000 (packed records). */
static size_t payload_max = 300;

typedef struct fx {
    char *dir;
    log_env_t *env;
    log_store_t *log;
} fx_t;

static void fx_open(fx_t *f)
{
    rk_status_t st;
    assert_int_equal(log_env_open(f->dir, NULL, &f->env, &st), 0);
    assert_int_equal(log_store_open(f->env, "g1", NULL, &f->log, &st), 0);
}

static void fx_close(fx_t *f)
{
    log_store_close(f->log);
    log_env_close(f->env);
    f->log = NULL;
    f->env = NULL;
}

static void fx_reopen(fx_t *f)
{
    fx_close(f);
    fx_open(f);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp("log");
    fx_open(f);
    *state = f;
    return 0;
}

static int setup_large(void **state)
{
    payload_max = 5000;
    return setup(state);
}

static int teardown(void **state)
{
    payload_max = 300;
    fx_t *f = *state;
    fx_close(f);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void append_range(log_store_t *s, uint64_t first, size_t n, uint64_t term)
{
    log_entry_t *e = tu_entries(first, n, term, payload_max);
    rk_status_t st;
    assert_int_equal(log_store_append(s, e, n, &st), 0);
    tu_entries_free(e, n);
}

/* Every entry in [first, last] is there with the expected term and payload,
 * and nothing outside it is. */
static void expect_log(log_store_t *s, uint64_t first, uint64_t last, uint64_t term)
{
    rk_status_t st;
    assert_int_equal(log_store_first_index(s), first);
    assert_int_equal(log_store_last_index(s), last);
    for (uint64_t i = first; i <= last; i++) {
        log_entry_t e;
        assert_int_equal(log_store_get(s, i, &e, &st), 0);
        assert_int_equal(e.index, i);
        assert_int_equal(e.term, term);
        assert_int_equal(e.len, tu_payload_len(i, payload_max));
        assert_true(tu_payload_check(i, term, e.data, e.len));
        log_entry_release(&e);
        uint64_t t;
        assert_int_equal(log_store_term(s, i, &t, &st), 0);
        assert_int_equal(t, term);
    }
    log_entry_t e;
    assert_int_equal(log_store_get(s, last + 1, &e, &st), RK_ENOTFOUND);
    if (first > 1)
        assert_int_equal(log_store_get(s, first - 1, &e, &st), RK_ENOTFOUND);
}

static void fresh_log_is_empty_at_zero(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    uint64_t t = 99;
    assert_int_equal(log_store_first_index(f->log), 1);
    assert_int_equal(log_store_last_index(f->log), 0);
    assert_int_equal(log_store_term(f->log, 0, &t, &st), 0);
    assert_int_equal(t, 0);
    log_entry_t e;
    assert_int_equal(log_store_get(f->log, 1, &e, &st), RK_ENOTFOUND);
    assert_int_equal(log_store_term(f->log, 1, &t, &st), RK_ENOTFOUND);
}

static void appended_entries_read_back_after_reopen(void **state)
{
    fx_t *f = *state;
    append_range(f->log, 1, 10, 1);
    append_range(f->log, 11, 1, 1);
    expect_log(f->log, 1, 11, 1);
    fx_reopen(f);
    expect_log(f->log, 1, 11, 1);
}

static void entry_types_and_empty_payloads_round_trip(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    log_entry_t in[3] = {
        {1, 2, LOG_ENTRY_NOOP, NULL, 0},
        {2, 2, LOG_ENTRY_CONF, "conf", 4},
        {3, 3, LOG_ENTRY_DATA, "x", 1},
    };
    assert_int_equal(log_store_append(f->log, in, 3, &st), 0);
    fx_reopen(f);
    for (int i = 0; i < 3; i++) {
        log_entry_t e;
        assert_int_equal(log_store_get(f->log, in[i].index, &e, &st), 0);
        assert_int_equal(e.type, in[i].type);
        assert_int_equal(e.term, in[i].term);
        assert_int_equal(e.len, in[i].len);
        if (e.len)
            assert_memory_equal(e.data, in[i].data, e.len);
        log_entry_release(&e);
    }
}

static void append_that_does_not_follow_last_is_refused_and_changes_nothing(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    append_range(f->log, 1, 5, 1);
    log_entry_t *gap = tu_entries(7, 2, 1, payload_max);
    assert_int_equal(log_store_append(f->log, gap, 2, &st), RK_EINVAL);
    log_entry_t *dup = tu_entries(5, 2, 1, payload_max);
    assert_int_equal(log_store_append(f->log, dup, 2, &st), RK_EINVAL);
    /* indexes inside a batch must be consecutive too */
    gap[0].index = 6;
    gap[1].index = 8;
    assert_int_equal(log_store_append(f->log, gap, 2, &st), RK_EINVAL);
    tu_entries_free(gap, 2);
    tu_entries_free(dup, 2);
    fx_reopen(f);
    expect_log(f->log, 1, 5, 1);
}

static void fetch_honours_count_and_byte_limits(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    append_range(f->log, 1, 50, 4);
    log_entry_t *out;
    size_t n;
    assert_int_equal(log_store_fetch(f->log, 10, 5, SIZE_MAX, &out, &n, &st), 0);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].index, 10 + i);
        assert_true(tu_payload_check(out[i].index, 4, out[i].data, out[i].len));
    }
    log_entries_free(out, n);
    /* byte limit: stops once the payload total reaches it, at least one entry */
    assert_int_equal(log_store_fetch(f->log, 1, 0, 1, &out, &n, &st), 0);
    assert_true(n >= 1);
    size_t total = 0;
    for (size_t i = 0; i + 1 < n; i++)
        total += out[i].len;
    assert_true(total < 1);
    log_entries_free(out, n);
    /* to the end, from LMDB (cache off after reopen) */
    fx_reopen(f);
    assert_int_equal(log_store_fetch(f->log, 45, 100, SIZE_MAX, &out, &n, &st), 0);
    assert_int_equal(n, 6);
    assert_int_equal(out[5].index, 50);
    log_entries_free(out, n);
    assert_int_equal(log_store_fetch(f->log, 51, 1, SIZE_MAX, &out, &n, &st), RK_ENOTFOUND);
    assert_int_equal(log_store_fetch(f->log, 0, 1, SIZE_MAX, &out, &n, &st), RK_ENOTFOUND);
}

static void truncate_suffix_at_every_boundary(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    append_range(f->log, 1, 20, 1);
    /* last + 1: nothing to delete */
    assert_int_equal(log_store_truncate_suffix(f->log, 21, &st), 0);
    fx_reopen(f);
    expect_log(f->log, 1, 20, 1);
    /* the last entry only */
    assert_int_equal(log_store_truncate_suffix(f->log, 20, &st), 0);
    expect_log(f->log, 1, 19, 1);
    fx_reopen(f);
    expect_log(f->log, 1, 19, 1);
    /* from the middle */
    assert_int_equal(log_store_truncate_suffix(f->log, 10, &st), 0);
    fx_reopen(f);
    expect_log(f->log, 1, 9, 1);
    /* beyond last + 1 and index 0 are refused */
    assert_int_equal(log_store_truncate_suffix(f->log, 11, &st), RK_EINVAL);
    assert_int_equal(log_store_truncate_suffix(f->log, 0, &st), RK_EINVAL);
    /* from the first: the log becomes empty */
    assert_int_equal(log_store_truncate_suffix(f->log, 1, &st), 0);
    assert_int_equal(log_store_last_index(f->log), 0);
    fx_reopen(f);
    assert_int_equal(log_store_first_index(f->log), 1);
    assert_int_equal(log_store_last_index(f->log), 0);
    /* and grows again from 1 */
    append_range(f->log, 1, 3, 2);
    fx_reopen(f);
    expect_log(f->log, 1, 3, 2);
}

static void conflicting_suffix_is_replaced_in_one_op(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    append_range(f->log, 1, 10, 1);
    /* Raft 5.3: entries from 6 on conflict; replace them with term 2 */
    log_entry_t *e = tu_entries(6, 3, 2, payload_max);
    log_op_t op = {
        .store = f->log, .kind = LOG_OP_APPEND, .truncate_from = 6, .entries = e, .n_entries = 3};
    assert_int_equal(log_store_write(f->env, &op, 1, &st), 0);
    assert_int_equal(op.status, 0);
    tu_entries_free(e, 3);
    fx_reopen(f);
    assert_int_equal(log_store_last_index(f->log), 8);
    uint64_t t;
    assert_int_equal(log_store_term(f->log, 5, &t, &st), 0);
    assert_int_equal(t, 1);
    for (uint64_t i = 6; i <= 8; i++) {
        log_entry_t g;
        assert_int_equal(log_store_get(f->log, i, &g, &st), 0);
        assert_int_equal(g.term, 2);
        assert_true(tu_payload_check(i, 2, g.data, g.len));
        log_entry_release(&g);
    }
}

static void truncate_prefix_keeps_the_base_term(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    append_range(f->log, 1, 10, 3);
    /* keeping from the first index changes nothing */
    assert_int_equal(log_store_truncate_prefix(f->log, 1, &st), 0);
    fx_reopen(f);
    expect_log(f->log, 1, 10, 3);
    /* a snapshot covers 1..4 */
    assert_int_equal(log_store_truncate_prefix(f->log, 5, &st), 0);
    expect_log(f->log, 5, 10, 3);
    fx_reopen(f);
    expect_log(f->log, 5, 10, 3);
    uint64_t t;
    assert_int_equal(log_store_term(f->log, 4, &t, &st), 0); /* the base */
    assert_int_equal(t, 3);
    assert_int_equal(log_store_term(f->log, 3, &t, &st), RK_ENOTFOUND);
    /* an older prefix is a no-op */
    assert_int_equal(log_store_truncate_prefix(f->log, 3, &st), 0);
    expect_log(f->log, 5, 10, 3);
    /* beyond last + 1 needs a reset instead */
    assert_int_equal(log_store_truncate_prefix(f->log, 12, &st), RK_EINVAL);
    /* everything: empty log whose base is the old last entry */
    assert_int_equal(log_store_truncate_prefix(f->log, 11, &st), 0);
    fx_reopen(f);
    assert_int_equal(log_store_first_index(f->log), 11);
    assert_int_equal(log_store_last_index(f->log), 10);
    assert_int_equal(log_store_term(f->log, 10, &t, &st), 0);
    assert_int_equal(t, 3);
    append_range(f->log, 11, 2, 4);
    fx_reopen(f);
    expect_log(f->log, 11, 12, 4);
    /* suffix truncation may not reach into the snapshot */
    assert_int_equal(log_store_truncate_suffix(f->log, 10, &st), RK_EINVAL);
    assert_int_equal(log_store_truncate_suffix(f->log, 11, &st), 0);
    fx_reopen(f);
    assert_int_equal(log_store_first_index(f->log), 11);
    assert_int_equal(log_store_last_index(f->log), 10);
}

/* n entries from first, each with a payload of len bytes. */
static log_entry_t *sized_entries(uint64_t first, size_t n, uint64_t term, size_t len)
{
    log_entry_t *e = calloc(n, sizeof *e);
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = malloc(len);
        tu_payload_fill(first + i, term, p, len);
        e[i] = (log_entry_t){
            .index = first + i, .term = term, .type = LOG_ENTRY_DATA, .data = p, .len = len};
    }
    return e;
}

static void expect_sized(log_store_t *s, uint64_t first, uint64_t last, uint64_t term, size_t len)
{
    rk_status_t st;
    assert_int_equal(log_store_first_index(s), first);
    assert_int_equal(log_store_last_index(s), last);
    for (uint64_t i = first; i <= last; i++) {
        log_entry_t e;
        assert_int_equal(log_store_get(s, i, &e, &st), 0);
        assert_int_equal(e.len, len);
        assert_true(tu_payload_check(i, term, e.data, e.len));
        log_entry_release(&e);
    }
    uint64_t bad = 0;
    assert_int_equal(log_store_verify(s, &bad, &st), 0);
}

/* Ten 3000-byte entries share one record; prefix and suffix truncations cut
 * it, down to a record holding only entries below the base. */
static void truncations_inside_one_packed_record(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    log_entry_t *e = sized_entries(1, 10, 1, 3000);
    assert_int_equal(log_store_append(f->log, e, 10, &st), 0);
    tu_entries_free(e, 10);
    fx_reopen(f);
    expect_sized(f->log, 1, 10, 1, 3000);
    assert_int_equal(log_store_truncate_prefix(f->log, 5, &st), 0); /* record stays */
    fx_reopen(f);
    expect_sized(f->log, 5, 10, 1, 3000);
    assert_int_equal(log_store_truncate_suffix(f->log, 8, &st), 0); /* shortened: 1..7 */
    fx_reopen(f);
    expect_sized(f->log, 5, 7, 1, 3000);
    uint64_t t;
    assert_int_equal(log_store_term(f->log, 4, &t, &st), 0);
    assert_int_equal(t, 1);
    assert_int_equal(log_store_truncate_suffix(f->log, 5, &st), 0); /* only dead ones left */
    fx_reopen(f);
    assert_int_equal(log_store_first_index(f->log), 5);
    assert_int_equal(log_store_last_index(f->log), 4);
    e = sized_entries(5, 3, 2, 3000);
    assert_int_equal(log_store_append(f->log, e, 3, &st), 0);
    tu_entries_free(e, 3);
    fx_reopen(f);
    expect_sized(f->log, 5, 7, 2, 3000);
    assert_int_equal(log_store_truncate_prefix(f->log, 8, &st), 0); /* everything */
    fx_reopen(f);
    assert_int_equal(log_store_first_index(f->log), 8);
    assert_int_equal(log_store_last_index(f->log), 7);
}

static void reset_restarts_the_log_after_a_snapshot(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    append_range(f->log, 1, 10, 1);
    assert_int_equal(log_store_reset(f->log, 100, 7, &st), 0);
    fx_reopen(f);
    assert_int_equal(log_store_first_index(f->log), 101);
    assert_int_equal(log_store_last_index(f->log), 100);
    uint64_t t;
    assert_int_equal(log_store_term(f->log, 100, &t, &st), 0);
    assert_int_equal(t, 7);
    log_entry_t e;
    assert_int_equal(log_store_get(f->log, 5, &e, &st), RK_ENOTFOUND);
    log_entry_t *old = tu_entries(11, 1, 1, payload_max);
    assert_int_equal(log_store_append(f->log, old, 1, &st), RK_EINVAL);
    tu_entries_free(old, 1);
    append_range(f->log, 101, 5, 8);
    fx_reopen(f);
    expect_log(f->log, 101, 105, 8);
    /* reset backwards (a snapshot older than the log) is allowed too */
    assert_int_equal(log_store_reset(f->log, 50, 6, &st), 0);
    fx_reopen(f);
    assert_int_equal(log_store_first_index(f->log), 51);
    assert_int_equal(log_store_last_index(f->log), 50);
}

static void groups_in_one_environment_are_independent(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    log_store_t *g2, *g0;
    assert_int_equal(log_store_open(f->env, "g2", NULL, &g2, &st), 0);
    assert_int_equal(log_store_open(f->env, "g0", NULL, &g0, &st), 0);
    assert_int_not_equal(log_store_gid(g2), log_store_gid(f->log));
    append_range(f->log, 1, 5, 1);
    append_range(g2, 1, 8, 2);
    append_range(g0, 1, 3, 3);
    /* one transaction spanning two groups */
    log_entry_t *a = tu_entries(6, 2, 1, payload_max), *b = tu_entries(9, 1, 2, payload_max);
    log_op_t ops[2] = {
        {.store = f->log, .kind = LOG_OP_APPEND, .entries = a, .n_entries = 2},
        {.store = g2, .kind = LOG_OP_APPEND, .entries = b, .n_entries = 1},
    };
    assert_int_equal(log_store_write(f->env, ops, 2, &st), 0);
    tu_entries_free(a, 2);
    tu_entries_free(b, 1);
    assert_int_equal(log_store_reset(g0, 40, 9, &st), 0);
    assert_int_equal(log_store_truncate_suffix(g2, 4, &st), 0);
    log_store_close(g2);
    log_store_close(g0);
    fx_reopen(f);
    assert_int_equal(log_store_open(f->env, "g2", NULL, &g2, &st), 0);
    assert_int_equal(log_store_open(f->env, "g0", NULL, &g0, &st), 0);
    expect_log(f->log, 1, 7, 1);
    expect_log(g2, 1, 3, 2);
    assert_int_equal(log_store_first_index(g0), 41);
    assert_int_equal(log_store_last_index(g0), 40);
    assert_int_equal(log_store_verify(f->log, NULL, &st), 0);
    assert_int_equal(log_store_verify(g2, NULL, &st), 0);
    log_store_close(g2);
    log_store_close(g0);
}

static void invalid_op_fails_alone_in_a_shared_transaction(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    log_entry_t *a = tu_entries(1, 2, 1, payload_max), *bad = tu_entries(9, 1, 1, payload_max),
                *c = tu_entries(3, 1, 1, payload_max);
    log_op_t ops[3] = {
        {.store = f->log, .kind = LOG_OP_APPEND, .entries = a, .n_entries = 2},
        {.store = f->log, .kind = LOG_OP_APPEND, .entries = bad, .n_entries = 1},
        {.store = f->log, .kind = LOG_OP_APPEND, .entries = c, .n_entries = 1},
    };
    assert_int_equal(log_store_write(f->env, ops, 3, &st), 0);
    assert_int_equal(ops[0].status, 0);
    assert_int_equal(ops[1].status, RK_EINVAL);
    assert_int_equal(ops[2].status, 0);
    tu_entries_free(a, 2);
    tu_entries_free(bad, 1);
    tu_entries_free(c, 1);
    fx_reopen(f);
    expect_log(f->log, 1, 3, 1);
}

static void hard_state_is_durable_alone_and_with_a_batch(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    meta_hard_state_t hs;
    assert_int_equal(meta_store_load(f->log, &hs, &st), 0);
    assert_int_equal(hs.term, 0);
    assert_string_equal(hs.voted_for, "");
    meta_hard_state_t w = {.term = 5, .commit = 0};
    strcpy(w.voted_for, "127.0.0.1:8081");
    assert_int_equal(meta_store_save(f->log, &w, &st), 0);
    fx_reopen(f);
    assert_int_equal(meta_store_load(f->log, &hs, &st), 0);
    assert_int_equal(hs.term, 5);
    assert_string_equal(hs.voted_for, "127.0.0.1:8081");
    /* with entries, in one transaction */
    log_entry_t *e = tu_entries(1, 4, 6, payload_max);
    meta_hard_state_t w2 = {.term = 6, .commit = 2};
    log_op_t op = {
        .store = f->log, .kind = LOG_OP_APPEND, .entries = e, .n_entries = 4, .hard_state = &w2};
    assert_int_equal(log_store_write(f->env, &op, 1, &st), 0);
    tu_entries_free(e, 4);
    fx_reopen(f);
    assert_int_equal(meta_store_load(f->log, &hs, &st), 0);
    assert_int_equal(hs.term, 6);
    assert_int_equal(hs.commit, 2);
    assert_string_equal(hs.voted_for, "");
    expect_log(f->log, 1, 4, 6);
    /* a second group has its own hard state */
    log_store_t *g2;
    assert_int_equal(log_store_open(f->env, "other", NULL, &g2, &st), 0);
    assert_int_equal(meta_store_load(g2, &hs, &st), 0);
    assert_int_equal(hs.term, 0);
    log_store_close(g2);
}

static void cache_serves_recent_entries_within_its_byte_bound(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    log_store_close(f->log);
    log_store_options_t o;
    log_store_options_init(&o);
    o.cache_bytes = 4096;
    assert_int_equal(log_store_open(f->env, "g1", &o, &f->log, &st), 0);
    append_range(f->log, 1, 200, 1);
    size_t n, bytes;
    uint64_t hits;
    log_store_cache_stats(f->log, &n, &bytes, &hits);
    assert_true(bytes <= 4096);
    assert_true(n > 0 && n < 200);
    /* the newest entry is cached, the oldest is not */
    log_entry_t e;
    assert_int_equal(log_store_get(f->log, 200, &e, &st), 0);
    log_entry_release(&e);
    uint64_t hits2;
    log_store_cache_stats(f->log, NULL, NULL, &hits2);
    assert_int_equal(hits2, hits + 1);
    assert_int_equal(log_store_get(f->log, 1, &e, &st), 0);
    log_entry_release(&e);
    log_store_cache_stats(f->log, NULL, NULL, &hits);
    assert_int_equal(hits, hits2);
    /* a truncation removes the stale copies: reads see the new entries */
    log_entry_t *r = tu_entries(199, 2, 2, payload_max);
    log_op_t op = {
        .store = f->log, .kind = LOG_OP_APPEND, .truncate_from = 199, .entries = r, .n_entries = 2};
    assert_int_equal(log_store_write(f->env, &op, 1, &st), 0);
    tu_entries_free(r, 2);
    assert_int_equal(log_store_get(f->log, 200, &e, &st), 0);
    assert_int_equal(e.term, 2);
    log_entry_release(&e);
    uint64_t t;
    assert_int_equal(log_store_term(f->log, 198, &t, &st), 0);
    assert_int_equal(t, 1);
    assert_int_equal(log_store_reset(f->log, 500, 3, &st), 0);
    log_store_cache_stats(f->log, &n, NULL, NULL);
    assert_int_equal(n, 0);
}

static void bad_arguments_are_refused(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    log_store_t *s;
    char big[LOG_GROUP_ID_MAX + 1];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(log_store_open(f->env, "", NULL, &s, &st), RK_EINVAL);
    assert_int_equal(log_store_open(f->env, big, NULL, &s, &st), RK_EINVAL);
    log_env_t *env;
    assert_int_not_equal(log_env_open("/nonexistent/raftkit/dir", NULL, &env, &st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fresh_log_is_empty_at_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(appended_entries_read_back_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(entry_types_and_empty_payloads_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(
            append_that_does_not_follow_last_is_refused_and_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_honours_count_and_byte_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(truncate_suffix_at_every_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(conflicting_suffix_is_replaced_in_one_op, setup, teardown),
        cmocka_unit_test_setup_teardown(truncate_prefix_keeps_the_base_term, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_restarts_the_log_after_a_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(groups_in_one_environment_are_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_op_fails_alone_in_a_shared_transaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(hard_state_is_durable_alone_and_with_a_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(cache_serves_recent_entries_within_its_byte_bound, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(bad_arguments_are_refused, setup, teardown),
    };
    const struct CMUnitTest packed[] = {
        cmocka_unit_test_setup_teardown(appended_entries_read_back_after_reopen, setup_large,
                                        teardown),
        cmocka_unit_test_setup_teardown(entry_types_and_empty_payloads_round_trip, setup_large,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            append_that_does_not_follow_last_is_refused_and_changes_nothing, setup_large, teardown),
        cmocka_unit_test_setup_teardown(truncate_suffix_at_every_boundary, setup_large, teardown),
        cmocka_unit_test_setup_teardown(conflicting_suffix_is_replaced_in_one_op, setup_large,
                                        teardown),
        cmocka_unit_test_setup_teardown(truncate_prefix_keeps_the_base_term, setup_large, teardown),
        cmocka_unit_test_setup_teardown(reset_restarts_the_log_after_a_snapshot, setup_large,
                                        teardown),
        cmocka_unit_test_setup_teardown(truncations_inside_one_packed_record, setup, teardown),
        cmocka_unit_test_setup_teardown(groups_in_one_environment_are_independent, setup_large,
                                        teardown),
        cmocka_unit_test_setup_teardown(invalid_op_fails_alone_in_a_shared_transaction, setup_large,
                                        teardown),
        cmocka_unit_test_setup_teardown(hard_state_is_durable_alone_and_with_a_batch, setup_large,
                                        teardown),
    };
    int failed = cmocka_run_group_tests_name("storage_log", tests, NULL, NULL);
    return failed + cmocka_run_group_tests_name("storage_log_packed", packed, NULL, NULL);
}
