/* The log writer thread: completions in submission order on the loop thread,
 * group commit, ops of every kind ordered with appends, map growth while
 * readers read, and the sticky error after a failed transaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "storage/journal.h"
#include "storage/log_writer.h"
#include "tools/common/storage_util.h"

typedef struct fx {
    char *dir;
    log_env_t *env;
    log_store_t *log;
    uv_loop_t loop;
    log_writer_t *w;
    /* completions seen, in order */
    int done[4096];
    int status[4096];
    size_t ndone;
    /* durable_cb calls and completions, in order: +id+1 durable, -(id+1) done */
    int events[4096];
    size_t nevents;
} fx_t;

static void fx_open_w(fx_t *f, const log_env_options_t *eo, const log_writer_options_t *wo)
{
    rk_status_t st;
    assert_int_equal(log_env_open(f->dir, eo, &f->env, &st), 0);
    assert_int_equal(log_store_open(f->env, "g", NULL, &f->log, &st), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(log_writer_start(f->env, &f->loop, wo, &f->w, &st), 0);
}

static void fx_open(fx_t *f, const log_env_options_t *eo)
{
    fx_open_w(f, eo, NULL);
}

static void fx_close(fx_t *f)
{
    log_writer_stop(f->w);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    log_store_close(f->log);
    log_env_close(f->env);
}

/* Closes and opens again: what the files hold. */
static void fx_reopen(fx_t *f)
{
    fx_close(f);
    fx_open(f, NULL);
}

/* The log ends at last and every entry verifies; then closes. */
static void close_verified(fx_t *f, uint64_t last)
{
    rk_status_t st;
    assert_int_equal(log_store_last_index(f->log), last);
    assert_int_equal(log_store_verify(f->log, NULL, &st), 0);
    fx_close(f);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp("writer");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

typedef struct req {
    log_write_req_t r;
    fx_t *f;
    int id;
    log_entry_t *entries;
    size_t n;
} req_t;

static void on_done(log_write_req_t *r, int status)
{
    req_t *q = (req_t *)r;
    q->f->events[q->f->nevents++] = -(q->id + 1);
    q->f->done[q->f->ndone] = q->id;
    q->f->status[q->f->ndone] = status;
    q->f->ndone++;
    tu_entries_free(q->entries, q->n);
    free(q);
}

/* An append of entries first..first+n-1, not yet submitted. */
static req_t *new_append(fx_t *f, int id, uint64_t first, size_t n, uint64_t term, size_t max_len)
{
    req_t *q = calloc(1, sizeof *q);
    q->f = f;
    q->id = id;
    q->n = n;
    q->entries = tu_entries(first, n, term, max_len);
    q->r.op.store = f->log;
    q->r.op.kind = LOG_OP_APPEND;
    q->r.op.entries = q->entries;
    q->r.op.n_entries = n;
    return q;
}

static req_t *submit_append(fx_t *f, int id, uint64_t first, size_t n, uint64_t term,
                            size_t max_len)
{
    req_t *q = new_append(f, id, first, n, term, max_len);
    assert_int_equal(log_writer_submit(f->w, &q->r, on_done), 0);
    return q;
}

static void on_durable(log_write_req_t *r)
{
    req_t *q = (req_t *)r;
    q->f->events[q->f->nevents++] = q->id + 1;
}

/* Like submit_append, held until log_writer_flush. */
static req_t *hold_append(fx_t *f, int id, uint64_t first, size_t n, uint64_t term, size_t max_len)
{
    req_t *q = new_append(f, id, first, n, term, max_len);
    q->r.durable_cb = on_durable;
    assert_int_equal(log_writer_submit_held(f->w, &q->r, on_done), 0);
    return q;
}

static void run_until(fx_t *f, size_t ndone)
{
    while (f->ndone < ndone)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void completions_arrive_in_order_and_batches_share_a_transaction(void **state)
{
    fx_t *f = *state;
    fx_open(f, NULL);
    /* Hold the journal so the writer thread stalls on its first write while
     * the rest queue up behind it. */
    journal_lock(f->env->journal);
    for (int i = 0; i < 100; i++)
        submit_append(f, i, 1 + (uint64_t)i * 10, 10, 1, 200);
    journal_unlock(f->env->journal);
    run_until(f, 100);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(f->done[i], i);
        assert_int_equal(f->status[i], 0);
    }
    uint64_t txns, ops;
    log_writer_stats(f->w, &txns, &ops);
    assert_int_equal(ops, 100);
    assert_true(txns <= 2); /* group commit: at most the stalled one and the rest */
    close_verified(f, 1000);
}

static void completion_means_visible_and_durable(void **state)
{
    fx_t *f = *state;
    fx_open(f, NULL);
    submit_append(f, 0, 1, 5, 2, 100);
    run_until(f, 1);
    /* visible to readers as soon as the completion runs */
    assert_int_equal(log_store_last_index(f->log), 5);
    log_entry_t e;
    rk_status_t st;
    assert_int_equal(log_store_get(f->log, 5, &e, &st), 0);
    log_entry_release(&e);
    fx_reopen(f);
    assert_int_equal(log_store_last_index(f->log), 5);
    fx_close(f);
}

static void truncation_reset_and_hard_state_are_ordered_with_appends(void **state)
{
    fx_t *f = *state;
    fx_open(f, NULL);
    submit_append(f, 0, 1, 10, 1, 100);
    /* 8..12 without truncate_from overlaps the log: refused alone */
    submit_append(f, 1, 8, 5, 2, 100);
    /* truncate_from beyond last + 1: refused alone, hard state not stored */
    req_t *t = calloc(1, sizeof *t);
    meta_hard_state_t hs = {.term = 3, .commit = 4};
    strcpy(hs.voted_for, "10.0.0.1:1");
    t->f = f;
    t->id = 2;
    t->n = 2;
    t->entries = tu_entries(12, 2, 3, 100);
    t->r.op = (log_op_t){.store = f->log,
                         .kind = LOG_OP_APPEND,
                         .truncate_from = 12,
                         .entries = t->entries,
                         .n_entries = 2,
                         .hard_state = &hs};
    assert_int_equal(log_writer_submit(f->w, &t->r, on_done), 0);
    req_t *p = calloc(1, sizeof *p);
    p->f = f;
    p->id = 3;
    p->r.op = (log_op_t){.store = f->log, .kind = LOG_OP_TRUNCATE_PREFIX, .index = 5};
    assert_int_equal(log_writer_submit(f->w, &p->r, on_done), 0);
    run_until(f, 4);
    assert_int_equal(f->status[0], 0);
    assert_int_equal(f->status[1], RK_EINVAL);
    assert_int_equal(f->status[2], RK_EINVAL); /* 12 > last + 1 = 11 */
    assert_int_equal(f->status[3], 0);
    assert_int_equal(log_store_first_index(f->log), 5);
    assert_int_equal(log_store_last_index(f->log), 10);

    /* now a valid conflict resolution with hard state, then a reset */
    t = calloc(1, sizeof *t);
    t->f = f;
    t->id = 4;
    t->n = 3;
    t->entries = tu_entries(9, 3, 3, 100);
    t->r.op = (log_op_t){.store = f->log,
                         .kind = LOG_OP_APPEND,
                         .truncate_from = 9,
                         .entries = t->entries,
                         .n_entries = 3,
                         .hard_state = &hs};
    assert_int_equal(log_writer_submit(f->w, &t->r, on_done), 0);
    run_until(f, 5);
    assert_int_equal(f->status[4], 0);
    fx_reopen(f);
    rk_status_t st;
    uint64_t term;
    assert_int_equal(log_store_first_index(f->log), 5);
    assert_int_equal(log_store_last_index(f->log), 11);
    assert_int_equal(log_store_term(f->log, 8, &term, &st), 0);
    assert_int_equal(term, 1);
    assert_int_equal(log_store_term(f->log, 9, &term, &st), 0);
    assert_int_equal(term, 3);
    meta_hard_state_t got;
    assert_int_equal(meta_store_load(f->log, &got, &st), 0);
    assert_int_equal(got.term, 3);
    assert_string_equal(got.voted_for, "10.0.0.1:1");

    p = calloc(1, sizeof *p);
    p->f = f;
    p->id = 5;
    p->r.op = (log_op_t){.store = f->log, .kind = LOG_OP_RESET, .index = 1000, .term = 9};
    assert_int_equal(log_writer_submit(f->w, &p->r, on_done), 0);
    submit_append(f, 6, 1001, 2, 9, 100);
    f->ndone = 0;
    run_until(f, 2);
    assert_int_equal(f->status[0], 0);
    assert_int_equal(f->status[1], 0);
    assert_int_equal(log_store_first_index(f->log), 1001);
    assert_int_equal(log_store_last_index(f->log), 1002);
    fx_close(f);
}

typedef struct reader {
    log_store_t *log;
    atomic_bool stop;
    atomic_int errors;
    atomic_long reads;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    uint64_t x = 88172645463325252ull;
    while (!atomic_load(&r->stop)) {
        uint64_t last = log_store_last_index(r->log);
        if (last == 0)
            continue;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t i = 1 + x % last;
        log_entry_t e;
        rk_status_t st;
        if (log_store_get(r->log, i, &e, &st) != 0 || !tu_payload_check(i, 1, e.data, e.len))
            atomic_fetch_add(&r->errors, 1);
        log_entry_release(&e);
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

static void map_grows_under_concurrent_readers_without_losing_a_batch(void **state)
{
    fx_t *f = *state;
    log_env_options_t eo;
    log_env_options_init(&eo);
    eo.initial_map_size = 64 << 10;
    fx_open(f, &eo);
    /* a small cache so readers go to LMDB */
    log_store_close(f->log);
    log_store_options_t so;
    log_store_options_init(&so);
    so.cache_bytes = 1024;
    rk_status_t st;
    assert_int_equal(log_store_open(f->env, "g", &so, &f->log, &st), 0);
    reader_t r = {.log = f->log};
    pthread_t th;
    pthread_create(&th, NULL, reader_main, &r);
    uint64_t next = 1;
    for (int i = 0; i < 40; i++) {
        submit_append(f, i, next, 50, 1, 2000);
        next += 50;
    }
    run_until(f, 40);
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    for (int i = 0; i < 40; i++)
        assert_int_equal(f->status[i], 0);
    assert_true(f->env->grow_count > 0);
    assert_int_equal(atomic_load(&r.errors), 0);
    fx_reopen(f);
    assert_int_equal(log_store_last_index(f->log), 2000);
    assert_int_equal(log_store_verify(f->log, NULL, &st), 0);
    for (uint64_t i = 1; i <= 2000; i += 97) {
        log_entry_t e;
        assert_int_equal(log_store_get(f->log, i, &e, &st), 0);
        assert_true(tu_payload_check(i, 1, e.data, e.len));
        log_entry_release(&e);
    }
    fx_close(f);
}

static void failed_transaction_stores_nothing_and_the_error_sticks(void **state)
{
    fx_t *f = *state;
    log_env_options_t eo;
    log_env_options_init(&eo);
    eo.initial_map_size = 64 << 10;
    eo.max_map_size = 256 << 10;
    fx_open(f, &eo);
    submit_append(f, 0, 1, 10, 1, 100);
    run_until(f, 1);
    assert_int_equal(f->status[0], 0);
    /* ~1 MB in one batch cannot fit a 256 KiB map */
    submit_append(f, 1, 11, 500, 1, 4000);
    run_until(f, 2);
    assert_int_equal(f->status[1], RK_ENOSPC);
    rk_status_t st;
    assert_int_equal(log_writer_error(f->w, &st), RK_ENOSPC);
    assert_non_null(strstr(st.msg, "limit"));
    /* later requests fail with the same error, even small ones */
    submit_append(f, 2, 11, 1, 1, 10);
    run_until(f, 3);
    assert_int_equal(f->status[2], RK_ENOSPC);
    assert_int_equal(log_store_last_index(f->log), 10);
    fx_reopen(f);
    assert_int_equal(log_store_last_index(f->log), 10);
    assert_int_equal(log_store_verify(f->log, NULL, &st), 0);
    fx_close(f);
}

static void stop_completes_every_queued_request(void **state)
{
    fx_t *f = *state;
    fx_open(f, NULL);
    for (int i = 0; i < 20; i++)
        submit_append(f, i, 1 + (uint64_t)i, 1, 1, 10);
    log_writer_stop(f->w);
    assert_int_equal(f->ndone, 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(f->status[i], 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    log_store_close(f->log);
    log_env_close(f->env);
}

static void bad_submissions_are_refused_without_callback(void **state)
{
    fx_t *f = *state;
    fx_open(f, NULL);
    log_write_req_t r = {0};
    assert_int_equal(log_writer_submit(f->w, &r, on_done), RK_EINVAL); /* no store */
    r.op.store = f->log;
    assert_int_equal(log_writer_submit(f->w, &r, NULL), RK_EINVAL);
    assert_int_equal(f->ndone, 0);
    fx_close(f);
}

static void held_requests_run_inline_when_the_writer_is_idle(void **state)
{
    fx_t *f = *state;
    fx_open(f, NULL);
    hold_append(f, 0, 1, 3, 1, 100);
    hold_append(f, 1, 4, 2, 1, 100);
    hold_append(f, 2, 6, 1, 1, 100);
    assert_int_equal(f->ndone, 0); /* nothing runs before the flush */
    assert_int_equal(log_store_last_index(f->log), 0);
    assert_true(log_writer_flush(f->w));
    /* ran on this thread, one transaction, callbacks before the return:
     * every durable_cb first (in order), then every completion (in order) */
    assert_int_equal(f->ndone, 3);
    int want[] = {1, 2, 3, -1, -2, -3};
    assert_int_equal(f->nevents, 6);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(f->events[i], want[i]);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f->done[i], i);
        assert_int_equal(f->status[i], 0);
    }
    uint64_t txns, ops;
    log_writer_stats(f->w, &txns, &ops);
    assert_int_equal(txns, 1);
    assert_int_equal(ops, 3);
    /* visible at completion, and durable */
    assert_int_equal(log_store_last_index(f->log), 6);
    assert_false(log_writer_flush(f->w)); /* nothing held any more */
    fx_reopen(f);
    close_verified(f, 6);
}

static void held_requests_go_to_the_busy_thread_in_order(void **state)
{
    fx_t *f = *state;
    fx_open(f, NULL);
    /* stall the thread on its first transaction */
    journal_lock(f->env->journal);
    submit_append(f, 0, 1, 2, 1, 100);
    hold_append(f, 1, 3, 2, 1, 100);
    assert_false(log_writer_flush(f->w)); /* the thread has work: queued behind it */
    hold_append(f, 2, 5, 1, 1, 100);
    submit_append(f, 3, 6, 1, 1, 100); /* takes the held one along, ahead of itself */
    assert_false(log_writer_flush(f->w));
    journal_unlock(f->env->journal);
    run_until(f, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(f->done[i], i);
        assert_int_equal(f->status[i], 0);
    }
    for (size_t i = 0; i < f->nevents; i++)
        assert_true(f->events[i] < 0); /* durable_cb is for inline runs only */
    assert_int_equal(log_store_last_index(f->log), 6);
    fx_close(f);
}

static void large_held_batches_go_to_the_thread(void **state)
{
    fx_t *f = *state;
    fx_open(f, NULL);
    hold_append(f, 0, 1, 40, 1, 3000); /* ~60-120 KiB: over the inline limit */
    hold_append(f, 1, 41, 40, 1, 3000);
    assert_false(log_writer_flush(f->w));
    run_until(f, 2);
    assert_int_equal(f->status[0], 0);
    assert_int_equal(f->status[1], 0);
    assert_int_equal(f->nevents, 2); /* completions only */
    assert_int_equal(log_store_last_index(f->log), 80);
    fx_close(f);
}

/* n entries of exactly len bytes each, from first on */
static req_t *new_fixed(fx_t *f, int id, uint64_t first, size_t n, size_t len)
{
    req_t *q = new_append(f, id, first, n, 1, len);
    for (size_t i = 0; i < n; i++) {
        free((void *)q->entries[i].data);
        q->entries[i].data = calloc(1, len);
        q->entries[i].len = len;
    }
    return q;
}

/* max_batch_bytes closes a transaction once its requests reach the limit
 * (payload + 64 per entry); a request bigger than the limit goes whole. */
static void batches_close_at_the_byte_limit(void **state)
{
    fx_t *f = *state;
    log_writer_options_t wo = {.max_batch_bytes = 4 * (1000 + 64)};
    fx_open_w(f, NULL, &wo);
    journal_lock(f->env->journal);
    /* The thread takes 1-4 of these before it stalls on the lock, the rest
     * queue: 13 one-entry requests make four transactions whatever it took
     * (without the limit: one or two). */
    for (int i = 0; i < 13; i++) {
        req_t *q = new_fixed(f, i, 1 + (uint64_t)i, 1, 1000);
        assert_int_equal(log_writer_submit(f->w, &q->r, on_done), 0);
    }
    journal_unlock(f->env->journal);
    run_until(f, 13);
    uint64_t txns, ops;
    log_writer_stats(f->w, &txns, &ops);
    assert_int_equal(ops, 13);
    assert_int_equal(txns, 4);
    /* one request over the limit: one transaction */
    req_t *big = new_fixed(f, 13, 14, 10, 1000);
    assert_int_equal(log_writer_submit(f->w, &big->r, on_done), 0);
    run_until(f, 14);
    log_writer_stats(f->w, &txns, &ops);
    assert_int_equal(txns, 5);
    for (int i = 0; i < 14; i++) {
        assert_int_equal(f->done[i], i);
        assert_int_equal(f->status[i], 0);
    }
    assert_int_equal(log_store_last_index(f->log), 23);
    /* held requests that would make more than one transaction are not run
     * inline: the thread splits them */
    for (int i = 0; i < 3; i++) {
        req_t *q = new_fixed(f, 14 + i, 24 + 2 * (uint64_t)i, 2, 1000);
        q->r.durable_cb = on_durable;
        assert_int_equal(log_writer_submit_held(f->w, &q->r, on_done), 0);
    }
    assert_false(log_writer_flush(f->w));
    run_until(f, 17);
    log_writer_stats(f->w, &txns, &ops);
    assert_int_equal(txns, 7);
    for (size_t i = 0; i < f->nevents; i++)
        assert_true(f->events[i] < 0); /* no durable_cb: not inline */
    close_verified(f, 29);
}

static void held_op_that_does_not_fit_fails_alone_without_durable_cb(void **state)
{
    fx_t *f = *state;
    fx_open(f, NULL);
    hold_append(f, 0, 1, 2, 1, 100);
    hold_append(f, 1, 10, 1, 1, 100); /* a gap: does not fit */
    assert_true(log_writer_flush(f->w));
    assert_int_equal(f->status[0], 0);
    assert_int_equal(f->status[1], RK_EINVAL);
    /* one op of the batch does not fit: nobody is told early */
    int want[] = {-1, -2};
    assert_int_equal(f->nevents, 2);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(f->events[i], want[i]);
    assert_int_equal(log_store_last_index(f->log), 2);
    /* the writer is still healthy */
    hold_append(f, 2, 3, 1, 1, 100);
    assert_true(log_writer_flush(f->w));
    assert_int_equal(f->status[2], 0);
    assert_int_equal(f->events[2], 3);
    fx_close(f);
}

static void inline_writes_leave_checkpoints_to_the_thread(void **state)
{
    fx_t *f = *state;
    fx_open(f, NULL);
    uint64_t before, after;
    journal_stats(f->env->journal, &before, NULL, NULL);
    /* 128 batches since the last checkpoint make one due (journal.c) */
    for (int i = 0; i < 200; i++) {
        hold_append(f, i, 1 + (uint64_t)i, 1, 1, 50);
        (void)log_writer_flush(f->w); /* inline, or queued while the thread checkpoints */
        run_until(f, (size_t)i + 1);
        assert_int_equal(f->status[i], 0);
    }
    for (int tries = 0; tries < 500; tries++) {
        journal_stats(f->env->journal, &after, NULL, NULL);
        if (after > before)
            break;
        usleep(10000);
    }
    assert_true(after > before);
    assert_int_equal(log_store_last_index(f->log), 200);
    fx_reopen(f);
    assert_int_equal(log_store_last_index(f->log), 200);
    fx_close(f);
}

static void stop_runs_held_requests(void **state)
{
    fx_t *f = *state;
    fx_open(f, NULL);
    hold_append(f, 0, 1, 1, 1, 10);
    hold_append(f, 1, 2, 1, 1, 10);
    log_writer_stop(f->w); /* never flushed: stop runs them, once each */
    assert_int_equal(f->ndone, 2);
    assert_int_equal(f->status[0], 0);
    assert_int_equal(f->status[1], 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_int_equal(log_store_last_index(f->log), 2);
    log_store_close(f->log);
    log_env_close(f->env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(completions_arrive_in_order_and_batches_share_a_transaction,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(completion_means_visible_and_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(truncation_reset_and_hard_state_are_ordered_with_appends,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(map_grows_under_concurrent_readers_without_losing_a_batch,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(failed_transaction_stores_nothing_and_the_error_sticks,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(stop_completes_every_queued_request, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_submissions_are_refused_without_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(held_requests_run_inline_when_the_writer_is_idle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(held_requests_go_to_the_busy_thread_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(large_held_batches_go_to_the_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(held_op_that_does_not_fit_fails_alone_without_durable_cb,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(inline_writes_leave_checkpoints_to_the_thread, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stop_runs_held_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(batches_close_at_the_byte_limit, setup, teardown),
    };
    return cmocka_run_group_tests_name("storage_writer", tests, NULL, NULL);
}
