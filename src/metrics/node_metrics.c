/* The per-node hub: the registry of metrics under JRaft's names, the status
 * the loop publishes for readers, and the derivation of listener events from
 * consecutive publications. */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/metrics/events.h"
#include "src/metrics/metrics.h"
#include "src/metrics/packed_status.h"

typedef struct metric_def {
    const char *name;
    rk_metric_kind_t kind;
    const char *help;
} metric_def_t;

static const metric_def_t defs[METRIC__COUNT] = {
#define METRICS__DEF(id, name, kind, help) [METRIC_##id] = {name, kind, help},
    METRICS_NODE_MAP(METRICS__DEF)
#undef METRICS__DEF
};

static bool is_hist(rk_metric_kind_t k)
{
    return k == RK_METRIC_LATENCY || k == RK_METRIC_SIZE;
}

struct metrics_node {
    char group[RK_STATUS_GROUP_MAX];
    rk_peer_id_t self;
    metrics_hist_t *hist[METRIC__COUNT]; /* histogram kinds only, in one block */
    metrics_hist_t *hist_block;
    _Atomic int64_t scalar[METRIC__COUNT]; /* counters and gauges */

    /* Loop-owned: the last publication, to diff the next one against, and
     * whether readers' copy lags behind it (a reader held the lock). */
    packed_status_t prev;
    metrics_brief_t prev_brief;
    bool pub_behind;

    /* Readers' copy. The loop only try-locks it. */
    pthread_mutex_t pub_lock;
    packed_status_t pub;
    metrics_brief_t brief; /* of pub */
    uint64_t pub_ns;

    /* Listener delivery, created with the first listener: most groups of a
     * big process have none. ev_lock guards it and prev against a
     * registration, which must see the last publication and every event
     * after it; the loop takes it only for a publication that changed
     * something, for as long as the queue lock (when there are
     * listeners). */
    pthread_mutex_t ev_lock;
    metrics_events_t *events;
};

/* The time of a publication, which every group takes every tick: the
 * coarse clock (a few ms of resolution, fine for age_ms) costs a tenth of
 * the precise one. */
static uint64_t coarse_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *metrics_name(metrics_id_t id)
{
    return (unsigned)id < METRIC__COUNT ? defs[id].name : "?";
}

const char *metrics_help(metrics_id_t id)
{
    return defs[id].help;
}

rk_metric_kind_t metrics_kind(metrics_id_t id)
{
    return defs[id].kind;
}

const char *metrics_node_group(const metrics_node_t *m)
{
    return m->group;
}

const rk_peer_id_t *metrics_node_self(const metrics_node_t *m)
{
    return &m->self;
}

metrics_hist_t *metrics_node_hist(metrics_node_t *m, metrics_id_t id)
{
    return m->hist[id];
}

_Atomic int64_t *metrics_node_scalar(metrics_node_t *m, metrics_id_t id)
{
    return &m->scalar[id];
}

metrics_node_t *metrics_node_new(const char *group, const rk_peer_id_t *self)
{
    metrics_node_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    size_t n_hist = 0;
    for (unsigned i = 0; i < METRIC__COUNT; i++)
        n_hist += is_hist(defs[i].kind);
    m->hist_block = malloc(n_hist * sizeof *m->hist_block);
    if (m->hist_block == NULL)
        goto err_after_node;
    size_t h = 0;
    for (unsigned i = 0; i < METRIC__COUNT; i++) {
        atomic_init(&m->scalar[i], 0);
        if (is_hist(defs[i].kind)) {
            m->hist[i] = &m->hist_block[h++];
            metrics_hist_init(m->hist[i]);
        }
    }
    snprintf(m->group, sizeof m->group, "%s", group ? group : "");
    if (self)
        m->self = *self;
    else
        rk_peer_id_clear(&m->self);
    rk_node_status_t *st = malloc(sizeof *st);
    if (st == NULL)
        goto err_after_hists;
    rk_node_status_init(st);
    snprintf(st->group, sizeof st->group, "%s", m->group);
    st->self = m->self;
    int rc = packed_status_set(&m->prev, st);
    if (rc == 0)
        rc = packed_status_copy(&m->pub, &m->prev);
    m->brief.state = st->state;
    m->brief.leader = st->leader;
    m->prev_brief = m->brief;
    free(st);
    if (rc != 0) {
        packed_status_free(&m->prev);
        packed_status_free(&m->pub);
        goto err_after_hists;
    }
    m->pub_ns = coarse_now_ns();
    pthread_mutex_init(&m->pub_lock, NULL);
    pthread_mutex_init(&m->ev_lock, NULL);
    return m;

err_after_hists:
    free(m->hist_block);
err_after_node:
    free(m);
    return NULL;
}

void metrics_node_free(metrics_node_t *m)
{
    if (m == NULL)
        return;
    metrics_events_free(m->events);
    pthread_mutex_destroy(&m->ev_lock);
    pthread_mutex_destroy(&m->pub_lock);
    packed_status_free(&m->prev);
    packed_status_free(&m->pub);
    for (unsigned i = 0; i < METRIC__COUNT; i++)
        if (m->hist[i] != NULL)
            metrics_hist_destroy(m->hist[i]);
    free(m->hist_block);
    free(m);
}

/* ---- events from consecutive publications ---- */

static rk_node_event_type_t state_event(rk_node_state_t s)
{
    switch (s) {
    case RK_STATE_LEADER:
        return RK_EVENT_BECAME_LEADER;
    case RK_STATE_FOLLOWER:
        return RK_EVENT_BECAME_FOLLOWER;
    case RK_STATE_CANDIDATE:
        return RK_EVENT_BECAME_CANDIDATE;
    default:
        return RK_EVENT_STATE_CHANGED;
    }
}

static const rk_peer_status_t *find_peer(const rk_node_status_t *st, const rk_peer_id_t *p)
{
    for (uint32_t i = 0; i < st->n_peers; i++)
        if (rk_peer_id_equal(&st->peers[i].peer, p))
            return &st->peers[i];
    return NULL;
}

#define MAX_EVENTS (4 + RK_STATUS_MAX_PEERS)

/* Appends to evs the events that lead from prev to st, in the order a
 * listener needs them: the node's own state first (stop leader-only services
 * before hearing of the new leader), then the leader, the configuration and
 * the peers. Returns the number of events. */
static size_t diff_status(const rk_node_status_t *prev, const rk_node_status_t *st,
                          metrics_event_lite_t *evs)
{
    size_t n = 0;
#define PUSH(t, s, ps)                  \
    do {                                \
        evs[n].type = (t);              \
        evs[n].state = (s);             \
        evs[n].prev_state = (ps);       \
        rk_peer_id_clear(&evs[n].peer); \
        n++;                            \
    } while (0)
    if (prev->state == RK_STATE_LEADER && st->state == RK_STATE_LEADER && prev->term != st->term) {
        /* Leadership was lost and won again between two publications (a
         * leader's term changes only by stepping down): report both. */
        PUSH(RK_EVENT_BECAME_FOLLOWER, RK_STATE_FOLLOWER, RK_STATE_LEADER);
        PUSH(RK_EVENT_BECAME_LEADER, RK_STATE_LEADER, RK_STATE_FOLLOWER);
    } else if (prev->state != st->state) {
        PUSH(state_event(st->state), st->state, prev->state);
    }
    bool had = !rk_peer_id_is_empty(&prev->leader), has = !rk_peer_id_is_empty(&st->leader);
    if (had != has ||
        (has && (!rk_peer_id_equal(&prev->leader, &st->leader) || prev->term != st->term)))
        PUSH(RK_EVENT_LEADER_CHANGED, st->state, st->state);
    if (prev->joint != st->joint || !rk_configuration_equal(&prev->conf, &st->conf))
        PUSH(RK_EVENT_CONFIGURATION_CHANGED, st->state, st->state);
    for (uint32_t i = 0; i < st->n_peers && i < RK_STATUS_MAX_PEERS; i++) {
        const rk_peer_status_t *now = &st->peers[i];
        const rk_peer_status_t *before = find_peer(prev, &now->peer);
        bool was = before ? before->reachable : true; /* new replicators start reachable */
        if (was == now->reachable)
            continue;
        PUSH(now->reachable ? RK_EVENT_PEER_REACHABLE : RK_EVENT_PEER_UNREACHABLE, st->state,
             st->state);
        evs[n - 1].peer = now->peer;
    }
#undef PUSH
    return n;
}

static metrics_brief_t brief_of(const rk_node_status_t *st)
{
    metrics_brief_t b = {.state = st->state,
                         .leader = st->leader,
                         .quiesced = st->quiesced,
                         .lagging = st->committed_index - st->applied_index >= METRICS_LAG_ENTRIES};
    for (uint32_t i = 0; i < st->n_peers && i < RK_STATUS_MAX_PEERS; i++) {
        b.lagging = b.lagging || st->peers[i].log_lags >= METRICS_LAG_ENTRIES;
        b.unreachable = b.unreachable || !st->peers[i].reachable;
    }
    return b;
}

/* Readers' copy becomes the last publication, unless a reader is copying
 * it right now: then a later publication does it (readers see age_ms
 * grow meanwhile). Never waits for a reader. */
static void sync_pub(metrics_node_t *m, bool changed)
{
    m->pub_behind = m->pub_behind || changed;
    if (pthread_mutex_trylock(&m->pub_lock) != 0)
        return;
    if (m->pub_behind && packed_status_copy(&m->pub, &m->prev) == 0) {
        m->brief = m->prev_brief;
        m->pub_behind = false;
    }
    if (!m->pub_behind)
        m->pub_ns = coarse_now_ns();
    pthread_mutex_unlock(&m->pub_lock);
}

void metrics_publish_status(metrics_node_t *m, const rk_node_status_t *st)
{
    /* An idle group publishes the same status every tick: only the time of
     * the publication changes. */
    if (packed_status_equal(&m->prev, st)) {
        sync_pub(m, false);
        return;
    }
    pthread_mutex_lock(&m->ev_lock);
    if (m->events != NULL) {
        metrics_event_lite_t evs[MAX_EVENTS];
        size_t n = 0;
        /* 19 KiB, off the loop's stack; were it not there (out of memory),
         * the listeners would miss this publication's events. */
        rk_node_status_t *prev = malloc(sizeof *prev);
        if (prev != NULL) {
            packed_status_get(&m->prev, prev, false);
            n = diff_status(prev, st, evs);
            free(prev);
        }
        if (n > 0)
            metrics_events_post(m->events, evs, n, st);
    }
    int rc = packed_status_set(&m->prev, st);
    if (rc == 0) {
        /* The hub's own group and self, in place: they come first in the
         * struct, hence in the packing. */
        memcpy(m->prev.bytes + offsetof(rk_node_status_t, group), m->group, sizeof m->group);
        memcpy(m->prev.bytes + offsetof(rk_node_status_t, self), &m->self, sizeof m->self);
    }
    pthread_mutex_unlock(&m->ev_lock);
    if (rc != 0)
        return; /* out of memory: readers keep the previous status */
    m->prev_brief = brief_of(st);
    sync_pub(m, true);
}

void metrics_publish_touch(metrics_node_t *m)
{
    sync_pub(m, false);
}

void metrics_read_brief(metrics_node_t *m, metrics_brief_t *out)
{
    pthread_mutex_lock(&m->pub_lock);
    *out = m->brief;
    pthread_mutex_unlock(&m->pub_lock);
}

void metrics_summary_add(metrics_summary_t *s, const metrics_brief_t *b)
{
    s->groups++;
    if ((unsigned)b->state <= RK_STATE_SHUTDOWN)
        s->states[b->state]++;
    s->no_leader += rk_peer_id_is_empty(&b->leader);
    s->quiesced += b->quiesced;
    s->lagging += b->lagging;
    s->unreachable += b->unreachable;
}

void metrics_totals_init(metrics_totals_t *t)
{
    memset(&t->summary, 0, sizeof t->summary);
    for (unsigned i = 0; i < METRIC__COUNT; i++) {
        t->scalar[i] = 0;
        metrics_hist_merged_init(&t->hist[i]);
    }
}

void metrics_totals_add(metrics_totals_t *t, metrics_node_t *m)
{
    metrics_brief_t b;
    metrics_read_brief(m, &b);
    metrics_summary_add(&t->summary, &b);
    for (unsigned i = 0; i < METRIC__COUNT; i++) {
        if (is_hist(defs[i].kind))
            metrics_hist_merge(&t->hist[i], m->hist[i]);
        else
            t->scalar[i] += atomic_load_explicit(&m->scalar[i], memory_order_relaxed);
    }
}

void metrics_read_status(metrics_node_t *m, rk_node_status_t *out)
{
    pthread_mutex_lock(&m->pub_lock);
    packed_status_get(&m->pub, out, true);
    uint64_t at = m->pub_ns;
    pthread_mutex_unlock(&m->pub_lock);
    uint64_t now = coarse_now_ns();
    out->age_ms = now > at ? (int64_t)((now - at) / 1000000u) : 0;
    /* The gauge moves between publications; the reader gets its latest. */
    out->apply_queue_depth =
        atomic_load_explicit(&m->scalar[METRIC_APPLY_QUEUE_DEPTH], memory_order_relaxed);
}

rk_metrics_t *metrics_snapshot(metrics_node_t *m)
{
    rk_metrics_t *s = malloc(sizeof *s);
    if (s == NULL)
        return NULL;
    s->metrics = calloc(METRIC__COUNT, sizeof *s->metrics);
    if (s->metrics == NULL) {
        free(s);
        return NULL;
    }
    s->n_metrics = METRIC__COUNT;
    metrics_read_status(m, &s->status);
    for (unsigned i = 0; i < METRIC__COUNT; i++) {
        rk_metric_t *x = &s->metrics[i];
        x->name = defs[i].name;
        x->help = defs[i].help;
        x->kind = defs[i].kind;
        if (is_hist(x->kind))
            metrics_hist_summarize(m->hist[i], &x->hist);
        else
            x->value = atomic_load_explicit(&m->scalar[i], memory_order_relaxed);
    }
    return s;
}

void rk_metrics_free(rk_metrics_t *m)
{
    if (m == NULL)
        return;
    free(m->metrics);
    free(m);
}

const rk_metric_t *rk_metrics_find(const rk_metrics_t *m, const char *name)
{
    if (m == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < m->n_metrics; i++)
        if (strcmp(m->metrics[i].name, name) == 0)
            return &m->metrics[i];
    return NULL;
}

int metrics_listener_add(metrics_node_t *m, rk_node_listener_t *l)
{
    pthread_mutex_lock(&m->ev_lock);
    if (m->events == NULL) {
        /* The first listener: it starts from the last publication. */
        rk_node_status_t *st = malloc(sizeof *st);
        if (st != NULL) {
            packed_status_get(&m->prev, st, true);
            m->events = metrics_events_new(st);
            free(st);
        }
        if (m->events == NULL) {
            pthread_mutex_unlock(&m->ev_lock);
            return RK_ENOMEM;
        }
    }
    int rc = metrics_events_add(m->events, l);
    pthread_mutex_unlock(&m->ev_lock);
    return rc;
}

/* The delivery, once created, lives as long as the hub: callers may use it
 * without ev_lock (removal waits for a listener call to end, which must
 * never hold up the loop). */
static metrics_events_t *events_of(metrics_node_t *m)
{
    pthread_mutex_lock(&m->ev_lock);
    metrics_events_t *e = m->events;
    pthread_mutex_unlock(&m->ev_lock);
    return e;
}

int metrics_listener_remove(metrics_node_t *m, rk_node_listener_t *l)
{
    metrics_events_t *e = events_of(m);
    return e != NULL ? metrics_events_remove(e, l) : RK_ENOTFOUND;
}

void metrics_events_flush(metrics_node_t *m)
{
    metrics_events_t *e = events_of(m);
    if (e != NULL)
        metrics_events_flush_queue(e);
}
