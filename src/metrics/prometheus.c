/* Prometheus text exposition (format version 0.0.4) of metric snapshots.
 *
 * Several snapshots (the groups of one process) render into one document in
 * which every family appears once, with one TYPE and HELP line and a sample
 * per group: the format requires a family's samples to be contiguous.
 * Latencies are recorded in ns and exposed in seconds, the Prometheus base
 * unit. Quantiles are exposed as a summary; they cover the node's lifetime.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/metrics/strbuf.h"
#include "src/metrics/metrics.h"

#define PREFIX "raftkit_"

/* A label value with \, " and newline escaped, as the format requires. */
static void put_label_value(metrics_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            metrics_buf_puts(b, "\\\\");
        else if (*s == '"')
            metrics_buf_puts(b, "\\\"");
        else if (*s == '\n')
            metrics_buf_puts(b, "\\n");
        else
            metrics_buf_putc(b, *s);
    }
}

/* A metric name from a JRaft name: '-' (and anything else outside
 * [a-zA-Z0-9_]) becomes '_'. */
static void put_name(metrics_buf_t *b, const char *jraft, const char *suffix)
{
    metrics_buf_puts(b, PREFIX);
    for (; *jraft; jraft++) {
        char c = *jraft;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        metrics_buf_putc(b, ok ? c : '_');
    }
    metrics_buf_puts(b, suffix);
}

static void put_help(metrics_buf_t *b, const char *jraft, const char *suffix, const char *type,
                     const char *help)
{
    metrics_buf_puts(b, "# HELP ");
    put_name(b, jraft, suffix);
    metrics_buf_puts(b, " ");
    for (const char *s = help; *s; s++) {
        if (*s == '\\')
            metrics_buf_puts(b, "\\\\");
        else if (*s == '\n')
            metrics_buf_puts(b, "\\n");
        else
            metrics_buf_putc(b, *s);
    }
    metrics_buf_puts(b, "\n# TYPE ");
    put_name(b, jraft, suffix);
    metrics_buf_printf(b, " %s\n", type);
}

/* Opens a sample: name{group="..",peer=".."[,extra="v"]. The caller adds
 * more labels (",k=\"v\"") and closes it with put_value. */
static void put_sample(metrics_buf_t *b, const char *jraft, const char *suffix,
                       const rk_node_status_t *st)
{
    char peer[RK_PEER_ID_STRLEN];
    rk_peer_id_format(&st->self, peer, sizeof peer);
    put_name(b, jraft, suffix);
    metrics_buf_puts(b, "{group=\"");
    put_label_value(b, st->group);
    metrics_buf_puts(b, "\",peer=\"");
    put_label_value(b, peer);
    metrics_buf_puts(b, "\"");
}

static void put_label(metrics_buf_t *b, const char *k, const char *v)
{
    metrics_buf_printf(b, ",%s=\"", k);
    put_label_value(b, v);
    metrics_buf_puts(b, "\"");
}

static void put_int(metrics_buf_t *b, long long v)
{
    metrics_buf_printf(b, "} %lld\n", v);
}

static void put_uint(metrics_buf_t *b, unsigned long long v)
{
    metrics_buf_printf(b, "} %llu\n", v);
}

static void put_double(metrics_buf_t *b, double v)
{
    metrics_buf_printf(b, "} %.9g\n", v);
}

static void render_hist(metrics_buf_t *b, const rk_metrics_t *const *ms, size_t n, size_t i)
{
    const rk_metric_t *x0 = &ms[0]->metrics[i];
    int lat = x0->kind == RK_METRIC_LATENCY;
    const char *suffix = lat ? "_seconds" : "";
    double scale = lat ? 1e-9 : 1.0;
    put_help(b, x0->name, suffix, "summary", x0->help);
    static const char *const qs[] = {"0.5", "0.95", "0.99", "0.999"};
    for (size_t g = 0; g < n; g++) {
        const rk_metric_t *x = &ms[g]->metrics[i];
        const int64_t vals[] = {x->hist.p50, x->hist.p95, x->hist.p99, x->hist.p999};
        for (int q = 0; q < 4; q++) {
            put_sample(b, x->name, suffix, &ms[g]->status);
            put_label(b, "quantile", qs[q]);
            if (x->hist.count == 0)
                metrics_buf_puts(b, "} NaN\n"); /* what client libraries print for no data */
            else if (lat)
                put_double(b, (double)vals[q] * scale);
            else
                put_int(b, vals[q]);
        }
        put_sample(b, x->name, lat ? "_seconds_sum" : "_sum", &ms[g]->status);
        if (lat)
            put_double(b, (double)x->hist.sum * scale);
        else
            put_uint(b, x->hist.sum);
        put_sample(b, x->name, lat ? "_seconds_count" : "_count", &ms[g]->status);
        put_uint(b, x->hist.count);
    }
}

static void render_scalar(metrics_buf_t *b, const rk_metrics_t *const *ms, size_t n, size_t i)
{
    const rk_metric_t *x0 = &ms[0]->metrics[i];
    int counter = x0->kind == RK_METRIC_COUNTER;
    const char *suffix = counter ? "_total" : "";
    put_help(b, x0->name, suffix, counter ? "counter" : "gauge", x0->help);
    for (size_t g = 0; g < n; g++) {
        put_sample(b, x0->name, suffix, &ms[g]->status);
        put_int(b, ms[g]->metrics[i].value);
    }
}

/* Status gauges: one value per group. */
#define STATUS_GAUGES(X)                                                                  \
    X("term", "Current term", st->term)                                                   \
    X("quiesced", "1 while the group is quiesced (idle, no heartbeats)", st->quiesced)    \
    X("has-leader", "1 when this node knows a leader", !rk_peer_id_is_empty(&st->leader)) \
    X("first-log-index", "First index in the log", st->first_log_index)                   \
    X("last-log-index", "Last index in the log", st->last_log_index)                      \
    X("committed-index", "Highest index known committed", st->committed_index)            \
    X("applied-index", "Highest index applied by the state machine", st->applied_index)   \
    X("snapshot-index", "Last index covered by the newest snapshot", st->snapshot_index)  \
    X("conf-peers", "Voters in the current configuration", st->conf.n_peers)              \
    X("conf-learners", "Learners in the current configuration", st->conf.n_learners)      \
    X("conf-joint", "1 while a joint-consensus change is in progress", st->joint)         \
    X("status-age-ms", "Age of the published status in milliseconds", st->age_ms)

/* Replicator values: one per (group, follower); x is the rk_peer_status_t. */
#define REPLICATOR_FAMILIES(X)                                                                    \
    X("replicator-next-index", "", "gauge", "Next log index to send (next-index)", r->next_index) \
    X("replicator-match-index", "", "gauge", "Highest index known replicated", r->match_index)    \
    X("replicator-log-lags", "", "gauge", "Entries the follower is behind (log-lags)",            \
      r->log_lags)                                                                                \
    X("replicator-heartbeat-times", "_total", "counter", "Heartbeats sent (heartbeat-times)",     \
      r->heartbeat_times)                                                                         \
    X("replicator-append-entries-times", "_total", "counter",                                     \
      "AppendEntries with entries sent (append-entries-times)", r->append_entries_times)          \
    X("replicator-install-snapshot-times", "_total", "counter",                                   \
      "Snapshots sent (install-snapshot-times)", r->install_snapshot_times)                       \
    X("replicator-consecutive-error-times", "", "gauge",                                          \
      "Failed RPCs in a row (consecutive-error-times)", r->consecutive_errors)                    \
    X("replicator-reachable", "", "gauge", "1 while the follower answers", r->reachable)

static void render_status(metrics_buf_t *b, const rk_metrics_t *const *ms, size_t n)
{
    put_help(b, "state", "", "gauge", "1 for the node's current state, 0 for the others");
    for (size_t g = 0; g < n; g++) {
        for (int s = RK_STATE_LEADER; s <= RK_STATE_SHUTDOWN; s++) {
            put_sample(b, "state", "", &ms[g]->status);
            put_label(b, "state", metrics_state_name((rk_node_state_t)s));
            put_int(b, ms[g]->status.state == (rk_node_state_t)s);
        }
    }
#define STATUS__RENDER(name, help, expr)             \
    put_help(b, name, "", "gauge", help);            \
    for (size_t g = 0; g < n; g++) {                 \
        const rk_node_status_t *st = &ms[g]->status; \
        put_sample(b, name, "", st);                 \
        put_int(b, (long long)(expr));               \
    }
    STATUS_GAUGES(STATUS__RENDER)
#undef STATUS__RENDER

#define REPLICATOR__RENDER(name, suffix, type, help, expr)                      \
    put_help(b, name, suffix, type, help);                                      \
    for (size_t g = 0; g < n; g++) {                                            \
        const rk_node_status_t *st = &ms[g]->status;                            \
        for (uint32_t i = 0; i < st->n_peers && i < RK_STATUS_MAX_PEERS; i++) { \
            const rk_peer_status_t *r = &st->peers[i];                          \
            char follower[RK_PEER_ID_STRLEN];                                   \
            rk_peer_id_format(&r->peer, follower, sizeof follower);             \
            put_sample(b, name, suffix, st);                                    \
            put_label(b, "follower", follower);                                 \
            put_int(b, (long long)(expr));                                      \
        }                                                                       \
    }
    REPLICATOR_FAMILIES(REPLICATOR__RENDER)
#undef REPLICATOR__RENDER

    /* Only followers heard from at least once have a last contact. */
    put_help(b, "replicator-last-contact-age", "_seconds", "gauge",
             "Seconds since the follower last answered");
    for (size_t g = 0; g < n; g++) {
        const rk_node_status_t *st = &ms[g]->status;
        for (uint32_t i = 0; i < st->n_peers && i < RK_STATUS_MAX_PEERS; i++) {
            const rk_peer_status_t *r = &st->peers[i];
            if (r->last_contact_age_ms < 0)
                continue;
            char follower[RK_PEER_ID_STRLEN];
            rk_peer_id_format(&r->peer, follower, sizeof follower);
            put_sample(b, "replicator-last-contact-age", "_seconds", st);
            put_label(b, "follower", follower);
            put_double(b, (double)r->last_contact_age_ms / 1e3);
        }
    }
}

char *metrics_prometheus_render(const rk_metrics_t *const *ms, size_t n)
{
    metrics_buf_t b;
    metrics_buf_init(&b);
    if (n > 0) {
        for (size_t i = 0; i < ms[0]->n_metrics; i++) {
            rk_metric_kind_t k = ms[0]->metrics[i].kind;
            if (k == RK_METRIC_LATENCY || k == RK_METRIC_SIZE)
                render_hist(&b, ms, n, i);
            else
                render_scalar(&b, ms, n, i);
        }
        render_status(&b, ms, n);
    }
    return metrics_buf_take(&b);
}

/* ---- process totals: one sample per family, no labels ---- */

static void put_total_help(metrics_buf_t *b, const char *name, const char *suffix, const char *type,
                           const char *help)
{
    char full[96];
    snprintf(full, sizeof full, "process-%s", name);
    put_help(b, full, suffix, type, help);
}

/* A sample of a process family: name, the one label if any, and value
 * (already formatted). */
static void put_total_sample(metrics_buf_t *b, const char *name, const char *suffix,
                             const char *label, const char *lvalue, const char *value)
{
    char full[96];
    snprintf(full, sizeof full, "process-%s", name);
    put_name(b, full, suffix);
    if (label != NULL) {
        metrics_buf_printf(b, "{%s=\"", label);
        put_label_value(b, lvalue);
        metrics_buf_puts(b, "\"}");
    }
    metrics_buf_printf(b, " %s\n", value);
}

static void render_total_hist(metrics_buf_t *b, const rk_metric_kind_t kind, const char *name,
                              const char *help, const metrics_hist_merged_t *h)
{
    rk_histogram_summary_t x;
    metrics_hist_merged_summarize(h, &x);
    int lat = kind == RK_METRIC_LATENCY;
    const char *suffix = lat ? "_seconds" : "";
    double scale = lat ? 1e-9 : 1.0;
    char v[48];
    put_total_help(b, name, suffix, "summary", help);
    static const char *const qs[] = {"0.5", "0.95", "0.99", "0.999"};
    const int64_t vals[] = {x.p50, x.p95, x.p99, x.p999};
    for (int q = 0; q < 4; q++) {
        if (x.count == 0)
            snprintf(v, sizeof v, "NaN");
        else if (lat)
            snprintf(v, sizeof v, "%.9g", (double)vals[q] * scale);
        else
            snprintf(v, sizeof v, "%lld", (long long)vals[q]);
        put_total_sample(b, name, suffix, "quantile", qs[q], v);
    }
    if (lat)
        snprintf(v, sizeof v, "%.9g", (double)x.sum * scale);
    else
        snprintf(v, sizeof v, "%llu", (unsigned long long)x.sum);
    put_total_sample(b, name, lat ? "_seconds_sum" : "_sum", NULL, NULL, v);
    snprintf(v, sizeof v, "%llu", (unsigned long long)x.count);
    put_total_sample(b, name, lat ? "_seconds_count" : "_count", NULL, NULL, v);
}

static void put_total_gauge(metrics_buf_t *b, const char *name, const char *help, uint64_t n)
{
    char v[24];
    snprintf(v, sizeof v, "%llu", (unsigned long long)n);
    put_total_help(b, name, "", "gauge", help);
    put_total_sample(b, name, "", NULL, NULL, v);
}

char *metrics_totals_render(const metrics_totals_t *t)
{
    metrics_buf_t b;
    metrics_buf_init(&b);
    const metrics_summary_t *s = &t->summary;
    put_total_gauge(&b, "groups", "Raft groups served by this admin endpoint", s->groups);
    put_total_help(&b, "groups-state", "", "gauge", "Groups whose node here is in this state");
    for (int st = RK_STATE_LEADER; st <= RK_STATE_SHUTDOWN; st++) {
        char v[24];
        snprintf(v, sizeof v, "%llu", (unsigned long long)s->states[st]);
        put_total_sample(&b, "groups-state", "", "state", metrics_state_name((rk_node_state_t)st),
                         v);
    }
    put_total_gauge(&b, "groups-no-leader", "Groups whose node here knows no leader", s->no_leader);
    put_total_gauge(&b, "groups-quiesced", "Groups quiesced (idle, no heartbeats)", s->quiesced);
    put_total_gauge(&b, "groups-lagging",
                    "Groups with a replica 1000 or more entries behind, as seen from here",
                    s->lagging);
    put_total_gauge(&b, "groups-unreachable",
                    "Groups led from here with a follower that does not answer", s->unreachable);
    for (unsigned i = 0; i < METRIC__COUNT; i++) {
        rk_metric_kind_t k = metrics_kind((metrics_id_t)i);
        const char *name = metrics_name((metrics_id_t)i), *help = metrics_help((metrics_id_t)i);
        if (k == RK_METRIC_LATENCY || k == RK_METRIC_SIZE) {
            render_total_hist(&b, k, name, help, &t->hist[i]);
            continue;
        }
        int counter = k == RK_METRIC_COUNTER;
        char v[24];
        snprintf(v, sizeof v, "%lld", (long long)t->scalar[i]);
        put_total_help(&b, name, counter ? "_total" : "", counter ? "counter" : "gauge", help);
        put_total_sample(&b, name, counter ? "_total" : "", NULL, NULL, v);
    }
    return metrics_buf_take(&b);
}

char *rk_metrics_to_prometheus(const rk_metrics_t *m)
{
    if (m == NULL)
        return NULL;
    return metrics_prometheus_render(&m, 1);
}
