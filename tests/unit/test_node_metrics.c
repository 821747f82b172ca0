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

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
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

static void metrics_listeners_and_admin_follow_a_real_cluster(void **state)
{
    (void)state;
    rk_node_options_t o;
    rk_node_options_init(&o);
    uint16_t admin = free_port();
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

int main(void)
{
    rk_log_set_level(RK_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_listeners_and_admin_follow_a_real_cluster),
    };
    return cmocka_run_group_tests_name("node_metrics", tests, NULL, NULL);
}
