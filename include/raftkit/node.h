/* The node and the RaftGroupService: what an application drives.
 *
 * A group service owns one Raft node of one group: its libuv loop thread
 * (core, RPC, timers), its log writer thread and its FSM caller thread
 * (groups on a shared server share the loop, and the log writer of their
 * log directory). The
 * node functions below are thread-safe unless they say otherwise; none of
 * them blocks on disk or on the network.
 *
 *   rk_node_options_t opts;
 *   rk_node_options_init(&opts);
 *   opts.fsm = &my_sm;
 *   opts.data_path = "/var/lib/app/n1";
 *   rk_configuration_parse(&opts.initial_conf, "127.0.0.1:8081,...", NULL);
 *   rk_group_service_t *svc = rk_group_service_new("counter", &self, &opts, &st);
 *   rk_node_t *node = rk_group_service_start(svc, &st);
 *   ...
 *   rk_task_t task = {.data = buf, .len = n, .done = &req->closure, .expected_term = -1};
 *   rk_node_apply(node, &task);
 *   ...
 *   rk_group_service_shutdown(svc);
 *   rk_group_service_join(svc);
 *   rk_group_service_free(svc);
 */
#ifndef RAFTKIT_NODE_H
#define RAFTKIT_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkit/closure.h"
#include "raftkit/peer.h"
#include "raftkit/state_machine.h"
#include "raftkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; what is declared here is its API. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

typedef struct rk_node rk_node_t;
typedef struct rk_group_service rk_group_service_t;

/* ---- options (JRaft's names and defaults) ---- */

typedef enum rk_read_only_option {
    RK_READ_ONLY_SAFE = 0, /* ReadIndex: a heartbeat round confirms leadership */
    /* The leader answers at once while its lease holds: a quorum answered
     * within election_timeout_ms * leader_lease_time_ratio / 100; else a
     * ReadIndex round. Assumes clocks drift apart by less than the rest of
     * the election timeout. */
    RK_READ_ONLY_LEASE_BASED,
} rk_read_only_option_t;

typedef struct rk_raft_options {
    int max_entries_size;                   /* entries per AppendEntries; default 1024 */
    int max_body_size;                      /* bytes of entries per AppendEntries; 512 KiB */
    int max_append_buffer_size;             /* bytes batched per log write; 256 KiB */
    int max_byte_count_per_rpc;             /* snapshot file chunk size; 128 KiB */
    int apply_batch;                        /* entries per on_apply call; 32 */
    int apply_queue_size;                   /* pending tasks before RK_EBUSY; 16384 */
    bool sync;                              /* fsync log writes before acknowledging; true */
    bool replicator_pipeline;               /* pipelined AppendEntries; true */
    int max_replicator_inflight_msgs;       /* per follower; 256 */
    rk_read_only_option_t read_only_option; /* RK_READ_ONLY_SAFE */
    bool pre_vote;                          /* true */
    bool check_quorum;                      /* true */
    int snapshot_throttle_bytes_per_sec; /* snapshot download rate on a follower; 0 = unlimited */
    /* Quiescence; true. A leader that appended nothing for a few ticks, with
     * every member caught up and nothing in flight, tells its followers and
     * stops heartbeating: the idle group then costs no CPU or traffic, and
     * its nodes are not ticked. Any proposal, read, membership change or
     * message wakes it. The followers' runtime watches the leader's process
     * instead (process heartbeats, one per peer process for all groups) and
     * elects a new leader when that process stops answering for an election
     * timeout, restarts, or becomes unreachable. Every member of a group
     * should use the same setting. */
    bool quiesce;
} rk_raft_options_t;

typedef struct rk_node_options {
    int election_timeout_ms;         /* 1000; heartbeats every election_timeout_ms / 10 */
    int election_priority;           /* RK_PRIORITY_DISABLED (-1) */
    int leader_lease_time_ratio;     /* lease = ratio% of the election timeout, in whole ticks
                                        (timeout / 10, at least one); 90; used by
                                        RK_READ_ONLY_LEASE_BASED reads */
    int snapshot_interval_secs;      /* 3600; 0 disables timed snapshots */
    int snapshot_log_index_margin;   /* keep this many entries after a snapshot; 0 */
    int snapshot_log_count;          /* snapshot after this many entries since the last; 0 = off */
    int catchup_margin;              /* a new voter is promoted once within this many entries of the
                                        leader's last index; 1000 (see rk_node_add_peer) */
    rk_configuration_t initial_conf; /* used only when the data directory is empty */
    /* Log, meta and snapshots live under it; required unless the server has
     * a data_path. A lone group service keeps its log environment in
     * data_path/log and its snapshots in data_path/snapshot. On a server
     * created with opts->data_path (rk_server_new_opts), every group's log
     * is in ONE environment at <server data_path>/log (one journal, one
     * writer thread, one fdatasync per batch of all groups), and the
     * group's own directory (snapshot/, the forced configuration) is this
     * data_path when set, else <server data_path>/groups/<group id> (bytes
     * other than letters, digits, '-', '_' and a non-leading '.' as %XX).
     * On a server without one, each group's log is in <data_path>/log.
     * Two groups of a server with the same directory, or the same group id
     * in one environment, are refused (RK_EBUSY). Directories are created
     * when first needed (a snapshot directory by the first snapshot). */
    const char *data_path;
    bool disable_cli;        /* refuse CLI RPCs for this group */
    int admin_port;          /* admin HTTP endpoint; 0 = off */
    rk_state_machine_t *fsm; /* required; must outlive the service */
    rk_raft_options_t raft_options;
    /* Where the RPC port (and the admin endpoint, on admin_port) is bound,
     * when it differs from the address of the node's peer id: e.g. listen
     * 0.0.0.0:8101 for a node known to its peers as kv-0.kv:8101. Empty
     * (host "", as rk_node_options_init leaves it): bind the peer id's host
     * and port. A host name, here or in the peer id, is resolved once when
     * the service starts, with a blocking getaddrinfo on the thread calling
     * rk_group_service_start, before the node's loop runs (never on a
     * loop). For a group on a shared rk_server_t the server's own listen
     * endpoint is bound; this field then only places the admin endpoint. */
    rk_endpoint_t listen;
    /* Security (README "Security"). NULL or "" everywhere: plaintext, and
     * anyone who reaches the port may do anything, as before. Files are
     * read when the service starts (strings must stay valid until then).
     * With tls_cert/tls_key/tls_ca every connection is mutual TLS 1.3: a
     * node's certificate must carry one of tls_peer_names (CN or SAN) to
     * be dialled or to send Raft messages, one of tls_admin_names to change
     * membership; any certificate from tls_ca may call the application and
     * read-only queries. With cluster_key_file instead: TLS 1.3 with
     * pre-shared keys, one per line (hex or base64, >= 32 bytes); the first
     * is used, all are accepted; a line "admin KEY" is an admin's key. */
    const char *tls_cert;         /* PEM certificate (chain) of this node */
    const char *tls_key;          /* its PEM private key */
    const char *tls_ca;           /* PEM CA file peers and clients must chain to */
    const char *tls_peer_names;   /* comma-separated names of node certificates */
    const char *tls_admin_names;  /* comma-separated names of admin certificates */
    const char *cluster_key_file; /* key mode instead of certificates */
    /* With TLS, the admin endpoint serves HTTPS with tls_cert and requires
     * "Authorization: Bearer <admin_token>" for /status and /metrics
     * (/health stays open). Required when TLS and admin_port are both set. */
    const char *admin_token;
    /* FSM executor threads of the runtime: of the service's own
     * (rk_group_service_new) or of a shared server's (rk_server_new_opts;
     * rk_group_service_new_shared ignores it). Every group of the runtime
     * is bound to one of them for its life (state_machine.h); they start as
     * groups attach, never more than there are groups. 0 (the default): one
     * per online CPU. 0..RK_FSM_EXECUTOR_THREADS_MAX. */
    int fsm_executor_threads;
} rk_node_options_t;

#define RK_FSM_EXECUTOR_THREADS_MAX 256

/* Fills o with the defaults above. */
void rk_node_options_init(rk_node_options_t *o);

/* Checks every field; returns 0, or RK_EINVAL with err->msg naming the field
 * ("election_timeout_ms must be >= 10"). */
int rk_node_options_validate(const rk_node_options_t *o, rk_status_t *err);

/* ---- shared RPC server ---- */

/* An RPC server with its own loop thread, for hosting several groups and
 * the application's own methods (rk_rpc_server_attach, rpc.h) on one port.
 * Groups created with rk_group_service_new_shared() run their node on the
 * server's loop and their state machines on the server's FSM executors
 * (fsm_executor_threads).
 *
 * rk_server_new binds listen (port 0: any free port, see rk_server_port) and
 * starts the loop thread. A host name in listen is resolved first, with a
 * blocking getaddrinfo on the calling thread (the loop is not running yet).
 * Returns NULL with err set (RK_EIO: port in use; RK_EUNREACHABLE: the name
 * does not resolve).
 * rk_server_free stops the loop and frees the server; every group service
 * using it must be joined and freed first. It waits until every application
 * call handed to a handler (rpc.h) has been completed, so such calls may be
 * completed from other threads while it runs. Any thread but the server's
 * own. */
typedef struct rk_server rk_server_t;
rk_server_t *rk_server_new(const rk_endpoint_t *listen, rk_status_t *err);
/* Like rk_server_new, with the security fields of opts (tls_*,
 * cluster_key_file) for the port and for the connections the server's
 * nodes open, its fsm_executor_threads, and opts->data_path (NULL: none)
 * with raft_options.sync for the one log environment of all its groups (see
 * rk_node_options_t data_path); the other fields are ignored. opts NULL:
 * plaintext, one FSM executor per CPU, no data_path. Also returns NULL with
 * RK_EINVAL and the reason for a bad certificate, key or key file, or
 * fsm_executor_threads out of range. */
rk_server_t *rk_server_new_opts(const rk_endpoint_t *listen, const rk_node_options_t *opts,
                                rk_status_t *err);
uint16_t rk_server_port(const rk_server_t *s);
void rk_server_free(rk_server_t *s);

/* ---- group service ---- */

/* Creates a service for group_id with this node's peer id (which must be a
 * voter or learner of the configuration, or the data directory must hold
 * one). Copies everything it needs from its arguments. Returns NULL with err
 * set on invalid options. Any thread. */
rk_group_service_t *rk_group_service_new(const char *group_id, const rk_peer_id_t *self,
                                         const rk_node_options_t *opts, rk_status_t *err);

/* Like rk_group_service_new, but the node runs on server's loop and is
 * reached through server's port (self's endpoint should be server's). */
rk_group_service_t *rk_group_service_new_shared(const char *group_id, const rk_peer_id_t *self,
                                                const rk_node_options_t *opts, rk_server_t *server,
                                                rk_status_t *err);

/* Opens storage, loads the newest snapshot (on_snapshot_load), replays the
 * log after it, binds the RPC port (opts.listen, else the peer id's
 * endpoint) and starts the threads. Returns the node, or NULL with err set
 * (port in use, corrupt storage, RK_EUNREACHABLE: the host name to bind does
 * not resolve, ...). The peer ids of the other peers are not resolved here:
 * a peer whose name does not resolve yet is only unreachable until it
 * does. A new member's bootstrap entry (initial_conf at index 1) is written
 * after this returns, together with those of the groups starting at the
 * same time: until it is durable the node answers no peer and runs no task
 * (tasks wait); should that write fail, the node enters the error state. */
rk_node_t *rk_group_service_start(rk_group_service_t *svc, rk_status_t *err);

/* Starts stopping: pending closures run with RK_ESHUTDOWN, on_shutdown runs
 * last. Returns at once; idempotent. Any thread except the FSM thread. */
void rk_group_service_shutdown(rk_group_service_t *svc);

/* Waits until the service has stopped: on_shutdown has returned and, for a
 * service with its own runtime (rk_group_service_new), its threads are gone
 * (a shared server's stay for its other groups). Not from a raftkit thread:
 * from a state-machine callback it may wait for the executor it holds. */
void rk_group_service_join(rk_group_service_t *svc);

/* Frees the service after join. */
void rk_group_service_free(rk_group_service_t *svc);

/* ---- tasks ---- */

typedef struct rk_task {
    const void *data; /* copied by rk_node_apply before it returns */
    size_t len;
    rk_closure_t *done;    /* may be NULL; otherwise run exactly once */
    int64_t expected_term; /* -1: don't check; else fail with RK_ETERM unless leader at this term */
    /* Instead of done (leave done NULL): a closure with an on_committed hook
     * (raftkit/closure.h); task_done->closure is run as done would be. */
    rk_task_closure_t *task_done;
} rk_task_t;

/* Proposes a task. The payload is copied before the call returns.
 * With task.task_done, its on_committed runs first, once the entry is known
 * committed (see rk_task_closure_t).
 *
 * Returns 0 when accepted: done (if any) then runs exactly once, on the FSM
 * thread: RK_OK right after on_apply moved past the entry, or an error --
 * RK_ENOTLEADER, RK_ETERM (expected_term is not the leader's term),
 * RK_ETRANSFER, RK_ELEADERLOST (leadership was lost before the entry was
 * known committed: it may still commit; treat the outcome as unknown),
 * RK_ESHUTDOWN (the node stopped first), or the error of a failed state.
 *
 * Returns, without running done: RK_EINVAL (n or task NULL, both done and
 * task_done set, len over
 * raft_options.max_body_size), RK_EBUSY (the apply queue holds
 * raft_options.apply_queue_size tasks: back off and retry; the node is not
 * harmed), RK_ESHUTDOWN (shutdown was requested), RK_ENOMEM.
 * Non-blocking; any thread. */
int rk_node_apply(rk_node_t *n, const rk_task_t *task);

/* Linearizable read: done runs once this node's state machine has applied up
 * to a read index confirmed by the leader (on a leader or a follower), or
 * with an error (RK_ENOTLEADER, RK_ETIMEDOUT when no confirmation came,
 * RK_ESHUTDOWN, ...); it runs on the FSM thread. ctx (copied before the call
 * returns) is handed back to done.
 *
 * Returns 0 when accepted (done then runs exactly once), or, without running
 * done: RK_EINVAL (n or done NULL, or ctx NULL with len > 0), RK_ENOMEM,
 * RK_ESHUTDOWN (shutdown was requested). Any thread. */
int rk_node_read_index(rk_node_t *n, const void *ctx, size_t len, rk_read_index_closure_t *done);

/* ---- snapshots and membership ---- */

/* Takes a snapshot now: done runs (FSM thread) once it is durable, with RK_OK,
 * RK_EBUSY (one is already running), or an error of on_snapshot_save.
 * The membership calls below run done when the new configuration is
 * committed (RK_OK) or with RK_ENOTLEADER, RK_ECONFCHANGE (a change is in
 * progress), RK_EEXIST / RK_ENOTFOUND (peer already present / absent),
 * RK_ECATCHUP (a new voter did not catch up), RK_ELEADERLOST, RK_ESHUTDOWN.
 * Without running done they return RK_EINVAL for bad arguments (n NULL, a
 * NULL peer or configuration, an invalid configuration or one without
 * voters, a count of 0 or over RK_CONF_MAX_PEERS for add/remove_learners),
 * RK_ENOMEM, and RK_ESHUTDOWN once shutdown was requested. Any thread. */
int rk_node_snapshot(rk_node_t *n, rk_closure_t *done);
int rk_node_add_peer(rk_node_t *n, const rk_peer_id_t *peer, rk_closure_t *done);
int rk_node_remove_peer(rk_node_t *n, const rk_peer_id_t *peer, rk_closure_t *done);
/* Joint consensus to exactly conf's voters and learners. */
int rk_node_change_peers(rk_node_t *n, const rk_configuration_t *conf, rk_closure_t *done);
/* Escape hatch after losing a majority: force this node's configuration to
 * conf without consensus. May lose committed data; for operators only. The
 * forced configuration is durable (fsynced) when this returns 0, so a restart
 * keeps it; the node writes it into the log as a configuration entry when it
 * next leads. Returns 0, RK_EINVAL (n or conf NULL, conf invalid or without
 * voters), RK_EIO (could not make it durable; the configuration is
 * unchanged), RK_ENOMEM, RK_EBUSY (log writes kept running for about two
 * seconds), RK_ESHUTDOWN. Blocks until the node's loop thread has done it
 * (one fsync); not from the FSM thread. */
int rk_node_reset_peers(rk_node_t *n, const rk_configuration_t *conf);
int rk_node_add_learners(rk_node_t *n, const rk_peer_id_t *learners, size_t count,
                         rk_closure_t *done);
int rk_node_remove_learners(rk_node_t *n, const rk_peer_id_t *learners, size_t count,
                            rk_closure_t *done);
int rk_node_reset_learners(rk_node_t *n, const rk_peer_id_t *learners, size_t count,
                           rk_closure_t *done);
/* Hands leadership to peer, a voter: returns 0 once the transfer started
 * (poll rk_node_leader_id for its end; peer being this node cancels a
 * transfer in progress), RK_EINVAL (n or peer NULL), RK_ENOTLEADER,
 * RK_EUNKNOWNPEER (peer is not a voter), RK_ESTATE (the node is in the
 * error state), RK_ESHUTDOWN. Any thread; blocks until the node's loop
 * thread has handled it. */
int rk_node_transfer_leadership_to(rk_node_t *n, const rk_peer_id_t *peer);

/* ---- state (snapshots of a moving target; any thread; n must be valid) ---- */

typedef enum rk_node_state {
    RK_STATE_LEADER,
    RK_STATE_TRANSFERRING,
    RK_STATE_CANDIDATE,
    RK_STATE_FOLLOWER,
    RK_STATE_ERROR,
    RK_STATE_UNINITIALIZED,
    RK_STATE_SHUTTING,
    RK_STATE_SHUTDOWN,
} rk_node_state_t;

const char *rk_node_state_name(rk_node_state_t s);
rk_node_state_t rk_node_state(rk_node_t *n);
bool rk_node_is_leader(rk_node_t *n);
/* The known leader; returns RK_ENOLEADER when none is known. */
int rk_node_leader_id(rk_node_t *n, rk_peer_id_t *out);
int64_t rk_node_term(rk_node_t *n);
int64_t rk_node_last_log_index(rk_node_t *n);
int64_t rk_node_committed_index(rk_node_t *n);
int64_t rk_node_applied_index(rk_node_t *n);
const char *rk_node_group_id(rk_node_t *n);
void rk_node_self(rk_node_t *n, rk_peer_id_t *out);
/* Current configuration's voters / learners. */
void rk_node_list_peers(rk_node_t *n, rk_configuration_t *out);
/* Current configuration's learners: up to *count into out; *count receives
 * the number of learners. */
void rk_node_list_learners(rk_node_t *n, rk_peer_id_t *out, size_t *count);
/* Voters this leader heard from within an election timeout, itself included.
 * Returns 0, or RK_ENOTLEADER with out emptied. */
int rk_node_list_alive_peers(rk_node_t *n, rk_configuration_t *out);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* RAFTKIT_NODE_H */
