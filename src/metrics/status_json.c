/* The node status value: defaults, JSON both ways (jansson) and a text form
 * for people. The JSON is the body of the admin endpoint's GET /status and
 * what raftkit-cli reads back from each peer. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "raftkit/metrics.h"
#include "src/metrics/strbuf.h"
#include "src/metrics/metrics.h"

/* Our own names, so the JSON stays stable whatever the node prints in logs. */
static const char *const state_names[] = {
    [RK_STATE_LEADER] = "LEADER",       [RK_STATE_TRANSFERRING] = "TRANSFERRING",
    [RK_STATE_CANDIDATE] = "CANDIDATE", [RK_STATE_FOLLOWER] = "FOLLOWER",
    [RK_STATE_ERROR] = "ERROR",         [RK_STATE_UNINITIALIZED] = "UNINITIALIZED",
    [RK_STATE_SHUTTING] = "SHUTTING",   [RK_STATE_SHUTDOWN] = "SHUTDOWN",
};
#define N_STATES (sizeof state_names / sizeof state_names[0])

const char *metrics_state_name(rk_node_state_t s)
{
    return (unsigned)s < N_STATES ? state_names[s] : "UNKNOWN";
}

static int state_parse(const char *s, rk_node_state_t *out)
{
    for (unsigned i = 0; i < N_STATES; i++) {
        if (strcmp(s, state_names[i]) == 0) {
            *out = (rk_node_state_t)i;
            return 0;
        }
    }
    return RK_EINVAL;
}

const char *rk_node_event_name(rk_node_event_type_t t)
{
    static const char *const names[] = {
        [RK_EVENT_CURRENT] = "CURRENT",
        [RK_EVENT_BECAME_LEADER] = "BECAME_LEADER",
        [RK_EVENT_BECAME_FOLLOWER] = "BECAME_FOLLOWER",
        [RK_EVENT_BECAME_CANDIDATE] = "BECAME_CANDIDATE",
        [RK_EVENT_STATE_CHANGED] = "STATE_CHANGED",
        [RK_EVENT_LEADER_CHANGED] = "LEADER_CHANGED",
        [RK_EVENT_CONFIGURATION_CHANGED] = "CONFIGURATION_CHANGED",
        [RK_EVENT_PEER_UNREACHABLE] = "PEER_UNREACHABLE",
        [RK_EVENT_PEER_REACHABLE] = "PEER_REACHABLE",
    };
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "UNKNOWN";
}

void rk_node_status_init(rk_node_status_t *st)
{
    memset(st, 0, sizeof *st);
    st->state = RK_STATE_UNINITIALIZED;
    rk_peer_id_clear(&st->self);
    rk_peer_id_clear(&st->leader);
    rk_configuration_init(&st->conf);
    rk_configuration_init(&st->old_conf);
    rk_status_clear(&st->error);
}

/* ---- JSON out ---- */

static json_t *peer_json(const rk_peer_id_t *p)
{
    char buf[RK_PEER_ID_STRLEN];
    if (rk_peer_id_is_empty(p))
        return json_null();
    rk_peer_id_format(p, buf, sizeof buf);
    return json_string(buf);
}

static json_t *conf_json(const rk_configuration_t *c)
{
    json_t *peers = json_array(), *learners = json_array();
    for (uint32_t i = 0; i < c->n_peers && i < RK_CONF_MAX_PEERS; i++)
        json_array_append_new(peers, peer_json(&c->peers[i]));
    for (uint32_t i = 0; i < c->n_learners && i < RK_CONF_MAX_PEERS; i++)
        json_array_append_new(learners, peer_json(&c->learners[i]));
    return json_pack("{s:o, s:o}", "peers", peers, "learners", learners);
}

static json_t *replicator_json(const rk_peer_status_t *r)
{
    return json_pack("{s:o, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "peer",
                     peer_json(&r->peer), "learner", r->learner, "reachable", r->reachable,
                     "next_index", (json_int_t)r->next_index, "match_index",
                     (json_int_t)r->match_index, "log_lags", (json_int_t)r->log_lags,
                     "heartbeat_times", (json_int_t)r->heartbeat_times, "append_entries_times",
                     (json_int_t)r->append_entries_times, "install_snapshot_times",
                     (json_int_t)r->install_snapshot_times, "consecutive_errors",
                     (json_int_t)r->consecutive_errors, "last_contact_age_ms",
                     (json_int_t)r->last_contact_age_ms);
}

static json_t *status_json(const rk_node_status_t *st)
{
    json_t *reps = json_array();
    for (uint32_t i = 0; i < st->n_peers && i < RK_STATUS_MAX_PEERS; i++)
        json_array_append_new(reps, replicator_json(&st->peers[i]));
    json_t *err = json_null();
    if (st->error.code != RK_OK)
        err = json_pack("{s:i, s:s, s:s}", "code", st->error.code, "name",
                        rk_err_name(st->error.code), "message", st->error.msg);
    /* json_pack takes at most so many pairs comfortably; build in two steps. */
    json_t *o = json_pack("{s:s, s:o, s:s, s:I, s:o, s:o, s:b, s:o}", "group", st->group, "peer",
                          peer_json(&st->self), "state", metrics_state_name(st->state), "term",
                          (json_int_t)st->term, "leader", peer_json(&st->leader), "conf",
                          conf_json(&st->conf), "joint", st->joint, "old_conf",
                          st->joint ? conf_json(&st->old_conf) : json_null());
    if (o == NULL) {
        json_decref(reps);
        json_decref(err);
        return NULL;
    }
    json_object_set_new(o, "first_log_index", json_integer(st->first_log_index));
    json_object_set_new(o, "last_log_index", json_integer(st->last_log_index));
    json_object_set_new(o, "committed_index", json_integer(st->committed_index));
    json_object_set_new(o, "applied_index", json_integer(st->applied_index));
    json_object_set_new(o, "snapshot_index", json_integer(st->snapshot_index));
    json_object_set_new(o, "snapshot_term", json_integer(st->snapshot_term));
    json_object_set_new(o, "apply_queue_depth", json_integer(st->apply_queue_depth));
    json_object_set_new(o, "quiesced", json_boolean(st->quiesced));
    json_object_set_new(o, "error", err);
    json_object_set_new(o, "status_age_ms", json_integer(st->age_ms));
    json_object_set_new(o, "replicators", reps);
    return o;
}

char *rk_node_status_to_json(const rk_node_status_t *st, bool pretty)
{
    json_t *o = status_json(st);
    if (o == NULL)
        return NULL;
    char *s = json_dumps(o, (pretty ? JSON_INDENT(2) : JSON_COMPACT) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s; /* jansson allocates with malloc unless told otherwise */
}

/* Exposed for the admin endpoint, which adds several groups to one document. */
json_t *metrics_status_json(const rk_node_status_t *st)
{
    return status_json(st);
}

/* ---- JSON in ---- */

typedef struct reader {
    rk_status_t *err;
    int rc;
} reader_t;

static bool fail(reader_t *r, const char *what, const char *why)
{
    if (r->rc == 0)
        r->rc = rk_status_set(r->err, RK_EINVAL, "%s: %s", what, why);
    return false;
}

static void get_int(reader_t *r, json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return;
    if (!json_is_integer(v)) {
        fail(r, key, "not an integer");
        return;
    }
    *out = (int64_t)json_integer_value(v);
}

static void get_uint(reader_t *r, json_t *o, const char *key, uint64_t *out)
{
    int64_t v = (int64_t)*out;
    get_int(r, o, key, &v);
    *out = (uint64_t)v;
}

static void get_bool(reader_t *r, json_t *o, const char *key, bool *out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return;
    if (!json_is_boolean(v)) {
        fail(r, key, "not a boolean");
        return;
    }
    *out = json_is_true(v);
}

static void get_peer(reader_t *r, json_t *v, const char *what, rk_peer_id_t *out)
{
    if (v == NULL || json_is_null(v))
        return;
    if (!json_is_string(v)) {
        fail(r, what, "not a string");
        return;
    }
    if (rk_peer_id_parse(out, json_string_value(v), NULL) != 0)
        fail(r, what, "not a peer id");
}

static void get_peer_list(reader_t *r, json_t *arr, const char *what, rk_peer_id_t *list,
                          uint32_t *n)
{
    if (arr == NULL || json_is_null(arr))
        return;
    if (!json_is_array(arr)) {
        fail(r, what, "not an array");
        return;
    }
    if (json_array_size(arr) > RK_CONF_MAX_PEERS) {
        fail(r, what, "too many peers");
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        rk_peer_id_clear(&list[i]);
        get_peer(r, v, what, &list[i]);
    }
    *n = (uint32_t)json_array_size(arr);
}

static void get_conf(reader_t *r, json_t *o, const char *key, rk_configuration_t *c)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return;
    if (!json_is_object(v)) {
        fail(r, key, "not an object");
        return;
    }
    get_peer_list(r, json_object_get(v, "peers"), key, c->peers, &c->n_peers);
    get_peer_list(r, json_object_get(v, "learners"), key, c->learners, &c->n_learners);
}

static void get_replicators(reader_t *r, json_t *arr, rk_node_status_t *st)
{
    if (arr == NULL || json_is_null(arr))
        return;
    if (!json_is_array(arr) || json_array_size(arr) > RK_STATUS_MAX_PEERS) {
        fail(r, "replicators", "not an array of at most 64 entries");
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        rk_peer_status_t *p = &st->peers[i];
        memset(p, 0, sizeof *p);
        rk_peer_id_clear(&p->peer);
        p->last_contact_age_ms = -1;
        if (!json_is_object(v)) {
            fail(r, "replicators", "entry is not an object");
            return;
        }
        get_peer(r, json_object_get(v, "peer"), "replicators.peer", &p->peer);
        get_bool(r, v, "learner", &p->learner);
        get_bool(r, v, "reachable", &p->reachable);
        get_int(r, v, "next_index", &p->next_index);
        get_int(r, v, "match_index", &p->match_index);
        get_int(r, v, "log_lags", &p->log_lags);
        get_uint(r, v, "heartbeat_times", &p->heartbeat_times);
        get_uint(r, v, "append_entries_times", &p->append_entries_times);
        get_uint(r, v, "install_snapshot_times", &p->install_snapshot_times);
        get_uint(r, v, "consecutive_errors", &p->consecutive_errors);
        get_int(r, v, "last_contact_age_ms", &p->last_contact_age_ms);
    }
    st->n_peers = (uint32_t)json_array_size(arr);
}

int rk_node_status_from_json(const char *json, rk_node_status_t *out, rk_status_t *err)
{
    if (json == NULL || out == NULL)
        return rk_status_set(err, RK_EINVAL, "NULL argument");
    json_error_t jerr;
    json_t *o = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL)
        return rk_status_set(err, RK_EINVAL, "bad JSON at line %d: %s", jerr.line, jerr.text);
    reader_t r = {.err = err, .rc = 0};
    rk_node_status_init(out);
    if (!json_is_object(o)) {
        fail(&r, "status", "not an object");
        goto done;
    }
    json_t *v = json_object_get(o, "group");
    if (json_is_string(v))
        snprintf(out->group, sizeof out->group, "%s", json_string_value(v));
    get_peer(&r, json_object_get(o, "peer"), "peer", &out->self);
    v = json_object_get(o, "state");
    if (v && (!json_is_string(v) || state_parse(json_string_value(v), &out->state) != 0))
        fail(&r, "state", "not a node state");
    get_int(&r, o, "term", &out->term);
    get_peer(&r, json_object_get(o, "leader"), "leader", &out->leader);
    get_conf(&r, o, "conf", &out->conf);
    get_bool(&r, o, "joint", &out->joint);
    get_conf(&r, o, "old_conf", &out->old_conf);
    get_int(&r, o, "first_log_index", &out->first_log_index);
    get_int(&r, o, "last_log_index", &out->last_log_index);
    get_int(&r, o, "committed_index", &out->committed_index);
    get_int(&r, o, "applied_index", &out->applied_index);
    get_int(&r, o, "snapshot_index", &out->snapshot_index);
    get_int(&r, o, "snapshot_term", &out->snapshot_term);
    get_int(&r, o, "apply_queue_depth", &out->apply_queue_depth);
    get_bool(&r, o, "quiesced", &out->quiesced);
    get_int(&r, o, "status_age_ms", &out->age_ms);
    v = json_object_get(o, "error");
    if (json_is_object(v)) {
        int64_t code = RK_EINTERNAL;
        get_int(&r, v, "code", &code);
        json_t *msg = json_object_get(v, "message");
        rk_status_set(&out->error, (int)code, "%s",
                      json_is_string(msg) ? json_string_value(msg) : "");
    }
    get_replicators(&r, json_object_get(o, "replicators"), out);
done:
    json_decref(o);
    return r.rc;
}

/* ---- text ---- */

static void fmt_peer(metrics_buf_t *b, const rk_peer_id_t *p)
{
    char buf[RK_PEER_ID_STRLEN];
    if (rk_peer_id_is_empty(p)) {
        metrics_buf_puts(b, "-");
        return;
    }
    rk_peer_id_format(p, buf, sizeof buf);
    metrics_buf_puts(b, buf);
}

static void fmt_conf(metrics_buf_t *b, const rk_configuration_t *c)
{
    char buf[RK_CONF_MAX_PEERS * 2 * (RK_PEER_ID_STRLEN + 9)];
    rk_configuration_format(c, buf, sizeof buf);
    metrics_buf_puts(b, buf[0] ? buf : "-");
}

void metrics_status_text(metrics_buf_t *b, const rk_node_status_t *st)
{
    metrics_buf_printf(b, "group: %s\npeer: ", st->group);
    fmt_peer(b, &st->self);
    metrics_buf_printf(b, "\nstate: %s\nterm: %lld\nleader: ", metrics_state_name(st->state),
                       (long long)st->term);
    fmt_peer(b, &st->leader);
    metrics_buf_puts(b, "\nconf: ");
    fmt_conf(b, &st->conf);
    if (st->joint) {
        metrics_buf_puts(b, "\nold_conf: ");
        fmt_conf(b, &st->old_conf);
    }
    metrics_buf_printf(b,
                       "\nlog: first %lld, last %lld, committed %lld, applied %lld\n"
                       "snapshot: index %lld, term %lld\napply_queue_depth: %lld\n",
                       (long long)st->first_log_index, (long long)st->last_log_index,
                       (long long)st->committed_index, (long long)st->applied_index,
                       (long long)st->snapshot_index, (long long)st->snapshot_term,
                       (long long)st->apply_queue_depth);
    if (st->quiesced)
        metrics_buf_puts(b, "quiesced: true\n");
    if (st->error.code != RK_OK)
        metrics_buf_printf(b, "error: %s: %s\n", rk_err_name(st->error.code), st->error.msg);
    metrics_buf_printf(b, "status_age_ms: %lld\n", (long long)st->age_ms);
    if (st->n_peers == 0)
        return;
    metrics_buf_printf(b, "replicators:\n  %-24s %-7s %-5s %10s %10s %8s %8s %8s %5s %5s %10s\n",
                       "peer", "role", "reach", "next", "match", "lags", "hb", "ae", "snap", "errs",
                       "contact_ms");
    for (uint32_t i = 0; i < st->n_peers && i < RK_STATUS_MAX_PEERS; i++) {
        const rk_peer_status_t *r = &st->peers[i];
        char peer[RK_PEER_ID_STRLEN];
        rk_peer_id_format(&r->peer, peer, sizeof peer);
        metrics_buf_printf(
            b, "  %-24s %-7s %-5s %10lld %10lld %8lld %8llu %8llu %5llu %5llu %10lld\n", peer,
            r->learner ? "learner" : "voter", r->reachable ? "yes" : "NO", (long long)r->next_index,
            (long long)r->match_index, (long long)r->log_lags,
            (unsigned long long)r->heartbeat_times, (unsigned long long)r->append_entries_times,
            (unsigned long long)r->install_snapshot_times,
            (unsigned long long)r->consecutive_errors, (long long)r->last_contact_age_ms);
    }
}

int rk_node_status_format(const rk_node_status_t *st, char *buf, size_t len)
{
    metrics_buf_t b;
    metrics_buf_init_fixed(&b, buf, len);
    metrics_status_text(&b, st);
    return (int)b.len;
}

int metrics_describe(const rk_metrics_t *m, char *buf, size_t len)
{
    metrics_buf_t b;
    metrics_buf_init_fixed(&b, buf, len);
    metrics_status_text(&b, &m->status);
    metrics_buf_puts(&b, "metrics:\n");
    for (size_t i = 0; i < m->n_metrics; i++) {
        const rk_metric_t *x = &m->metrics[i];
        if (x->kind == RK_METRIC_COUNTER || x->kind == RK_METRIC_GAUGE) {
            metrics_buf_printf(&b, "  %-28s %lld\n", x->name, (long long)x->value);
            continue;
        }
        if (x->hist.count == 0)
            continue;
        const rk_histogram_summary_t *h = &x->hist;
        if (x->kind == RK_METRIC_LATENCY)
            metrics_buf_printf(&b,
                               "  %-28s count=%llu mean=%.1fus min=%.1fus p50=%.1fus p95=%.1fus "
                               "p99=%.1fus p999=%.1fus max=%.1fus\n",
                               x->name, (unsigned long long)h->count, h->mean / 1e3, h->min / 1e3,
                               h->p50 / 1e3, h->p95 / 1e3, h->p99 / 1e3, h->p999 / 1e3,
                               h->max / 1e3);
        else
            metrics_buf_printf(&b,
                               "  %-28s count=%llu sum=%llu mean=%.1f min=%lld p50=%lld p95=%lld "
                               "p99=%lld p999=%lld max=%lld\n",
                               x->name, (unsigned long long)h->count, (unsigned long long)h->sum,
                               h->mean, (long long)h->min, (long long)h->p50, (long long)h->p95,
                               (long long)h->p99, (long long)h->p999, (long long)h->max);
    }
    return (int)b.len;
}
