/* The storage layer when the disk fails it: a write or sync that fails
 * after a journal record was made durable, a failed fsync that a later one
 * would hide, switching the journal off just before a power loss, a
 * half-created checkpoint file, and the assumptions the journal checks at
 * open (LMDB's version and page size, one process per data directory).
 *
 * Faults are injected from outside the library: this program defines
 * fdatasync, fsync, pwrite, writev, pwritev and unlink, which take
 * precedence over libc's for raftkit's calls and for liblmdb's (as
 * tests/storage/powerloss.c does), and pass through to the system calls
 * unless a test armed them for one file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "storage/journal.h"
#include "storage/log_cache.h"
#include "storage/log_store.h"
#include "storage/log_writer.h"
#include "tools/common/storage_util.h"

#define FOREVER 3600000u /* a checkpoint interval that never elapses in a test */

/* ---- fault injection ---- */

/* Fail the next `fail_count` calls of a kind on the file whose name ends in
 * `fail_name` with `fail_errno` (nothing is written or synced). */
enum { F_NONE, F_WRITE, F_SYNC };
static int fail_kind = F_NONE, fail_errno, fail_count;
static char fail_name[64];
static int fails_injected;

/* Deferred unlinks: while `defer_dir` is set, unlink(2) of a file in it
 * renames the file aside; an fsync of the directory makes the removals
 * final; power_loss_unlinks() brings back those not made final, as a power
 * cut does with a directory update that never reached the disk. */
static char defer_dir[PATH_MAX];
static char deferred[8][1024];
static int n_deferred;

static void fd_path(int fd, char *out, size_t len)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, len - 1);
    out[n > 0 ? n : 0] = '\0';
}

static int should_fail(int kind, int fd)
{
    if (fail_kind != kind || fail_count == 0)
        return 0;
    char p[PATH_MAX];
    fd_path(fd, p, sizeof p);
    size_t n = strlen(p), k = strlen(fail_name);
    if (n < k || strcmp(p + n - k, fail_name) != 0)
        return 0;
    fail_count--;
    fails_injected++;
    return fail_errno;
}

static void arm(int kind, const char *name, int err, int count)
{
    snprintf(fail_name, sizeof fail_name, "/%s", name);
    fail_errno = err;
    fail_count = count;
    fail_kind = kind;
    fails_injected = 0;
}

static void disarm(void)
{
    fail_kind = F_NONE;
    fail_count = 0;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    int e = should_fail(F_WRITE, fd);
    if (e)
        return errno = e, -1;
    return syscall(SYS_pwrite64, fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    int e = should_fail(F_WRITE, fd);
    if (e)
        return errno = e, -1;
    return syscall(SYS_writev, fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    int e = should_fail(F_WRITE, fd);
    if (e)
        return errno = e, -1;
    return syscall(SYS_pwritev, fd, iov, cnt, (long)off, (long)((uint64_t)off >> 32));
}

static void dir_synced(int fd)
{
    if (defer_dir[0] == '\0')
        return;
    char p[PATH_MAX], want[PATH_MAX];
    fd_path(fd, p, sizeof p);
    if (realpath(defer_dir, want) == NULL || strcmp(p, want) != 0)
        return;
    for (int i = 0; i < n_deferred; i++) {
        char aside[1100];
        snprintf(aside, sizeof aside, "%.1000s.unlinked", deferred[i]);
        syscall(SYS_unlink, aside);
    }
    n_deferred = 0;
}

int fdatasync(int fd)
{
    int e = should_fail(F_SYNC, fd);
    if (e)
        return errno = e, -1;
    return (int)syscall(SYS_fdatasync, fd);
}

/* The directories fsynced (successfully) since the last reset. */
static char dir_syncs[16][PATH_MAX];
static int n_dir_syncs;

static void note_dir_sync(int fd)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISDIR(sb.st_mode) || n_dir_syncs == 16)
        return;
    fd_path(fd, dir_syncs[n_dir_syncs++], PATH_MAX);
}

static bool dir_was_synced(const char *dir)
{
    char want[PATH_MAX];
    if (realpath(dir, want) == NULL)
        return false;
    for (int i = 0; i < n_dir_syncs; i++)
        if (strcmp(dir_syncs[i], want) == 0)
            return true;
    return false;
}

int fsync(int fd)
{
    int e = should_fail(F_SYNC, fd);
    if (e)
        return errno = e, -1;
    int rc = (int)syscall(SYS_fsync, fd);
    if (rc == 0) {
        dir_synced(fd);
        note_dir_sync(fd);
    }
    return rc;
}

int unlink(const char *path)
{
    size_t k = strlen(defer_dir);
    if (k == 0 || strncmp(path, defer_dir, k) != 0 || path[k] != '/' || n_deferred == 8 ||
        strlen(path) > 1000)
        return (int)syscall(SYS_unlink, path);
    char aside[1100];
    snprintf(aside, sizeof aside, "%.1000s.unlinked", path);
    if (syscall(SYS_rename, path, aside) != 0)
        return -1;
    snprintf(deferred[n_deferred++], sizeof deferred[0], "%.1000s", path);
    return 0;
}

/* A kernel with other pages: sysconf(_SC_PAGESIZE) says fake_page_size
 * while it is set (liblmdb sizes a new file's pages by it). */
static long fake_page_size;
extern long __sysconf(int name);

long sysconf(int name)
{
    if (name == _SC_PAGESIZE && fake_page_size != 0)
        return fake_page_size;
    return __sysconf(name);
}

/* Another LMDB release, while fake_lmdb_major is set. */
static int fake_lmdb_major;

char *mdb_version(int *major, int *minor, int *patch)
{
    if (major)
        *major = fake_lmdb_major ? fake_lmdb_major : MDB_VERSION_MAJOR;
    if (minor)
        *minor = fake_lmdb_major ? 0 : MDB_VERSION_MINOR;
    if (patch)
        *patch = fake_lmdb_major ? 0 : MDB_VERSION_PATCH;
    return fake_lmdb_major ? "LMDB 1.0.0 (test stub)" : MDB_VERSION_STRING;
}

/* The power cut: removals no directory fsync covered are undone. */
static void power_loss_unlinks(void)
{
    for (int i = 0; i < n_deferred; i++) {
        char aside[1100];
        snprintf(aside, sizeof aside, "%.1000s.unlinked", deferred[i]);
        syscall(SYS_rename, aside, deferred[i]);
    }
    n_deferred = 0;
    defer_dir[0] = '\0';
}

/* ---- helpers ---- */

static int setup(void **state)
{
    *state = tu_mkdtemp("failures");
    return 0;
}

static int teardown(void **state)
{
    disarm();
    fake_page_size = 0;
    fake_lmdb_major = 0;
    defer_dir[0] = '\0';
    n_deferred = 0;
    tu_rm_rf(*state);
    free(*state);
    return 0;
}

static void opts(log_env_options_t *o, bool journal)
{
    log_env_options_init(o);
    o->journal = journal;
    o->journal_checkpoint_ms = FOREVER;
}

static log_store_t *open_g(const char *dir, const log_env_options_t *o, size_t cache,
                           log_env_t **env)
{
    log_store_t *s;
    rk_status_t st;
    log_store_options_t so = {.cache_bytes = cache};
    assert_int_equal(log_env_open(dir, o, env, &st), 0);
    assert_int_equal(log_store_open(*env, "g", &so, &s, &st), 0);
    return s;
}

static int append_range(log_env_t *env, log_store_t *s, uint64_t first, size_t n,
                        void (*on_durable)(void *), void *arg, rk_status_t *st)
{
    log_entry_t *e = tu_entries(first, n, 1, 300);
    log_op_t op = {.store = s, .kind = LOG_OP_APPEND, .entries = e, .n_entries = n};
    int rc = log_store_write_ex(env, &op, 1, 0, on_durable, arg, st);
    tu_entries_free(e, n);
    return rc != 0 ? rc : op.status;
}

static void append_ok(log_env_t *env, log_store_t *s, uint64_t first, size_t n)
{
    rk_status_t st;
    assert_int_equal(append_range(env, s, first, n, NULL, NULL, &st), 0);
}

static void count_durable(void *arg)
{
    ++*(int *)arg;
}

/* Reopens dir and checks the log is exactly [1, last] with its payloads. */
static void expect_log(const char *dir, const log_env_options_t *o, uint64_t last)
{
    log_env_t *env;
    log_store_t *s = open_g(dir, o, 0, &env);
    rk_status_t st;
    assert_int_equal(log_store_first_index(s), 1);
    assert_int_equal(log_store_last_index(s), last);
    assert_int_equal(log_store_verify(s, NULL, &st), 0);
    for (uint64_t i = 1; i <= last; i++) {
        log_entry_t e;
        assert_int_equal(log_store_get(s, i, &e, &st), 0);
        assert_true(tu_payload_check(i, 1, e.data, e.len));
        log_entry_release(&e);
    }
    log_store_close(s);
    log_env_close(env);
}

static uint64_t replayed_at_open(const char *dir, const log_env_options_t *o)
{
    log_env_t *env;
    rk_status_t st;
    assert_int_equal(log_env_open(dir, o, &env, &st), 0);
    uint64_t replayed = 0;
    journal_stats(env->journal, NULL, &replayed, NULL);
    log_env_close(env);
    return replayed;
}

/* ---- 1. a batch acknowledged, then its LMDB commit failed ---- */

/* The record of 6..8 is synced and reported durable (on_durable: a follower
 * would answer AppendEntries now); then LMDB cannot write its pages (a full
 * disk). The batch must come back after an ordinary close and reopen, and
 * nothing after it may be written or acknowledged in between. */
static void acknowledged_batch_whose_commit_failed_survives_a_clean_restart(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, true);
    log_env_t *env;
    log_store_t *s = open_g(dir, &o, 0, &env); /* no cache: every batch commits at once */
    append_ok(env, s, 1, 5);

    arm(F_WRITE, "data.mdb", ENOSPC, 1000);
    int durable = 0;
    rk_status_t st;
    assert_int_equal(append_range(env, s, 6, 3, count_durable, &durable, &st), RK_ENOSPC);
    disarm();
    assert_true(fails_injected > 0);
    assert_int_equal(durable, 1); /* acknowledged */

    /* sticky: nothing later is written, nothing acknowledged */
    int later = 0;
    assert_int_equal(append_range(env, s, 6, 1, count_durable, &later, &st), RK_ENOSPC);
    assert_int_equal(later, 0);
    meta_hard_state_t hs = {.term = 7};
    assert_int_equal(meta_store_save(s, &hs, &st), RK_ENOSPC);

    log_store_close(s);
    log_env_close(env); /* a clean shutdown: must not checkpoint the record away */
    expect_log(dir, &o, 8);
}

/* The same through the log writer, as a node drives it: a batch run
 * inline is acknowledged from durable_cb, its commit fails, and its
 * callback (which makes the node enter its error state) reports the error.
 * A batch submitted after that is neither acknowledged nor stored. */
typedef struct wreq {
    log_write_req_t r;
    log_entry_t *e;
    int durable, done, status;
} wreq_t;

static void w_durable(log_write_req_t *r)
{
    ((wreq_t *)r)->durable++;
}

static void w_done(log_write_req_t *r, int status)
{
    wreq_t *q = (wreq_t *)r;
    q->done++;
    q->status = status;
}

static void w_prepare(wreq_t *q, log_store_t *s, uint64_t first, size_t n)
{
    memset(q, 0, sizeof *q);
    q->e = tu_entries(first, n, 1, 300);
    q->r.op = (log_op_t){.store = s, .kind = LOG_OP_APPEND, .entries = q->e, .n_entries = n};
    q->r.durable_cb = w_durable;
}

static void writer_after_a_failed_commit_acknowledges_nothing_more(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, true);
    log_env_t *env;
    log_store_t *s = open_g(dir, &o, 0, &env);
    uv_loop_t loop;
    uv_loop_init(&loop);
    log_writer_t *w;
    rk_status_t st;
    assert_int_equal(log_writer_start(env, &loop, NULL, &w, &st), 0);
    wreq_t a, b, c;
    w_prepare(&a, s, 1, 3);
    assert_int_equal(log_writer_submit_held(w, &a.r, w_done), 0);
    assert_true(log_writer_flush(w)); /* inline: completed on return */
    assert_int_equal(a.done, 1);
    assert_int_equal(a.status, 0);

    w_prepare(&b, s, 4, 2);
    arm(F_WRITE, "data.mdb", ENOSPC, 1000);
    assert_int_equal(log_writer_submit_held(w, &b.r, w_done), 0);
    assert_true(log_writer_flush(w));
    disarm();
    assert_int_equal(b.durable, 1); /* acknowledged before the commit */
    assert_int_equal(b.done, 1);
    assert_int_equal(b.status, RK_ENOSPC);
    assert_int_equal(log_env_failed(env, NULL), RK_ENOSPC);

    w_prepare(&c, s, 6, 1);
    assert_int_equal(log_writer_submit(w, &c.r, w_done), 0);
    for (int i = 0; i < 10000 && c.done == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.durable, 0);
    assert_int_not_equal(c.status, 0);
    log_writer_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    tu_entries_free(a.e, 3);
    tu_entries_free(b.e, 2);
    tu_entries_free(c.e, 1);
    log_store_close(s);
    log_env_close(env);
    expect_log(dir, &o, 5);
}

/* A checkpoint the writer thread runs on its own (an inline write left it
 * due) fails its LMDB sync: the owner hears of it at once, through
 * on_failure, once, and not only at its next write. */
typedef struct wfail {
    int calls, code;
} wfail_t;

static void on_wfail(void *arg, int code, const rk_status_t *st)
{
    wfail_t *f = arg;
    f->calls++;
    f->code = code;
    assert_true(st->msg[0] != '\0');
}

/* Runs loop until *flag is set by one of its callbacks, for at most 5 s. */
static void run_until(uv_loop_t *loop, const int *flag)
{
    for (int i = 0; i < 5000 && *flag == 0; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

static void writer_reports_a_failed_background_checkpoint(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, true);
    o.journal_checkpoint_ms = 1;
    log_env_t *env;
    log_store_t *s = open_g(dir, &o, 0, &env);
    uv_loop_t loop;
    uv_loop_init(&loop);
    wfail_t f = {0, 0};
    log_writer_options_t wo = {.on_failure = on_wfail, .failure_arg = &f};
    log_writer_t *w;
    rk_status_t st;
    assert_int_equal(log_writer_start(env, &loop, &wo, &w, &st), 0);
    wreq_t a, b;
    w_prepare(&a, s, 1, 3);
    usleep(5000); /* the checkpoint interval has passed */
    arm(F_SYNC, "data.mdb", EIO, 1000);
    assert_int_equal(log_writer_submit_held(w, &a.r, w_done), 0);
    assert_true(log_writer_flush(w)); /* inline; the checkpoint is left to the thread */
    assert_int_equal(a.done, 1);
    assert_int_equal(a.status, 0);
    run_until(&loop, &f.calls);
    disarm();
    assert_int_equal(f.calls, 1);
    assert_int_equal(f.code, RK_EIO);
    assert_int_equal(log_env_failed(env, NULL), RK_EIO);

    w_prepare(&b, s, 4, 1); /* later writes fail through their callback */
    assert_int_equal(log_writer_submit(w, &b.r, w_done), 0);
    run_until(&loop, &b.done);
    assert_int_equal(b.done, 1);
    assert_int_not_equal(b.status, 0);
    assert_int_equal(f.calls, 1);
    log_writer_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    tu_entries_free(a.e, 3);
    tu_entries_free(b.e, 1);
    log_store_close(s);
    log_env_close(env);
    expect_log(dir, &o, 3);
}

/* ---- 2. a failed sync is remembered ---- */

/* mdb_env_sync in a checkpoint fails once (the kernel then marks the pages
 * clean: a second sync would report success for data that never reached the
 * disk). From then on every write fails, the close does not checkpoint, and
 * the next open replays the journal. */
static void failed_checkpoint_sync_is_sticky_and_replayed_at_the_next_open(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, true);
    log_env_t *env;
    log_store_t *s = open_g(dir, &o, 0, &env);
    append_ok(env, s, 1, 10);

    rk_status_t st;
    arm(F_SYNC, "data.mdb", EIO, 1);
    journal_lock(env->journal);
    assert_int_equal(journal_checkpoint(env->journal, env, 1, &st), RK_EIO);
    journal_unlock(env->journal);
    assert_int_equal(fails_injected, 1);
    disarm();

    int durable = 0;
    assert_int_equal(append_range(env, s, 11, 1, count_durable, &durable, &st), RK_EIO);
    assert_int_equal(durable, 0);
    assert_int_equal(log_store_last_index(s), 10);
    journal_lock(env->journal);
    assert_int_equal(journal_checkpoint(env->journal, env, 1, &st), RK_EIO);
    journal_unlock(env->journal);
    assert_int_equal(log_store_sync_pending(env, &st), RK_EIO);
    log_store_close(s);
    log_env_close(env);

    assert_int_equal(replayed_at_open(dir, &o), 1); /* the batch 1..10 */
    expect_log(dir, &o, 10);
}

/* The same for the sync of a journal record: the batch fails, is not
 * acknowledged, and the journal takes nothing after it. */
static void failed_record_sync_is_sticky(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, true);
    log_env_t *env;
    log_store_t *s = open_g(dir, &o, 0, &env);
    append_ok(env, s, 1, 3);
    rk_status_t st;
    int durable = 0;
    arm(F_SYNC, "journal.wal", EIO, 1);
    assert_int_equal(append_range(env, s, 4, 1, count_durable, &durable, &st), RK_EIO);
    disarm();
    assert_int_equal(durable, 0);
    assert_int_equal(append_range(env, s, 4, 1, count_durable, &durable, &st), RK_EIO);
    assert_int_equal(durable, 0);
    log_store_close(s);
    log_env_close(env);
    /* 4 may or may not be there (never acknowledged); 1..3 are */
    log_env_t *e2;
    log_store_t *s2 = open_g(dir, &o, 0, &e2);
    assert_true(log_store_last_index(s2) == 3 || log_store_last_index(s2) == 4);
    assert_int_equal(log_store_verify(s2, NULL, &st), 0);
    log_store_close(s2);
    log_env_close(e2);
}

/* Without the journal LMDB syncs inside its commit; a failed sync there is
 * sticky just the same (an earlier commit's meta page may have been in the
 * writeback the kernel then marked clean). */
static void failed_sync_inside_an_lmdb_commit_is_sticky_without_the_journal(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, false);
    log_env_t *env;
    log_store_t *s = open_g(dir, &o, 0, &env);
    append_ok(env, s, 1, 3);
    rk_status_t st;
    arm(F_SYNC, "data.mdb", EIO, 1);
    assert_int_equal(append_range(env, s, 4, 1, NULL, NULL, &st), RK_EIO);
    disarm();
    assert_int_equal(fails_injected, 1);
    assert_int_equal(append_range(env, s, 4, 1, NULL, NULL, &st), RK_EIO);
    assert_int_equal(log_env_sync(env, &st), RK_EIO);
    log_store_close(s);
    log_env_close(env);
    expect_log(dir, &o, 3);
}

/* ---- 3. turning the journal off ---- */

/* Recovering with the journal off removes its files. Unless that removal is
 * durable before LMDB runs unpinned, a power loss can bring journal.ckpt
 * back, and the next open would restore its old meta pages over a tree that
 * has been overwritten since. */
static void turning_the_journal_off_survives_a_power_loss(void **state)
{
    const char *dir = *state;
    log_env_options_t on, off;
    opts(&on, true);
    opts(&off, false);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* writes with the journal and dies without closing */
        log_env_t *env;
        log_store_t *s;
        rk_status_t st;
        if (log_env_open(dir, &on, &env, &st) != 0 || log_store_open(env, "g", NULL, &s, &st) != 0)
            _exit(2);
        for (uint64_t i = 1; i <= 300; i += 10) {
            log_entry_t *e = tu_entries(i, 10, 1, 300);
            if (log_store_append(s, e, 10, &st) != 0)
                _exit(3);
            tu_entries_free(e, 10);
        }
        _exit(0);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);

    snprintf(defer_dir, sizeof defer_dir, "%s", dir);
    log_env_t *env;
    log_store_t *s = open_g(dir, &off, 0, &env); /* replays and removes the journal */
    rk_status_t st;
    /* LMDB on its own now: rewrite most of the log so that pages the old
     * checkpoint used are reused */
    assert_int_equal(log_store_truncate_suffix(s, 2, &st), 0);
    for (uint64_t i = 2; i <= 500; i += 10) {
        log_entry_t *e = tu_entries(i, i == 492 ? 9 : 10, 1, 300);
        assert_int_equal(log_store_append(s, e, i == 492 ? 9 : 10, &st), 0);
        tu_entries_free(e, i == 492 ? 9 : 10);
    }
    assert_int_equal(log_store_last_index(s), 500);
    log_store_close(s);
    log_env_close(env);
    power_loss_unlinks();
    expect_log(dir, &off, 500);
}

/* ---- 4. a half-created checkpoint file ---- */

static void write_zeros(const char *dir, const char *name, size_t n)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    uint8_t *z = calloc(1, n ? n : 1);
    assert_int_equal(pwrite(fd, z, n, 0), (ssize_t)n);
    free(z);
    close(fd);
}

/* A kill during the very first open, while journal.ckpt was being zero
 * filled: the directory holds a short file of zeros and nothing else. */
static void short_checkpoint_file_from_a_first_open_is_blank(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, true);
    write_zeros(dir, "journal.ckpt", 1000);
    log_env_t *env;
    log_store_t *s = open_g(dir, &o, 0, &env);
    append_ok(env, s, 1, 5);
    log_store_close(s);
    log_env_close(env);
    expect_log(dir, &o, 5);
}

/* The same when the journal is turned on for an existing log. */
static void short_checkpoint_file_when_turning_the_journal_on_is_blank(void **state)
{
    const char *dir = *state;
    log_env_options_t on, off;
    opts(&on, true);
    opts(&off, false);
    log_env_t *env;
    log_store_t *s = open_g(dir, &off, 0, &env);
    append_ok(env, s, 1, 5);
    log_store_close(s);
    log_env_close(env);
    write_zeros(dir, "journal.ckpt", 5000);
    expect_log(dir, &on, 5);
    expect_log(dir, &on, 5);
}

/* ---- 5. what the journal assumes, checked ---- */

/* A new environment's files are found after a power loss only if the
 * directory entries leading to them are on the disk: creating one fsyncs
 * its directory and the parent, once; reopening it does not again. */
static void creating_an_environment_syncs_its_directories(void **state)
{
    char dir[PATH_MAX + 8];
    snprintf(dir, sizeof dir, "%s/log", (const char *)*state);
    assert_int_equal(mkdir(dir, 0755), 0);
    log_env_options_t o;
    opts(&o, true);
    log_env_t *env;
    rk_status_t st;
    n_dir_syncs = 0;
    assert_int_equal(log_env_open(dir, &o, &env, &st), 0);
    assert_true(dir_was_synced(dir));
    assert_true(dir_was_synced(*state));
    log_env_close(env);
    n_dir_syncs = 0;
    assert_int_equal(log_env_open(dir, &o, &env, &st), 0);
    assert_false(dir_was_synced(dir));
    log_env_close(env);
}

/* Pending appends (journaled, not yet committed to LMDB) must never outgrow
 * the file space reserved for draining them, even when no write drains the
 * queue (LOG_STORE_NO_CHECKPOINT: inline writes leave the drain to the
 * writer thread): the queue stops at a quarter of the 4 MiB reservation and
 * later batches are committed directly. */
static void pending_appends_stay_within_the_reservation(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, true);
    log_env_t *env;
    log_store_t *s = open_g(dir, &o, 64u << 20, &env);
    const size_t per = 100, batches = 100;
    size_t queued = 0, most = 0, prev = 0; /* weight of the pending batches */
    int bounded = 0;                       /* times the bound sent a batch to LMDB */
    for (size_t b = 0; b < batches; b++) {
        rk_status_t st;
        log_entry_t *e = tu_entries(1 + b * per, per, 1, 300);
        size_t w = 0; /* what the queue counts: payload plus cache overhead */
        for (size_t k = 0; k < per; k++)
            w += e[k].len + LOG_CACHE_OVERHEAD;
        log_op_t op = {.store = s, .kind = LOG_OP_APPEND, .entries = e, .n_entries = per};
        assert_int_equal(log_store_write_flags(env, &op, 1, LOG_STORE_NO_CHECKPOINT, &st), 0);
        assert_int_equal(op.status, 0);
        tu_entries_free(e, per);
        size_t n;
        uint64_t drains;
        log_store_pending_stats(env, &n, &drains);
        if (n == prev + 1) { /* queued */
            queued += w;
        } else { /* drained, and committed directly */
            assert_int_equal(n, 0);
            assert_true(queued + w > (1u << 20));
            queued = 0;
            bounded++;
        }
        prev = n;
        if (queued > most)
            most = queued;
        assert_true(queued <= (1u << 20)); /* a quarter of the 4 MiB reservation */
    }
    assert_true(bounded >= 1);
    assert_true(most > (1u << 20) - (64u << 10)); /* the queue did fill up */
    log_store_close(s);
    log_env_close(env);
    expect_log(dir, &o, batches * per);
}

/* LMDB takes its page size from the file (or, for a new file, from the
 * kernel, capped at 32 KiB), not from what the journal believes: a file
 * made on a 64 KiB-page kernel, reopened and replayed here. */
static void journal_uses_the_page_size_of_the_data_file(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, true);
    fake_page_size = 65536;
    log_env_t *env;
    log_store_t *s = open_g(dir, &o, 0, &env);
    MDB_stat ms;
    assert_int_equal(mdb_env_stat(env->mdb, &ms), 0);
    assert_int_not_equal(ms.ms_psize, 4096);
    append_ok(env, s, 1, 5);
    log_store_close(s);
    log_env_close(env);
    fake_page_size = 0;
    pid_t pid = fork(); /* more batches, and a crash: replayed below */
    assert_true(pid >= 0);
    if (pid == 0) {
        rk_status_t st;
        if (log_env_open(dir, &o, &env, &st) != 0 || log_store_open(env, "g", NULL, &s, &st) != 0)
            _exit(2);
        for (uint64_t i = 6; i <= 60; i += 5) {
            log_entry_t *e = tu_entries(i, 5, 1, 300);
            if (log_store_append(s, e, 5, &st) != 0)
                _exit(3);
            tu_entries_free(e, 5);
        }
        _exit(0);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    assert_true(replayed_at_open(dir, &o) > 0);
    expect_log(dir, &o, 60);
}

static void journal_refuses_an_lmdb_other_than_0_9(void **state)
{
    const char *dir = *state;
    log_env_options_t on, off;
    opts(&on, true);
    opts(&off, false);
    fake_lmdb_major = 1;
    log_env_t *env;
    rk_status_t st;
    assert_int_equal(log_env_open(dir, &on, &env, &st), RK_EINVAL);
    assert_non_null(strstr(st.msg, "LMDB 0.9"));
    assert_non_null(strstr(st.msg, "1.0.0"));
    /* without the journal nothing depends on the meta page layout */
    assert_int_equal(log_env_open(dir, &off, &env, &st), 0);
    log_env_close(env);
}

static void data_file_that_is_not_lmdb_0_9_is_refused(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, true);
    log_env_t *env;
    log_store_t *s = open_g(dir, &o, 0, &env);
    log_store_close(s);
    log_env_close(env);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    int fd = open(p, O_RDWR);
    uint32_t version = 2; /* a meta page version 0.9 does not write */
    assert_int_equal(pwrite(fd, &version, 4, 20), 4);
    close(fd);
    rk_status_t st;
    assert_int_equal(log_env_open(dir, &o, &env, &st), RK_ECORRUPT);
    assert_non_null(strstr(st.msg, "not an LMDB 0.9 data file"));
}

static void a_data_directory_is_opened_by_one_process_at_a_time(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, true);
    log_env_t *env, *other;
    rk_status_t st;
    assert_int_equal(log_env_open(dir, &o, &env, &st), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(log_env_open(dir, &o, &other, &st) == RK_EBUSY ? 0 : 1);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    assert_int_equal(log_env_open(dir, &o, &other, &st), RK_EBUSY);
    assert_non_null(strstr(st.msg, "in use"));
    log_env_close(env);
    assert_int_equal(log_env_open(dir, &o, &other, &st), 0);
    log_env_close(other);
}

/* A record that does not apply on replay (here: written past the end of
 * the log behind the store's back) fails the open instead of vanishing. */
static void replay_fails_loudly_when_an_op_does_not_apply(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, true);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        log_env_t *env;
        log_store_t *s;
        rk_status_t st;
        log_store_options_t so = {.cache_bytes = 0};
        if (log_env_open(dir, &o, &env, &st) != 0 || log_store_open(env, "g", &so, &s, &st) != 0)
            _exit(2);
        log_entry_t *e = tu_entries(1, 3, 1, 100);
        if (log_store_append(s, e, 3, &st) != 0)
            _exit(3);
        tu_entries_free(e, 3);
        e = tu_entries(10, 1, 1, 100); /* 4..9 missing */
        log_op_t op = {.store = s, .kind = LOG_OP_APPEND, .entries = e, .n_entries = 1};
        uint64_t seq;
        journal_lock(env->journal);
        if (journal_append(env->journal, env, &op, 1, &seq, &st) != 0)
            _exit(4);
        _exit(0);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    log_env_t *env;
    rk_status_t st;
    assert_int_equal(log_env_open(dir, &o, &env, &st), RK_ECORRUPT);
    assert_non_null(strstr(st.msg, "does not fit the log on replay"));
}

/* A batch with one op that does not fit: the others are applied, and only
 * they are replayed (the replay check above does not fire on it). */
static void op_that_did_not_fit_is_not_replayed(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, true);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        log_env_t *env;
        log_store_t *s;
        rk_status_t st;
        log_store_options_t so = {.cache_bytes = 0};
        if (log_env_open(dir, &o, &env, &st) != 0 || log_store_open(env, "g", &so, &s, &st) != 0)
            _exit(2);
        log_entry_t *a = tu_entries(1, 3, 1, 100), *b = tu_entries(9, 1, 1, 100);
        log_op_t ops[2] = {
            {.store = s, .kind = LOG_OP_APPEND, .entries = a, .n_entries = 3},
            {.store = s, .kind = LOG_OP_APPEND, .entries = b, .n_entries = 1},
        };
        if (log_store_write(env, ops, 2, &st) != 0 || ops[0].status != 0 ||
            ops[1].status != RK_EINVAL)
            _exit(3);
        _exit(0);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    assert_int_equal(replayed_at_open(dir, &o), 1);
    expect_log(dir, &o, 3);
}

/* A record image whose checksum does not carry this lap's salt: the image
 * of a record from an earlier lap, or one a client smuggled into a payload,
 * sitting right where the next record would be. It must not be replayed.
 * Built with the unsalted checksum the journal used before salting. */
static size_t craft_record(uint8_t *r, uint64_t seq, uint64_t gid, uint64_t index)
{
    uint8_t *p = r + 24;
    codec_put_le32(p, 1); /* one op */
    p += 4;
    memset(p, 0, 40);
    p[0] = LOG_OP_APPEND;
    codec_put_le32(p + 4, 1);
    codec_put_le64(p + 8, gid);
    p += 40;
    unsigned char payload[32];
    tu_payload_fill(index, 1, payload, sizeof payload);
    codec_put_le64(p, index);
    codec_put_le64(p + 8, 1);
    codec_put_le32(p + 16, LOG_ENTRY_DATA);
    codec_put_le32(p + 20, sizeof payload);
    memcpy(p + 24, payload, sizeof payload);
    p += 24 + sizeof payload;
    size_t len = (size_t)(p - (r + 24)), total = (24 + len + 7) & ~(size_t)7;
    codec_put_le32(r, 0x4a4b5252u);
    codec_put_le32(r + 4, (uint32_t)len);
    codec_put_le64(r + 8, seq);
    codec_put_le64(r + 16, codec_checksum(r + 24, len, codec_checksum(r, 16, 0x4a4b5252u)));
    return total;
}

static void record_image_without_this_laps_salt_is_not_replayed(void **state)
{
    const char *dir = *state;
    log_env_options_t o;
    opts(&o, true);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        log_env_t *env;
        log_store_t *s;
        rk_status_t st;
        log_store_options_t so = {.cache_bytes = 0};
        if (log_env_open(dir, &o, &env, &st) != 0 || log_store_open(env, "g", &so, &s, &st) != 0)
            _exit(2);
        for (uint64_t i = 1; i <= 3; i++) {
            log_entry_t *e = tu_entries(i, 1, 1, 100);
            if (log_store_append(s, e, 1, &st) != 0)
                _exit(3);
            tu_entries_free(e, 1);
        }
        _exit(0); /* a crash: the three records are replayed at the next open */
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    /* walk the records to the end of the journal */
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/journal.wal", dir);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    size_t off = 0;
    uint64_t last_seq = 0;
    uint8_t h[24];
    while (pread(fd, h, sizeof h, (off_t)off) == (ssize_t)sizeof h &&
           codec_get_le32(h) == 0x4a4b5252u &&
           (last_seq == 0 || codec_get_le64(h + 8) == last_seq + 1)) {
        last_seq = codec_get_le64(h + 8);
        off += (24 + codec_get_le32(h + 4) + 7) & ~(size_t)7;
    }
    assert_true(last_seq > 0);
    uint8_t rec[256];
    size_t n = craft_record(rec, last_seq + 1, 1, 4);
    assert_int_equal(pwrite(fd, rec, n, (off_t)off), (ssize_t)n);
    close(fd);
    expect_log(dir, &o, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            acknowledged_batch_whose_commit_failed_survives_a_clean_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(writer_after_a_failed_commit_acknowledges_nothing_more,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            failed_checkpoint_sync_is_sticky_and_replayed_at_the_next_open, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_record_sync_is_sticky, setup, teardown),
        cmocka_unit_test_setup_teardown(writer_reports_a_failed_background_checkpoint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            failed_sync_inside_an_lmdb_commit_is_sticky_without_the_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(turning_the_journal_off_survives_a_power_loss, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(short_checkpoint_file_from_a_first_open_is_blank, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(short_checkpoint_file_when_turning_the_journal_on_is_blank,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(creating_an_environment_syncs_its_directories, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(pending_appends_stay_within_the_reservation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(journal_uses_the_page_size_of_the_data_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(journal_refuses_an_lmdb_other_than_0_9, setup, teardown),
        cmocka_unit_test_setup_teardown(data_file_that_is_not_lmdb_0_9_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(a_data_directory_is_opened_by_one_process_at_a_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(replay_fails_loudly_when_an_op_does_not_apply, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(op_that_did_not_fit_is_not_replayed, setup, teardown),
        cmocka_unit_test_setup_teardown(record_image_without_this_laps_salt_is_not_replayed, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("storage_failures", tests, NULL, NULL);
}
