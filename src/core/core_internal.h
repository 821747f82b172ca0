/* Internal state of the Raft core shared by its files (election.c,
 * replication.c, membership.c, progress.c, read_only.c, log_unstable.c,
 * snapshot.c, transfer.c, core.c). Nothing here is visible outside src/core. */
#ifndef RAFTKIT_CORE_INTERNAL_H
#define RAFTKIT_CORE_INTERNAL_H

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "src/core/core.h"

/* ---------------------------------------------------------------- the log */

/* A write handed to the host and not yet acknowledged. `last` is the highest
 * index that write made durable AND that still belongs to our log: a later
 * truncation at i clamps it to i-1 (ABA-safe stableTo, see log_unstable.c). */
typedef struct core_pending_write {
    uint64_t id;
    uint64_t last;
    uint64_t snap_index; /* snapshot this write installs, 0 = none */
} core_pending_write_t;

/* A snapshot's meta as the core keeps it: its configuration interned
 * (core_conf_intern), one reference held. */
typedef struct core_snap_ref {
    uint64_t index;
    uint64_t term;
    const core_conf_t *conf;
} core_snap_ref_t;

typedef struct core_log {
    uint64_t compact_index; /* entries <= compact_index are gone */
    uint64_t compact_term;
    /* Unstable entries: indexes offset .. offset+n-1; storage holds durable
     * entries (compact_index, offset-1]. */
    uint64_t offset;
    core_entry_t *ents;
    size_t n, cap;
    uint64_t handed; /* last unstable index already handed to the host */
    bool has_snap;   /* a restored snapshot not yet acked */
    bool snap_handed;
    core_snap_ref_t snap;
    uint64_t commit;
    uint64_t applied;        /* reported by the host */
    uint64_t applied_handed; /* last index handed out for applying */
    core_pending_write_t *writes;
    size_t n_writes, cap_writes;
} core_log_t;

/* --------------------------------------------------------------- progress */

typedef struct core_inflight {
    uint64_t last;
    uint64_t bytes;
} core_inflight_t;

typedef struct core_progress {
    rk_peer_id_t id;
    bool is_self;
    bool voter_cur; /* voter in conf.cur */
    bool voter_old; /* voter in conf.old (joint only) */
    core_progress_state_t state;
    uint64_t match, next;
    uint64_t pending_snapshot;
    bool probe_sent; /* probe/snapshot: paused until a response */
    bool recent_active;
    uint32_t ticks_since_contact;
    int vote;             /* election tally: 0 unknown, 1 granted, -1 rejected */
    uint64_t read_ack;    /* highest read-index round acknowledged */
    uint64_t lease_sent;  /* leader tick the newest acked round was sent at (0 none) */
    uint64_t sent_commit; /* commit index carried by the last append sent */
    /* ring of infl_cap entries, grown on demand up to max_inflight_msgs:
     * followers, and most peers of an idle group, never need one */
    core_inflight_t *infl;
    uint32_t infl_start, infl_count, infl_cap;
    uint64_t infl_bytes;
} core_progress_t;

/* ------------------------------------------------------------ read index */

/* Send tick of a heartbeat round (CORE_READ_LEASE), kept in a small ring. */
#define CORE_LEASE_RING 64
typedef struct core_round_tick {
    uint64_t round;
    uint64_t tick;
} core_round_tick_t;

typedef struct core_read_req {
    uint64_t ctx;
    rk_peer_id_t from; /* empty: local request */
    uint64_t index;
    uint64_t round; /* 0: deferred until the leader commits in its term */
} core_read_req_t;

/* ------------------------------------------------------------ the core */

#define CORE_VEC(T)    \
    struct {           \
        T *v;          \
        size_t n, cap; \
    }

struct core {
    core_options_t o;
    core_storage_t st;
    int fatal;
    bool fatal_reported;
    uint64_t rng;

    core_role_t role;
    uint64_t term;
    rk_peer_id_t vote;
    rk_peer_id_t lead;
    core_hard_state_t last_hs; /* last hard state handed to the host */

    core_log_t log;
    core_snap_ref_t latest_snap; /* latest local snapshot, sent to laggards */

    /* interned (core_conf_intern), one reference each */
    const core_conf_t *conf;
    uint64_t conf_index;
    const core_conf_t *prev_conf;
    uint64_t prev_conf_index;
    uint64_t conf_committed_reported;

    core_progress_t *prs;
    size_t n_prs;

    uint64_t ticks; /* core_tick calls since core_new, from 1: the lease clock */
    uint32_t election_elapsed;
    /* CORE_READ_LEASE: restarted with term > 0, so we may have acked a
     * leader whose lease still runs; refuse votes for an election timeout. */
    bool restart_lease;
    uint32_t heartbeat_elapsed;
    uint32_t randomized_timeout;

    /* candidate */
    uint64_t self_vote_id; /* update id carrying our self-vote */
    bool campaign_transfer;
    uint64_t deferred_transfer_term; /* TimeoutNow received while busy (0 = none) */

    /* leader */
    uint64_t pending_conf_index;
    bool committed_in_term;
    bool commit_bcast_pending; /* tell followers the new commit at the next flush */
    bool transferring;
    rk_peer_id_t transferee;
    uint32_t transfer_elapsed;
    bool transfer_sent;                    /* TimeoutNow went to the transferee */
    bool lease_revoked;                    /* we sent TimeoutNow this term: no more lease reads */
    CORE_VEC(core_inflight_t) uncommitted; /* (index, bytes) of own proposals > commit */
    uint64_t uncommitted_bytes;

    /* read index */
    CORE_VEC(core_read_req_t) reads;
    uint64_t read_seq;       /* last round id issued */
    bool read_round_pending; /* broadcast round read_seq+1 at the next flush */
    /* slot round % RING; allocated with the first round a leader sends
     * (followers, most cores of a multi-raft process, never need it) */
    core_round_tick_t *round_ticks;

    /* quiescence (quiesce.c) */
    bool quiesced;
    uint64_t quiesce_round; /* leader: ctx of the last quiesce notice sent */
    uint64_t hb_ctx_floor;  /* follower: highest heartbeat ctx from the leader this term */
    uint32_t restart_guard; /* ticks left in which a restarted core refuses notices */

    /* election priority (JRaft) */
    int32_t target_priority;
    uint32_t priority_timeouts;

    /* output being accumulated */
    uint64_t next_id;
    CORE_VEC(core_msg_t) msgs;
    CORE_VEC(core_msg_t) msgs_after;
    CORE_VEC(core_event_t) events;
    CORE_VEC(core_read_state_t) rstates;
};

/* Grows a CORE_VEC by one, returning a pointer to the new zeroed slot, or
 * NULL on out of memory. */
void *core_vec_push(void *vec_v, void *vec_n, void *vec_cap, size_t elem);
#define VEC_PUSH(vec) \
    ((__typeof__((vec).v))core_vec_push(&(vec).v, &(vec).n, &(vec).cap, sizeof *(vec).v))

/* core.c */
void core_set_fatal(core_t *c, int code);
core_msg_t *core_msg_new(core_t *c, core_msg_type_t type, const rk_peer_id_t *to, bool after);
void core_event(core_t *c, core_event_type_t type, uint64_t index, const rk_peer_id_t *peer,
                int status);
uint64_t core_rand(core_t *c);
bool core_is_self(const core_t *c, const rk_peer_id_t *p);

/* log_unstable.c */
int log_init(core_t *c, const core_init_t *init);
void log_destroy(core_log_t *l);
uint64_t log_last_index(const core_t *c);
uint64_t log_last_term(core_t *c);
uint64_t log_first_index(const core_t *c);
uint64_t log_stable_index(const core_t *c);
int log_term(core_t *c, uint64_t index, uint64_t *term);
uint64_t log_term_or0(core_t *c, uint64_t index);
bool log_match_term(core_t *c, uint64_t index, uint64_t term);
bool log_up_to_date(core_t *c, uint64_t last_index, uint64_t last_term);
int log_entries(core_t *c, uint64_t lo, uint64_t hi, uint64_t max_bytes, size_t max_n,
                core_entry_t **out, size_t *n);
int log_append(core_t *c, const core_entry_t *ents, size_t n);
void log_restore(core_t *c, const core_snapshot_meta_t *s, const core_conf_t *conf);
uint64_t log_find_conflict_by_term(core_t *c, uint64_t index, uint64_t term);
void log_commit_to(core_t *c, uint64_t index);
int log_writes_push(core_t *c, uint64_t id, uint64_t last, uint64_t snap_index);
void log_writes_ack(core_t *c, uint64_t id);
void core_entries_free(core_entry_t *e, size_t n);

/* progress.c */
int progress_rebuild(core_t *c);
void progress_reset_all(core_t *c);
core_progress_t *progress_find(core_t *c, const rk_peer_id_t *id);
core_progress_t *progress_self(core_t *c);
void progress_free_all(core_t *c);
void progress_become_probe(core_t *c, core_progress_t *pr);
void progress_become_replicate(core_progress_t *pr);
void progress_become_snapshot(core_progress_t *pr, uint64_t index);
bool progress_maybe_update(core_progress_t *pr, uint64_t n);
bool progress_maybe_decr_to(core_progress_t *pr, uint64_t rejected, uint64_t match_hint);
bool progress_is_paused(const core_t *c, const core_progress_t *pr);
/* Room for one more inflight append (progress_infl_add): 0 or RK_ENOMEM. */
int progress_infl_reserve(core_t *c, core_progress_t *pr);
void progress_infl_add(core_progress_t *pr, uint64_t last, uint64_t bytes);
void progress_infl_free_le(core_progress_t *pr, uint64_t index);
void progress_infl_reset(core_progress_t *pr);
/* quorum over voters: for commit (match), read rounds (read_ack) */
uint64_t quorum_committed(core_t *c, bool use_read_ack);
/* vote tally: 1 won, -1 lost, 0 pending */
int quorum_vote_result(core_t *c);
bool quorum_active(core_t *c);
size_t quorum_voter_count(const core_t *c);

/* election.c */
void election_become_follower(core_t *c, uint64_t term, const rk_peer_id_t *lead);
void election_become_leader(core_t *c);
void election_campaign(core_t *c, bool transfer);
void election_tick(core_t *c);
void election_reset_timeout(core_t *c);
bool election_promotable(const core_t *c);
bool election_busy(const core_t *c);
bool election_in_lease(const core_t *c);
void election_timeout_now(core_t *c);
void election_maybe_deferred_campaign(core_t *c);
int election_step_vote_req(core_t *c, const core_msg_t *m);
void election_step_vote_resp(core_t *c, const core_msg_t *m);
void election_self_vote_persisted(core_t *c, uint64_t id);
void election_set_lead(core_t *c, const rk_peer_id_t *lead);

/* replication.c */
bool repl_send_append(core_t *c, core_progress_t *pr, bool send_if_empty);
void repl_bcast_append(core_t *c);
void repl_bcast_heartbeat(core_t *c, uint64_t ctx);
void repl_handle_append(core_t *c, const core_msg_t *m);
void repl_handle_heartbeat(core_t *c, const core_msg_t *m);
void repl_handle_append_resp(core_t *c, const core_msg_t *m);
void repl_handle_heartbeat_resp(core_t *c, const core_msg_t *m);
bool repl_maybe_commit(core_t *c);
int repl_append_local(core_t *c, core_entry_t *ents, size_t n);
void repl_self_persisted(core_t *c);
void repl_after_commit(core_t *c, uint64_t old_commit);
void repl_flush_commit(core_t *c);

/* snapshot.c */
bool snap_send(core_t *c, core_progress_t *pr);
void snap_handle(core_t *c, const core_msg_t *m);

/* membership.c */
int conf_apply_entries(core_t *c, const core_entry_t *ents, size_t n);
int conf_rollback(core_t *c, uint64_t truncated_from);
/* conf is interned; conf_set takes its own reference. */
int conf_set(core_t *c, const core_conf_t *conf, uint64_t index);
/* *slot (an interned reference or NULL) becomes another reference to conf. */
void conf_assign(const core_conf_t **slot, const core_conf_t *conf);
void conf_after_commit(core_t *c);
bool conf_valid(const rk_configuration_t *cfg);

/* read_only.c */
void read_leader_request(core_t *c, uint64_t ctx, const rk_peer_id_t *from);
void read_on_commit_in_term(core_t *c);
void read_on_heartbeat_resp(core_t *c);
void read_flush_round(core_t *c);
void read_fail_all(core_t *c, int status);
void read_handle_resp(core_t *c, const core_msg_t *m);
void read_round_sent(core_t *c, uint64_t round);
void read_round_acked(core_t *c, core_progress_t *pr, uint64_t round);
void read_rounds_forget(core_t *c);

/* transfer.c */
void transfer_abort(core_t *c, int status);
void transfer_maybe_timeout_now(core_t *c, core_progress_t *pr);
void transfer_tick(core_t *c);
void transfer_on_conf_change(core_t *c);
void transfer_handoff(core_t *c);

/* quiesce.c */
void quiesce_wake(core_t *c);
void quiesce_before_step(core_t *c, const core_msg_t *m);
bool quiesce_follower_notice(core_t *c, const core_msg_t *m);
void quiesce_leader_resp(core_t *c, const core_msg_t *m);

#endif /* RAFTKIT_CORE_INTERNAL_H */
