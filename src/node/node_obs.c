/* The node's side of observability: creates the metrics hub and the admin
 * endpoint, builds the rk_node_status_t the loop publishes (from the core's
 * status and per-follower progress), counts what the replicators send, times
 * request/answer pairs (AppendEntries both ways, ReadIndex, elections) from
 * the messages that pass through the transport, and implements the public
 * rk_node_get_metrics / rk_node_describe / listener functions of
 * include/raftkit/metrics.h. Everything here that runs on the loop is cheap:
 * a full status is built only on ticks and on changes. */
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "src/admin/admin.h"
#include "src/metrics/metrics.h"
#include "src/metrics/packed_status.h"
#include "src/node/node_internal.h"

int node_obs_init(rk_node_t *n, rk_status_t *err)
{
    n->metrics = metrics_node_new(n->group, &n->self);
    if (n->metrics == NULL)
        return rk_status_set(err, RK_ENOMEM, "metrics");
    if (n->store != NULL)
        n->obs_log_last = log_store_last_index(n->store);
    if (n->opts.admin_port <= 0)
        return 0;
    if (n->opts.admin_port > 65535)
        return rk_status_set(err, RK_EINVAL, "admin_port %d out of range", n->opts.admin_port);
    /* Bound to the node's own IP, never to every interface. */
    const char *host = n->opts.listen.host[0] != '\0' ? n->opts.listen.host : n->self.endpoint.host;
    /* With TLS: HTTPS with the node's certificate and a bearer token. */
    admin_security_t sec = {n->opts.tls_cert, n->opts.tls_key, n->opts.admin_token};
    n->admin = admin_attach_secure(host, (uint16_t)n->opts.admin_port, n->metrics, &sec, err);
    return n->admin ? 0 : err->code;
}

/* ---- rings of messages waiting for their answer ---- */

static void ring_free(node_obs_ring_t *r)
{
    free(r->e);
    memset(r, 0, sizeof *r);
}

/* Makes room for one more entry: grows the storage up to NODE_OBS_INFLIGHT
 * entries, then forgets the oldest. False when out of memory (the sample is
 * lost, nothing else). */
static bool ring_make_room(node_obs_ring_t *r)
{
    if (r->count < r->cap)
        return true;
    if (r->cap == NODE_OBS_INFLIGHT) {
        r->head = (r->head + 1) % r->cap;
        r->count--;
        return true;
    }
    uint32_t cap = r->cap > 0 ? 2 * r->cap : 4;
    node_obs_inflight_t *e = malloc(cap * sizeof *e);
    if (e == NULL)
        return false;
    for (uint32_t i = 0; i < r->count; i++)
        e[i] = r->e[(r->head + i) % r->cap];
    free(r->e);
    r->e = e;
    r->head = 0;
    r->cap = cap;
    return true;
}

static void ring_push(node_obs_ring_t *r, uint64_t key, uint64_t t0, uint32_t peer)
{
    if (!ring_make_room(r))
        return;
    r->e[(r->head + r->count) % r->cap] = (node_obs_inflight_t){key, t0, peer};
    r->count++;
}

/* Pops the oldest entry and returns its start time, 0 when empty. */
static uint64_t ring_pop(node_obs_ring_t *r)
{
    if (r->count == 0)
        return 0;
    uint64_t t0 = r->e[r->head].t0_ns;
    r->head = (r->head + 1) % r->cap;
    r->count--;
    return t0;
}

/* Pops every entry whose key is <= key (a FIFO of increasing keys) and
 * returns the oldest one's start time, 0 when none matched. */
static uint64_t ring_pop_upto(node_obs_ring_t *r, uint64_t key)
{
    uint64_t t0 = 0;
    while (r->count > 0 && r->e[r->head].key <= key) {
        uint64_t t = ring_pop(r);
        if (t0 == 0)
            t0 = t;
    }
    return t0;
}

/* Removes the entry for (peer, key) wherever it is; returns its start time
 * or 0. */
static uint64_t ring_take(node_obs_ring_t *r, uint32_t peer, uint64_t key)
{
    for (uint32_t i = 0; i < r->count; i++) {
        node_obs_inflight_t *e = &r->e[(r->head + i) % r->cap];
        if (e->key != key || e->peer != peer)
            continue;
        uint64_t t0 = e->t0_ns;
        for (uint32_t k = i; k + 1 < r->count; k++)
            r->e[(r->head + k) % r->cap] = r->e[(r->head + k + 1) % r->cap];
        r->count--;
        return t0;
    }
    return 0;
}

/* ---- the leader's view of its followers ---- */

static void lead_obs_free(rk_node_t *n)
{
    node_lead_obs_t *l = n->lead_obs;
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n_rep; i++)
        ring_free(&l->rep[i].sent);
    free(l->rep);
    ring_free(&l->reads_in);
    free(l);
    n->lead_obs = NULL;
}

/* L: the counters of follower p. Only what a leader sends creates them
 * (create), so that nothing a follower receives allocates leader state.
 * NULL when absent or out of memory. */
static node_rep_obs_t *rep_obs(rk_node_t *n, const rk_peer_id_t *p, bool create)
{
    node_lead_obs_t *l = n->lead_obs;
    if (l == NULL && create)
        l = n->lead_obs = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    for (size_t i = 0; i < l->n_rep; i++)
        if (rk_peer_id_equal(&l->rep[i].peer, p))
            return &l->rep[i];
    if (!create || l->n_rep == 2 * RK_CONF_MAX_PEERS)
        return NULL;
    if (l->n_rep == l->cap) {
        size_t cap = l->cap > 0 ? 2 * l->cap : 2;
        node_rep_obs_t *rep = realloc(l->rep, cap * sizeof *rep);
        if (rep == NULL)
            return NULL;
        l->rep = rep;
        l->cap = cap;
    }
    node_rep_obs_t *r = &l->rep[l->n_rep++];
    memset(r, 0, sizeof *r);
    r->peer = *p;
    return r;
}

void node_obs_free(rk_node_t *n)
{
    lead_obs_free(n);
    ring_free(&n->obs_app_in);
    admin_detach(n->admin, n->metrics);
    n->admin = NULL;
    metrics_node_free(n->metrics);
    n->metrics = NULL;
}

void node_obs_received(rk_node_t *n, const core_msg_t *m)
{
    if (n->metrics == NULL)
        return;
    switch (m->type) {
    case CORE_MSG_APP:
        /* Follower: answered (APP_RESP) once the entries are durable. */
        if (m->n_entries > 0)
            metrics_record(n->metrics, METRIC_HANDLE_APPEND_ENTRIES_COUNT, m->n_entries);
        ring_push(&n->obs_app_in, m->index + m->n_entries, metrics_now_ns(), 0);
        break;
    case CORE_MSG_APP_RESP: {
        /* Leader: the pipelined replicator has many AppendEntries in flight
         * to one follower; a success for index i acknowledges every send
         * ending at or below i, and the oldest of them is the round trip
         * that just completed. A rejection restarts replication from a new
         * next index, so whatever was in flight is forgotten. */
        node_rep_obs_t *r = rep_obs(n, &m->from, false);
        if (r == NULL)
            break;
        r->contacted = true;
        if (m->reject) {
            r->sent.count = 0;
            break;
        }
        uint64_t t0 = ring_pop_upto(&r->sent, m->index);
        if (t0 != 0)
            metrics_record_since(n->metrics, METRIC_REPLICATE_ENTRIES, t0);
        break;
    }
    case CORE_MSG_HEARTBEAT_RESP: {
        node_rep_obs_t *r = rep_obs(n, &m->from, false);
        if (r)
            r->contacted = true;
        break;
    }
    case CORE_MSG_READ_INDEX: {
        /* Leader: a follower's read, answered after a heartbeat round. */
        node_rep_obs_t *r = rep_obs(n, &m->from, false);
        if (r)
            ring_push(&n->lead_obs->reads_in, m->ctx, metrics_now_ns(),
                      (uint32_t)(r - n->lead_obs->rep));
        break;
    }
    default:
        break;
    }
}

void node_obs_event(rk_node_t *n, const core_event_t *ev)
{
    if (n->metrics == NULL || ev->type != CORE_EV_ROLE)
        return;
    /* One sample per campaign, from its start to the role it ended in
     * (timeouts that restart the same kind of campaign are part of it). */
    if (n->obs_vote_t0 != 0 && ev->old_role == CORE_PRE_CANDIDATE)
        metrics_record_since(n->metrics, METRIC_PRE_VOTE, n->obs_vote_t0);
    else if (n->obs_vote_t0 != 0 && ev->old_role == CORE_CANDIDATE)
        metrics_record_since(n->metrics, METRIC_REQUEST_VOTE, n->obs_vote_t0);
    n->obs_vote_t0 =
        ev->role == CORE_PRE_CANDIDATE || ev->role == CORE_CANDIDATE ? metrics_now_ns() : 0;
}

void node_obs_persisted(rk_node_t *n, const node_persist_t *p)
{
    if (n->metrics == NULL)
        return;
    if (p->has_snapshot)
        n->obs_log_last = p->snapshot_index;
    if (p->n == 0)
        return;
    /* Entries starting at or below what is already in the log replace a
     * conflicting suffix (Raft 5.3: "delete the existing entry and all
     * that follow it"); the write that did it is the truncation's cost. */
    if (p->entries[0].index <= n->obs_log_last)
        metrics_record_since(n->metrics, METRIC_TRUNCATE_LOG_SUFFIX, p->t0_ns);
    n->obs_log_last = p->entries[p->n - 1].index;
}

void node_obs_sent(rk_node_t *n, const core_msg_t *m, int rc)
{
    if (n->metrics == NULL)
        return;
    if (m->type == CORE_MSG_APP_RESP && rc == 0) {
        /* Follower: the oldest AppendEntries this answer covers. A rejection
         * answers exactly one request (the oldest waiting). */
        uint64_t t0 =
            m->reject ? ring_pop(&n->obs_app_in) : ring_pop_upto(&n->obs_app_in, m->index);
        if (t0 != 0)
            metrics_record_since(n->metrics, METRIC_HANDLE_APPEND_ENTRIES, t0);
        return;
    }
    if (m->type == CORE_MSG_READ_INDEX_RESP) {
        node_rep_obs_t *r = rep_obs(n, &m->to, false);
        uint64_t t0 =
            r ? ring_take(&n->lead_obs->reads_in, (uint32_t)(r - n->lead_obs->rep), m->ctx) : 0;
        if (t0 != 0 && rc == 0 && !m->reject) {
            metrics_record_since(n->metrics, METRIC_HANDLE_READ_INDEX, t0);
            metrics_record(n->metrics, METRIC_HANDLE_READ_INDEX_ENTRIES, 1);
        }
        return;
    }
    if (m->type != CORE_MSG_APP && m->type != CORE_MSG_HEARTBEAT && m->type != CORE_MSG_SNAP)
        return;
    node_rep_obs_t *r = rep_obs(n, &m->to, true);
    if (r == NULL)
        return;
    if (rc != 0) {
        r->consecutive_errors++;
        return;
    }
    r->consecutive_errors = 0;
    switch (m->type) {
    case CORE_MSG_HEARTBEAT:
        r->heartbeat_times++;
        break;
    case CORE_MSG_SNAP:
        r->install_snapshot_times++;
        break;
    default:
        if (m->n_entries == 0) {
            r->heartbeat_times++; /* an empty AppendEntries is a probe / heartbeat */
            break;
        }
        r->append_entries_times++;
        ring_push(&r->sent, m->index + m->n_entries, metrics_now_ns(), 0);
        uint64_t bytes = 0;
        for (size_t i = 0; i < m->n_entries; i++)
            bytes += buf_len(m->entries[i].data);
        metrics_record(n->metrics, METRIC_REPLICATE_ENTRIES_COUNT, m->n_entries);
        metrics_record(n->metrics, METRIC_REPLICATE_ENTRIES_BYTES, bytes);
        break;
    }
}

static void fill_peers(rk_node_t *n, rk_node_status_t *st, const core_conf_t *conf)
{
    core_progress_info_t pr[2 * RK_CONF_MAX_PEERS + 1];
    size_t k = core_get_progress(n->core, pr, sizeof pr / sizeof pr[0]);
    if (k > sizeof pr / sizeof pr[0])
        k = sizeof pr / sizeof pr[0];
    uint64_t tick_ms = (uint64_t)n->opts.election_timeout_ms / 10;
    for (size_t i = 0; i < k && st->n_peers < RK_STATUS_MAX_PEERS; i++) {
        if (pr[i].is_self)
            continue;
        rk_peer_status_t *p = &st->peers[st->n_peers++];
        memset(p, 0, sizeof *p);
        p->peer = pr[i].peer;
        p->learner = core_conf_is_learner(conf, &pr[i].peer);
        /* Unreachable once silent for a whole election timeout (10 ticks). */
        p->reachable = pr[i].ticks_since_contact < 10;
        p->next_index = (int64_t)pr[i].next;
        p->match_index = (int64_t)pr[i].match;
        p->log_lags = st->last_log_index - p->match_index;
        p->last_contact_age_ms = (int64_t)(pr[i].ticks_since_contact * tick_ms);
        node_rep_obs_t *r = rep_obs(n, &pr[i].peer, false);
        if (r == NULL || !r->contacted)
            p->last_contact_age_ms = -1; /* the core counts from our election */
        if (r) {
            p->heartbeat_times = r->heartbeat_times;
            p->append_entries_times = r->append_entries_times;
            p->install_snapshot_times = r->install_snapshot_times;
            p->consecutive_errors = r->consecutive_errors;
        }
        metrics_record(n->metrics, METRIC_REPLICATE_INFLIGHTS_COUNT, pr[i].inflight_msgs);
    }
}

void node_obs_publish(rk_node_t *n, const core_status_t *cs, const core_conf_t *conf,
                      uint64_t conf_index, rk_node_state_t state)
{
    if (n->metrics == NULL)
        return;
    if (cs->role != CORE_LEADER)
        lead_obs_free(n); /* counters are per leadership */
    uint64_t now = node_now_ms(n);
    uint64_t tick_ms = (uint64_t)n->opts.election_timeout_ms / 10;
    node_obs_pub_t *last = &n->obs_pub; /* what the last publication said */
    bool changed = state != n->obs_state || cs->term != n->obs_term ||
                   !rk_peer_id_equal(&cs->leader, &n->obs_leader) ||
                   conf_index != n->obs_conf_index || cs->quiesced != last->quiesced;
    if (!changed && now < n->obs_published_ms + tick_ms)
        return;
    n->obs_state = state;
    n->obs_term = cs->term;
    n->obs_leader = cs->leader;
    n->obs_conf_index = conf_index;
    n->obs_published_ms = now;

    node_obs_pub_t cur = {
        .first = (int64_t)cs->first_index,
        .last = (int64_t)cs->last_index,
        .commit = (int64_t)cs->commit,
        .applied = (int64_t)atomic_load(&n->applied),
        .snap_index = (int64_t)n->last_snapshot_index,
        .snap_term = (int64_t)n->last_snapshot_term,
        .quiesced = cs->quiesced,
    };
    pthread_mutex_lock(&n->mu);
    cur.depth = (int64_t)n->task_count;
    pthread_mutex_unlock(&n->mu);
    metrics_set(n->metrics, METRIC_APPLY_QUEUE_DEPTH, cur.depth);
    /* A node that does not lead, whose indexes did not move since its last
     * publication (an idle group's, every tick), has only the time to
     * publish: thousands of idle groups build no status every tick. */
    if (!changed && cs->role != CORE_LEADER && state != RK_STATE_ERROR &&
        memcmp(&cur, last, sizeof cur) == 0) {
        metrics_publish_touch(n->metrics);
        return;
    }
    *last = cur;
    /* 19 KiB: kept off the loop's stack, and out of the node (built on
     * ticks and changes only) */
    rk_node_status_t *st = malloc(sizeof *st);
    if (st == NULL)
        return;              /* the next call retries */
    packed_status_reset(st); /* the hub packs it: entries past counts unused */
    st->state = state;
    st->term = (int64_t)cs->term;
    st->quiesced = cs->quiesced;
    st->leader = cs->leader;
    packed_status_conf_copy(&st->conf, &conf->cur);
    st->joint = conf->joint;
    if (conf->joint)
        packed_status_conf_copy(&st->old_conf, &conf->old);
    st->first_log_index = cur.first;
    st->last_log_index = cur.last;
    st->committed_index = cur.commit;
    st->applied_index = cur.applied;
    st->snapshot_index = cur.snap_index;
    st->snapshot_term = cur.snap_term;
    st->apply_queue_depth = cur.depth;
    if (state == RK_STATE_ERROR)
        rk_status_set(&st->error, cs->fatal ? cs->fatal : RK_EINTERNAL, "node is in error");
    if (cs->role == CORE_LEADER)
        fill_peers(n, st, conf);
    metrics_publish_status(n->metrics, st);
    free(st);
}

/* ---- public API (include/raftkit/metrics.h) ---- */

rk_metrics_t *rk_node_get_metrics(rk_node_t *n)
{
    if (n == NULL || n->metrics == NULL)
        return NULL;
    return metrics_snapshot(n->metrics);
}

int rk_node_describe(rk_node_t *n, char *buf, size_t len)
{
    rk_metrics_t *m = rk_node_get_metrics(n);
    if (m == NULL)
        return RK_ENOMEM;
    int r = metrics_describe(m, buf, len);
    rk_metrics_free(m);
    return r;
}

int rk_node_add_listener(rk_node_t *n, rk_node_listener_t *l)
{
    if (n == NULL || n->metrics == NULL)
        return RK_EINVAL;
    return metrics_listener_add(n->metrics, l);
}

int rk_node_remove_listener(rk_node_t *n, rk_node_listener_t *l)
{
    if (n == NULL || n->metrics == NULL)
        return RK_ENOTFOUND;
    return metrics_listener_remove(n->metrics, l);
}
