/* Observing a node: metrics, status, a human-readable dump, and listeners for
 * state changes.
 *
 * Metrics carry SOFAJRaft's names where JRaft has one ("append-logs",
 * "replicate-entries", "fsm-apply-tasks", ...). Three kinds exist:
 *
 *   latency    a histogram of durations in nanoseconds ("append-logs": one
 *              sample per log write batch, its duration)
 *   size       a histogram of sizes ("append-logs-count": entries per batch,
 *              "append-logs-bytes": bytes per batch)
 *   counter    a monotonic count; gauge: a value that goes up and down
 *
 * Histograms are cumulative since the node started. Quantiles come from
 * log-linear buckets (32 per power of two) and are within 1/64 (1.6 %) of the
 * exact order statistic of the recorded values; values below 64 are exact;
 * values from 2^40 (about 18 minutes in ns, 1 TiB in bytes) land in the last
 * bucket and the quantiles there are capped at 2^40 (min and max stay exact).
 *
 *   rk_metrics_t *m = rk_node_get_metrics(node);
 *   const rk_metric_t *al = rk_metrics_find(m, "append-logs");
 *   printf("%llu batches, p99 %lld ns\n", al->hist.count, al->hist.p99);
 *   rk_metrics_free(m);
 *
 * The status (state, term, leader, configuration, indexes, per-peer
 * replication progress) is published by the node's loop thread every tick
 * and read by any thread without ever waiting on that loop; it is at most one
 * tick old (status.age_ms says how old).
 */
#ifndef RAFTKIT_METRICS_H
#define RAFTKIT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkit/node.h"
#include "raftkit/peer.h"
#include "raftkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; what is declared here is its API. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---- status ---- */

#define RK_STATUS_GROUP_MAX 128 /* group id including the NUL */
#define RK_STATUS_MAX_PEERS (2 * RK_CONF_MAX_PEERS)

/* Replication progress of one follower or learner, as the leader sees it
 * (JRaft's replicator metrics). Counters are since this node last became
 * leader. */
typedef struct rk_peer_status {
    rk_peer_id_t peer;
    bool learner;
    bool reachable;                  /* false after RPCs to it failed for an election timeout */
    int64_t next_index;              /* "next-index" */
    int64_t match_index;             /* highest index known replicated there */
    int64_t log_lags;                /* "log-lags": leader's last index - match_index */
    uint64_t heartbeat_times;        /* "heartbeat-times" */
    uint64_t append_entries_times;   /* "append-entries-times" */
    uint64_t install_snapshot_times; /* "install-snapshot-times" */
    uint64_t consecutive_errors;     /* "consecutive-error-times" */
    int64_t last_contact_age_ms;     /* ms since its last successful response; -1: never */
} rk_peer_status_t;

/* A node's status: a plain value, copy it with `=`. */
typedef struct rk_node_status {
    char group[RK_STATUS_GROUP_MAX];
    rk_peer_id_t self;
    rk_node_state_t state;
    int64_t term;
    rk_peer_id_t leader;         /* empty (rk_peer_id_is_empty) when no leader is known */
    rk_configuration_t conf;     /* current configuration: voters and learners */
    bool joint;                  /* a joint-consensus change is in progress ... */
    rk_configuration_t old_conf; /* ... from this configuration (valid when joint) */
    int64_t first_log_index;
    int64_t last_log_index;
    int64_t committed_index;
    int64_t applied_index;
    int64_t snapshot_index; /* last index in the newest snapshot; 0: none */
    int64_t snapshot_term;
    int64_t apply_queue_depth; /* tasks accepted by rk_node_apply, not yet in the log */
    bool quiesced;             /* idle group, not heartbeating (rk_raft_options_t.quiesce) */
    rk_status_t error;         /* code != RK_OK in RK_STATE_ERROR: why */
    int64_t age_ms;            /* how long ago the loop published this (set by readers) */
    uint32_t n_peers;          /* replication progress; filled on the leader only */
    rk_peer_status_t peers[RK_STATUS_MAX_PEERS];
} rk_node_status_t;

/* Fills st with an empty status: state RK_STATE_UNINITIALIZED, zero indexes,
 * no leader, no peers. */
void rk_node_status_init(rk_node_status_t *st);

/* Renders st as a JSON object (the body of the admin endpoint's GET /status):
 *   {"group":"counter","peer":"127.0.0.1:8081","state":"LEADER","term":3,
 *    "leader":"127.0.0.1:8081","conf":{"peers":[...],"learners":[...]},
 *    "old_conf":null,"first_log_index":1,...,"error":null,
 *    "replicators":[{"peer":"127.0.0.1:8082","learner":false,"reachable":true,
 *                    "next_index":..,"match_index":..,"log_lags":..,
 *                    "last_contact_age_ms":..,...}]}
 * Returns a NUL-terminated string the caller frees with free(), or NULL when
 * out of memory. pretty: indent for people. Any thread. */
char *rk_node_status_to_json(const rk_node_status_t *st, bool pretty);

/* Parses what rk_node_status_to_json produced (e.g. another peer's /status)
 * into out. Unknown members are ignored, missing ones keep the defaults of
 * rk_node_status_init. Returns 0, or RK_EINVAL with the reason in err (may be
 * NULL) for malformed JSON or a member of the wrong type. Any thread. */
int rk_node_status_from_json(const char *json, rk_node_status_t *out, rk_status_t *err);

/* Renders st for people, one fact per line ("state: LEADER", "term: 3", a
 * table of replicators), like braft's /raft_stat. Writes at most len bytes
 * including the NUL; returns the length that was (or would have been)
 * written, as snprintf does. Any thread. */
int rk_node_status_format(const rk_node_status_t *st, char *buf, size_t len);

/* ---- metrics ---- */

typedef enum rk_metric_kind {
    RK_METRIC_LATENCY = 0, /* histogram of nanoseconds */
    RK_METRIC_SIZE,        /* histogram of sizes (entries, bytes) */
    RK_METRIC_COUNTER,     /* monotonic */
    RK_METRIC_GAUGE,
} rk_metric_kind_t;

typedef struct rk_histogram_summary {
    uint64_t count;
    uint64_t sum;
    int64_t min, max; /* 0 when count is 0 */
    double mean;
    int64_t p50, p95, p99, p999;
} rk_histogram_summary_t;

typedef struct rk_metric {
    const char *name; /* JRaft's name, e.g. "append-logs"; static storage */
    const char *help; /* one line for people; static storage */
    rk_metric_kind_t kind;
    int64_t value;               /* counters and gauges */
    rk_histogram_summary_t hist; /* latency and size histograms */
} rk_metric_t;

/* A point-in-time copy of a node's metrics and status, owned by the caller. */
typedef struct rk_metrics {
    rk_node_status_t status;
    size_t n_metrics;
    rk_metric_t *metrics; /* n_metrics entries, always the same names in the same order */
} rk_metrics_t;

/* Takes a snapshot of n's metrics and status. Never waits for the node's
 * loop. Returns NULL when out of memory. Free with rk_metrics_free. Any
 * thread. */
rk_metrics_t *rk_node_get_metrics(rk_node_t *n);

/* Frees a snapshot; NULL is fine. */
void rk_metrics_free(rk_metrics_t *m);

/* The metric called name in m, or NULL. */
const rk_metric_t *rk_metrics_find(const rk_metrics_t *m, const char *name);

/* Renders m in the Prometheus text exposition format (version 0.0.4), the
 * body of the admin endpoint's GET /metrics. Names are "raftkit_" plus the
 * JRaft name with '-' as '_'; latencies are summaries in seconds (suffix
 * "_seconds", with quantile 0.5/0.95/0.99/0.999, _sum and _count), sizes are
 * summaries, counters end in "_total". Every sample carries the labels
 * group and peer (this node); replicator samples add follower. Returns a
 * string the caller frees with free(), or NULL when out of memory. */
char *rk_metrics_to_prometheus(const rk_metrics_t *m);

/* Writes a human-readable dump of n into buf: the status (as
 * rk_node_status_format) followed by one line per non-empty metric. Returns
 * as snprintf; RK_ENOMEM (negative) when a snapshot could not be taken. Any
 * thread. */
int rk_node_describe(rk_node_t *n, char *buf, size_t len);

/* ---- listeners ---- */

typedef enum rk_node_event_type {
    RK_EVENT_CURRENT = 0,           /* first event a new listener gets: the state at registration */
    RK_EVENT_BECAME_LEADER,         /* state is RK_STATE_LEADER: start leader-only services */
    RK_EVENT_BECAME_FOLLOWER,       /* state is RK_STATE_FOLLOWER (from leader, candidate, ...) */
    RK_EVENT_BECAME_CANDIDATE,      /* an election started here */
    RK_EVENT_STATE_CHANGED,         /* any other state change (ERROR, TRANSFERRING, SHUTTING...) */
    RK_EVENT_LEADER_CHANGED,        /* leader is the new leader, or empty when none is known */
    RK_EVENT_CONFIGURATION_CHANGED, /* conf is the new configuration */
    RK_EVENT_PEER_UNREACHABLE,      /* peer: the leader lost contact with it */
    RK_EVENT_PEER_REACHABLE,        /* peer: contact is back */
} rk_node_event_type_t;

const char *rk_node_event_name(rk_node_event_type_t t);

typedef struct rk_node_event {
    rk_node_event_type_t type;
    rk_node_state_t state;      /* the node's state after the change */
    rk_node_state_t prev_state; /* before it (== state unless a state event) */
    int64_t term;
    rk_peer_id_t leader;     /* known leader after the change; empty if none */
    rk_peer_id_t peer;       /* PEER_* events: the peer */
    rk_configuration_t conf; /* current configuration */
} rk_node_event_t;

/* Embed in your own struct; recover it with rk_container_of in on_event. */
typedef struct rk_node_listener rk_node_listener_t;
struct rk_node_listener {
    void (*on_event)(rk_node_listener_t *self, const rk_node_event_t *ev);
};

/* Registers l. Events are delivered on one raftkit listener thread per node
 * (never the loop, never the FSM thread), one at a time, in the order they
 * happened; a slow listener delays other listeners, never the node. The
 * first event l gets is RK_EVENT_CURRENT with the state at registration.
 * Events are derived from the status the loop publishes after each batch of
 * work: a state that lasted less than one batch (a candidate that won in the
 * same batch) may be skipped, but losing and regaining leadership is always
 * reported as BECAME_FOLLOWER then BECAME_LEADER (the term differs). The
 * caller owns l, which must stay valid until rk_node_remove_listener
 * returned. Returns 0, RK_EEXIST if l is already registered, RK_ETOOBIG past
 * 64 listeners, RK_EINVAL for NULL, RK_ENOMEM. Any thread. */
int rk_node_add_listener(rk_node_t *n, rk_node_listener_t *l);

/* Unregisters l. When it returns, l's on_event is not running and will not
 * be called again, except when called from l's own on_event (then the
 * current call finishes). Returns 0 or RK_ENOTFOUND. Any thread. */
int rk_node_remove_listener(rk_node_t *n, rk_node_listener_t *l);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* RAFTKIT_METRICS_H */
