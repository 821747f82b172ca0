/* A raft group's log in the shared LMDB environment: batched appends, point
 * and range reads with checksum verification, suffix and prefix truncation,
 * reset after a snapshot install, and a byte-bounded cache of recent entries
 * so that replication rarely has to read LMDB.
 *
 * Threads. Reads (log_store_get, _term, _fetch, _first_index, _last_index)
 * may run on any thread, concurrently with a write; they use LMDB read
 * transactions and never wait for a writer. Writes are log_op_t values
 * executed by log_store_write (synchronous, for startup and tests) or queued
 * to the log writer thread (log_writer.h); either way one batch of ops is one
 * LMDB write transaction. Only one thread may write a given environment at a
 * time (LMDB serializes writers; a writer thread plus synchronous writes from
 * another thread is allowed but pointless).
 *
 * Visibility. The first/last index and the cache are updated only after the
 * transaction that changed them is committed. log_store_write also waits for
 * the sync, so after it a reader never sees an entry that a crash could take
 * back. Through the log writer (log_store_write_flags with
 * LOG_ENV_DEFER_META) the newest batches are visible to readers a little
 * before a power loss could no longer undo them; durability is promised only
 * by the writer's completion callback, which waits for that. With the
 * journal (journal.c) every write returns durable (its journal record was
 * synced before the LMDB commit), so readers never see a batch early. Small
 * appends are then published from memory (bounds and cache) and committed to
 * LMDB a few dozen at a time (log_store.c, "pending"); readers cannot tell.
 *
 * On disk (log_store.c, "records"): the value under (group, first index) is
 * one or more encoded entries; runs of large entries share one value.
 */
#ifndef RAFTKIT_STORAGE_LOG_STORE_H
#define RAFTKIT_STORAGE_LOG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkit/status.h"
#include "storage/codec.h"
#include "storage/env.h"
#include "storage/meta_store.h"

#define LOG_GROUP_ID_MAX 128

typedef struct log_store_options {
    /* Bytes of recent entries kept in memory (payload + ~48 bytes each).
     * 0 disables the cache. Default 8 MiB. */
    size_t cache_bytes;
} log_store_options_t;

void log_store_options_init(log_store_options_t *o);

/* Opens the log of group group_id (1..LOG_GROUP_ID_MAX-1 bytes) in env.
 * Reads the first and last index and verifies the checksum of the first
 * and last entry. A new group is opened empty without writing anything: it
 * is registered by its first write (log_store.c, "registration"). o may be
 * NULL. Thread: any; not concurrently with a writer on the same group, and
 * one open store per group. *out is owned by the caller and closed with
 * log_store_close before the environment.
 * Errors: RK_EINVAL, RK_ENOMEM, RK_ECORRUPT (naming the index), RK_EIO. */
int log_store_open(log_env_t *env, const char *group_id, const log_store_options_t *o,
                   log_store_t **out, rk_status_t *st);
void log_store_close(log_store_t *s);

const char *log_store_group(const log_store_t *s);
log_env_t *log_store_env(const log_store_t *s);

/* First stored index (base + 1) and last index (base when empty). A fresh
 * log has first 1, last 0. Thread: any. */
uint64_t log_store_first_index(log_store_t *s);
uint64_t log_store_last_index(log_store_t *s);

/* Term of the entry at index. index may be the log base (the last index
 * covered by the snapshot), whose term is kept. Errors: RK_ENOTFOUND outside
 * [base, last], RK_ECORRUPT, RK_EIO. Thread: any. */
int log_store_term(log_store_t *s, uint64_t index, uint64_t *term, rk_status_t *st);

/* Copies the entry at index into *out; out->data is malloc'ed and owned by
 * the caller (log_entry_release). Errors: RK_ENOTFOUND outside [first, last],
 * RK_ECORRUPT with "entry <index>" in st, RK_ENOMEM, RK_EIO. Thread: any. */
int log_store_get(log_store_t *s, uint64_t index, log_entry_t *out, rk_status_t *st);
void log_entry_release(log_entry_t *e);

/* Copies entries from index lo on, at most max_count of them and at most
 * max_bytes of payload (but always at least one entry, so a single big entry
 * still makes progress). *out is a malloc'ed array of *n entries freed with
 * log_entries_free. Errors as log_store_get. Thread: any. */
int log_store_fetch(log_store_t *s, uint64_t lo, size_t max_count, size_t max_bytes,
                    log_entry_t **out, size_t *n, rk_status_t *st);
void log_entries_free(log_entry_t *entries, size_t n);

/* Reads and verifies every stored entry. Returns 0, or RK_ECORRUPT with the
 * first bad index in *bad_index (may be NULL) and st. Thread: any. */
int log_store_verify(log_store_t *s, uint64_t *bad_index, rk_status_t *st);

/* ---- writes ---- */

typedef enum log_op_kind {
    /* Optional suffix truncation, then append entries, then the optional hard
     * state; any part may be empty. */
    LOG_OP_APPEND = 0,
    /* Drop entries before index (after a snapshot covering index - 1). */
    LOG_OP_TRUNCATE_PREFIX,
    /* Drop every entry; the log restarts after (index, term) (after
     * installing a snapshot whose last included entry is index at term). */
    LOG_OP_RESET,
} log_op_kind_t;

/* One write. Everything it points to is borrowed until the op completes. */
typedef struct log_op {
    log_store_t *store;
    log_op_kind_t kind;
    /* APPEND: 0, or the first index to delete before appending: Raft 5.3,
     * "If an existing entry conflicts with a new one (same index but
     * different terms), delete the existing entry and all that follow it".
     * Must be in (base, last + 1]. */
    uint64_t truncate_from;
    /* APPEND: entries with consecutive indexes starting at the last index
     * (after the truncation) + 1. Encoded straight into the LMDB value
     * (MDB_RESERVE): the payload is copied once, into the map. */
    const log_entry_t *entries;
    size_t n_entries;
    /* APPEND: NULL, or a hard state to store in the same transaction. */
    const meta_hard_state_t *hard_state;
    /* TRUNCATE_PREFIX: first index to keep. RESET: new base index. */
    uint64_t index;
    /* RESET: term of the new base index. */
    uint64_t term;
    /* Result: 0, RK_EINVAL when the op does not fit the log (then it changed
     * nothing; others in the same transaction are unaffected), or the error
     * of the transaction. */
    int status;
} log_op_t;

/* Executes ops[0..n) in order in one write transaction and waits for it to
 * be durable. Each op's status is set. Returns 0 when the transaction
 * committed (individual ops may still have RK_EINVAL), else the transaction
 * error (RK_ENOSPC, RK_EIO, RK_ECORRUPT) and nothing of the batch is stored.
 * Thread: one writer at a time per environment (see above). */
int log_store_write(log_env_t *env, log_op_t *ops, size_t n, rk_status_t *st);
/* log_store_write with log_env_write_flags flags (LOG_ENV_DEFER_META: on
 * return the batch is committed but durable only after the next sync; see
 * env.h). */
int log_store_write_flags(log_env_t *env, log_op_t *ops, size_t n, unsigned flags, rk_status_t *st);
/* log_store_write_flags that, with a journal, calls on_durable(arg) as soon
 * as the batch's journal record is synced, before the LMDB commit, when every
 * op fits the log (otherwise it is not called). From then on the batch is
 * durable whatever happens: should the commit still fail (RK_ENOSPC, RK_EIO),
 * the error is returned but the record stays and is replayed at the next
 * open. Readers see the batch only after the commit, as always. */
int log_store_write_ex(log_env_t *env, log_op_t *ops, size_t n, unsigned flags,
                       void (*on_durable)(void *arg), void *arg, rk_status_t *st);

/* Flag for log_store_write_flags with a journal: do not run a checkpoint that
 * is merely due (only one the full segment forces); the caller runs
 * log_store_checkpoint_due later, from a thread that may block for it. */
#define LOG_STORE_NO_CHECKPOINT 4u

/* With a journal, runs the checkpoint if one is due (journal.c); a no-op
 * otherwise. Errors: those of the checkpoint (RK_EIO, RK_ENOSPC). Thread: as
 * log_store_write. */
int log_store_checkpoint_due(log_env_t *env, rk_status_t *st);
/* Does env have a journal that nobody is writing or checkpointing right now
 * (a hint)? Thread: any. */
bool log_store_journal_idle(log_env_t *env);
/* Is a journal checkpoint due? Thread: any. */
bool log_store_checkpoint_pending(log_env_t *env);

/* Convenience wrappers around log_store_write with a single op. */
int log_store_append(log_store_t *s, const log_entry_t *entries, size_t n, rk_status_t *st);
int log_store_truncate_suffix(log_store_t *s, uint64_t from, rk_status_t *st);
int log_store_truncate_prefix(log_store_t *s, uint64_t keep_from, rk_status_t *st);
int log_store_reset(log_store_t *s, uint64_t index, uint64_t term, rk_status_t *st);

/* ---- internal, for journal.c, meta_store.c and tests ---- */
/* Executes ops in one transaction that also records journal sequence number
 * seq (when non-zero) as applied, without syncing; the caller holds the
 * journal lock (journal.c). Errors as log_store_write. */
int log_store_apply(log_env_t *env, log_op_t *ops, size_t n, uint64_t seq, rk_status_t *st);
/* Commits the journaled appends that were published without an LMDB commit
 * yet (log_store.c, "pending"); the journal lock is held. A no-op when there
 * are none, or when called from inside a drain (a checkpoint for a map
 * resize). A failure is sticky: every later write fails with it, and the
 * journal replays the batches at the next open. Errors: those of the
 * transaction. */
int log_store_drain(log_env_t *env, rk_status_t *st);
/* log_store_drain taking the journal lock itself, for readers of LMDB that
 * need everything acknowledged in it (hard state at startup, verify). */
int log_store_sync_pending(log_env_t *env, rk_status_t *st);
/* log_store_sync_pending when s has pending ops, else nothing: a group
 * starting among thousands of others makes no commit for theirs. */
int log_store_sync_pending_of(log_store_t *s, rk_status_t *st);
/* Ops published but not yet committed, and drains so far (tests). */
void log_store_pending_stats(log_env_t *env, size_t *ops, uint64_t *drains);
/* Frees env's pending state (log_env_close, after every store is closed). */
void log_store_pending_free(log_env_t *env);

uint64_t log_store_gid(const log_store_t *s);
/* log_store_open for journal replay: the group must have number gid (a
 * new one gets it; RK_ECORRUPT when registered under another). */
int log_store_open_gid(log_env_t *env, const char *group_id, uint64_t gid,
                       const log_store_options_t *o, log_store_t **out, rk_status_t *st);
/* Does LMDB hold the group's registration yet? (writer only: journal
 * records carry it until then) */
bool log_store_registered(const log_store_t *s);
/* Cache statistics: entries and bytes currently held, lookups served. */
void log_store_cache_stats(log_store_t *s, size_t *entries, size_t *bytes, uint64_t *hits);

#endif /* RAFTKIT_STORAGE_LOG_STORE_H */
