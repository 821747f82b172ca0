/* The write-ahead journal in front of LMDB: one fdatasync per acknowledged
 * log batch instead of LMDB's two ordered flushes (data pages, then meta
 * page). The design and the argument for why it is safe are in journal.c.
 *
 * Files in the environment's directory:
 *   journal.wal   preallocated, zero-filled segment of checksummed records,
 *                 one per write batch, with consecutive sequence numbers
 *   journal.ckpt  two alternating checkpoint slots: the LMDB meta pages of
 *                 the last durable LMDB state and the first journal sequence
 *                 number that is still needed
 *
 * All functions except journal_open / journal_recover / journal_close must be
 * called with the journal lock held (journal_lock); the environment takes it
 * for the writes it runs (env.c, log_store.c).
 */
#ifndef RAFTKIT_STORAGE_JOURNAL_H
#define RAFTKIT_STORAGE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkit/status.h"

typedef struct log_env log_env_t;
typedef struct log_op log_op_t;
typedef struct journal journal_t;

#define JOURNAL_DEFAULT_SEGMENT (8u << 20)

/* Phase one of opening, before LMDB opens dir/data.mdb: opens or creates the
 * journal files (a new segment is zero-filled and fsync'ed with its
 * directory), and when a valid checkpoint exists writes its meta pages back
 * into data.mdb, so LMDB opens exactly the last state made durable by a
 * checkpoint (later, unsynced LMDB commits may be torn: see journal.c).
 * segment_bytes, checkpoint_ms (longest time between checkpoints) 0 = default. Errors: RK_ENOMEM,
 * RK_EIO, RK_ENOSPC, RK_ECORRUPT (checkpoint without a data file, a data
 * file that is not LMDB 0.9's, a checkpoint file of the wrong size). */
int journal_open(const char *dir, size_t segment_bytes, unsigned checkpoint_ms, journal_t **out,
                 rk_status_t *st);

/* Phase two, once env (whose journal is j) has its databases: replays every
 * valid record past the LMDB-applied sequence number, then checkpoints.
 * Errors: RK_ECORRUPT (a record that fails to verify with an intact later
 * record behind it, or an undecodable record), the errors of replaying. */
int journal_recover(journal_t *j, log_env_t *env, rk_status_t *st);

/* Checkpoints (when env is non-NULL and healthy) and frees. */
void journal_close(journal_t *j, log_env_t *env);

void journal_lock(journal_t *j);
void journal_unlock(journal_t *j);
/* Is the lock free right now (nobody writing or checkpointing)? A hint only:
 * it may be taken the moment after. */
bool journal_idle(journal_t *j);
/* After a journaled LMDB commit (lock held): now and then starts the
 * writeback of LMDB's dirty pages, so that checkpoints find less to flush. */
void journal_committed(journal_t *j);

/* Makes sure data.mdb has room bytes allocated past LMDB's last page, so
 * that applying that much later cannot fail for want of disk space (the
 * pending appends of log_store.c, also when the journal is replayed at the
 * next open). Errors: RK_ENOSPC (also: over the file size limit), RK_EIO
 * (also: the file system cannot preallocate). */
int journal_reserve(journal_t *j, log_env_t *env, size_t room);

/* Appends ops[0..n) as the next record and fdatasyncs it; *seq gets its
 * sequence number, which the LMDB transaction applying the ops must store
 * (log_store.c). When the segment has no room, checkpoints and recycles it
 * first. A batch too big for any segment returns JOURNAL_TOO_BIG (positive):
 * the caller then writes it to LMDB directly and checkpoints. Errors: RK_EIO, RK_ENOSPC,
 * RK_ENOMEM. */
#define JOURNAL_TOO_BIG 1
int journal_append(journal_t *j, log_env_t *env, const log_op_t *ops, size_t n, uint64_t *seq,
                   rk_status_t *st);

/* Takes back the record journal_append just wrote (zeroes its header and
 * syncs) after its LMDB transaction failed, so that a failed batch is not
 * replayed at the next open. Errors: RK_EIO (sticky: log_env_fail). */
int journal_retract(journal_t *j, log_env_t *env, rk_status_t *st);

/* Makes LMDB durable (mdb_env_sync), records the new checkpoint and, with
 * recycle, restarts the segment. Called after a batch when the checkpoint is
 * due (journal_due), after every write that bypassed the journal, and before
 * the LMDB map is resized. Errors: RK_EIO, RK_ENOSPC, RK_ECORRUPT (meta pages
 * not LMDB 0.9's); every failure is sticky (log_env_fail; journal.c, essay
 * 6), and after one every call fails at once. */
int journal_checkpoint(journal_t *j, log_env_t *env, int recycle, rk_status_t *st);

/* Whether a checkpoint is due (time or bytes since the last one). */
int journal_due(journal_t *j);

/* Releases / re-takes the read transaction that pins the checkpointed LMDB
 * snapshot (mdb_env_set_mapsize needs no transaction open in the process). */
void journal_unpin(journal_t *j);
int journal_repin(journal_t *j, log_env_t *env);

/* The meta key under which each applied transaction stores its journal
 * sequence number: group number 0 (never assigned) and tag 'J'. */
static inline void journal_applied_key(uint8_t key[9])
{
    for (int i = 0; i < 8; i++)
        key[i] = 0;
    key[8] = 'J';
}

/* Statistics for tests: checkpoints taken, records replayed at open. */
void journal_stats(journal_t *j, uint64_t *checkpoints, uint64_t *replayed, uint64_t *next_seq);

#endif /* RAFTKIT_STORAGE_JOURNAL_H */
