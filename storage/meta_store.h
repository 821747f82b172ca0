/* A group's durable hard state (current term, vote, commit index) and log
 * base, kept in the "meta" database of the shared LMDB environment.
 *
 * Raft (Figure 2, "Persistent state on all servers"): currentTerm and
 * votedFor are "updated on stable storage before responding to RPCs". The
 * hard state can therefore be written alone (meta_store_save) or in the same
 * write transaction as a log batch (log_op_t.hard_state), which is what the
 * node does when a single step produces both new entries and a new term.
 */
#ifndef RAFTKIT_STORAGE_META_STORE_H
#define RAFTKIT_STORAGE_META_STORE_H

#include <lmdb.h>
#include <stdint.h>

#include "raftkit/peer.h"
#include "raftkit/status.h"

typedef struct log_store log_store_t;

/* voted_for is the peer id string the node formats ("" = no vote); storage
 * does not interpret it. */
typedef struct meta_hard_state {
    uint64_t term;
    uint64_t commit;
    char voted_for[RK_PEER_ID_STRLEN];
} meta_hard_state_t;

/* Reads the hard state last made durable; all zero / "" for a new group.
 * Thread: any. Errors: RK_ECORRUPT (the record fails its checksum), RK_EIO. */
int meta_store_load(log_store_t *s, meta_hard_state_t *out, rk_status_t *st);

/* Makes hs durable in its own write transaction and returns when it is (or
 * failed). Thread: any but never the loop thread while a log writer is
 * running on this environment's store (it would block the loop on disk); use
 * log_writer_submit with only a hard state for that. Errors as log_env_write. */
int meta_store_save(log_store_t *s, const meta_hard_state_t *hs, rk_status_t *st);

/* ---- internal, for log_store.c ---- */

/* Meta record tags. */
#define META_TAG_HARD_STATE 'h'
#define META_TAG_BASE       'b'

/* Puts/gets the hard state of group gid in/from txn. get returns
 * RK_ENOTFOUND when absent, RK_ECORRUPT when it fails to verify. */
int meta_put_hard_state(MDB_txn *txn, MDB_dbi dbi, uint64_t gid, const meta_hard_state_t *hs);
int meta_get_hard_state(MDB_txn *txn, MDB_dbi dbi, uint64_t gid, meta_hard_state_t *hs);

/* The log base: index and term of the entry just before the first stored
 * one (the last entry covered by a snapshot), (0, 0) for a fresh log. */
int meta_put_base(MDB_txn *txn, MDB_dbi dbi, uint64_t gid, uint64_t index, uint64_t term);
int meta_get_base(MDB_txn *txn, MDB_dbi dbi, uint64_t gid, uint64_t *index, uint64_t *term);

#endif /* RAFTKIT_STORAGE_META_STORE_H */
