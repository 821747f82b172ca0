/* The state machine an application gives to raftkit (JRaft's StateMachine).
 *
 * All callbacks of a group, and the closures raftkit runs for it, run one at
 * a time, in log order, on the group's FSM thread: on_apply for entries, and
 * the leader, following, configuration and snapshot callbacks at the point
 * of the log where they happen. The FSM thread is one of a fixed pool of
 * executor threads shared by every group of the runtime (the group
 * service's own, or the rk_server_t's: rk_node_options_t
 * fsm_executor_threads); a group stays on the same one for its life.
 *
 * A slow callback delays applying in its own group, and in the other groups
 * bound to the same executor (each group gets a bounded turn, so a busy one
 * delays the others without starving them), never heartbeats or elections:
 * those run on the loop thread. So a callback must not block waiting for
 * another group of the same runtime (its commit, closure, read or join):
 * that group may be bound to the same executor, which the waiting callback
 * holds, and both would wait forever.
 *
 * Members left NULL get a default that logs the event (on_snapshot_save's
 * default fails the snapshot with RK_EINVAL; on_snapshot_load's default
 * refuses to load).
 */
#ifndef RAFTKIT_STATE_MACHINE_H
#define RAFTKIT_STATE_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkit/closure.h"
#include "raftkit/peer.h"
#include "raftkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; what is declared here is its API. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---- iterator over committed entries (valid only inside on_apply) ---- */

typedef struct rk_iterator rk_iterator_t;

/* True while the iterator is on an entry; on_apply loops
 *     for (; rk_iterator_valid(it); rk_iterator_next(it)) { ... }
 * When on_apply returns having advanced part way, the rest is handed to it
 * again at once; returning without advancing at all (and without
 * set_error_and_rollback) puts the node into the error state. */
bool rk_iterator_valid(const rk_iterator_t *it);
void rk_iterator_next(rk_iterator_t *it);
int64_t rk_iterator_index(const rk_iterator_t *it);
int64_t rk_iterator_term(const rk_iterator_t *it);

/* The entry's payload, valid until on_apply returns. */
const void *rk_iterator_data(const rk_iterator_t *it, size_t *len);

/* The closure of the task that proposed this entry, when this node proposed
 * it as leader and is still running; NULL on followers and after a restart.
 * The application may fill in its own result fields here; raftkit runs the
 * closure with RK_OK right after the iterator moves past the entry. Do not
 * run it yourself. */
rk_closure_t *rk_iterator_done(const rk_iterator_t *it);

/* Stops applying and rolls back ntail entries (JRaft's setErrorAndRollback):
 * the applied index goes back to the current entry's index - ntail, i.e. the
 * current entry and the ntail - 1 entries before it (which the iterator
 * already moved past) count as not applied; ntail 0 counts as 1. The
 * rollback stops at the first entry of the current on_apply call's batch
 * (entries applied before it may already have served reads). The closures of
 * the current and every later entry fail with st; closures of rolled-back
 * earlier entries have already run with RK_OK. The node then enters the error
 * state (on_error is called) and stops applying; after a restart the log is
 * replayed from the last snapshot, so rolled-back entries are applied again.
 * For a state machine that cannot continue (e.g. its own disk is full). */
void rk_iterator_set_error_and_rollback(rk_iterator_t *it, size_t ntail, const rk_status_t *st);

/* ---- snapshots ---- */

typedef struct rk_snapshot_writer rk_snapshot_writer_t;
typedef struct rk_snapshot_reader rk_snapshot_reader_t;

/* Directory the state machine writes its files into. */
const char *rk_snapshot_writer_path(const rk_snapshot_writer_t *w);
/* Registers a file (a plain name, written under path) as part of the
 * snapshot. Returns 0, RK_EINVAL for a bad name (empty, 256 bytes or more,
 * containing '/', "." or "..", or raftkit's own metadata name), RK_EEXIST if
 * added twice, RK_ENOMEM. The files are checksummed and fsynced when done
 * runs with RK_OK; one missing or unreadable then fails the snapshot (the
 * error reaches rk_node_snapshot's closure). */
int rk_snapshot_writer_add_file(rk_snapshot_writer_t *w, const char *name);

/* Directory holding the snapshot's files, and their names. */
const char *rk_snapshot_reader_path(const rk_snapshot_reader_t *r);
size_t rk_snapshot_reader_file_count(const rk_snapshot_reader_t *r);
const char *rk_snapshot_reader_file(const rk_snapshot_reader_t *r, size_t i);
int64_t rk_snapshot_reader_index(const rk_snapshot_reader_t *r);
int64_t rk_snapshot_reader_term(const rk_snapshot_reader_t *r);

/* ---- leadership changes ---- */

typedef struct rk_leader_change {
    rk_peer_id_t leader; /* the leader followed (start) or left (stop) */
    int64_t term;
    rk_status_t status; /* why following stopped */
} rk_leader_change_t;

/* ---- the vtable ---- */

typedef struct rk_state_machine rk_state_machine_t;
struct rk_state_machine {
    /* Apply committed entries in order. */
    void (*on_apply)(rk_state_machine_t *sm, rk_iterator_t *it);
    /* This node became leader at term, once every entry of earlier terms it
     * holds is applied. */
    void (*on_leader_start)(rk_state_machine_t *sm, int64_t term);
    void (*on_leader_stop)(rk_state_machine_t *sm, const rk_status_t *st);
    /* Save state into w's directory, register the files, then run done
     * (possibly later, from another thread) exactly once. */
    void (*on_snapshot_save)(rk_state_machine_t *sm, rk_snapshot_writer_t *w, rk_closure_t *done);
    /* Replace the whole state with the snapshot's. Return 0, or an error that
     * puts the node into the error state. */
    int (*on_snapshot_load)(rk_state_machine_t *sm, rk_snapshot_reader_t *r);
    void (*on_configuration_committed)(rk_state_machine_t *sm, const rk_configuration_t *conf);
    void (*on_start_following)(rk_state_machine_t *sm, const rk_leader_change_t *ctx);
    void (*on_stop_following)(rk_state_machine_t *sm, const rk_leader_change_t *ctx);
    /* The node hit an unrecoverable error (storage corruption, a failed
     * snapshot load, set_error_and_rollback); it stops taking writes. */
    void (*on_error)(rk_state_machine_t *sm, const rk_status_t *err);
    /* Last callback; nothing runs on sm after it returns. */
    void (*on_shutdown)(rk_state_machine_t *sm);
};

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* RAFTKIT_STATE_MACHINE_H */
