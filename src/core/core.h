/* The Raft algorithm as a pure, deterministic state machine (etcd-raft style).
 *
 * No sockets, no clock, no threads, no disk: the host (the node runtime, or
 * the simulator) feeds inputs -- ticks, received messages, proposals, "this
 * was persisted" acknowledgements -- and drains one core_update_t after each
 * batch of inputs: state to persist, messages to send now, messages to send
 * only once this update is durable, committed entries to apply, read-index
 * results and events. Randomness comes only from the seeded PRNG in the
 * options, so a run is replayable from its seed.
 *
 * Threading: a core_t is not thread-safe; every function below is called from
 * one thread (the node loop). Buffers (buf_t) handed out may be referenced
 * from other threads (see src/base/buf.h).
 *
 * Errors: functions return 0 or a negative RK_E* code (raftkit/status.h).
 * After a fatal error (e.g. the leader sends a conflicting entry below our
 * commit index, or the storage callbacks fail) the core halts: the next update
 * carries `fatal`, and every input afterwards returns RK_ESTATE.
 *
 * Persistence model (thesis 10.2.1, etcd "async storage writes"):
 *   - every update has an id; the host writes its hard state, snapshot and
 *     entries (in that order) durably, IN UPDATE ORDER, and then calls
 *     core_persisted(id). Acks are cumulative (acking id k acks all <= k).
 *   - update.msgs may be sent at once; update.msgs_after only after the update
 *     is durable (vote grants, append acks: they promise durable state).
 *   - the leader's own log counts toward commit only once acked; a candidate's
 *     self-vote counts only once its hard state is acked, and it becomes
 *     leader only then, even if the other voters alone are a majority.
 *   - an ack never marks entries stable that were overwritten after the acked
 *     update was emitted (the unstable-log ABA race): see log_unstable.c.
 *
 * changes: (keep this list when the header changes after v1)
 *   - core_persist_failed(): a host input for a failed write (scenario 103):
 *     a leader hands over (TimeoutNow to its most up-to-date voter) and steps
 *     down, then the core halts with `fatal` = the given error; the ROLE
 *     event and `fatal` tell the host to fail pending proposals.
 *   - when the core halts, the update carries no msgs_after (they promised
 *     durable state that will not be written).
 *   - no campaign (timeout, core_campaign, TimeoutNow) while an entries
 *     write or snapshot install of this node is pending (scenario 100);
 *     core_campaign returns RK_ESTATE then, and a TimeoutNow is remembered
 *     and honoured once the write is acked if the term did not change.
 *   - a leader removed (or demoted) by a committed configuration sends
 *     TimeoutNow to its most up-to-date voter as it steps down (thesis
 *     4.2.2), so the cluster need not wait out an election timeout.
 *   - core_update_t.snapshot is only written (and valid) when has_snapshot
 *     is set: update_get/release no longer clear its ~10 KB configuration.
 *   - core_change_conf_ex / CORE_CONF_MANUAL_LEAVE and core_leave_joint:
 *     explicit leave of a joint configuration (scenario 71); core_conf_t
 *     gained `manual_leave`, stored as bit1 of the CONF payload flags.
 *   - core_forget_leader (scenarios 24, 93).
 *   - a lower-term append or heartbeat is always answered with our term
 *     (before: only with pre-vote or check-quorum on), so a stale leader
 *     that nobody else contacts steps down.
 *   - a candidate whose term/self-vote write is not yet acked no longer
 *     becomes leader on the others' grants alone (it could lead the same
 *     term twice across a crash); it does when the write is acked.
 *   - CORE_EV_TRANSFER_DONE: a leader stepping down before it sent
 *     TimeoutNow reports RK_ECANCELED (was 0).
 *   - a node whose configuration in effect is an uncommitted one that
 *     removes (or demotes) it still campaigns if it was a voter in the
 *     previous configuration (simulator bug 5: it may hold the only log
 *     the others can vote for); if it wins it leads without counting
 *     itself, commits the change and steps down (thesis 4.2.2).
 *   - CORE_READ_LEASE: a leader that sent TimeoutNow (transfer or
 *     handoff) serves reads with ReadIndex heartbeat rounds for the rest
 *     of its term (simulator bug 6): the transferee's election skips the
 *     followers' lease the leader's lease relies on.
 *   - core_options_t.lease_ticks: lease reads check quorum contact within the
 *     lease and fall back to a ReadIndex round otherwise.
 *   - CORE_READ_LEASE (simulator bug 7): the lease runs from the send tick of
 *     the newest heartbeat a quorum acked (every heartbeat is a new read
 *     round), for lease_ticks capped to election_ticks - 1 (0 = that cap;
 *     before, 0 meant no check and the lease counted from the acks' arrival).
 *     A fresh leader serves lease reads only after one acked heartbeat. A
 *     node restarted (core_new) with term > 0 ignores non-transfer
 *     (pre-)vote requests for its first election timeout; followers honour
 *     the leader's lease (thesis 4.2.3) under lease reads even with
 *     check_quorum off; core_campaign returns RK_ESTATE while a node honours
 *     a lease.
 *   - quiescence (core_options_t.quiesce, default off; quiesce.c):
 *     core_quiesce, core_wake, core_leader_process_down, core_quiesced;
 *     core_msg_t.quiesce; core_status_t.quiesced.
 *   - configurations are interned (core_conf_intern): the core keeps its
 *     configurations as shared references, so core_get_conf's pointer is
 *     valid until the configuration changes (before: for the core's life),
 *     and core_snapshot_taken may fail with RK_ENOMEM.
 */
#ifndef RAFTKIT_CORE_CORE_H
#define RAFTKIT_CORE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "raftkit/peer.h"
#include "raftkit/status.h"
#include "src/base/buf.h"

/* ------------------------------------------------------------------ peers */

/* Identity of a peer: endpoint (host, port) and idx; priority is not part of
 * identity. The same comparison as rk_peer_id_equal, inline because it runs
 * for every message received (progress lookup). */
static inline bool core_peer_eq(const rk_peer_id_t *a, const rk_peer_id_t *b)
{
    return a->endpoint.port == b->endpoint.port && a->idx == b->idx &&
           strncmp(a->endpoint.host, b->endpoint.host, RK_HOST_MAX) == 0;
}

static inline bool core_peer_is_none(const rk_peer_id_t *p)
{
    return p->endpoint.host[0] == '\0' && p->endpoint.port == 0;
}

/* ---------------------------------------------------------- configuration */

/* A cluster configuration as the core sees it. Outside a joint change only
 * `cur` is used. During joint consensus (thesis 4.3) `old` is C_old and `cur`
 * is C_new: elections and commitment need a majority of old.peers AND a
 * majority of cur.peers. A peer that is a voter in old and a learner in cur
 * (demotion) keeps voting in the old half until the joint config is left.
 * Learners of both halves receive the log and never vote. */
typedef struct core_conf {
    rk_configuration_t cur; /* C_new (or the only configuration) */
    rk_configuration_t old; /* C_old when joint; ignored otherwise */
    bool joint;
    /* Joint only: the leader leaves it when asked (core_leave_joint), not
     * automatically once it commits (etcd's explicit transition). */
    bool manual_leave;
} core_conf_t;

/* Is p a voter in either half / a learner (member but voter in neither)? */
bool core_conf_is_voter(const core_conf_t *c, const rk_peer_id_t *p);
bool core_conf_is_learner(const core_conf_t *c, const rk_peer_id_t *p);
bool core_conf_is_member(const core_conf_t *c, const rk_peer_id_t *p);

/* CONF entry payload encoding, version 1 (little endian):
 *   u8 version=1, u8 flags (bit0: joint, bit1: manual_leave),
 *   u8 n_cur_voters, u8 n_cur_learners, u8 n_old_voters, u8 n_old_learners,
 *   then each peer of those lists in that order as
 *     u8 host_len, host bytes, u16 port, i32 idx, i32 priority.
 * core_conf_encode returns a new buffer (one reference owned by the caller)
 * or NULL on out of memory; core_conf_decode returns 0 or RK_ECORRUPT. */
buf_t *core_conf_encode(const core_conf_t *c);
int core_conf_decode(const void *data, size_t len, core_conf_t *out);

/* Same peers in the same order with the same attributes (priority too), same
 * counts (and flags): what an interned copy must preserve. */
bool core_configuration_same(const rk_configuration_t *a, const rk_configuration_t *b);
bool core_conf_same(const core_conf_t *a, const core_conf_t *b);

/* Interned configurations (conf_intern.c): one immutable, reference-counted
 * copy of each distinct configuration per process, shared by every holder
 * (thousands of groups with the same members keep one ~10 KB copy).
 * core_conf_intern returns a reference to the copy equal to c (c itself may
 * be anything, interned or not), or NULL when out of memory; core_conf_ref
 * takes another reference to an interned c and returns it; core_conf_release
 * drops one (NULL is ignored), freeing the copy with the last. Thread-safe.
 * Never write through an interned pointer. core_conf_interned counts the
 * distinct configurations held (tests: it returns to 0 once every holder is
 * gone). */
const core_conf_t *core_conf_intern(const core_conf_t *c);
const core_conf_t *core_conf_ref(const core_conf_t *c);
void core_conf_release(const core_conf_t *c);
size_t core_conf_interned(void);

/* ------------------------------------------------------------- log entries */

typedef enum core_entry_type {
    CORE_ENTRY_DATA = 0, /* application command */
    CORE_ENTRY_NOOP = 1, /* appended by a new leader (thesis 6.4 / 3.6.2); no payload */
    CORE_ENTRY_CONF = 2, /* configuration: payload = core_conf_encode() */
} core_entry_type_t;

/* A log entry. Whoever holds a core_entry_t holds one reference on `data`
 * (NULL for an empty payload). */
typedef struct core_entry {
    uint64_t term;
    uint64_t index;
    core_entry_type_t type;
    buf_t *data;
} core_entry_t;

/* Bytes an entry counts for in the per-message / inflight / uncommitted caps. */
static inline size_t core_entry_size(const core_entry_t *e)
{
    return buf_len(e->data) + 24;
}

/* ------------------------------------------------------- persistent state */

typedef struct core_hard_state {
    uint64_t term;
    rk_peer_id_t vote; /* empty (core_peer_is_none) = no vote this term */
    uint64_t commit;
} core_hard_state_t;

typedef struct core_snapshot_meta {
    uint64_t index;   /* last index covered by the snapshot; 0 = no snapshot */
    uint64_t term;    /* term of that entry */
    core_conf_t conf; /* configuration as of index (may be joint) */
} core_snapshot_meta_t;

/* Read access to the host's DURABLE log: entries (compact_index, stable last].
 * Entries the core handed out in an update but which are not yet acked are
 * never read through this interface (the core keeps them in its unstable
 * buffer). Called synchronously from core functions, on the core's thread. */
typedef struct core_storage {
    void *arg;
    /* Term of the entry at index. Returns 0, RK_ENOTFOUND if the index is
     * compacted or beyond the durable log, or RK_EIO (fatal for the core). */
    int (*term)(void *arg, uint64_t index, uint64_t *term);
    /* Fills out[0..*n) with entries lo, lo+1, ... (< hi), stopping before the
     * total core_entry_size() would exceed max_bytes -- but always at least
     * one entry. out has room for hi - lo entries. Each returned entry holds a
     * reference on its data, which the core drops. Returns 0, RK_ENOTFOUND
     * (lo compacted) or RK_EIO (fatal). */
    int (*entries)(void *arg, uint64_t lo, uint64_t hi, size_t max_bytes, core_entry_t *out,
                   size_t *n);
} core_storage_t;

/* ----------------------------------------------------------------- options */

typedef enum core_read_only_option {
    CORE_READ_SAFE = 0, /* ReadIndex confirms leadership with a heartbeat round */
    /* Lease-based (thesis 6.4.1): the leader answers at once with its commit
     * while its lease runs (lease_ticks below). Correct only when the clocks
     * of all nodes advance at roughly the same rate (bounded drift): followers
     * that heard from a leader, or restarted, within an election timeout do
     * not vote for others (nor campaign through core_campaign). */
    CORE_READ_LEASE = 1,
} core_read_only_option_t;

typedef struct core_options {
    rk_peer_id_t self;        /* self.priority is this node's election priority */
    uint32_t election_ticks;  /* election timeout et; randomized in [et, 2et); default 10 */
    uint32_t heartbeat_ticks; /* default 1; must be < election_ticks */
    bool pre_vote;            /* thesis 9.6; default true (core_options_init) */
    bool check_quorum;        /* thesis 6.2; default true */
    core_read_only_option_t read_only; /* default CORE_READ_SAFE */
    uint32_t max_inflight_msgs;     /* appends in flight per follower in replicate; default 256 */
    uint64_t max_inflight_bytes;    /* bytes in flight per follower; 0 = unlimited */
    uint32_t max_entries_per_msg;   /* default 64 */
    uint64_t max_bytes_per_msg;     /* default 1 MiB; a single larger entry still goes alone */
    uint64_t max_uncommitted_bytes; /* leader cap on unapplied proposal bytes; 0 = unlimited */
    /* CORE_READ_LEASE: the leader's lease (JRaft's leader_lease_time_ratio).
     * A lease read is answered at once only while fewer than lease_ticks
     * leader ticks have passed since the SEND of the newest heartbeat a
     * quorum of voters (in each half when joint) acknowledged (thesis
     * 6.4.1); otherwise it falls back to a heartbeat round like
     * CORE_READ_SAFE. Followers refuse votes for more than election_ticks - 1
     * tick periods after receiving it, so lease_ticks is capped to
     * election_ticks - 1, and 0 means that cap; with clock drift d between
     * nodes choose at most (election_ticks - 1) / (1 + d). Default 0. */
    uint32_t lease_ticks;
    /* Quiescence (quiesce.c): an idle leader may stop heartbeating a group
     * (core_quiesce) and its followers stop counting toward an election
     * until the host reports the leader's process down
     * (core_leader_process_down). Default false: the core behaves as if
     * quiescence did not exist (a quiesce notice is treated as an ordinary
     * heartbeat and refused, which wakes the leader). */
    bool quiesce;
    uint64_t seed; /* PRNG seed: the only source of randomness */
} core_options_t;

/* Fills defaults (pre_vote and check_quorum on, SAFE reads, the values above). */
void core_options_init(core_options_t *o);

/* Everything the host recovered from disk, for core_new. */
typedef struct core_init {
    core_options_t opts;
    core_hard_state_t hs;
    core_snapshot_meta_t snapshot; /* latest durable snapshot (index 0 = none) */
    uint64_t
        compact_index; /* entries <= compact_index are not in storage (usually snapshot.index) */
    uint64_t compact_term; /* term at compact_index (0 when compact_index is 0) */
    uint64_t last_index;   /* last durable log index (compact_index if the log is empty) */
    uint64_t last_term;
    /* Configuration in effect: the last CONF entry in the log (conf_index) or
     * the snapshot's configuration (conf_index = snapshot.index). prev_conf is
     * the configuration before conf_index; it is only used to roll back when
     * an uncommitted CONF entry at conf_index is truncated (every CONF entry
     * but the last in any log is committed, so one level is enough). Set
     * prev_conf = conf when conf_index <= hs.commit. For a brand-new cluster
     * pass the bootstrap configuration with conf_index 0. */
    core_conf_t conf;
    uint64_t conf_index;
    core_conf_t prev_conf;
    uint64_t applied; /* index the state machine has applied (>= snapshot.index) */
} core_init_t;

/* ---------------------------------------------------------------- messages */

typedef enum core_msg_type {
    CORE_MSG_PREVOTE = 0,
    CORE_MSG_PREVOTE_RESP,
    CORE_MSG_VOTE,
    CORE_MSG_VOTE_RESP,
    CORE_MSG_APP,
    CORE_MSG_APP_RESP,
    CORE_MSG_HEARTBEAT,
    CORE_MSG_HEARTBEAT_RESP,
    CORE_MSG_SNAP,        /* leader -> follower: install snapshot `snap` (host attaches data) */
    CORE_MSG_TIMEOUT_NOW, /* leader -> transferee: campaign now (thesis 3.10) */
    CORE_MSG_READ_INDEX,  /* follower -> leader: read request `ctx` */
    CORE_MSG_READ_INDEX_RESP,
    CORE_MSG__COUNT
} core_msg_type_t;

const char *core_msg_type_name(core_msg_type_t t);

/* One Raft message. Fields by type:
 *   PREVOTE/VOTE   term = candidate's (pre-vote: its term + 1, not adopted),
 *                  index/log_term = candidate's last log index/term,
 *                  transfer = campaign triggered by TimeoutNow (skips leases)
 *   *_RESP votes   term, reject
 *   APP            index/log_term = prev entry, entries, commit
 *   APP_RESP       success: index = last index now known to match;
 *                  reject: index = the rejected prev index, reject_hint /
 *                  reject_hint_term = the follower's best guess (largest index
 *                  <= prev whose term <= prev term, cf. etcd findConflictByTerm)
 *   HEARTBEAT      commit (already capped to the follower's match), ctx =
 *                  read-index round (0 = none)
 *   HEARTBEAT_RESP ctx echoed
 *   SNAP           snap (the leader host attaches the data for snap->index)
 *   READ_INDEX     ctx (the follower's request id)
 *   READ_INDEX_RESP ctx, index = read index; reject = leader could not serve
 * Ownership: in an update, the update owns messages, entries and snapshot
 * metas (core_update_release frees them). A message passed to core_step stays
 * owned by the caller; the core takes its own references. */
typedef struct core_msg {
    core_msg_type_t type;
    rk_peer_id_t from;
    rk_peer_id_t to;
    uint64_t term;
    uint64_t log_term;
    uint64_t index;
    uint64_t commit;
    core_entry_t *entries;
    size_t n_entries;
    bool reject;
    bool transfer;
    /* HEARTBEAT: quiesce notice (index/log_term = the leader's last entry,
     * commit = its commit, ctx = the quiesce round); HEARTBEAT_RESP: the
     * follower quiesced on it. See quiesce.c. */
    bool quiesce;
    uint64_t reject_hint;
    uint64_t reject_hint_term;
    uint64_t ctx;
    core_snapshot_meta_t *snap; /* SNAP only, else NULL */
} core_msg_t;

/* Frees what a message owns (entries' references, entries array, snap) --
 * for hosts that build messages with malloc'd arrays, e.g. after decoding. */
void core_msg_free_contents(core_msg_t *m);

/* ------------------------------------------------------------------ update */

typedef enum core_role {
    CORE_FOLLOWER = 0,
    CORE_PRE_CANDIDATE,
    CORE_CANDIDATE,
    CORE_LEADER,
} core_role_t;

const char *core_role_name(core_role_t r);

typedef enum core_event_type {
    CORE_EV_ROLE,           /* role changed: role, term (leadership lost: old role leader) */
    CORE_EV_LEADER,         /* known leader changed: peer (empty = none), term */
    CORE_EV_CONF_CHANGED,   /* configuration in effect changed (appended or rolled back): index */
    CORE_EV_CONF_COMMITTED, /* the configuration at index is committed */
    /* leadership transfer ended: status 0 (stepped down after sending
     * TimeoutNow), RK_ETIMEDOUT, RK_ECANCELED (cancelled, retargeted, the
     * transferee left the voters, or we stepped down before TimeoutNow) */
    CORE_EV_TRANSFER_DONE,
} core_event_type_t;

typedef struct core_event {
    core_event_type_t type;
    core_role_t role;     /* ROLE: new role */
    core_role_t old_role; /* ROLE: previous role */
    uint64_t term;
    uint64_t index;
    rk_peer_id_t peer;
    int status;
} core_event_t;

/* A linearizable read is ready: once the state machine has applied `index`,
 * the read with request id `ctx` may be served. status != 0: it failed
 * (RK_ENOTLEADER: leadership lost / the leader refused; RK_ELEADERLOST). */
typedef struct core_read_state {
    uint64_t ctx;
    uint64_t index;
    int status;
} core_read_state_t;

/* Everything the host must do after a batch of inputs, in this order:
 *   1. write hard state (if has_hard_state), snapshot (if has_snapshot: drop
 *      the whole log and install it), then entries (first deleting every log
 *      entry >= entries[0].index: suffix truncation); all durably, then
 *      core_persisted(id). Updates are persisted in id order.
 *   2. send msgs now; send msgs_after after step 1 is durable.
 *   3. apply committed entries [apply_lo, apply_hi] (empty when lo > hi) --
 *      they are durable locally; after installing `snapshot` if any. Read
 *      them through its log; report progress with core_applied().
 *   4. serve reads, handle events.
 * id is 0 when there is nothing to persist (no ack needed). */
typedef struct core_update {
    uint64_t id;
    bool has_hard_state;
    core_hard_state_t hs;
    bool has_snapshot;
    core_snapshot_meta_t snapshot; /* only valid when has_snapshot */
    core_entry_t *entries;
    size_t n_entries;
    core_msg_t *msgs;
    size_t n_msgs;
    core_msg_t *msgs_after;
    size_t n_msgs_after;
    uint64_t apply_lo;
    uint64_t apply_hi;
    core_read_state_t *reads;
    size_t n_reads;
    core_event_t *events;
    size_t n_events;
    int fatal; /* 0, or the RK_E* that halted the core (RK_ECORRUPT, RK_EIO) */
} core_update_t;

/* --------------------------------------------------------------- lifecycle */

typedef struct core core_t;

/* Creates a core from persisted state. storage is copied (its arg must stay
 * valid for the core's lifetime). Starts as follower. Returns NULL with *err
 * set: RK_EINVAL (bad options, e.g. heartbeat_ticks >= election_ticks, empty
 * self), RK_ENOMEM. */
core_t *core_new(const core_init_t *init, const core_storage_t *storage, int *err);

/* Frees the core and everything it still owns (not handed-out updates). */
void core_free(core_t *c);

/* ------------------------------------------------------------------ inputs */

/* One logical clock step: election / heartbeat / check-quorum / transfer timers.
 * The host calls it once per tick period of real (monotonic) time. After a
 * stall (a stopped process, a blocked loop) it calls it once for every period
 * that passed, before it hands the core anything else: the read lease is
 * counted in ticks, and a leader whose ticks fell behind real time would
 * serve lease reads past the lease's real end (the simulator's
 * --pause-loses-ticks shows it). */
int core_tick(core_t *c);

/* Processes a message received from the network (m->to should be self).
 * Messages at a lower term are dropped (§5.1); unknown message types give
 * RK_EPROTO. */
int core_step(core_t *c, const core_msg_t *m);

/* Leader only: appends entries (their type and data are used; term and index
 * are assigned; the core takes its own references on data). On success
 * *first_index / *term say where they went (a closure can later check that the
 * entry applied at that index has that term). CONF entries are refused here
 * (RK_EINVAL): use core_change_conf. Errors: RK_ENOTLEADER, RK_ETRANSFER
 * (transfer in progress), RK_EBUSY (max_uncommitted_bytes reached), RK_EINVAL. */
int core_propose(core_t *c, const core_entry_t *entries, size_t n, uint64_t *first_index,
                 uint64_t *term);

/* Leader only: moves the cluster to `target` (voters in target->peers,
 * learners in target->learners). Same voters -> one simple CONF entry; any
 * voter change -> joint consensus: C_old,new now, C_new proposed
 * automatically by the leader once C_old,new commits (thesis 4.3). Takes
 * effect when appended. Errors: RK_ENOTLEADER, RK_ETRANSFER, RK_ECONFCHANGE
 * (a change is uncommitted or the config is joint), RK_ECONF (no voters,
 * duplicates), RK_EINVAL. On success *index is the CONF entry's index. */
int core_change_conf(core_t *c, const rk_configuration_t *target, uint64_t *index);

/* Flags for core_change_conf_ex. */
#define CORE_CONF_MANUAL_LEAVE 0x1u /* a joint change waits for core_leave_joint */

/* core_change_conf with flags: CORE_CONF_MANUAL_LEAVE makes a voter change
 * stay in C_old,new after it commits until core_leave_joint is called
 * (scenario 71; a leader elected meanwhile keeps it joint too). Ignored for
 * a change that needs no joint configuration. Errors: as core_change_conf,
 * and RK_EINVAL for unknown flags. */
int core_change_conf_ex(core_t *c, const rk_configuration_t *target, unsigned flags,
                        uint64_t *index);

/* Leader only: proposes C_new to leave the joint configuration in effect
 * (thesis 4.3). Not joint (e.g. already left, or asked twice): a no-op that
 * returns 0 with *index = the index of the configuration in effect.
 * Errors: RK_ENOTLEADER, RK_ETRANSFER, RK_ECONFCHANGE (the joint entry is
 * not committed yet), RK_ESTATE (halted). On success *index is the index of
 * the C_new entry. */
int core_leave_joint(core_t *c, uint64_t *index);

/* Follower only: forget the current leader but keep the term (etcd's
 * ForgetLeader), for a host that knows the leader is gone (its connection
 * dropped, it was shut down): the follower then stops protecting the
 * leader's lease (thesis 4.2.3) and grants (pre-)votes to up-to-date
 * candidates at once instead of after an election timeout; the next message
 * from a live leader restores it. Refused under CORE_READ_LEASE: lease reads
 * rely on followers not voting for another leader within the lease.
 * Non-followers: no-op. Errors: RK_ESTATE (lease reads, or halted). */
int core_forget_leader(core_t *c);

/* Leader only: transfers leadership to `to` (thesis 3.10): catch it up, send
 * TimeoutNow; proposals fail with RK_ETRANSFER meanwhile; aborted after an
 * election timeout. to == self cancels a pending transfer. Asking again for
 * the same target does not extend the deadline; another target retargets.
 * Errors: RK_ENOTLEADER, RK_EUNKNOWNPEER (not a voter in the config). */
int core_transfer_leader(core_t *c, const rk_peer_id_t *to);

/* Starts a linearizable read with request id ctx (unique per node). The
 * result comes as a core_read_state_t in a later update (possibly the next
 * one). Leader: confirmed by a heartbeat round (reads in one input batch share
 * one round), or at once under CORE_READ_LEASE while the lease runs;
 * deferred until the leader has committed an entry of its term (thesis 6.4).
 * Follower: forwarded to the leader. Errors: RK_ENOLEADER (follower without
 * a known leader; candidates). */
int core_read_index(core_t *c, uint64_t ctx);

/* The update with this id (and all before it) is durable. Ids must not go
 * backwards; an id never handed out gives RK_EINVAL. */
int core_persisted(core_t *c, uint64_t update_id);

/* The host could not make the update with this id durable (err: a negative
 * RK_E* code, typically RK_EIO or RK_ENOSPC). It must not write any later
 * update either, nor send msgs_after of the failed update or later ones.
 * The core halts (thesis has no recovery from a lost write short of a
 * restart from disk): a leader first sends TimeoutNow to its most
 * up-to-date voter and steps down (a CORE_EV_ROLE event, reads failed with
 * RK_ENOTLEADER); the next update carries fatal = err, and the host fails
 * every pending proposal with that code. Afterwards every input returns
 * RK_ESTATE; the host restarts the node from what is on disk (core_new).
 * Errors: RK_EINVAL (err >= 0, or id not a pending update), RK_ESTATE. */
int core_persist_failed(core_t *c, uint64_t update_id, int err);

/* The state machine has applied up to index (monotonic). */
int core_applied(core_t *c, uint64_t index);

/* The host took a local snapshot covering entries <= meta->index: it becomes
 * the snapshot sent to followers that fell behind the log. Errors: RK_EINVAL
 * (meta->index beyond commit), RK_ENOMEM (interning its configuration). */
int core_snapshot_taken(core_t *c, const core_snapshot_meta_t *meta);

/* The host removed log entries <= index from storage (index <= the latest
 * snapshot taken, <= the last durable index); term is the entry's term.
 * Followers needing them will get a snapshot. RK_EINVAL when out of range. */
int core_compacted(core_t *c, uint64_t index, uint64_t term);

/* Leader: sending to `peer` failed; it goes back to probing. */
int core_report_unreachable(core_t *c, const rk_peer_id_t *peer);

/* Leader: the snapshot transfer to peer finished (ok) or failed. */
int core_report_snapshot(core_t *c, const rk_peer_id_t *peer, bool ok);

/* Starts an election now (pre-vote first when enabled), as if the election
 * timer fired: for tests and "trigger election" admin commands. Leaders,
 * non-voters (except one whose own removal is appended but uncommitted,
 * see changes:), and nodes with an entries write or snapshot install pending
 * (scenario 100), and under CORE_READ_LEASE a node that heard from a leader
 * (or restarted) within an election timeout, since its own vote would break
 * that leader's lease: no-op returning RK_ESTATE. */
int core_campaign(core_t *c);

/* -------------------------------------------------------------- quiescence */

/* The exact rule and its safety argument are in quiesce.c. Only with
 * core_options_t.quiesce; otherwise RK_ESTATE (core_quiesce) or a no-op.
 *
 * core_quiesce: leader only. If the group is idle -- committed in its term,
 * commit == last index == every member's match (voters and learners, all
 * replicating with nothing in flight, our own log durable), every follower
 * heard from within the election timeout, no pending read, no transfer, no
 * joint or uncommitted configuration -- the leader voids its read lease,
 * sends every follower a quiesce notice and stops heartbeating (and running
 * check-quorum) until it wakes. Errors: RK_ENOTLEADER, RK_EBUSY (not idle:
 * try again later), RK_ESTATE (option off, or halted). Quiescing twice is a
 * no-op returning 0.
 *
 * Waking: a quiesced leader wakes on core_propose, core_read_index,
 * core_change_conf(_ex), core_leave_joint, core_transfer_leader,
 * core_campaign, core_wake, any vote request, any message of another term,
 * and any message but a stale or quiescing answer; it heartbeats at once and
 * restarts check-quorum from a clean window. A quiesced follower wakes on
 * any message (but a repeated notice it still accepts, or a heartbeat older
 * than it), core_wake, core_forget_leader and core_leader_process_down. A
 * restarted core (core_new) is never quiesced. */
int core_quiesce(core_t *c);

/* Wakes a quiesced node (no-op otherwise), e.g. when a peer's process came
 * back: a leader resumes heartbeats, a follower resumes counting toward an
 * election from zero. Errors: RK_ESTATE (halted). */
int core_wake(core_t *c);

/* Process-level liveness from the host: the process of the leader this
 * quiesced follower follows is down (or restarted) as seen from here. The
 * follower wakes, forgets the leader and acts as if its election timer had
 * run: it grants votes at once and campaigns within one election timeout
 * (randomized). No-op unless quiesced. Errors: RK_ESTATE (halted). */
int core_leader_process_down(core_t *c);

/* Is this core quiesced (leader: heartbeats stopped; follower: not counting
 * toward an election)? */
bool core_quiesced(const core_t *c);

/* ------------------------------------------------------------------ output */

/* True when core_update_get would return something worth handling. */
bool core_has_update(const core_t *c);

/* Moves everything pending into *u (zeroed first); the caller owns it until
 * core_update_release. Always succeeds; an update may be empty. */
void core_update_get(core_t *c, core_update_t *u);

/* Frees an update's arrays, messages and references. NULL-safe. */
void core_update_release(core_update_t *u);

/* ----------------------------------------------------------- observability */

typedef enum core_progress_state {
    CORE_PR_PROBE = 0,
    CORE_PR_REPLICATE,
    CORE_PR_SNAPSHOT,
} core_progress_state_t;

typedef struct core_progress_info {
    rk_peer_id_t peer;
    bool is_self;
    bool voter;
    core_progress_state_t state;
    uint64_t match; /* highest index known replicated (self: persisted) */
    uint64_t next;
    uint64_t pending_snapshot; /* SNAPSHOT state: index being sent */
    uint32_t inflight_msgs;
    uint64_t inflight_bytes;
    uint32_t ticks_since_contact;
    bool recent_active;
} core_progress_info_t;

typedef struct core_status {
    core_role_t role;
    uint64_t term;
    rk_peer_id_t leader; /* empty when unknown */
    rk_peer_id_t vote;
    uint64_t commit;
    uint64_t applied;
    uint64_t first_index; /* first index still in the log */
    uint64_t last_index;
    uint64_t last_term;
    uint64_t stable_index; /* last index durable locally */
    uint64_t conf_index;
    bool transferring;
    rk_peer_id_t transferee;
    bool quiesced; /* see core_quiesce */
    int fatal;
} core_status_t;

void core_get_status(const core_t *c, core_status_t *st);

/* The configuration in effect (as appended) and its index. The copy is
 * interned: valid until the configuration changes, or for as long as the
 * caller holds a reference taken with core_conf_ref. */
const core_conf_t *core_get_conf(const core_t *c, uint64_t *index);

/* Leader: fills up to cap progress records (one per member, self included);
 * returns the number of members (may exceed cap). Non-leaders return 0. */
size_t core_get_progress(const core_t *c, core_progress_info_t *out, size_t cap);

#endif /* RAFTKIT_CORE_CORE_H */
