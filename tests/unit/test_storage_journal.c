/* The write-ahead journal (storage/journal.c): what a crash leaves behind is
 * replayed, a torn tail is ignored, a hole in the middle is an error, and
 * rotation, checkpoints and map growth keep every acknowledged batch.
 *
 * A "crash" here is a child that writes and then _exits without closing: the
 * page cache keeps every write, but at the next open the journal rolls LMDB
 * back to its last checkpoint, so everything since is really replayed. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/journal.h"
#include "storage/log_store.h"
#include "tools/common/storage_util.h"

#define PER_BATCH 10
#define FOREVER   3600000u /* checkpoint interval that never elapses in a test */

static int setup(void **state)
{
    *state = tu_mkdtemp("journal");
    return 0;
}

static int teardown(void **state)
{
    tu_rm_rf(*state);
    free(*state);
    return 0;
}

static void opts(log_env_options_t *o, size_t seg, size_t map)
{
    log_env_options_init(o);
    o->journal = true;
    o->journal_segment_bytes = seg;
    o->journal_checkpoint_ms = FOREVER;
    if (map)
        o->initial_map_size = map;
}

/* Child: appends `batches` batches of PER_BATCH entries (payloads up to
 * max_len bytes), each with a hard state whose commit is its first index,
 * then dies without closing. Writes the number of checkpoints to fd. */
static void write_and_die(const char *dir, const log_env_options_t *o, int batches, size_t max_len,
                          int fd)
{
    log_env_t *env;
    log_store_t *s;
    rk_status_t st;
    if (log_env_open(dir, o, &env, &st) != 0 || log_store_open(env, "g", NULL, &s, &st) != 0)
        _exit(2);
    meta_hard_state_t hs = {.term = 1};
    for (int b = 0; b < batches; b++) {
        uint64_t first = (uint64_t)b * PER_BATCH + 1;
        log_entry_t *e = tu_entries(first, PER_BATCH, 1, max_len);
        hs.commit = first;
        log_op_t op = {.store = s,
                       .kind = LOG_OP_APPEND,
                       .entries = e,
                       .n_entries = PER_BATCH,
                       .hard_state = &hs};
        int rc = log_store_write(env, &op, 1, &st);
        tu_entries_free(e, PER_BATCH);
        if (rc != 0 || op.status != 0)
            _exit(3);
    }
    uint64_t ckpts = 0;
    journal_stats(env->journal, &ckpts, NULL, NULL);
    if (fd >= 0 && write(fd, &ckpts, sizeof ckpts) != sizeof ckpts)
        _exit(4);
    _exit(0); /* no close: like kill -9 */
}

static uint64_t crash_after(const char *dir, const log_env_options_t *o, int batches,
                            size_t max_len)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        write_and_die(dir, o, batches, max_len, p[1]);
    }
    close(p[1]);
    uint64_t ckpts = 0;
    assert_int_equal(read(p[0], &ckpts, sizeof ckpts), (ssize_t)sizeof ckpts);
    close(p[0]);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    return ckpts;
}

/* Reopens dir and checks that the log is exactly [1, last] with the right
 * payloads and the hard state of the last batch; returns records replayed. */
static uint64_t reopen_and_check(const char *dir, const log_env_options_t *o, uint64_t last,
                                 size_t max_len)
{
    log_env_t *env;
    log_store_t *s;
    rk_status_t st;
    assert_int_equal(log_env_open(dir, o, &env, &st), 0);
    uint64_t replayed = 0;
    if (env->journal)
        journal_stats(env->journal, NULL, &replayed, NULL);
    assert_int_equal(log_store_open(env, "g", NULL, &s, &st), 0);
    assert_int_equal(log_store_first_index(s), 1);
    assert_int_equal(log_store_last_index(s), last);
    assert_int_equal(log_store_verify(s, NULL, &st), 0);
    for (uint64_t i = 1; i <= last; i++) {
        log_entry_t e;
        assert_int_equal(log_store_get(s, i, &e, &st), 0);
        assert_int_equal(e.len, tu_payload_len(i, max_len));
        assert_true(tu_payload_check(i, 1, e.data, e.len));
        log_entry_release(&e);
    }
    meta_hard_state_t hs;
    assert_int_equal(meta_store_load(s, &hs, &st), 0);
    assert_int_equal(hs.commit, last ? last - PER_BATCH + 1 : 0);
    log_store_close(s);
    log_env_close(env);
    return replayed;
}

/* Offsets of the records in the segment, in order (as recovery reads them:
 * header magic, length, consecutive sequence numbers). */
static size_t record_offsets(const char *dir, size_t *offs, size_t max)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/journal.wal", dir);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    size_t n = 0, off = 0;
    uint64_t prev = 0;
    uint8_t h[24];
    while (n < max && pread(fd, h, sizeof h, (off_t)off) == (ssize_t)sizeof h &&
           codec_get_le32(h) == 0x4a4b5252u && (n == 0 || codec_get_le64(h + 8) == prev + 1)) {
        prev = codec_get_le64(h + 8);
        offs[n++] = off;
        off += (24 + codec_get_le32(h + 4) + 7) & ~(size_t)7;
    }
    close(fd);
    return n;
}

static void flip_byte(const char *dir, size_t off)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/journal.wal", dir);
    int fd = open(p, O_RDWR);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

static void recovery_replays_every_record_past_the_checkpoint(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, 0, 0);
    crash_after(dir, &o, 50, 300);
    assert_int_equal(reopen_and_check(dir, &o, 500, 300), 50);
    /* recovery checkpointed: nothing left to replay */
    assert_int_equal(reopen_and_check(dir, &o, 500, 300), 0);
}

static void torn_last_record_is_ignored(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, 0, 0);
    crash_after(dir, &o, 20, 300);
    size_t offs[64];
    assert_int_equal(record_offsets(dir, offs, 64), 20);
    /* the last record's write reached the disk only in part */
    flip_byte(dir, offs[19] + 100);
    assert_int_equal(reopen_and_check(dir, &o, 190, 300), 19);
}

static void corrupt_record_in_the_middle_is_an_error(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, 0, 0);
    crash_after(dir, &o, 20, 300);
    size_t offs[64];
    assert_int_equal(record_offsets(dir, offs, 64), 20);
    flip_byte(dir, offs[7] + 60); /* a payload byte of an acknowledged record */
    log_env_t *env;
    rk_status_t st;
    assert_int_equal(log_env_open(dir, &o, &env, &st), RK_ECORRUPT);
    assert_non_null(strstr(st.msg, "corrupt"));
    /* a damaged header is found just the same */
    flip_byte(dir, offs[7] + 60);
    flip_byte(dir, offs[7]);
    assert_int_equal(log_env_open(dir, &o, &env, &st), RK_ECORRUPT);
}

static void sustained_load_rotates_the_segment_and_loses_nothing(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, 64 << 10, 0); /* checkpoint every 32 KiB of records */
    uint64_t ckpts = crash_after(dir, &o, 600, 200);
    assert_true(ckpts >= 20);
    uint64_t replayed = reopen_and_check(dir, &o, 6000, 200);
    assert_true(replayed > 0 && replayed < 600);
}

static void map_growth_during_replay(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, 16 << 20, 0);           /* 64 MiB map: no growth while writing */
    crash_after(dir, &o, 100, 2000); /* < 128 batches: no checkpoint */
    /* The checkpointed LMDB was almost empty: reopened with a small map,
     * replaying 1000 entries of ~1 KiB fills it several times. */
    log_env_options_t small;
    opts(&small, 0, 128 << 10);
    log_env_t *env;
    log_store_t *s;
    rk_status_t st;
    assert_int_equal(log_env_open(dir, &small, &env, &st), 0);
    uint64_t replayed = 0;
    journal_stats(env->journal, NULL, &replayed, NULL);
    assert_int_equal(replayed, 100);
    assert_true(env->grow_count > 0);
    assert_int_equal(log_store_open(env, "g", NULL, &s, &st), 0);
    assert_int_equal(log_store_last_index(s), 1000);
    assert_int_equal(log_store_verify(s, NULL, &st), 0);
    log_store_close(s);
    log_env_close(env);
    assert_int_equal(reopen_and_check(dir, &small, 1000, 2000), 0);
}

static void turning_the_journal_off_replays_and_removes_it(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, 0, 0);
    crash_after(dir, &o, 30, 300);
    log_env_options_t off;
    opts(&off, 0, 0);
    off.journal = false;
    reopen_and_check(dir, &off, 300, 300);
    char p[4200];
    snprintf(p, sizeof p, "%s/journal.ckpt", dir);
    assert_int_equal(access(p, F_OK), -1);
    reopen_and_check(dir, &off, 300, 300);
    reopen_and_check(dir, &o, 300, 300); /* and on again */
}

#define GROUPS 40

/* One batch holds the ops of every group sharing the environment (group
 * commit): replay must handle any number of groups in a record. */
static void replay_spans_many_groups(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, 0, 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        log_env_t *env;
        log_store_t *s[GROUPS];
        rk_status_t st;
        if (log_env_open(dir, &o, &env, &st) != 0)
            _exit(2);
        for (int g = 0; g < GROUPS; g++) {
            char name[16];
            snprintf(name, sizeof name, "g%d", g);
            if (log_store_open(env, name, NULL, &s[g], &st) != 0)
                _exit(3);
        }
        for (uint64_t b = 0; b < 5; b++) {
            log_entry_t *e = tu_entries(b + 1, 1, 1, 100);
            log_op_t ops[GROUPS];
            for (int g = 0; g < GROUPS; g++)
                ops[g] =
                    (log_op_t){.store = s[g], .kind = LOG_OP_APPEND, .entries = e, .n_entries = 1};
            if (log_store_write(env, ops, GROUPS, &st) != 0)
                _exit(4);
            tu_entries_free(e, 1);
        }
        _exit(0);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    log_env_t *env;
    rk_status_t st;
    assert_int_equal(log_env_open(dir, &o, &env, &st), 0);
    uint64_t replayed = 0;
    journal_stats(env->journal, NULL, &replayed, NULL);
    assert_int_equal(replayed, 5);
    for (int g = 0; g < GROUPS; g++) {
        char name[16];
        snprintf(name, sizeof name, "g%d", g);
        log_store_t *s;
        assert_int_equal(log_store_open(env, name, NULL, &s, &st), 0);
        assert_int_equal(log_store_last_index(s), 5);
        log_store_close(s);
    }
    log_env_close(env);
}

/* ---- appends committed to LMDB later (log_store.c, "pending") ---- */

/* Opens dir's environment and group "g"; a child _exits(2) when it cannot. */
static log_store_t *child_open(const char *dir, const log_env_options_t *o, log_env_t **env)
{
    log_store_t *s;
    rk_status_t st;
    if (log_env_open(dir, o, env, &st) != 0 || log_store_open(*env, "g", NULL, &s, &st) != 0)
        _exit(2);
    return s;
}

static log_store_t *open_g(const char *dir, const log_env_options_t *o, log_env_t **env)
{
    log_store_t *s;
    rk_status_t st;
    assert_int_equal(log_env_open(dir, o, env, &st), 0);
    assert_int_equal(log_store_open(*env, "g", NULL, &s, &st), 0);
    return s;
}

static void verify_close(log_store_t *s, log_env_t *env)
{
    rk_status_t st;
    assert_int_equal(log_store_verify(s, NULL, &st), 0);
    log_store_close(s);
    log_env_close(env);
}

static void append1(log_env_t *env, log_store_t *s, uint64_t index, uint64_t term,
                    uint64_t truncate_from, const meta_hard_state_t *hs)
{
    rk_status_t st;
    log_entry_t *e = tu_entries(index, 1, term, 300);
    log_op_t op = {.store = s,
                   .kind = LOG_OP_APPEND,
                   .truncate_from = truncate_from,
                   .entries = e,
                   .n_entries = 1,
                   .hard_state = hs};
    if (log_store_write(env, &op, 1, &st) != 0 || op.status != 0)
        _exit(10);
    tu_entries_free(e, 1);
}

static size_t pending_ops(log_env_t *env)
{
    size_t n;
    uint64_t drains;
    log_store_pending_stats(env, &n, &drains);
    return n;
}

/* entry i has term terms[i] and its payload; bounds as given */
static void expect_log(log_store_t *s, uint64_t first, uint64_t last, const uint64_t *terms)
{
    rk_status_t st;
    assert_int_equal(log_store_first_index(s), first);
    assert_int_equal(log_store_last_index(s), last);
    for (uint64_t i = first; i <= last; i++) {
        log_entry_t e;
        uint64_t t = 0;
        assert_int_equal(log_store_get(s, i, &e, &st), 0);
        assert_int_equal(e.term, terms[i]);
        assert_true(tu_payload_check(i, terms[i], e.data, e.len));
        log_entry_release(&e);
        assert_int_equal(log_store_term(s, i, &t, &st), 0);
        assert_int_equal(t, terms[i]);
    }
    log_entry_t *arr;
    size_t n;
    assert_int_equal(log_store_fetch(s, first, 0, (size_t)-1, &arr, &n, &st), 0);
    assert_int_equal(n, last - first + 1);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(arr[k].term, terms[first + k]);
    log_entries_free(arr, n);
}

static void run_child(void (*fn)(const char *, const log_env_options_t *), const char *dir,
                      const log_env_options_t *o)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn(dir, o);
        _exit(0); /* no close: like kill -9 */
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

static const uint64_t rewrite_terms[] = {0, 1, 1, 1, 1, 1, 2, 2, 2, 2};

/* Child: ten one-entry appends and a rewrite of the tail with a new term
 * and hard state, all left pending (none committed to LMDB) and read back
 * from memory; reading the hard state commits them; one more pending
 * append, and death. */
static void pending_then_die(const char *dir, const log_env_options_t *o)
{
    log_env_t *env;
    log_store_t *s = child_open(dir, o, &env);
    rk_status_t st;
    meta_hard_state_t hs = {.term = 1};
    for (uint64_t i = 1; i <= 10; i++)
        append1(env, s, i, 1, 0, &hs);
    /* a new leader's entries replace 6.. (Raft 5.3) */
    hs = (meta_hard_state_t){.term = 2, .commit = 3, .voted_for = "127.0.0.1:8002"};
    append1(env, s, 6, 2, 6, &hs);
    append1(env, s, 7, 2, 0, NULL);
    append1(env, s, 8, 2, 0, NULL);
    if (pending_ops(env) != 13)
        _exit(11);
    expect_log(s, 1, 8, rewrite_terms);
    /* the hard state is read from LMDB: the newest must be there */
    meta_hard_state_t got;
    if (meta_store_load(s, &got, &st) != 0 || got.term != 2 || pending_ops(env) != 0)
        _exit(12);
    append1(env, s, 9, 2, 0, NULL); /* pending again when the process dies */
    if (pending_ops(env) != 1)
        _exit(13);
    _exit(0);
}

static void pending_appends_are_read_from_memory_and_replayed_after_a_crash(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, 0, 0);
    run_child(pending_then_die, dir, &o);
    log_env_t *env;
    log_store_t *s = open_g(dir, &o, &env);
    rk_status_t st;
    uint64_t replayed = 0;
    journal_stats(env->journal, NULL, &replayed, NULL);
    /* every record since the checkpoint: LMDB is rolled back to it */
    assert_int_equal(replayed, 14);
    expect_log(s, 1, 9, rewrite_terms);
    meta_hard_state_t hs;
    assert_int_equal(meta_store_load(s, &hs, &st), 0);
    assert_int_equal(hs.term, 2);
    assert_int_equal(hs.commit, 3);
    assert_string_equal(hs.voted_for, "127.0.0.1:8002");
    verify_close(s, env);
}

static const uint64_t reset_terms[] = {[21] = 3, [22] = 3, [23] = 3};

/* Child: pending appends, then ops that read or rewrite what LMDB holds
 * (prefix truncation, reset to a snapshot): each first commits what is
 * pending; then more pending appends, and death. */
static void drain_then_die(const char *dir, const log_env_options_t *o)
{
    log_env_t *env;
    log_store_t *s = child_open(dir, o, &env);
    rk_status_t st;
    for (uint64_t i = 1; i <= 5; i++)
        append1(env, s, i, 1, 0, NULL);
    if (pending_ops(env) != 5)
        _exit(11);
    /* keeps 3..5: reads the term of 2, which only LMDB can give once drained */
    if (log_store_truncate_prefix(s, 3, &st) != 0 || pending_ops(env) != 0)
        _exit(12);
    for (uint64_t i = 6; i <= 8; i++)
        append1(env, s, i, 1, 0, NULL);
    if (log_store_verify(s, NULL, &st) != 0 || pending_ops(env) != 0) /* verify drains */
        _exit(13);
    append1(env, s, 9, 1, 0, NULL);
    if (log_store_reset(s, 20, 3, &st) != 0 || pending_ops(env) != 0)
        _exit(14);
    for (uint64_t i = 21; i <= 23; i++)
        append1(env, s, i, 3, 0, NULL);
    if (pending_ops(env) != 3)
        _exit(15);
    _exit(0);
}

static void prefix_truncation_and_reset_commit_the_pending_appends_first(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, 0, 0);
    run_child(drain_then_die, dir, &o);
    log_env_t *env;
    log_store_t *s = open_g(dir, &o, &env);
    rk_status_t st;
    uint64_t t = 0;
    assert_int_equal(log_store_term(s, 20, &t, &st), 0); /* the snapshot's */
    assert_int_equal(t, 3);
    expect_log(s, 21, 23, reset_terms);
    verify_close(s, env);
}

/* PEND_RECORDS (32) records make one transaction; closing commits the rest,
 * so a clean reopen replays nothing. */
static void pending_appends_are_committed_in_groups_and_at_close(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, 0, 0);
    log_env_t *env;
    log_store_t *s = open_g(dir, &o, &env);
    uint64_t before = 0, after = 0;
    journal_stats(env->journal, NULL, NULL, &before);
    for (uint64_t i = 1; i <= 70; i++)
        append1(env, s, i, 1, 0, NULL);
    size_t n;
    uint64_t drains;
    log_store_pending_stats(env, &n, &drains);
    assert_int_equal(drains, 2); /* at the 33rd and the 65th */
    assert_int_equal(n, 6);
    journal_stats(env->journal, NULL, NULL, &after);
    assert_int_equal(after - before, 70); /* one record each, all synced */
    log_store_close(s);
    log_env_close(env);
    s = open_g(dir, &o, &env);
    uint64_t replayed = 1;
    journal_stats(env->journal, NULL, &replayed, NULL);
    assert_int_equal(replayed, 0);
    assert_int_equal(log_store_last_index(s), 70);
    verify_close(s, env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(recovery_replays_every_record_past_the_checkpoint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(torn_last_record_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupt_record_in_the_middle_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(sustained_load_rotates_the_segment_and_loses_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(map_growth_during_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(turning_the_journal_off_replays_and_removes_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(replay_spans_many_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(
            pending_appends_are_read_from_memory_and_replayed_after_a_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(
            prefix_truncation_and_reset_commit_the_pending_appends_first, setup, teardown),
        cmocka_unit_test_setup_teardown(pending_appends_are_committed_in_groups_and_at_close, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("storage_journal", tests, NULL, NULL);
}
