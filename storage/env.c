/* LMDB environment lifecycle, transactions with map growth, error mapping. */
#include "storage/env.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "raftkit/log.h"
#include "storage/fileio.h"
#include "storage/journal.h"
#include "storage/log_store.h"

#define ENV_DEFAULT_MAP (64u << 20)
#define ENV_MAX_DBS     8

void log_env_options_init(log_env_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->initial_map_size = ENV_DEFAULT_MAP;
    o->max_map_size = 0;
    o->sync = true;
    o->journal = true;
    const char *e = getenv("RAFTKIT_JOURNAL");
    if (e != NULL && (e[0] == '0' || e[0] == '1'))
        o->journal = e[0] == '1';
}

int log_env_err(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_MAP_FULL:
    case ENOSPC:
    case EFBIG:
    case EDQUOT:
        return RK_ENOSPC;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return RK_ECORRUPT;
    case MDB_NOTFOUND:
        return RK_ENOTFOUND;
    case ENOMEM:
        return RK_ENOMEM;
    case MDB_READERS_FULL:
        return RK_EBUSY;
    case EINVAL:
        return RK_EINVAL;
    default:
        if (rc < 0 && rc >= RK_EUNKNOWNPEER)
            return rc; /* already an RK code */
        return RK_EIO;
    }
}

static int fail(rk_status_t *st, int rc, const char *what, const char *path)
{
    int code = log_env_err(rc);
    return rk_status_set(st, code, "%s %s: %s", what, path,
                         rc < 0 && rc >= RK_EUNKNOWNPEER ? rk_strerror(rc) : mdb_strerror(rc));
}

/* A write past RLIMIT_FSIZE raises SIGXFSZ, whose default action kills the
 * process. Ignored, the write fails with EFBIG instead, which we report as
 * RK_ENOSPC like a full disk. We only replace the default action: a handler
 * the application installed is left alone. */
static void ignore_sigxfsz(void)
{
    struct sigaction sa;
    if (sigaction(SIGXFSZ, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigaction(SIGXFSZ, &sa, NULL);
    }
}

/* LMDB reports a short pwrite() as EIO, and a write that hits a full disk or
 * the file size limit is usually short first. Tell the two apart after the
 * fact: if the file system is (nearly) full or the data file has reached
 * RLIMIT_FSIZE, the cause is lack of space. */
static bool out_of_space(log_env_t *env)
{
    struct statvfs vfs;
    if (statvfs(env->path, &vfs) == 0 &&
        (unsigned long long)vfs.f_bavail * vfs.f_frsize < (1ull << 20))
        return true;
    struct rlimit rl;
    char p[4096 + 16];
    struct stat sb;
    snprintf(p, sizeof p, "%s/data.mdb", env->path);
    return getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && stat(p, &sb) == 0 &&
           (rlim_t)sb.st_size + (1u << 20) >= rl.rlim_cur;
}

/* One process per data directory, for as long as it has the environment
 * open: the journal rewrites LMDB's meta pages at open (journal.c), which
 * another process reading the same file could see half done. An flock on
 * dir/raftkit.lock, released by the kernel when the process dies. */
static int lock_dir(log_env_t *env, rk_status_t *st)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/raftkit.lock", env->path);
    env->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (env->lock_fd < 0)
        return fileio_err(st, errno, "cannot open", p);
    if (flock(env->lock_fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    int err = errno;
    close(env->lock_fd);
    env->lock_fd = -1;
    if (err == EWOULDBLOCK)
        return rk_status_set(st, RK_EBUSY,
                             "data directory %s is in use by another process (%s is locked)",
                             env->path, p);
    return fileio_err(st, err, "cannot lock", p);
}

/* The journal copies LMDB 0.9's meta pages (journal.c): refuse any other
 * LMDB release rather than restore pages of a layout it does not know. */
static int check_lmdb_version(rk_status_t *st)
{
    int major = -1, minor = -1, patch = -1;
    const char *v = mdb_version(&major, &minor, &patch);
    if (major == 0 && minor == 9)
        return 0;
    return rk_status_set(
        st, RK_EINVAL,
        "the journal needs LMDB 0.9 (it restores 0.9 meta pages) but the "
        "library is %s (%d.%d.%d); turn the journal off (RAFTKIT_JOURNAL=0) to use it",
        v ? v : "unknown", major, minor, patch);
}

/* A new data.mdb (and journal files, lock file) are only found after a
 * power loss if every directory on the way has its entry on the disk:
 * fsync dir and its parent (errors count), then the ancestors above
 * (best effort: they may not be readable), once, at creation. */
static int sync_new_dir(const char *dir, rk_status_t *st)
{
    char p[PATH_MAX];
    if (realpath(dir, p) == NULL)
        return fileio_err(st, errno, "cannot resolve", dir);
    int err = fileio_fsync_path(p, true);
    if (err == 0)
        err = fileio_fsync_parent(p);
    if (err != 0)
        return fileio_err(st, err, "cannot fsync the directories of", dir);
    char *slash;
    while ((slash = strrchr(p, '/')) != NULL && slash != p) {
        *slash = '\0';
        (void)fileio_fsync_parent(p);
    }
    return 0;
}

int log_env_open(const char *dir, const log_env_options_t *o, log_env_t **out, rk_status_t *st)
{
    log_env_options_t defaults;
    if (dir == NULL || out == NULL)
        return rk_status_set(st, RK_EINVAL, "log_env_open: NULL argument");
    if (o == NULL) {
        log_env_options_init(&defaults);
        o = &defaults;
    }
    size_t plen = strlen(dir);
    log_env_t *env = calloc(1, sizeof *env + plen + 1);
    if (env == NULL)
        return rk_status_set(st, RK_ENOMEM, "log_env_open");
    memcpy(env->path, dir, plen + 1);
    env->lock_fd = -1;
    ignore_sigxfsz();
    env->map_size = o->initial_map_size ? o->initial_map_size : ENV_DEFAULT_MAP;
    env->max_map_size = o->max_map_size;
    if (env->max_map_size && env->map_size > env->max_map_size)
        env->map_size = env->max_map_size;
    env->sync = o->sync;

    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* A resize must not starve behind a steady stream of readers. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&env->resize_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&env->fail_mu, NULL);
    pthread_mutex_init(&env->gid_mu, NULL);

    int rc = lock_dir(env, st);
    if (rc != 0)
        goto err_after_lock;
    rc = mdb_env_create(&env->mdb);
    if (rc != 0) {
        fail(st, rc, "mdb_env_create", dir);
        goto err_after_lock;
    }
    mdb_env_set_maxdbs(env->mdb, ENV_MAX_DBS);
    mdb_env_set_maxreaders(env->mdb, 126);
    mdb_env_set_mapsize(env->mdb, env->map_size);
    /* No MDB_WRITEMAP: with a writable map, a full disk surfaces as SIGBUS on
     * a store into the map; with ordinary pwrite() it is an ENOSPC that we
     * report and survive. MDB_NOTLS: reads happen on the loop thread while
     * the writer thread writes, and read transactions are not tied to a
     * thread. MDB_NOMETASYNC when syncing: a commit syncs its data pages
     * but only writes the meta page; log_env_write_flags then either syncs
     * again before returning (the default) or leaves that to its caller
     * (LOG_ENV_DEFER_META, the log writer). LMDB 0.9 takes the flag per
     * environment only, hence the explicit sync for every other caller. */
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (o->sync ? MDB_NOMETASYNC : MDB_NOSYNC);
    /* The journal: LMDB is made durable by checkpoints (journal.c). A
     * journal left by an earlier run is recovered even when it is off now. */
    char jpath[4096 + 32];
    snprintf(jpath, sizeof jpath, "%s/journal.ckpt", dir);
    bool use_journal = o->sync && o->journal;
    struct stat sb;
    snprintf(jpath, sizeof jpath, "%s/data.mdb", dir);
    bool fresh = stat(jpath, &sb) != 0 && errno == ENOENT;
    snprintf(jpath, sizeof jpath, "%s/journal.ckpt", dir);
    if (use_journal || access(jpath, F_OK) == 0) {
        if ((rc = check_lmdb_version(st)) != 0)
            goto err_after_env;
        rc = journal_open(dir, o->journal_segment_bytes, o->journal_checkpoint_ms, &env->journal,
                          st);
        if (rc != 0)
            goto err_after_env;
        if (use_journal)
            flags = (flags & ~(unsigned)MDB_NOMETASYNC) | MDB_NOSYNC;
    }
    rc = mdb_env_open(env->mdb, dir, flags, 0644);
    if (rc != 0) {
        fail(st, rc, "cannot open LMDB environment in", dir);
        goto err_after_env;
    }
    /* The file may have been grown beyond our start size by an earlier run. */
    MDB_envinfo info;
    mdb_env_info(env->mdb, &info);
    if (info.me_mapsize > env->map_size)
        env->map_size = info.me_mapsize;

    MDB_txn *txn;
    rc = mdb_txn_begin(env->mdb, NULL, 0, &txn);
    if (rc != 0) {
        fail(st, rc, "cannot begin transaction in", dir);
        goto err_after_env;
    }
    if ((rc = mdb_dbi_open(txn, "groups", MDB_CREATE, &env->groups_dbi)) != 0 ||
        (rc = mdb_dbi_open(txn, "log", MDB_CREATE, &env->log_dbi)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &env->meta_dbi)) != 0) {
        mdb_txn_abort(txn);
        fail(st, rc, "cannot open databases in", dir);
        goto err_after_env;
    }
    if ((rc = mdb_txn_commit(txn)) != 0 || (o->sync && (rc = mdb_env_sync(env->mdb, 1)) != 0)) {
        fail(st, rc, "cannot create databases in", dir);
        goto err_after_env;
    }
    if (fresh && o->sync && (rc = sync_new_dir(dir, st)) != 0)
        goto err_after_env;
    if (env->journal && (rc = journal_recover(env->journal, env, st)) != 0)
        goto err_after_env;
    if (env->journal && !use_journal) { /* recovered; now drop it */
        journal_close(env->journal, env);
        env->journal = NULL;
        /* Durably, and journal.ckpt first, before LMDB writes anything
         * unpinned: should journal.ckpt come back after a power loss, the
         * next open would restore its meta pages over a tree whose pages
         * have been reused since. A journal.wal without journal.ckpt is
         * harmless (a new journal starts blank and overwrites it). */
        int err = fileio_unlink(dir, "journal.ckpt");
        if (err == 0)
            err = fileio_unlink(dir, "journal.wal");
        if (err != 0) {
            rc = fileio_err(st, err, "cannot remove the journal from", dir);
            goto err_after_env;
        }
    }
    *out = env;
    return 0;

err_after_env:
    journal_close(env->journal, NULL);
    mdb_env_close(env->mdb);
err_after_lock:
    if (env->lock_fd >= 0)
        close(env->lock_fd);
    pthread_mutex_destroy(&env->fail_mu);
    pthread_mutex_destroy(&env->gid_mu);
    pthread_rwlock_destroy(&env->resize_lock);
    free(env);
    return st ? st->code : log_env_err(rc);
}

void log_env_close(log_env_t *env)
{
    if (env == NULL)
        return;
    journal_close(env->journal, env);
    log_store_pending_free(env);
    mdb_env_close(env->mdb);
    close(env->lock_fd); /* releases the directory (lock_dir) */
    pthread_mutex_destroy(&env->fail_mu);
    pthread_mutex_destroy(&env->gid_mu);
    pthread_rwlock_destroy(&env->resize_lock);
    free(env);
}

int log_env_fail(log_env_t *env, int code, const rk_status_t *why)
{
    pthread_mutex_lock(&env->fail_mu);
    int first = atomic_load(&env->failed) == 0;
    if (first) {
        rk_status_set(&env->fail_st, code, "%s", why && why->msg[0] ? why->msg : rk_strerror(code));
        atomic_store(&env->failed, code);
    }
    code = atomic_load(&env->failed);
    pthread_mutex_unlock(&env->fail_mu);
    if (first)
        RK_ERROR(NULL, NULL,
                 "storage in %s failed, refusing every further write until it is reopened%s: %s",
                 env->path, env->journal ? " (the journal is replayed then)" : "",
                 why && why->msg[0] ? why->msg : rk_strerror(code));
    return code;
}

int log_env_failed(log_env_t *env, rk_status_t *st)
{
    int code = atomic_load(&env->failed);
    if (code == 0 || st == NULL)
        return code;
    pthread_mutex_lock(&env->fail_mu);
    rk_status_set(st, code, "storage failed earlier: %s", env->fail_st.msg);
    pthread_mutex_unlock(&env->fail_mu);
    return code;
}

int log_env_read_begin(log_env_t *env, MDB_txn **txn)
{
    pthread_rwlock_rdlock(&env->resize_lock);
    int rc = mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, txn);
    if (rc != 0) {
        pthread_rwlock_unlock(&env->resize_lock);
        return log_env_err(rc);
    }
    return 0;
}

void log_env_read_end(log_env_t *env, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&env->resize_lock);
}

int log_env_grow(log_env_t *env, rk_status_t *st)
{
    /* The journal's pin is a transaction; mdb_env_set_mapsize needs none
     * open. Make the current state durable first, so the pin re-taken after
     * the resize protects a checkpointed snapshot (journal.c, essay 2). */
    int frc = log_env_failed(env, st);
    if (frc != 0)
        return frc;
    if (env->journal) {
        int crc = journal_checkpoint(env->journal, env, 0, st);
        if (crc != 0)
            return crc;
    }
    pthread_rwlock_wrlock(&env->resize_lock);
    size_t next = env->map_size * 2;
    if (env->max_map_size && next > env->max_map_size)
        next = env->max_map_size;
    if (next <= env->map_size) {
        pthread_rwlock_unlock(&env->resize_lock);
        return rk_status_set(st, RK_ENOSPC, "LMDB map in %s is full at its limit of %zu bytes",
                             env->path, env->map_size);
    }
    if (env->journal)
        journal_unpin(env->journal);
    int rc = mdb_env_set_mapsize(env->mdb, next);
    if (rc == 0) {
        env->map_size = next;
        env->grow_count++;
    }
    bool unpinned = false;
    if (env->journal) { /* without the pin the checkpoint is not safe */
        if (rc == 0)
            rc = journal_repin(env->journal, env);
        unpinned = rc != 0;
    }
    pthread_rwlock_unlock(&env->resize_lock);
    if (rc != 0) {
        rk_status_t why;
        fail(&why, rc, "cannot grow LMDB map of", env->path);
        if (st)
            *st = why;
        return unpinned ? log_env_fail(env, why.code, &why) : why.code;
    }
    return 0;
}

int log_env_sync(log_env_t *env, rk_status_t *st)
{
    if (!env->sync)
        return 0;
    int frc = log_env_failed(env, st);
    if (frc != 0)
        return frc;
    pthread_rwlock_rdlock(&env->resize_lock);
    int rc = mdb_env_sync(env->mdb, 1);
    pthread_rwlock_unlock(&env->resize_lock);
    if (rc == 0)
        return 0;
    if (rc == EIO && out_of_space(env))
        rc = ENOSPC;
    rk_status_t why;
    fail(&why, rc, "cannot sync", env->path);
    if (st)
        *st = why;
    return log_env_fail(env, why.code, &why);
}

uint64_t log_env_last_txnid(log_env_t *env)
{
    MDB_envinfo info;
    if (mdb_env_info(env->mdb, &info) != 0)
        return 0;
    return (uint64_t)info.me_last_txnid;
}

int log_env_write(log_env_t *env, log_env_txn_fn fn, void *arg, rk_status_t *st)
{
    return log_env_write_flags(env, 0, fn, arg, st);
}

static int write_flags(log_env_t *env, unsigned flags, log_env_txn_fn fn, void *arg,
                       rk_status_t *st);

int log_env_write_flags(log_env_t *env, unsigned flags, log_env_txn_fn fn, void *arg,
                        rk_status_t *st)
{
    int rc = log_env_failed(env, st);
    if (rc != 0)
        return rc;
    if (env->journal == NULL || (flags & LOG_ENV_JOURNALED))
        return write_flags(env, flags, fn, arg, st);
    /* Not journaled: commit, then checkpoint to make it durable; what is
     * pending goes first (it is older). */
    journal_lock(env->journal);
    rc = log_store_drain(env, st);
    if (rc == 0)
        rc = write_flags(env, LOG_ENV_JOURNALED, fn, arg, st);
    if (rc == 0)
        rc = journal_checkpoint(env->journal, env, 1, st);
    journal_unlock(env->journal);
    return rc;
}

static int write_flags(log_env_t *env, unsigned flags, log_env_txn_fn fn, void *arg,
                       rk_status_t *st)
{
    bool sync_after = env->sync && !(flags & (LOG_ENV_DEFER_META | LOG_ENV_JOURNALED));
    for (;;) {
        MDB_txn *txn;
        pthread_rwlock_rdlock(&env->resize_lock);
        int rc = mdb_txn_begin(env->mdb, NULL, 0, &txn);
        if (rc == MDB_MAP_RESIZED) {
            /* Another process grew the map; adopt its size (lmdb.h). */
            pthread_rwlock_unlock(&env->resize_lock);
            pthread_rwlock_wrlock(&env->resize_lock);
            rc = mdb_env_set_mapsize(env->mdb, 0);
            pthread_rwlock_unlock(&env->resize_lock);
            if (rc != 0)
                return fail(st, rc, "cannot adopt LMDB map size of", env->path);
            continue;
        }
        if (rc != 0) {
            pthread_rwlock_unlock(&env->resize_lock);
            return fail(st, rc, "cannot begin write transaction in", env->path);
        }
        rc = fn(txn, arg);
        bool commit_failed = false;
        if (rc == 0) {
            rc = mdb_txn_commit(txn); /* frees txn on success and failure */
            commit_failed = rc != 0 && rc != MDB_MAP_FULL;
        } else {
            mdb_txn_abort(txn);
        }
        pthread_rwlock_unlock(&env->resize_lock);
        if (rc == 0)
            return sync_after ? log_env_sync(env, st) : 0;
        if (rc == MDB_MAP_FULL) {
            int grc = log_env_grow(env, st);
            if (grc != 0)
                return grc;
            continue;
        }
        if (rc < 0 && rc >= RK_EUNKNOWNPEER) {
            /* fn's own error: keep its message if it set one */
            if (st && st->code != rc)
                rk_status_set(st, rc, "%s", rk_strerror(rc));
            return rc;
        }
        if (rc == EIO && out_of_space(env))
            rc = ENOSPC;
        rk_status_t why;
        fail(&why, rc, "write transaction failed in", env->path);
        if (st)
            *st = why;
        /* Without the journal LMDB fdatasyncs inside the commit: a failure
         * there may be a failed sync, which is sticky (journal.c, essay 6;
         * the meta page of an earlier commit may have been in that
         * writeback). With the journal, commits do not sync. */
        if (commit_failed && env->sync && env->journal == NULL)
            return log_env_fail(env, why.code, &why);
        return why.code;
    }
}
