/* Metrics, status, listeners and the admin endpoint on real nodes: values
 * move as the workload says, listeners see a failover in order, and the
 * endpoint serves parseable /metrics, /status and /health. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "raftkit/log.h"
#include "raftkit/metrics.h"
#include "tests/node/cluster.h"
#include "tests/support/http_client.h"
#include "tests/support/prom_check.h"

#define MAX_EV 128
typedef struct recorder {
    rk_node_listener_t l;
    pthread_mutex_t lock;
    int n;
    rk_node_event_t ev[MAX_EV];
} recorder_t;

static void on_event(rk_node_listener_t *l, const rk_node_event_t *ev)
{
    recorder_t *r = rk_container_of(l, recorder_t, l);
    pthread_mutex_lock(&r->lock);
    if (r->n < MAX_EV)
        r->ev[r->n++] = *ev;
    pthread_mutex_unlock(&r->lock);
}

typedef struct seen_arg {
    recorder_t *r;
    rk_node_event_type_t type;
    const rk_peer_id_t *leader; /* for LEADER_CHANGED: this leader */
} seen_arg_t;

static bool seen(void *p)
{
    seen_arg_t *a = p;
    bool found = false;
    pthread_mutex_lock(&a->r->lock);
    for (int i = 0; i < a->r->n && !found; i++)
        found = a->r->ev[i].type == a->type &&
                (a->leader == NULL || rk_peer_id_equal(&a->r->ev[i].leader, a->leader));
    pthread_mutex_unlock(&a->r->lock);
    return found;
}

static int find_event(recorder_t *r, rk_node_event_type_t t, int from)
{
    pthread_mutex_lock(&r->lock);
    int at = -1;
    for (int i = from; i < r->n && at < 0; i++)
        if (r->ev[i].type == t)
            at = i;
    pthread_mutex_unlock(&r->lock);
    return at;
}

typedef struct applied_arg {
    rk_node_t *node;
    int64_t index;
} applied_arg_t;

/* The node's published status shows index applied. */
static bool published_applied(void *p)
{
    applied_arg_t *a = p;
    rk_metrics_t *m = rk_node_get_metrics(a->node);
    bool ok = m != NULL && m->status.applied_index >= a->index &&
              m->status.committed_index >= a->index && m->status.last_log_index >= a->index;
    rk_metrics_free(m);
    return ok;
}

static void metrics_listeners_and_admin_follow_a_real_cluster(void **state)
{
    (void)state;
    rk_node_options_t o;
    rk_node_options_init(&o);
    uint16_t admin = http_free_port();
    assert_int_not_equal(admin, 0);
    o.admin_port = admin; /* the three nodes of this process share one endpoint */
    tc_cluster_t c;
    tc_cluster_init(&c, "gmet", 3, 3, &o);
    recorder_t rec[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tc_start(&c, i, false), 0);
        memset(&rec[i], 0, sizeof rec[i]);
        pthread_mutex_init(&rec[i].lock, NULL);
        rec[i].l.on_event = on_event;
        assert_int_equal(rk_node_add_listener(c.nodes[i].node, &rec[i].l), 0);
    }
    int leader = tc_wait_leader(&c, 5000);
    assert_true(leader >= 0);
    seen_arg_t became = {.r = &rec[leader], .type = RK_EVENT_BECAME_LEADER};
    assert_true(tc_wait(seen, &became, 5000));

    /* A known workload: 1000 tasks. */
    assert_int_equal(tc_apply_many(&c, leader, 1000), 1000);
    int64_t last = rk_node_last_log_index(c.nodes[leader].node);
    assert_true(tc_wait_applied(&c, last, 5000));
    rk_metrics_t *m = rk_node_get_metrics(c.nodes[leader].node);
    assert_non_null(m);
    assert_int_equal(rk_metrics_find(m, "apply-tasks")->value, 1000);
    assert_int_equal(rk_metrics_find(m, "fsm-apply-tasks-count")->hist.sum, 1000);
    const rk_metric_t *al = rk_metrics_find(m, "append-logs");
    const rk_metric_t *alc = rk_metrics_find(m, "append-logs-count");
    assert_true(al->hist.count >= 1 && al->hist.count <= 1000);
    assert_true(alc->hist.sum >= 1000); /* plus the leader's own configuration/no-op entries */
    assert_true(al->hist.count * (uint64_t)alc->hist.max >= 1000);
    assert_true(rk_metrics_find(m, "append-logs-bytes")->hist.sum >= 8000); /* u64 per task */
    assert_true(rk_metrics_find(m, "replicate-entries-count")->hist.sum >= 2000);
    assert_true(rk_metrics_find(m, "fsm-apply-tasks")->hist.count >= 1);
    assert_int_equal(m->status.state, RK_STATE_LEADER);
    assert_int_equal(m->status.n_peers, 2);
    rk_metrics_free(m);
    /* Followers, which publish only the time while their indexes stand
     * still, publish their status again when the indexes move: twice. */
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            assert_int_equal(tc_apply_many(&c, leader, 10), 10);
            last = rk_node_last_log_index(c.nodes[leader].node);
        }
        for (int i = 0; i < 3; i++) {
            applied_arg_t a = {.node = c.nodes[i].node, .index = last};
            if (!tc_wait(published_applied, &a, 5000))
                fail_msg("node %d does not publish index %lld applied", i, (long long)last);
        }
    }

    char *text = malloc(1 << 16);
    int len = rk_node_describe(c.nodes[leader].node, text, 1 << 16);
    assert_true(len > 0);
    assert_non_null(strstr(text, "state: LEADER"));
    assert_non_null(strstr(text, "fsm-apply-tasks-count"));
    free(text);

    /* The admin endpoint: all three nodes, each under its peer label. */
    char *body;
    assert_int_equal(http_get(admin, "/metrics", &body), 200);
    char err[256] = "";
    if (prom_check(body, err, sizeof err) != 0)
        fail_msg("%s", err);
    free(body);
    assert_int_equal(http_get(admin, "/status", &body), 200);
    assert_non_null(strstr(body, "\"groups\""));
    assert_non_null(strstr(body, "\"replicators\""));
    free(body);
    /* Every node knows the leader within a heartbeat or two. */
    int code = 0;
    for (int i = 0; i < 100 && (code = http_get(admin, "/health", &body)) != 200; i++) {
        free(body);
        tc_msleep(50);
    }
    assert_int_equal(code, 200);
    free(body);

    /* Failover: the leader dies; a new one is elected; listeners see it. */
    rk_peer_id_t old_leader = c.nodes[leader].id;
    assert_int_equal(rk_node_remove_listener(c.nodes[leader].node, &rec[leader].l), 0);
    tc_stop(&c, leader);
    int nl = tc_wait_leader(&c, 5000);
    assert_true(nl >= 0 && nl != leader);
    int other = 3 - leader - nl;
    seen_arg_t became2 = {.r = &rec[nl], .type = RK_EVENT_BECAME_LEADER};
    assert_true(tc_wait(seen, &became2, 5000));
    seen_arg_t follows = {
        .r = &rec[other], .type = RK_EVENT_LEADER_CHANGED, .leader = &c.nodes[nl].id};
    assert_true(tc_wait(seen, &follows, 5000));
    /* Order on the new leader: it followed the old leader, then campaigned
     * (or at least left the follower state), then led. */
    int first_follow = -1;
    pthread_mutex_lock(&rec[nl].lock);
    assert_int_equal(rec[nl].ev[0].type, RK_EVENT_CURRENT);
    for (int i = 0; i < rec[nl].n && first_follow < 0; i++)
        if (rec[nl].ev[i].type == RK_EVENT_LEADER_CHANGED &&
            rk_peer_id_equal(&rec[nl].ev[i].leader, &old_leader))
            first_follow = i;
    pthread_mutex_unlock(&rec[nl].lock);
    int lead_at = find_event(&rec[nl], RK_EVENT_BECAME_LEADER, 0);
    assert_true(lead_at > 0);
    assert_true(first_follow < lead_at || first_follow == -1 /* CURRENT already had it */);
    int cand_at = find_event(&rec[nl], RK_EVENT_BECAME_CANDIDATE, 0);
    if (cand_at >= 0)
        assert_true(cand_at < lead_at);

    for (int i = 0; i < 3; i++)
        if (i != leader)
            assert_int_equal(rk_node_remove_listener(c.nodes[i].node, &rec[i].l), 0);
    tc_cluster_destroy(&c);
}

/* ---- every declared metric is recorded ---- */

typedef struct read_wait {
    rk_read_index_closure_t c;
    atomic_int done, code;
} read_wait_t;

static void read_done(rk_read_index_closure_t *c, const rk_status_t *st, int64_t index,
                      const void *ctx, size_t len)
{
    (void)index, (void)ctx, (void)len;
    read_wait_t *w = rk_container_of(c, read_wait_t, c);
    atomic_store(&w->code, st->code);
    atomic_store(&w->done, 1);
}

static bool read_finished(void *p)
{
    return atomic_load(&((read_wait_t *)p)->done) != 0;
}

/* A linearizable read on node; returns its status code (-1: no answer). */
static int read_sync(rk_node_t *node)
{
    read_wait_t w = {.c = {.run = read_done}};
    if (rk_node_read_index(node, NULL, 0, &w.c) != 0)
        return -1;
    if (!tc_wait(read_finished, &w, 5000))
        return -1;
    return atomic_load(&w.code);
}

static bool req_ran(void *p)
{
    return atomic_load(&((tc_req_t *)p)->runs) > 0;
}

static uint64_t hist_count(rk_node_t *node, const char *name)
{
    rk_metrics_t *m = rk_node_get_metrics(node);
    assert_non_null(m);
    const rk_metric_t *x = rk_metrics_find(m, name);
    assert_non_null(x);
    uint64_t v = x->hist.count;
    rk_metrics_free(m);
    return v;
}

typedef struct metric_wait {
    rk_node_t *node;
    const char *name;
} metric_wait_t;

static bool metric_moved(void *p)
{
    metric_wait_t *w = p;
    return hist_count(w->node, w->name) > 0;
}

#define ASSERT_MOVED(node, name)                              \
    do {                                                      \
        metric_wait_t mw_ = {(node), (name)};                 \
        if (!tc_wait(metric_moved, &mw_, 5000))               \
            fail_msg("metric %s was never recorded", (name)); \
    } while (0)

static void every_declared_metric_is_recorded_under_a_workload_that_exercises_it(void **state)
{
    (void)state;
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.snapshot_interval_secs = 0; /* snapshots only when asked */
    tc_cluster_t c;
    tc_cluster_init(&c, "gall", 3, 3, &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tc_start(&c, i, false), 0);
    int leader = tc_wait_leader(&c, 5000);
    assert_true(leader >= 0);
    int f1 = (leader + 1) % 3, f2 = (leader + 2) % 3;
    rk_node_t *L = c.nodes[leader].node;

    /* Elections: the leader pre-voted, then won a vote. */
    ASSERT_MOVED(L, "pre-vote");
    ASSERT_MOVED(L, "request-vote");

    /* Replication both ways, and applying. */
    assert_int_equal(tc_apply_many(&c, leader, 100), 100);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(L), 5000));
    ASSERT_MOVED(L, "replicate-entries");
    ASSERT_MOVED(L, "fsm-commit");
    ASSERT_MOVED(c.nodes[f1].node, "handle-append-entries");
    ASSERT_MOVED(c.nodes[f1].node, "handle-append-entries-count");
    ASSERT_MOVED(c.nodes[f1].node, "fsm-commit");

    /* Reads: on the leader (confirmed there) and on a follower (confirmed
     * by the leader for it). */
    assert_int_equal(read_sync(L), 0);
    ASSERT_MOVED(L, "read-index");
    ASSERT_MOVED(L, "handle-read-index");
    ASSERT_MOVED(L, "handle-read-index-entries");
    uint64_t hri = hist_count(L, "handle-read-index");
    assert_int_equal(read_sync(c.nodes[f1].node), 0);
    ASSERT_MOVED(c.nodes[f1].node, "read-index");
    assert_true(hist_count(L, "handle-read-index") > hri);

    /* A snapshot compacts the leader's log; a follower that was down while
     * it happened catches up by installing it. */
    tc_stop(&c, f2);
    assert_int_equal(tc_apply_many(&c, leader, 50), 50);
    tc_req_t snap;
    tc_req_init(&snap);
    assert_int_equal(rk_node_snapshot(L, &snap.closure), 0);
    assert_true(tc_wait(req_ran, &snap, 5000));
    assert_int_equal(atomic_load(&snap.code), 0);
    ASSERT_MOVED(L, "fsm-snapshot-save");
    ASSERT_MOVED(L, "truncate-log-prefix");
    assert_int_equal(tc_start(&c, f2, false), 0);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(L), 10000));
    ASSERT_MOVED(c.nodes[f2].node, "install-snapshot");
    ASSERT_MOVED(c.nodes[f2].node, "fsm-snapshot-load");

    /* A conflicting suffix: the leader appends entries nobody else gets,
     * the others move on without it, and when it comes back it replaces
     * them (Raft 5.3). */
    tc_stop(&c, f1);
    tc_stop(&c, f2);
    tc_req_t lost[5];
    for (int i = 0; i < 5; i++) {
        tc_req_init(&lost[i]);
        assert_int_equal(tc_apply(&c, leader, 1, &lost[i], -1), 0);
    }
    assert_true(tc_wait(req_ran, &lost[4], 5000)); /* failed once leadership went */
    tc_stop(&c, leader);
    assert_int_equal(tc_start(&c, f1, false), 0);
    assert_int_equal(tc_start(&c, f2, false), 0);
    int nl = tc_wait_leader(&c, 5000);
    assert_true(nl == f1 || nl == f2);
    assert_int_equal(tc_apply_many(&c, nl, 10), 10);
    assert_int_equal(tc_start(&c, leader, false), 0);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(c.nodes[nl].node), 10000));
    ASSERT_MOVED(c.nodes[leader].node, "truncate-log-suffix");

    tc_cluster_destroy(&c);
}

int main(void)
{
    rk_log_set_level(RK_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_listeners_and_admin_follow_a_real_cluster),
        cmocka_unit_test(every_declared_metric_is_recorded_under_a_workload_that_exercises_it),
    };
    return cmocka_run_group_tests_name("node_metrics", tests, NULL, NULL);
}
