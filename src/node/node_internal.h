/* Internals of the node runtime shared by the files of src/node: the loop
 * runtime (one libuv loop thread, its RPC server and client, its FSM
 * executors, shared by every group hosted on it), the node (core driver), the
 * FSM caller, the RPC transport and the snapshot executor.
 *
 * Threads and what they own:
 *   loop thread  the runtime's loop, every uv handle, the core_t, the RPC
 *                server/client, the node's loop-only fields (marked L:).
 *   FSM executor a fixed pool per runtime (fsm_pool_t); each node is bound to
 *                one executor for its life, which runs every state-machine
 *                callback and every user closure of the node, one at a time,
 *                in log order (fields marked F:). "The FSM thread" of a node
 *                below is its executor while it runs that node.
 *   log writer   storage/log_writer.c; completions come back on the loop.
 *   any thread   public functions: they touch only the mutex-guarded queues
 *                (fields marked Q:, guarded by node.mu) and atomics.
 */
#ifndef RAFTKIT_NODE_INTERNAL_H
#define RAFTKIT_NODE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "raftkit/metrics.h"
#include "raftkit/node.h"
#include "rpc/rpc_log.h"
#include "src/base/buf.h"
#include "src/core/core.h"
#include "storage/log_store.h"
#include "storage/log_writer.h"
#include "storage/snapshot_store.h"

typedef struct rpc_server rpc_server_t;
typedef struct rpc_client rpc_client_t;
typedef struct rpc_channel rpc_channel_t;

/* ------------------------------------------------------------- runtime */

/* A function run on the loop thread (node_rt_call). */
typedef struct rt_call {
    void (*fn)(void *arg);
    void *arg;
    struct rt_call *next;
    bool sync;
    bool done;
} rt_call_t;

/* ---------------------------------------------------------- FSM executors */

/* An FSM executor: one thread running the groups bound to it that have
 * queued work, in FIFO order of their becoming ready, a bounded turn each
 * (fsm_caller.c). */
typedef struct fsm_exec {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rk_node *ready_head, *ready_tail; /* guarded by mu */
    bool stop;                               /* guarded by mu: exit once nothing is ready */
    int n_groups;                            /* guarded by the pool's mu: groups bound here */
} fsm_exec_t;

/* The runtime's executors, started lazily as groups attach: at most max. */
typedef struct fsm_pool {
    pthread_mutex_t mu;
    fsm_exec_t *execs; /* max of them; the first n have a thread */
    int max, n;
    bool stopped; /* guarded by mu: attaching is refused */
} fsm_pool_t;

/* L: the nodes of a runtime that tick with the same period (drive.c).
 * Due times are multiples of the period and lie within two periods of now:
 * a wheel of NODE_TICK_SLOTS lists, each of nodes due at the same time, so
 * one timer firing ticks them all however many there are. */
#define NODE_TICK_SLOTS 4
typedef struct node_tick_class {
    uint64_t period_ms;
    struct rk_node *slot[NODE_TICK_SLOTS];
    uint64_t slot_due[NODE_TICK_SLOTS];
} node_tick_class_t;

/* L: a peer process (endpoint) leading quiesced follower groups of this
 * runtime, watched by process heartbeats (liveness.c). */
typedef struct node_rt_peer {
    struct node_rt *rt;
    rk_endpoint_t endpoint;
    char name[RK_HOST_MAX + 8]; /* "host:port", the RPC channel's key */
    uint32_t n_quiesced;        /* quiesced follower groups led from there */
    uint64_t tick_ms;           /* the shortest tick and election timeout of */
    uint64_t timeout_ms;        /* those groups (reset when none is left) */
    uint64_t last_ok_ms;        /* last answer with the known incarnation */
    uint64_t incarnation;       /* 0: not known yet */
} node_rt_peer_t;

/* Heartbeats and heartbeat answers queued for one endpoint (transport.c). */
typedef struct node_hb_batch node_hb_batch_t;

/* A log environment of the runtime (rt_storage.c): one per log directory,
 * shared by every group of the runtime whose log lives there, with the one
 * log writer that executes the writes of all of them in order. L: */
typedef struct node_rt_store {
    struct node_rt_store *next;
    log_env_t *env;
    log_writer_t *writer;      /* NULL once the runtime stopped it */
    int refs;                  /* groups using it */
    struct rk_node *nodes;     /* the groups using it, linked by rs_next */
    struct node_names *groups; /* their group ids */
    char dir[];
} node_rt_store_t;

typedef struct node_rt {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t call_async;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rt_call_t *calls, *calls_tail; /* guarded by mu */
    bool running;                  /* loop thread started */
    bool stopping;                 /* guarded by mu: node_rt_call refused */
    bool posts_closed;             /* guarded by mu: node_rt_post refused */
    rk_endpoint_t listen;
    rpc_server_t *server;
    rpc_client_t *client;
    struct rk_rpc_server *cli; /* the CLI service (cli_service.c), served on server */
    int n_nodes;               /* L: nodes attached */
    /* L: nodes on this runtime, for reachability notifications */
    struct rk_node *nodes;
    fsm_pool_t fsm_pool;

    /* Wake-ups (wake.c): nodes to drive, each queued at most once. Other
     * threads queue on woken and send wake_async; the loop moves them to
     * ready, and drive_check drives the ready nodes once per iteration. */
    uv_async_t wake_async;
    uv_idle_t kick_idle;
    uv_check_t drive_check;
    pthread_mutex_t wake_mu;
    struct rk_node *woken;              /* guarded by wake_mu */
    bool wake_open;                     /* guarded by wake_mu: the handles above are open */
    struct rk_node *ready, *ready_tail; /* L */

    /* L: ticks (drive.c): one timer for every node of the runtime */
    uv_timer_t tick_timer;
    uint64_t tick_armed_due; /* when tick_timer fires next (0: stopped) */
    node_tick_class_t *tick_classes;
    size_t n_tick_classes;

    /* L: heartbeats coalesced per endpoint (transport.c) */
    node_hb_batch_t *hb_batches;
    bool hb_pending;                        /* some batch has items */
    rpc_ratelimit_t hb_drop_rl;             /* items for groups not served here */
    uint64_t hb_frames_sent, hb_items_sent; /* batches and items sent (tests) */

    /* L: process-level liveness (liveness.c) */
    uint64_t incarnation; /* random per runtime start, never 0 */
    uv_timer_t live_timer;
    bool live_armed;
    node_rt_peer_t **peers; /* never freed before the runtime */
    size_t n_peers;
    bool live_muted; /* tests: refuse every process heartbeat */

    /* Storage (rt_storage.c). data_path: the server's data directory (NULL:
     * none, each group keeps its log under its own data_path); sync: whether
     * the environment at data_path/log syncs. */
    char *data_path;
    bool sync;
    node_rt_store_t *stores;       /* L */
    struct node_names *group_dirs; /* L: the group directories in use */
    /* L: held log writes wait for the flush at the end of the loop
     * iteration (node_rt_storage_flush, from the check handle of wake.c);
     * the idle handle keeps the poll from blocking meanwhile. */
    uv_idle_t flush_idle;
    bool flush_pending;
    bool flush_open;
} node_rt_t;

/* Creates a runtime with a loop thread and an RPC server listening on
 * listen; sec (may be NULL) gives its security fields (tls_*,
 * cluster_key_file, read now) and its fsm_executor_threads (checked by the
 * caller: node_options_check_executors). Errors: RK_EIO (port in use),
 * RK_ENOMEM, RK_EINVAL (bad TLS files). */
int node_rt_new(const rk_endpoint_t *listen, const rk_node_options_t *sec, node_rt_t **out,
                rk_status_t *err);
/* options.c: RK_EINVAL with the reason unless o->fsm_executor_threads is in
 * range (rk_node_options_validate checks it too; rk_server_new_opts reads
 * only this and the security fields). */
int node_options_check_executors(const rk_node_options_t *o, rk_status_t *err);
/* The rpc_tls_config_t (rpc/rpc_tls.h) of o's security fields (options.c). */
struct rpc_tls_config;
void node_tls_config(const rk_node_options_t *o, struct rpc_tls_config *out);
/* Runs fn(arg) on the loop thread and waits for it (runs it directly when
 * already on the loop thread). Returns RK_ESHUTDOWN when the runtime is
 * stopping (fn not run). */
int node_rt_call(node_rt_t *rt, void (*fn)(void *), void *arg);
/* Queues c->fn(c->arg) to run on the loop thread and returns without
 * waiting. c is the caller's (fn may free it; the runtime does not touch c
 * after calling fn). Any thread. Posts are accepted while the runtime stops
 * until its RPC server has no outstanding call (so completing a call always
 * reaches the loop). Returns 0, or RK_ESHUTDOWN when the runtime is not
 * running or its server is gone (fn will not run; c is still the caller's). */
int node_rt_post(node_rt_t *rt, rt_call_t *c);
bool node_rt_on_loop(node_rt_t *rt);
/* Closes the server/client and stops the loop thread; joins it. Waits until
 * every call handed to a handler has been completed (the loop keeps taking
 * completion posts until then). Not from the loop thread. */
void node_rt_stop(node_rt_t *rt);
void node_rt_free(node_rt_t *rt);

/* ------------------------------------------------------------ FSM caller */

typedef enum fsm_item_type {
    FSM_COMMITTED,    /* apply up to a */
    FSM_LEADER_START, /* term a; on_leader_start at the first entry of term a */
    FSM_LEADER_STOP,  /* st */
    FSM_START_FOLLOWING,
    FSM_STOP_FOLLOWING,
    FSM_CLOSURE,       /* run closure with st */
    FSM_READ,          /* read: run once applied >= a */
    FSM_SNAPSHOT_SAVE, /* closure (may be NULL) */
    FSM_SNAPSHOT_LOAD, /* a = index of the snapshot just installed */
    FSM_ERROR,         /* st */
    FSM_SHUTDOWN,
} fsm_item_type_t;

typedef struct fsm_item {
    fsm_item_type_t type;
    struct fsm_item *next;
    uint64_t a;
    rk_status_t st;
    rk_leader_change_t lc;
    rk_closure_t *done;
    rk_read_index_closure_t *read_done;
    void *ctx;
    size_t ctx_len;
    uint64_t t0_ns; /* posted at (fsm_post sets it unless already set; metrics) */
} fsm_item_t;

/* A proposal waiting to be applied: the closure of the entry at index/term. */
typedef struct node_pending {
    uint64_t index;
    uint64_t term;
    rk_closure_t *done;
    bool task_closure; /* done is the closure of an rk_task_closure_t */
} node_pending_t;

/* ---------------------------------------------------------- persistence */

typedef struct node_persist {
    struct rk_node *node;
    uint64_t id;
    int reqs_left;
    int status;
    log_write_req_t reset_req;
    log_write_req_t append_req;
    meta_hard_state_t hs;
    log_entry_t *entries;
    buf_t **bufs;
    size_t n;
    core_msg_t *after;
    size_t n_after;
    bool has_snapshot; /* the log is reset to a snapshot ending at snapshot_index */
    uint64_t snapshot_index;
    bool done;        /* written (or nothing to write): ack once everything before is */
    int durable_left; /* requests whose durable_cb is still to come */
    bool durable;     /* journaled, commit pending: msgs_after may go (see persist_durable) */
    bool after_sent;  /* msgs_after were sent already */
    uint64_t t0_ns;   /* submitted at (metrics: append-logs, save-raft-meta) */
    struct node_persist *next;
} node_persist_t;

/* ----------------------------------------------------------------- node */

typedef struct node_task {
    buf_t *data;
    rk_closure_t *done;
    int64_t expected_term;
    bool task_closure; /* done is the closure of an rk_task_closure_t */
} node_task_t;

typedef enum node_cmd_type {
    CMD_CHANGE_CONF,   /* a membership change (u.change) */
    CMD_SNAPSHOT,      /* rk_node_snapshot (u.snapshot) */
    CMD_READ,          /* rk_node_read_index (u.read) */
    CMD_SNAPSHOT_DONE, /* from the snapshot closure (u.saved) */
} node_cmd_type_t;

/* How a CMD_CHANGE_CONF derives its target from the current configuration. */
typedef enum node_conf_op {
    CONF_OP_CHANGE_PEERS,    /* the target is u.change.conf */
    CONF_OP_ADD_PEER,        /* + u.change.peers[0] */
    CONF_OP_REMOVE_PEER,     /* - u.change.peers[0] */
    CONF_OP_ADD_LEARNERS,    /* + every u.change.peers[] as a learner */
    CONF_OP_REMOVE_LEARNERS, /* - every u.change.peers[] as a learner */
    CONF_OP_RESET_LEARNERS,  /* the learners become u.change.peers[] */
} node_conf_op_t;

/* A command queued from any thread (node_post_cmd) and run on the loop. */
typedef struct node_cmd {
    node_cmd_type_t type;
    struct node_cmd *next;
    union {
        struct { /* CMD_CHANGE_CONF */
            node_conf_op_t op;
            rk_configuration_t conf; /* CONF_OP_CHANGE_PEERS */
            rk_peer_id_t peers[RK_CONF_MAX_PEERS];
            size_t n_peers;
            rk_closure_t *done;
        } change;
        struct { /* CMD_SNAPSHOT */
            rk_closure_t *done;
        } snapshot;
        struct { /* CMD_READ */
            rk_read_index_closure_t *done;
            void *ctx;
            size_t ctx_len;
            uint64_t id;       /* core read context */
            uint64_t deadline; /* loop time (ms) after which it times out */
            uint64_t t0_ns;    /* rk_node_read_index called at (metrics) */
            /* allocated with the command: posting the result cannot fail */
            struct fsm_item *item;
        } read;
        struct {            /* CMD_SNAPSHOT_DONE: what the snapshot just saved covers */
            uint64_t index; /* 0: nothing saved */
            uint64_t term;
            core_conf_t conf;
            int status;
        } saved;
    } u;
} node_cmd_t;

/* L: a message sent or received, waiting for its answer (metrics). */
typedef struct node_obs_inflight {
    uint64_t key; /* last entry index (AppendEntries) or read context */
    uint64_t t0_ns;
    uint32_t peer; /* read requests only: the sender's index in node_lead_obs_t.rep */
} node_obs_inflight_t;

#define NODE_OBS_INFLIGHT 64
/* L: a FIFO of node_obs_inflight_t; the oldest is dropped when full. Its
 * storage grows on demand up to NODE_OBS_INFLIGHT entries: an idle group
 * never allocates it, one with a task or two in flight keeps it small. */
typedef struct node_obs_ring {
    node_obs_inflight_t *e;
    uint32_t head, count, cap;
} node_obs_ring_t;

/* L: what the leader sent one follower since it became leader (metrics). */
typedef struct node_rep_obs {
    rk_peer_id_t peer;
    uint64_t heartbeat_times, append_entries_times, install_snapshot_times;
    uint64_t consecutive_errors;
    bool contacted;       /* answered since this node became leader */
    node_obs_ring_t sent; /* AppendEntries with entries, not yet acknowledged */
} node_rep_obs_t;

/* L: what a leader observes of its followers (metrics). Allocated with the
 * first message it sends as leader and freed once it no longer leads, so
 * the counters are per leadership and followers (most groups of a process)
 * carry none of it. */
typedef struct node_lead_obs {
    node_rep_obs_t *rep; /* one per follower it sent to, n_rep of cap */
    size_t n_rep, cap;
    node_obs_ring_t reads_in; /* ReadIndex requests from followers, not answered */
} node_lead_obs_t;

/* L: the indexes a status publication carried (an idle follower whose
 * indexes did not move republishes only its time). */
typedef struct node_obs_pub {
    int64_t first, last, commit, applied, snap_index, snap_term, depth;
    bool quiesced;
} node_obs_pub_t;

/* A snapshot transfer from the leader in progress on a follower. */
typedef struct node_download node_download_t;
/* The snapshot being served to followers (leader side). */
typedef struct node_snap_src node_snap_src_t;
/* New voters catching up before a membership change (catchup.c). */
typedef struct node_catchup node_catchup_t;

struct rk_node {
    struct rk_group_service *svc;
    node_rt_t *rt;
    struct rk_node *rt_next; /* L: runtime's node list */
    char group[LOG_GROUP_ID_MAX];
    rk_peer_id_t self;
    char self_str[RK_PEER_ID_STRLEN];
    rk_node_options_t opts;
    rk_state_machine_t *fsm;
    char *log_dir;   /* where its log environment lives (shared or not) */
    char *group_dir; /* its own files: snapshots, forced configuration */
    char *snap_dir;

    /* storage */
    node_rt_store_t *rs;                 /* the runtime's environment holding the log */
    struct rk_node *rs_next, **rs_pprev; /* L: rs->nodes (unlinked in O(1)) */
    log_env_t *env;
    log_store_t *store;
    log_writer_t *writer; /* L: rs->writer */
    int log_reqs;         /* L: requests submitted to the writer, not yet completed */
    bool booting;         /* L: the bootstrap entry is not durable yet: no message, no drive */
    snap_store_t *snaps;

    /* L: core and its driving */
    core_t *core;
    struct rk_node *ready_next; /* L: rt->ready */
    bool ready_queued;          /* L: on rt->ready */
    struct rk_node *woken_next; /* rt->woken, guarded by rt->wake_mu */
    bool woken_queued;          /* guarded by rt->wake_mu */
    bool handles_open;          /* guarded by mu: wake-ups are accepted */
    /* L: ticks (drive.c) */
    struct rk_node *tick_prev, *tick_next; /* the tick class's slot */
    bool tick_linked;
    size_t tick_class; /* index in rt->tick_classes */
    uint64_t tick_due; /* loop time of the next tick */
    /* L: quiescence (drive.c, liveness.c) */
    uint32_t idle_ticks;                         /* leader: ticks without a new log entry */
    uint64_t idle_last;                          /* leader: last log index seen at the last tick */
    node_rt_peer_t *watched;                     /* quiesced follower: its leader's process */
    node_persist_t *persist_head, *persist_tail; /* submitted, not yet completed */
    uint64_t persisted_id;
    /* Commit-only hard states are not written on their own (see
     * node_persist_update): the newest one waits here for the next write. */
    meta_hard_state_t hs_submitted; /* last hard state handed to the writer */
    bool hs_submitted_valid;
    meta_hard_state_t hs_lazy;
    bool hs_lazy_pending;
    uint64_t ack_now;      /* update to ack once the current update is released */
    uint64_t applied_seen; /* last value passed to core_applied */
    bool was_leader;
    uint64_t leader_term;
    rk_peer_id_t following; /* leader we follow (empty: none) */
    uint64_t following_term;
    node_cmd_t *conf_cmd; /* change in progress (leader) */
    uint64_t conf_cmd_index;
    node_catchup_t *catchup; /* L: new voters catching up before conf_cmd starts */
    node_cmd_t *reads;       /* reads waiting for the core */
    uint64_t next_read_id;
    bool snapshot_running;
    uint64_t last_snapshot_index; /* L */
    uint64_t last_snapshot_term;
    uint64_t snapshot_due_ms;
    node_snap_src_t *snap_src; /* L: leader side of transfers */
    node_download_t *download; /* L: follower side */
    bool reset_pending_conf;   /* after reset_peers: re-propose the conf as leader */
    atomic_int snap_inflight;  /* on_snapshot_save calls not finished */
    bool fatal;
    bool stopping; /* L: shutdown started on the loop */
    int close_pending;

    /* Q: queues from any thread, guarded by mu */
    pthread_mutex_t mu;
    node_task_t *tasks; /* ring, grown on demand up to apply_queue_size */
    size_t task_head, task_count, task_cap;
    node_cmd_t *cmds, *cmds_tail;
    bool shutdown_requested; /* no more commands or tasks are queued */

    /* pending proposals, shared loop <-> FSM thread, guarded by pend_mu */
    pthread_mutex_t pend_mu;
    node_pending_t *pend;
    size_t pend_head, pend_count, pend_cap;

    /* FSM caller: the node's queue, run by its executor */
    fsm_exec_t *fsm_exec; /* bound by fsm_start for the node's life; written under fsm_mu */
    pthread_mutex_t fsm_mu;
    pthread_cond_t fsm_cv;           /* fsm_finished became true */
    fsm_item_t *fsm_head, *fsm_tail; /* guarded by fsm_mu */
    bool fsm_scheduled;              /* guarded by fsm_mu: on the ready list or running */
    bool fsm_finished;               /* guarded by fsm_mu: on_shutdown has returned */
    struct rk_node *fsm_ready_next;  /* guarded by fsm_exec->mu */
    /* F: */
    bool fsm_stopping; /* FSM_SHUTDOWN was taken: on_shutdown once nothing is left */
    uint64_t fsm_applied_term;
    uint64_t fsm_leader_term; /* on_leader_start pending for this term */
    bool fsm_is_leader;       /* on_leader_start was called */
    bool fsm_error;
    const core_conf_t *fsm_conf;  /* configuration as of the applied index (interned) */
    fsm_item_t *fsm_reads;        /* reads waiting for apply */
    atomic_uint_fast64_t applied; /* written by FSM, read anywhere */

    /* status snapshot for getters (any thread), guarded by st_mu */
    pthread_mutex_t st_mu;
    core_status_t cst;
    const core_conf_t *conf; /* interned; NULL before the first publication */
    rk_node_state_t state;
    const core_conf_t *alive; /* interned, voters alive in cur; NULL unless leader */

    /* observability (node_obs.c) */
    struct metrics_node *metrics; /* any thread records; freed after the threads stop */
    struct admin_server *admin;   /* admin endpoint when opts.admin_port > 0 */
    node_lead_obs_t *lead_obs;    /* L: while leading (NULL otherwise) */
    rk_node_state_t obs_state;    /* L: last publication */
    uint64_t obs_term, obs_conf_index, obs_published_ms;
    rk_peer_id_t obs_leader;
    node_obs_pub_t obs_pub;     /* L: what the last publication said (node_obs_publish) */
    uint64_t obs_vote_t0;       /* L: pre-vote / election started at (0: none) */
    node_obs_ring_t obs_app_in; /* L: AppendEntries received, not yet answered */
    uint64_t obs_log_last;      /* L: last index written to the log (truncation detection) */
};

struct rk_group_service {
    char group[LOG_GROUP_ID_MAX];
    rk_peer_id_t self;
    rk_node_options_t *opts; /* until started; then the node's copy (n->opts) */
    node_rt_t *rt;           /* own or shared */
    bool own_rt;
    rk_node_t *node;
    bool started;
    bool shut;
    pthread_mutex_t join_mu; /* guards joined: one joiner waits for the threads */
    bool joined;
};

/* The core ticks ten times per election timeout (the node ticks every
 * election_timeout_ms / 10). */
#define NODE_ELECTION_TICKS 10
/* A leader tries to quiesce once it has appended nothing for this many
 * ticks (core_quiesce then checks that the group is idle). */
#define NODE_QUIESCE_IDLE_TICKS 3

/* log_adapter.c: the node's log seen by the core */
log_entry_type_t node_log_entry_type(core_entry_type_t t);
/* The core_storage_t reading n's log store (any thread that may read it). */
core_storage_t node_core_storage(rk_node_t *n);

/* wake.c: wake-ups and the command queue */
void node_wake(rk_node_t *n);        /* any thread: node_drive soon on the loop */
void node_wake_locked(rk_node_t *n); /* the same, with n->mu held */
/* Any thread. Returns 0, or RK_ESHUTDOWN once the node stops (c is still
 * the caller's). */
int node_post_cmd(rk_node_t *n, node_cmd_t *c);
void node_wake_open(rk_node_t *n);  /* L: wake-ups are accepted from now on */
void node_wake_close(rk_node_t *n); /* L: no more; n leaves the wake-up lists */
/* L: the runtime's wake-up handles (node_rt_new) and their closing. */
void node_rt_wake_init(node_rt_t *rt);
void node_rt_wake_close(node_rt_t *rt);
/* L: makes sure the runtime's check phase runs in this loop iteration
 * (it flushes heartbeat batches even when no node is ready). */
void node_rt_kick(node_rt_t *rt);

/* state.c: the node's state and the status readers see */
void node_set_state(rk_node_t *n, rk_node_state_t s);
bool node_in_error(rk_node_t *n);
void node_enter_error(rk_node_t *n, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void node_publish_status(rk_node_t *n); /* L */

/* persist.c (loop thread): the update's durable state to the log writer */
int node_persist_update(rk_node_t *n, const core_update_t *u);

/* update.c (loop thread): carries out one core update */
void node_handle_update(rk_node_t *n, core_update_t *u);

/* commands.c (loop thread unless said) */
void node_run_cmd(rk_node_t *n, node_cmd_t *c);
/* Fails c with code (its closure runs on the FSM thread); frees c. */
void node_fail_cmd(rk_node_t *n, node_cmd_t *c, int code, const char *msg);
/* Completes a read (code 0: once applied >= index) on the FSM thread; frees c. */
void node_post_read_result(rk_node_t *n, node_cmd_t *c, int code, uint64_t index, const char *msg);
void node_on_snapshot_saved(rk_node_t *n, uint64_t index, uint64_t term, const core_conf_t *conf,
                            int status); /* any thread */

/* drive.c (loop thread) */
void node_drive(rk_node_t *n); /* process everything pending */
void node_drain_cmds(rk_node_t *n);
void node_drain_tasks(rk_node_t *n);
/* L: puts n on the runtime's tick when it needs ticking (not quiesced, or
 * with reads waiting to time out), takes it off otherwise. After every
 * drive and from node_tick_start. */
void node_tick_update(rk_node_t *n);
void node_tick_remove(rk_node_t *n); /* L: stopping */
int node_tick_start(rk_node_t *n);   /* L: 0 or RK_ENOMEM */
void node_rt_tick_init(node_rt_t *rt);
void node_rt_tick_close(node_rt_t *rt);

/* start.c */
int node_start(rk_node_t *n, rk_status_t *err); /* caller's thread */
/* The core's options from the node's (one tick = election_timeout_ms / 10). */
void node_core_options(rk_node_t *n, core_options_t *o);

/* stop.c */
void node_loop_stop(rk_node_t *n); /* L */

/* api.c */
/* Tests only (NULL otherwise): called by every command entry point
 * (read_index, snapshot, membership changes) on the caller's thread before
 * the command is queued, so a test can hold a caller there while the node
 * shuts down. */
extern void (*node_test_cmd_hook)(rk_node_t *n);

/* runtime.c: the runtime behind a shared server (rk_server_new). */
node_rt_t *node_server_rt(rk_server_t *s);

/* rt_storage.c: the runtime's log environments and writers */
/* Sets n->log_dir, n->group_dir and n->snap_dir from the runtime's and the
 * group's data_path (include/raftkit/node.h, data_path). Returns 0 or
 * RK_ENOMEM. */
int node_storage_paths(rk_node_t *n, const char *data_path, rk_status_t *err);
/* Caller's thread (not the loop): attaches n to the environment of
 * n->log_dir, opening it and starting its writer on first use, and opens
 * n's log store in it. Errors: RK_EBUSY (another group of the runtime has
 * the same group directory, or the same group id in that environment;
 * nothing opened), those of log_env_open and log_store_open. */
int node_storage_open(rk_node_t *n, rk_status_t *err);
/* Closes n's log store and detaches n from its environment; the last group
 * leaving closes it. After n's threads stopped; any thread but the loop. */
void node_storage_close(rk_node_t *n);
/* L: after a failed write of n: when its environment failed for good
 * (log_env_fail, a sticky failure), every group on it enters the error
 * state, not only those whose writes were in the failed batch. */
void node_storage_failed(rk_node_t *n);
/* L: hands req to n's writer, held until the runtime's flush at the end of
 * this loop iteration. Returns as log_writer_submit_held. */
int node_storage_submit_held(rk_node_t *n, log_write_req_t *req, log_write_cb cb);
/* L: executes the held requests of every environment of rt: all groups
 * driven in this loop iteration share one journal write and fdatasync. */
void node_rt_storage_flush(node_rt_t *rt);
/* L: opens the flush handles (node_rt_new). */
void node_rt_storage_open(node_rt_t *rt);
/* L: stops every writer (their outstanding completions run now) and closes
 * the flush handles (the runtime stops). */
void node_rt_storage_stop(node_rt_t *rt);
/* Closes the environments left (node_rt_free, every group freed). */
void node_rt_storage_free(node_rt_t *rt);

/* fsm_caller.c */
/* The pool of a runtime: up to threads executors (0: one per online CPU).
 * Returns 0 or RK_ENOMEM. fsm_pool_stop ends the executors once no group is
 * attached any more (every node joined); fsm_pool_free frees the pool. */
int fsm_pool_init(fsm_pool_t *p, int threads);
void fsm_pool_stop(fsm_pool_t *p);
void fsm_pool_free(fsm_pool_t *p);
/* Binds n to an executor of its runtime's pool (starting one when the pool
 * has fewer than its size and every running one has groups). Returns 0,
 * RK_EIO (no thread could be started) or RK_ESHUTDOWN (the pool stopped). */
int fsm_start(rk_node_t *n);
void fsm_post(rk_node_t *n, fsm_item_t *it); /* takes ownership */
int fsm_post_simple(rk_node_t *n, fsm_item_type_t type, uint64_t a, const rk_status_t *st);
void fsm_post_closure(rk_node_t *n, rk_closure_t *done, int code, const char *msg);
void fsm_post_committed(rk_node_t *n, uint64_t hi);
/* Waits until n's on_shutdown has returned (after FSM_SHUTDOWN) and unbinds
 * n from its executor. Not from an executor thread of n's runtime. */
void fsm_join(rk_node_t *n);
/* Pending proposals (loop pushes, FSM pops). */
int pend_push(rk_node_t *n, uint64_t index, uint64_t term, rk_closure_t *done, bool task_closure);
/* Fails every pending proposal with index > above with code (posted to FSM). */
void pend_fail_above(rk_node_t *n, uint64_t above, int code, const char *msg);

/* transport.c */
int transport_register(node_rt_t *rt);
int transport_send(rk_node_t *n, const core_msg_t *m);
/* L: sends the heartbeats queued in this loop iteration, one frame per
 * endpoint (the runtime's check phase, after every node was driven). */
void transport_flush_heartbeats(node_rt_t *rt);
void transport_free_batches(node_rt_t *rt);
int transport_add_node(rk_node_t *n);     /* L: route (group, self) to n */
void transport_remove_node(rk_node_t *n); /* L */
void transport_send_snapshot_resp(rk_node_t *n, const rk_peer_id_t *to, uint64_t term, bool ok);

/* snapshot.c */
void snap_exec_maybe_start(rk_node_t *n, rk_closure_t *done, bool manual); /* L */
void snap_src_send(rk_node_t *n, const core_msg_t *m);                     /* L: leader SNAP */
void snap_on_install_request(rk_node_t *n, const rk_peer_id_t *from, uint64_t term,
                             const core_snapshot_meta_t *meta, uint64_t reader_id,
                             const void *meta_rec, size_t meta_len);
void snap_after_save(rk_node_t *n, uint64_t index, uint64_t term, const core_conf_t *conf); /* L */
void snap_on_install_done(rk_node_t *n, const rk_peer_id_t *from, bool ok);
void snap_stop(rk_node_t *n); /* L: cancel downloads, close the source */
/* L: the running download's file index and offset (0, 0 when none): tests. */
void snap_dl_position(rk_node_t *n, uint32_t *file, uint64_t *offset);
bool snap_busy(rk_node_t *n);
int snap_serve_get_file(rk_node_t *n, uint64_t reader_id, const char *name, uint64_t offset,
                        uint64_t count, void *call);
int snap_load_latest(rk_node_t *n, core_snapshot_meta_t *meta, bool call_fsm, rk_status_t *err);

/* forced_conf.c: the configuration forced by reset_peers, durable until the
 * log carries it (storage/forced_conf_store.h). save: durable on return
 * (RK_EIO, RK_ENOSPC, RK_ENOMEM); load: 0, RK_ENOTFOUND, RK_EIO, RK_ENOMEM or
 * RK_ECORRUPT; remove: durable, failures only logged. */
int forced_conf_save(rk_node_t *n, const core_conf_t *conf, uint64_t index);
int forced_conf_load(rk_node_t *n, core_conf_t *conf, uint64_t *index);
void forced_conf_remove(rk_node_t *n);

/* reach.c (loop thread) */
void reach_attach(rk_node_t *n); /* adds n to rt->nodes */
void reach_detach(rk_node_t *n);
/* rpc_client_opts_t.on_reachability of the runtime's client (arg: the runtime). */
void node_rt_on_reach(void *arg, rpc_channel_t *ch, bool reachable, const rk_status_t *why);

/* liveness.c (loop thread): process heartbeats and incarnations */
void node_rt_live_init(node_rt_t *rt); /* before the loop runs */
void node_rt_live_close(node_rt_t *rt);
void node_rt_live_free(node_rt_t *rt);
int liveness_register(node_rt_t *rt);
/* After every drive: follows n's quiesced state (a quiesced follower
 * watches its leader's process). */
void liveness_update(rk_node_t *n);
void liveness_forget(rk_node_t *n); /* stopping */
/* The channel to endpoint went down (reach.c). */
void liveness_unreachable(node_rt_t *rt, const rk_endpoint_t *ep);

/* catchup.c (loop thread) */
/* Takes c when target adds voters: makes them learners and returns 0; the
 * change starts (n->conf_cmd) once they caught up, or c fails with
 * RK_ECATCHUP. Returns 1 when no voter is added (run the change directly),
 * or a negative error (c not taken). */
int catchup_begin(rk_node_t *n, node_cmd_t *c, const core_conf_t *cur,
                  const rk_configuration_t *target);
void catchup_tick(rk_node_t *n);                             /* every tick */
void catchup_abort(rk_node_t *n, int code, const char *msg); /* fails the waiting change */
bool catchup_busy(const rk_node_t *n);

/* node_obs.c */
int node_obs_init(rk_node_t *n, rk_status_t *err); /* caller's thread, in node_start */
void node_obs_free(rk_node_t *n);                  /* after every thread stopped */
/* L: counts a message sent to a follower (rc: transport_send's result). */
void node_obs_sent(rk_node_t *n, const core_msg_t *m, int rc);
/* L: notes a message received from a peer, before the core steps it. */
void node_obs_received(rk_node_t *n, const core_msg_t *m);
/* L: notes a core event (role changes time elections). */
void node_obs_event(rk_node_t *n, const core_event_t *ev);
/* L: a log write completed (first/last entry index, or a snapshot reset). */
void node_obs_persisted(rk_node_t *n, const node_persist_t *p);
/* L: publishes the status for readers and listeners; cheap unless something
 * changed or a tick passed. */
void node_obs_publish(rk_node_t *n, const core_status_t *cs, const core_conf_t *conf,
                      uint64_t conf_index, rk_node_state_t state);

/* options.c */
/* rk_node_options_validate; data_path may be NULL unless need_data_path. */
int node_options_check(const rk_node_options_t *o, bool need_data_path, rk_status_t *err);
void node_conf_to_core(const rk_configuration_t *c, core_conf_t *out);

/* helpers */
static inline uint64_t node_now_ms(rk_node_t *n)
{
    return uv_now(&n->rt->loop);
}

#endif /* RAFTKIT_NODE_INTERNAL_H */
