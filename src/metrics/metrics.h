/* The node's observability hub (internal API for src/node and src/admin).
 *
 * One metrics_node_t per node holds its metric registry (histograms, counters
 * and gauges under JRaft's names), the status the loop publishes, and the
 * listener thread that delivers state-change events (created with the first
 * listener). The node:
 *
 *   - records measurements from whichever thread makes them:
 *         uint64_t t0 = metrics_now_ns();
 *         ... write the batch ...
 *         metrics_record_since(m, METRIC_APPEND_LOGS, t0);
 *         metrics_record(m, METRIC_APPEND_LOGS_COUNT, n_entries);
 *   - publishes its status from the loop thread every tick and right after
 *     every state, leader, configuration or reachability change
 *     (metrics_publish_status); events for listeners are derived from the
 *     difference to the previous publication, so no transition is missed as
 *     long as each one is published.
 *
 * Readers (rk_node_get_metrics, the admin endpoint) never wait on the loop:
 * the loop only try-locks the published copy and, when a reader holds it,
 * leaves the copy for the next publication.
 */
#ifndef RAFTKIT_METRICS_METRICS_H
#define RAFTKIT_METRICS_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "raftkit/metrics.h"
#include "src/metrics/histogram.h"

/* The node's metrics: X(ID, "jraft-name", kind, "help"). The order is the
 * order of rk_metrics_t.metrics and of the exposition. */
#define METRICS_NODE_MAP(X)                                                                    \
    X(APPEND_LOGS, "append-logs", RK_METRIC_LATENCY,                                           \
      "Time to write one batch of entries to the log")                                         \
    X(APPEND_LOGS_COUNT, "append-logs-count", RK_METRIC_SIZE, "Entries per log write batch")   \
    X(APPEND_LOGS_BYTES, "append-logs-bytes", RK_METRIC_SIZE, "Bytes per log write batch")     \
    X(REPLICATE_ENTRIES, "replicate-entries", RK_METRIC_LATENCY,                               \
      "Round trip of one AppendEntries with entries, leader side")                             \
    X(REPLICATE_ENTRIES_COUNT, "replicate-entries-count", RK_METRIC_SIZE,                      \
      "Entries per AppendEntries sent")                                                        \
    X(REPLICATE_ENTRIES_BYTES, "replicate-entries-bytes", RK_METRIC_SIZE,                      \
      "Bytes of entries per AppendEntries sent")                                               \
    X(REPLICATE_INFLIGHTS_COUNT, "replicate-inflights-count", RK_METRIC_SIZE,                  \
      "AppendEntries in flight to a follower when one more is sent")                           \
    X(FSM_APPLY_TASKS, "fsm-apply-tasks", RK_METRIC_LATENCY,                                   \
      "Time of one on_apply call (a batch of committed entries)")                              \
    X(FSM_APPLY_TASKS_COUNT, "fsm-apply-tasks-count", RK_METRIC_SIZE,                          \
      "Entries per on_apply batch; its sum counts applied entries")                            \
    X(FSM_COMMIT, "fsm-commit", RK_METRIC_LATENCY,                                             \
      "Time from a commit index advance to its entries applied")                               \
    X(HANDLE_APPEND_ENTRIES, "handle-append-entries", RK_METRIC_LATENCY,                       \
      "Follower time from AppendEntries received to answered")                                 \
    X(HANDLE_APPEND_ENTRIES_COUNT, "handle-append-entries-count", RK_METRIC_SIZE,              \
      "Entries per AppendEntries received")                                                    \
    X(PRE_VOTE, "pre-vote", RK_METRIC_LATENCY, "Time from starting a pre-vote to its outcome") \
    X(REQUEST_VOTE, "request-vote", RK_METRIC_LATENCY,                                         \
      "Time from starting an election to its outcome")                                         \
    X(READ_INDEX, "read-index", RK_METRIC_LATENCY,                                             \
      "Time from rk_node_read_index to its closure running")                                   \
    X(HANDLE_READ_INDEX, "handle-read-index", RK_METRIC_LATENCY,                               \
      "Leader time to confirm a read index (heartbeat round)")                                 \
    X(HANDLE_READ_INDEX_ENTRIES, "handle-read-index-entries", RK_METRIC_SIZE,                  \
      "Read requests confirmed per heartbeat round")                                           \
    X(INSTALL_SNAPSHOT, "install-snapshot", RK_METRIC_LATENCY,                                 \
      "Follower time to install a snapshot from the leader")                                   \
    X(FSM_SNAPSHOT_SAVE, "fsm-snapshot-save", RK_METRIC_LATENCY, "Time to save a snapshot")    \
    X(FSM_SNAPSHOT_LOAD, "fsm-snapshot-load", RK_METRIC_LATENCY, "Time to load a snapshot")    \
    X(TRUNCATE_LOG_PREFIX, "truncate-log-prefix", RK_METRIC_LATENCY,                           \
      "Time to drop log entries covered by a snapshot")                                        \
    X(TRUNCATE_LOG_SUFFIX, "truncate-log-suffix", RK_METRIC_LATENCY,                           \
      "Time to drop conflicting log entries")                                                  \
    X(SAVE_RAFT_META, "save-raft-meta", RK_METRIC_LATENCY,                                     \
      "Time to persist term and vote durably")                                                 \
    X(APPLY_TASKS, "apply-tasks", RK_METRIC_COUNTER, "Tasks accepted by rk_node_apply")        \
    X(APPLY_BUSY_REJECTIONS, "apply-busy-rejections", RK_METRIC_COUNTER,                       \
      "Tasks failed with RK_EBUSY because the apply queue was full")                           \
    X(APPLY_QUEUE_DEPTH, "apply-queue-depth", RK_METRIC_GAUGE, "Tasks waiting in the apply queue")

typedef enum metrics_id {
#define METRICS__ENUM(id, name, kind, help) METRIC_##id,
    METRICS_NODE_MAP(METRICS__ENUM)
#undef METRICS__ENUM
        METRIC__COUNT
} metrics_id_t;

typedef struct metrics_node metrics_node_t;

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC, the clock of uv_hrtime). */
static inline uint64_t metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Creates the hub for one node (its listener thread starts with the first
 * listener). group and self are copied. Returns NULL when out of memory.
 * Any thread. */
metrics_node_t *metrics_node_new(const char *group, const rk_peer_id_t *self);

/* Delivers the events already queued, stops the listener thread and frees
 * m. Nobody may record, publish or read afterwards; NULL is fine. Not from a
 * listener. */
void metrics_node_free(metrics_node_t *m);

/* The per-metric storage, for the inline recorders below. */
metrics_hist_t *metrics_node_hist(metrics_node_t *m, metrics_id_t id);
_Atomic int64_t *metrics_node_scalar(metrics_node_t *m, metrics_id_t id);

/* Records a value into a latency or size histogram. Lock-free; any thread. */
static inline void metrics_record(metrics_node_t *m, metrics_id_t id, uint64_t v)
{
    metrics_hist_record(metrics_node_hist(m, id), v);
}

/* Records the time since t0 (from metrics_now_ns) into a latency histogram. */
static inline void metrics_record_since(metrics_node_t *m, metrics_id_t id, uint64_t t0)
{
    uint64_t now = metrics_now_ns();
    metrics_record(m, id, now > t0 ? now - t0 : 0);
}

/* Adds to a counter. Lock-free; any thread. */
static inline void metrics_add(metrics_node_t *m, metrics_id_t id, int64_t delta)
{
    atomic_fetch_add_explicit(metrics_node_scalar(m, id), delta, memory_order_relaxed);
}

/* Sets a gauge. Lock-free; any thread. */
static inline void metrics_set(metrics_node_t *m, metrics_id_t id, int64_t v)
{
    atomic_store_explicit(metrics_node_scalar(m, id), v, memory_order_relaxed);
}

/* The static description of a metric. */
const char *metrics_name(metrics_id_t id);
const char *metrics_help(metrics_id_t id);
rk_metric_kind_t metrics_kind(metrics_id_t id);

/* Publishes the node's status: queues listener events for what changed
 * since the last call, then copies st for readers unless one is reading
 * right now (then the next call copies; readers see status.age_ms grow).
 * group and self in st are overwritten with the hub's. Call from one thread
 * only (the loop): every tick and after every state, leader, configuration
 * or peer reachability change. Never blocks on readers; takes the event
 * queue lock briefly when something changed. */
void metrics_publish_status(metrics_node_t *m, const rk_node_status_t *st);

/* Publishes the same status as last time again: only its time moves (its
 * age_ms restarts from 0). For a loop that knows nothing changed. Never
 * blocks on readers. */
void metrics_publish_touch(metrics_node_t *m);

/* Copies the last published status into out and sets out->age_ms and
 * out->apply_queue_depth (the gauge's latest value). Any thread; never
 * waits on the loop. */
void metrics_read_status(metrics_node_t *m, rk_node_status_t *out);

/* A snapshot of every metric and the status; NULL when out of memory. Free
 * with rk_metrics_free. Any thread. */
rk_metrics_t *metrics_snapshot(metrics_node_t *m);

/* A group counts as lagging when a replica this node knows of is this many
 * entries behind (the default catchup_margin): as leader, a follower's
 * log_lags; on any node, its own applied index behind the commit index. */
#define METRICS_LAG_ENTRIES 1000

/* The little of a group's status that summarising thousands of groups
 * needs, derived when the status is published: reading it copies a few
 * bytes where metrics_read_status copies 18 KiB. */
typedef struct metrics_brief {
    rk_node_state_t state;
    rk_peer_id_t leader; /* empty when none is known */
    bool quiesced;
    bool lagging;     /* see METRICS_LAG_ENTRIES */
    bool unreachable; /* leader: a follower does not answer */
} metrics_brief_t;

/* The brief of the last published status. Any thread; never waits on the
 * loop. */
void metrics_read_brief(metrics_node_t *m, metrics_brief_t *out);

/* Counts of groups by what their briefs say: the summary of /status and
 * of the process series of /metrics. */
typedef struct metrics_summary {
    uint64_t groups;
    uint64_t states[RK_STATE_SHUTDOWN + 1]; /* by rk_node_state_t */
    uint64_t no_leader, quiesced, lagging, unreachable;
} metrics_summary_t;

void metrics_summary_add(metrics_summary_t *s, const metrics_brief_t *b);

/* {"groups":N,"leaders":..,"followers":..,"candidates":..,"error":..,
 *  "no_leader":..,"quiesced":..,"lagging":..,"unreachable":..,
 *  "states":{"LEADER":..,...}} (a new reference), or NULL when out of
 * memory. Leaders count TRANSFERRING too. */
struct json_t *metrics_summary_json(const metrics_summary_t *s);

/* The process totals of several groups: their summary, counters and
 * gauges summed, histograms merged. 200 KiB: allocate it. */
typedef struct metrics_totals {
    metrics_summary_t summary;
    int64_t scalar[METRIC__COUNT];
    metrics_hist_merged_t hist[METRIC__COUNT];
} metrics_totals_t;

void metrics_totals_init(metrics_totals_t *t);

/* Adds group m to t. Any thread; never waits on the loop. */
void metrics_totals_add(metrics_totals_t *t, metrics_node_t *m);

/* The process series of t in the Prometheus text format (see README
 * "Metrics"): raftkit_process_groups, raftkit_process_groups_state{state},
 * the summary counts, and every node metric as raftkit_process_<name>,
 * without labels. A malloc'd string, or NULL when out of memory. */
char *metrics_totals_render(const metrics_totals_t *t);

/* rk_node_add_listener / rk_node_remove_listener for this hub. */
int metrics_listener_add(metrics_node_t *m, rk_node_listener_t *l);
int metrics_listener_remove(metrics_node_t *m, rk_node_listener_t *l);

/* Waits until every event queued so far has been delivered. For tests and
 * orderly shutdown; not from a listener. */
void metrics_events_flush(metrics_node_t *m);

/* The group id and peer id the hub was made for. */
const char *metrics_node_group(const metrics_node_t *m);
const rk_peer_id_t *metrics_node_self(const metrics_node_t *m);

/* Renders several snapshots (one per group of a process) into one Prometheus
 * exposition, each metric family once with a sample per group. Returns a
 * malloc'd string, or NULL when out of memory. */
char *metrics_prometheus_render(const rk_metrics_t *const *ms, size_t n);

/* "LEADER", "FOLLOWER", ...: the state names of the JSON and the exposition. */
const char *metrics_state_name(rk_node_state_t s);

/* The status as a jansson object (a new reference), or NULL when out of
 * memory: what rk_node_status_to_json prints. */
struct json_t *metrics_status_json(const rk_node_status_t *st);

struct metrics_buf;
/* Appends rk_node_status_format's text to b. */
void metrics_status_text(struct metrics_buf *b, const rk_node_status_t *st);

/* rk_node_describe's body for a snapshot. */
int metrics_describe(const rk_metrics_t *m, char *buf, size_t len);

#endif /* RAFTKIT_METRICS_METRICS_H */
