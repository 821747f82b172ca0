/* Integration tests of membership and liveness details of the node runtime on
 * real loopback clusters: catch-up of new voters before promotion, durable
 * reset_peers, the on-committed task hook, peer reachability, lease reads,
 * set_error_and_rollback and resumed snapshot downloads. Some tests look
 * inside the node (src/node/node_internal.h) on its loop thread to check
 * replication state that the public API does not expose. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "src/node/node_internal.h"
#include "tests/node/cluster.h"

/* ---- helpers ---- */

typedef struct done_req {
    rk_closure_t closure;
    atomic_int runs;
    atomic_int code;
} done_req_t;

static void done_run(rk_closure_t *self, const rk_status_t *st)
{
    done_req_t *d = (done_req_t *)self;
    atomic_store(&d->code, st->code);
    atomic_fetch_add(&d->runs, 1);
}

static bool done_ran(void *p)
{
    return atomic_load(&((done_req_t *)p)->runs) > 0;
}

/* Log lines captured through rk_log_set_sink, for "logged once" checks. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[1 << 16];
static size_t log_len;

static void capture_sink(void *arg, rk_log_level_t level, const char *line)
{
    (void)arg;
    (void)level;
    pthread_mutex_lock(&log_mu);
    size_t l = strlen(line);
    if (log_len + l + 2 < sizeof(log_buf)) {
        memcpy(log_buf + log_len, line, l);
        log_len += l;
        log_buf[log_len++] = '\n';
        log_buf[log_len] = '\0';
    }
    pthread_mutex_unlock(&log_mu);
    fputs(line, stderr);
    fputc('\n', stderr);
}

static void capture_start(void)
{
    pthread_mutex_lock(&log_mu);
    log_len = 0;
    log_buf[0] = '\0';
    pthread_mutex_unlock(&log_mu);
    rk_log_set_sink(capture_sink, NULL);
}

/* Occurrences of both needles on one captured line. */
static int captured(const char *a, const char *b)
{
    int k = 0;
    pthread_mutex_lock(&log_mu);
    for (char *line = log_buf; *line;) {
        char *end = strchr(line, '\n');
        if (end == NULL)
            break;
        *end = '\0';
        if (strstr(line, a) && (b == NULL || strstr(line, b)))
            k++;
        *end = '\n';
        line = end + 1;
    }
    pthread_mutex_unlock(&log_mu);
    return k;
}

/* The leader's progress record of peer, read on the node's loop thread. */
typedef struct progress_arg {
    rk_node_t *n;
    const rk_peer_id_t *peer;
    core_progress_info_t out;
    bool found;
} progress_arg_t;

static void progress_on_loop(void *p)
{
    progress_arg_t *a = p;
    a->found = false;
    if (a->n->core == NULL)
        return;
    core_progress_info_t pr[2 * RK_CONF_MAX_PEERS + 1];
    size_t k = core_get_progress(a->n->core, pr, sizeof(pr) / sizeof(pr[0]));
    for (size_t i = 0; i < k && i < sizeof(pr) / sizeof(pr[0]); i++) {
        if (rk_peer_id_equal(&pr[i].peer, a->peer)) {
            a->out = pr[i];
            a->found = true;
        }
    }
}

static bool leader_progress(rk_node_t *n, const rk_peer_id_t *peer, core_progress_info_t *out)
{
    progress_arg_t a = {.n = n, .peer = peer};
    node_rt_call(n->rt, progress_on_loop, &a);
    if (a.found)
        *out = a.out;
    return a.found;
}

static bool is_learner_of(rk_node_t *n, const rk_peer_id_t *p)
{
    rk_configuration_t conf;
    rk_node_list_peers(n, &conf);
    return rk_configuration_is_learner(&conf, p);
}

static int start_cluster(tc_cluster_t *c, const char *g, int n, int voters,
                         const rk_node_options_t *o)
{
    tc_cluster_init(c, g, n, voters, o);
    for (int i = 0; i < voters; i++)
        assert_int_equal(tc_start(c, i, false), 0);
    int leader = tc_wait_leader(c, 5000);
    assert_true(leader >= 0);
    return leader;
}

/* ---- 1. catch-up before promotion ---- */

typedef struct learner_wait {
    rk_node_t *leader;
    const rk_peer_id_t *peer;
} learner_wait_t;

static bool learner_seen(void *p)
{
    learner_wait_t *w = p;
    return is_learner_of(w->leader, w->peer);
}

/* Scenario 80, thesis 4.2.1: a new voter that is behind (here: not even
 * running yet) first joins as a learner; the change to a voter is made only
 * once it holds the log within catchup_margin of the leader. */
static void test_new_voter_catches_up_as_learner_first(void **state)
{
    (void)state;
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.raft_options.sync = false;
    o.catchup_margin = 5;
    tc_cluster_t c;
    int leader = start_cluster(&c, "mc", 4, 3, &o);
    assert_int_equal(tc_apply_many(&c, leader, 300), 300);
    rk_node_t *ln = c.nodes[leader].node;
    done_req_t d = {.closure.run = done_run};
    assert_int_equal(rk_node_add_peer(ln, &c.nodes[3].id, &d.closure), 0);
    learner_wait_t w = {.leader = ln, .peer = &c.nodes[3].id};
    assert_true(tc_wait(learner_seen, &w, 3000));
    /* still a learner, change not done: it has not caught up */
    assert_int_equal(atomic_load(&d.runs), 0);
    rk_configuration_t conf;
    rk_node_list_peers(ln, &conf);
    assert_int_equal(conf.n_peers, 3);
    /* writes still commit with the old majority meanwhile */
    assert_int_equal(tc_apply_many(&c, leader, 20), 20);
    assert_int_equal(tc_start(&c, 3, true), 0);
    assert_true(tc_wait(done_ran, &d, 10000));
    assert_int_equal(atomic_load(&d.code), 0);
    rk_node_list_peers(ln, &conf);
    assert_int_equal(conf.n_peers, 4);
    assert_int_equal(conf.n_learners, 0);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(ln), 10000));
    assert_int_equal(atomic_load(&c.nodes[3].fsm.sum), 320);
    tc_cluster_destroy(&c);
}

/* Scenario 80: a new voter that never answers fails the change with
 * RK_ECATCHUP; the temporary learner is removed and the group stays
 * available with its old configuration. */
static void test_dead_new_voter_fails_with_ecatchup(void **state)
{
    (void)state;
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.election_timeout_ms = 300;
    o.raft_options.sync = false;
    tc_cluster_t c;
    int leader = start_cluster(&c, "md", 4, 3, &o);
    rk_node_t *ln = c.nodes[leader].node;
    assert_int_equal(tc_apply_many(&c, leader, 50), 50);
    done_req_t d = {.closure.run = done_run};
    rk_configuration_t target = c.conf;
    rk_configuration_add_peer(&target, &c.nodes[3].id);
    assert_int_equal(rk_node_change_peers(ln, &target, &d.closure), 0);
    assert_true(tc_wait(done_ran, &d, 10000));
    assert_int_equal(atomic_load(&d.code), RK_ECATCHUP);
    learner_wait_t w = {.leader = ln, .peer = &c.nodes[3].id};
    for (int i = 0; i < 300 && learner_seen(&w); i++)
        tc_msleep(10);
    assert_false(learner_seen(&w));
    rk_configuration_t conf;
    rk_node_list_peers(ln, &conf);
    assert_true(rk_configuration_equal(&conf, &c.conf));
    assert_true(rk_node_is_leader(ln));
    assert_int_equal(tc_apply_many(&c, leader, 50), 50);
    /* and a new change is accepted afterwards */
    done_req_t d2 = {.closure.run = done_run};
    assert_int_equal(rk_node_add_learners(ln, &c.nodes[3].id, 1, &d2.closure), 0);
    assert_true(tc_wait(done_ran, &d2, 5000));
    assert_int_equal(atomic_load(&d2.code), 0);
    tc_cluster_destroy(&c);
}

/* ---- 4. reachability ---- */

typedef struct state_wait {
    rk_node_t *leader;
    const rk_peer_id_t *peer;
    core_progress_state_t want;
    uint64_t min_match;
} state_wait_t;

static bool progress_is(void *p)
{
    state_wait_t *w = p;
    core_progress_info_t pr;
    return leader_progress(w->leader, w->peer, &pr) && pr.state == w->want &&
           pr.match >= w->min_match;
}

/* Scenario 108 (peer marked unreachable): when a follower's process stops,
 * the RPC client reports the lost connection; the leader moves the peer's
 * replication to probing and logs it once; when the follower comes back the
 * peer is replicating again and catches up. */
static void test_unreachable_peer_goes_to_probe(void **state)
{
    (void)state;
    capture_start();
    tc_cluster_t c;
    int leader = start_cluster(&c, "mu", 3, 3, NULL);
    rk_node_t *ln = c.nodes[leader].node;
    assert_int_equal(tc_apply_many(&c, leader, 50), 50);
    int f = (leader + 1) % 3;
    state_wait_t w = {.leader = ln, .peer = &c.nodes[f].id, .want = CORE_PR_REPLICATE};
    assert_true(tc_wait(progress_is, &w, 5000));
    tc_stop(&c, f);
    w.want = CORE_PR_PROBE;
    assert_true(tc_wait(progress_is, &w, 5000));
    char fs[RK_PEER_ID_STRLEN];
    rk_peer_id_format(&c.nodes[f].id, fs, sizeof(fs));
    char needle[RK_PEER_ID_STRLEN + 64];
    snprintf(needle, sizeof(needle), "peer %s unreachable", fs);
    /* the leader keeps committing with the other follower */
    assert_int_equal(tc_apply_many(&c, leader, 50), 50);
    tc_msleep(600); /* retries while it is down are not logged again */
    assert_int_equal(captured(c.nodes[leader].id.endpoint.host, needle), 1);
    assert_int_equal(tc_start(&c, f, true), 0);
    w.want = CORE_PR_REPLICATE;
    w.min_match = (uint64_t)rk_node_last_log_index(ln);
    assert_true(tc_wait(progress_is, &w, 10000));
    snprintf(needle, sizeof(needle), "peer %s reachable again", fs);
    assert_true(captured(needle, NULL) >= 1);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(ln), 5000));
    assert_int_equal(atomic_load(&c.nodes[f].fsm.sum), 100);
    tc_cluster_destroy(&c);
    rk_log_set_sink(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_voter_catches_up_as_learner_first),
        cmocka_unit_test(test_dead_new_voter_fails_with_ecatchup),
        cmocka_unit_test(test_unreachable_peer_goes_to_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
