/* The LMDB environment behind a data directory: one file, shared by every
 * raft group stored in it, with the map-size growth and error mapping that
 * all storage writes go through.
 *
 * Why one environment for many groups: each LMDB environment is one file and
 * one fsync per commit. With an environment per group, a process hosting a
 * thousand groups would fsync a thousand files, turning what the disk sees as
 * sequential appends into random writes; with one environment, the log writer
 * commits the batches of all groups in one transaction and one fsync.
 *
 * Named databases inside the environment:
 *   "groups"  group id string -> u64 group number (assigned at first open)
 *   "log"     be64 group number ++ be64 log index -> encoded entry (codec.h)
 *   "meta"    be64 group number ++ one tag byte -> hard state / log base
 * The group number as a key prefix keeps each group's entries contiguous in
 * the B-tree, so appends stay at the right edge of the group's key range and
 * a range read walks adjacent leaf pages.
 */
#ifndef RAFTKIT_STORAGE_ENV_H
#define RAFTKIT_STORAGE_ENV_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkit/status.h"

typedef struct log_env_options {
    /* Initial LMDB map size. The map doubles whenever LMDB reports
     * MDB_MAP_FULL, so this only needs to be a sensible start. Default 64 MiB. */
    size_t initial_map_size;
    /* Upper bound for growth; 0 = none. When reached, writes fail with
     * RK_ENOSPC (the same error as a full disk). Default 0. */
    size_t max_map_size;
    /* true (default): every commit is fdatasync'ed before it is acknowledged.
     * false: commits reach the OS page cache only. A process crash loses
     * nothing, but a power loss or kernel crash can lose the most recent
     * acknowledged writes, which breaks Raft's safety argument (a vote or an
     * acknowledged entry may be forgotten). Use only for tests, benchmarks or
     * deployments that accept that risk knowingly. */
    bool sync;
    /* With sync: put the write-ahead journal (journal.h) in front of LMDB,
     * so that a log batch costs one fdatasync instead of two. Default true;
     * the environment variable RAFTKIT_JOURNAL=0 or =1 overrides the default
     * (for benchmarks). Turning it off later is safe: the next open replays
     * what the journal holds and removes it. */
    bool journal;
    /* Journal segment size in bytes, used when the segment is created; 0 =
     * default (8 MiB). */
    size_t journal_segment_bytes;
    /* Longest time between journal checkpoints in ms; 0 = default (100).
     * A checkpoint also runs every 128 batches and when half the segment is
     * used. */
    unsigned journal_checkpoint_ms;
} log_env_options_t;

typedef struct log_env {
    MDB_env *mdb;
    MDB_dbi groups_dbi, log_dbi, meta_dbi;
    /* Held shared by every transaction, exclusive while the map is resized:
     * mdb_env_set_mapsize() requires that no transaction of this process is
     * active (lmdb.h), and LMDB does not check it for us. */
    pthread_rwlock_t resize_lock;
    size_t map_size;
    size_t max_map_size;
    bool sync;
    unsigned long grow_count; /* how many times the map was grown (for tests) */
    struct journal *journal;  /* NULL when LMDB syncs itself */
    /* With the journal: appends acknowledged but not yet applied to LMDB
     * (log_store.c, "pending"); guarded by the journal lock. */
    struct log_pending *pending;
    bool draining;
    int lock_fd; /* holds the flock on raftkit.lock (one process per directory) */
    /* The sticky failure (log_env_fail): 0 while healthy. */
    _Atomic int failed;
    pthread_mutex_t fail_mu; /* guards fail_st */
    rk_status_t fail_st;
    /* The number the next new group gets (log_store.c, "registration"); 0
     * until the first new group reads the largest registered one. */
    pthread_mutex_t gid_mu;
    uint64_t next_gid;
    char path[];
} log_env_t;

void log_env_options_init(log_env_options_t *o);

/* Opens (creating if needed) the environment in directory dir, which must
 * exist, and holds an exclusive lock on it (dir/raftkit.lock) until
 * log_env_close: a second process, or a second open in this one, fails
 * with RK_EBUSY. LMDB's own tools (mdb_stat, mdb_dump) do not take that
 * lock: never run them on the directory of a live node. With the journal
 * the LMDB library must be a 0.9 release (RK_EINVAL otherwise). If SIGXFSZ still has its default
 * action (terminate), it is set to ignored, so that a write beyond RLIMIT_FSIZE is an RK_ENOSPC
 * error rather than the death of the process. o may be NULL for defaults. Thread: any, once per
 * directory per process. On success *out owns the environment (close with log_env_close). Errors:
 * RK_EINVAL, RK_ENOMEM, RK_EBUSY (locked by another process), RK_ECORRUPT (not an LMDB 0.9 file, or
 * its header does not verify), RK_EIO, RK_ENOSPC; st (may be NULL) says what failed. */
int log_env_open(const char *dir, const log_env_options_t *o, log_env_t **out, rk_status_t *st);

/* Closes the environment. Every store opened on it must be closed first and
 * no log writer may still run on it. */
void log_env_close(log_env_t *env);

/* Maps an LMDB or errno code to an RK_E* code. */
int log_env_err(int rc);

/* A read transaction (MDB_NOTLS: the thread that reads need not be the
 * thread that opened the environment). Never blocks on writers; only a map
 * resize, which is rare and short, makes it wait. */
int log_env_read_begin(log_env_t *env, MDB_txn **txn);
void log_env_read_end(log_env_t *env, MDB_txn *txn);

/* Runs fn(txn, arg) in one write transaction and commits it. When LMDB
 * reports MDB_MAP_FULL (from fn or from the commit), the transaction is
 * aborted, the map grown and fn run again from the start, so fn must derive
 * everything from the transaction and its arguments, never from effects of an
 * earlier attempt. fn returns 0 or an RK_E* / MDB code; a non-zero return
 * aborts. Returns 0 once committed (and synced when the environment syncs).
 * Errors: whatever fn returned, RK_ENOSPC (disk full, file size limit, map
 * limit), RK_EIO, RK_ECORRUPT; st (may be NULL) carries the detail. */
typedef int (*log_env_txn_fn)(MDB_txn *txn, void *arg);
int log_env_write(log_env_t *env, log_env_txn_fn fn, void *arg, rk_status_t *st);

/* log_env_write with LOG_ENV_DEFER_META: when the environment syncs, the
 * commit makes its data pages durable but only writes (does not sync) the
 * meta page that points at them (LMDB's MDB_NOMETASYNC, per transaction).
 * The database stays consistent whatever a crash keeps (LMDB syncs the data
 * before writing the meta, and never reuses the pages of the last two
 * transactions), but a power loss may undo this transaction. It is durable
 * once a later commit of this environment has synced (its fdatasync covers
 * the earlier meta write; log_env_last_txnid tells whether a commit wrote
 * anything) or after log_env_sync. The caller must not report it durable
 * before that: the log writer defers acknowledgements accordingly. */
#define LOG_ENV_DEFER_META 1u
/* For log_store.c: the caller holds the journal lock and has journaled the
 * transaction's content (or checkpoints right after); commit without
 * syncing. */
#define LOG_ENV_JOURNALED 2u
int log_env_write_flags(log_env_t *env, unsigned flags, log_env_txn_fn fn, void *arg,
                        rk_status_t *st);

/* With a journal, a write through log_env_write / _flags without
 * LOG_ENV_JOURNALED takes the journal lock and checkpoints after the commit,
 * so it is durable on return like without one. */

/* Makes every committed transaction durable (fdatasync). Thread: any.
 * Errors: RK_EIO, RK_ENOSPC. A no-op for an environment that does not sync. */
int log_env_sync(log_env_t *env, rk_status_t *st);

/* The id of the last committed write transaction (LMDB's txnid): it moves
 * only when a commit wrote a new meta page. Thread: any. */
uint64_t log_env_last_txnid(log_env_t *env);

/* Sticky failure. Some failures leave the files in a state this process can
 * no longer vouch for: a journal record made durable (and perhaps
 * acknowledged) whose LMDB commit then failed, any failed fsync / fdatasync
 * / mdb_env_sync (after a failed writeback Linux marks the pages clean, so
 * a later sync would report success for data that never reached the disk),
 * a checkpoint that failed half way, or the journal's pin on the
 * checkpointed snapshot lost. log_env_fail records the first such failure;
 * from then on every write, sync and checkpoint of env fails with it (so
 * nothing more is acknowledged), closing does not checkpoint, and the next
 * open replays the journal from the last good checkpoint. Returns code.
 * Thread: any. */
int log_env_fail(log_env_t *env, int code, const rk_status_t *why);
/* The sticky failure's code (0 while healthy); st (may be NULL) gets its
 * message. Thread: any. */
int log_env_failed(log_env_t *env, rk_status_t *st);

/* Grows the map: doubles it, capped at max_map_size. Returns RK_ENOSPC when
 * already at the cap. Must not be called with a transaction open. */
int log_env_grow(log_env_t *env, rk_status_t *st);

#endif /* RAFTKIT_STORAGE_ENV_H */
