/* Integration tests of the node runtime: real nodes, each with its own libuv
 * loop, talking over loopback TCP, with LMDB storage in temporary dirs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raftkit/log.h"
#include "src/core/core_internal.h"
#include "src/node/node_internal.h"
#include "tests/node/cluster.h"

/* Reference: Raft section 5.2 (election) and 5.3 (replication): a 3-node
 * group elects one leader, replicates thousands of tasks, runs every closure
 * exactly once with success, and every state machine reaches the same sum. */
static void test_three_nodes_replicate(void **state)
{
    (void)state;
    tc_cluster_t c;
    tc_cluster_init(&c, "g3", 3, 3, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tc_start(&c, i, false), 0);
    int leader = tc_wait_leader(&c, 5000);
    assert_true(leader >= 0);
    int ok = tc_apply_many(&c, leader, 3000);
    assert_int_equal(ok, 3000);
    int64_t last = rk_node_last_log_index(c.nodes[leader].node);
    assert_true(tc_wait_applied(&c, last, 5000));
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&c.nodes[i].fsm.sum), 3000);
    assert_int_equal(atomic_load(&c.nodes[leader].fsm.leader_starts), 1);
    tc_cluster_stop_all(&c);
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&c.nodes[i].fsm.shutdowns), 1);
    /* restart on the same directories: the log is replayed, no add_peer needed */
    for (int i = 0; i < 3; i++)
        assert_int_equal(tc_start(&c, i, true), 0);
    leader = tc_wait_leader(&c, 5000);
    assert_true(leader >= 0);
    assert_true(tc_wait_applied(&c, last, 5000));
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&c.nodes[i].fsm.sum), 3000);
    assert_int_equal(tc_apply_many(&c, leader, 10), 10);
    tc_cluster_destroy(&c);
}

static int start_cluster(tc_cluster_t *c, const char *g, int n, const rk_node_options_t *o)
{
    tc_cluster_init(c, g, n, n, o);
    for (int i = 0; i < n; i++)
        assert_int_equal(tc_start(c, i, false), 0);
    int leader = tc_wait_leader(c, 5000);
    assert_true(leader >= 0);
    return leader;
}

/* Ticks per election timeout (NODE_ELECTION_TICKS in src/node): the
 * leader's check-quorum round. */
enum { ELECTION_TICKS = 10 };

/* rk_node_list_alive_peers: every live voter, at every moment (it used to
 * drop them all for a moment at each check-quorum reset), and a stopped one
 * drops out within about an election timeout. */
static void test_alive_peers(void **state)
{
    (void)state;
    tc_cluster_t c;
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.election_timeout_ms = 300;
    o.raft_options.sync = false;
    o.raft_options.quiesce = false; /* the leader's clock must run: no quiescence */
    int leader = start_cluster(&c, "alive", 3, &o);
    rk_configuration_t alive;
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(c.nodes[leader].node), 5000));
    /* Poll every 100 us for five election timeouts of the leader's own
     * clock (so five check-quorum resets pass however slowly the machine
     * runs; 60 s at most). */
    rk_node_t *ln = c.nodes[leader].node;
    uint64_t end = tc_node_ticks(ln) + 5 * ELECTION_TICKS;
    int polls = 0, short_answers = 0;
    bool window_done = false;
    for (; polls < 600000 && !window_done; polls++) {
        assert_int_equal(rk_node_list_alive_peers(ln, &alive), 0);
        if (alive.n_peers != 3)
            short_answers++;
        if (polls % 100 == 0)
            window_done = tc_node_ticks(ln) >= end;
        usleep(100);
    }
    assert_true(window_done);
    assert_int_equal(short_answers, 0);
    int gone = (leader + 1) % 3;
    tc_stop(&c, gone);
    bool dropped = false;
    for (int i = 0; i < 400 && !dropped; i++) { /* up to 2 s */
        assert_int_equal(rk_node_list_alive_peers(c.nodes[leader].node, &alive), 0);
        dropped = alive.n_peers == 2;
        tc_msleep(5);
    }
    assert_true(dropped);
    for (size_t i = 0; i < alive.n_peers; i++)
        assert_false(rk_peer_id_equal(&alive.peers[i], &c.nodes[gone].id));
    tc_cluster_destroy(&c);
}

/* 1- and 5-node groups elect and replicate too. */
static void test_one_and_five_nodes(void **state)
{
    (void)state;
    int sizes[] = {1, 5};
    for (int k = 0; k < 2; k++) {
        tc_cluster_t c;
        int leader = start_cluster(&c, "gn", sizes[k], NULL);
        assert_int_equal(tc_apply_many(&c, leader, 1000), 1000);
        assert_true(tc_wait_applied(&c, rk_node_last_log_index(c.nodes[leader].node), 5000));
        for (int i = 0; i < sizes[k]; i++)
            assert_int_equal(atomic_load(&c.nodes[i].fsm.sum), 1000);
        tc_cluster_destroy(&c);
    }
}

/* Section 5.4: the leader dies; the others elect a new one and keep every
 * committed task; the old leader restarts as a follower and catches up. */
static void test_leader_killed(void **state)
{
    (void)state;
    tc_cluster_t c;
    int leader = start_cluster(&c, "gk", 3, NULL);
    assert_int_equal(tc_apply_many(&c, leader, 500), 500);
    tc_stop(&c, leader);
    int nl = tc_wait_leader(&c, 5000);
    assert_true(nl >= 0 && nl != leader);
    assert_int_equal(atomic_load(&c.nodes[nl].fsm.sum), 500);
    assert_int_equal(tc_apply_many(&c, nl, 500), 500);
    assert_int_equal(tc_start(&c, leader, true), 0);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(c.nodes[nl].node), 5000));
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&c.nodes[i].fsm.sum), 1000);
    tc_cluster_destroy(&c);
}

static bool req_ran(void *p)
{
    return atomic_load(&((tc_req_t *)p)->runs) > 0;
}

/* Errors: a follower refuses (ENOTLEADER), a stale expected_term gives ETERM,
 * apply after shutdown returns ESHUTDOWN without running the closure. */
static void test_apply_errors(void **state)
{
    (void)state;
    tc_cluster_t c;
    int leader = start_cluster(&c, "ge", 3, NULL);
    int follower = (leader + 1) % 3;
    tc_req_t r;
    tc_req_init(&r);
    assert_int_equal(tc_apply(&c, follower, 1, &r, -1), 0);
    assert_true(tc_wait(req_ran, &r, 5000));
    assert_int_equal(atomic_load(&r.code), RK_ENOTLEADER);
    int64_t term = rk_node_term(c.nodes[leader].node);
    tc_req_init(&r);
    assert_int_equal(tc_apply(&c, leader, 1, &r, term + 7), 0);
    assert_true(tc_wait(req_ran, &r, 5000));
    assert_int_equal(atomic_load(&r.code), RK_ETERM);
    tc_req_init(&r);
    assert_int_equal(tc_apply(&c, leader, 1, &r, term), 0);
    assert_true(tc_wait(req_ran, &r, 5000));
    assert_int_equal(atomic_load(&r.code), RK_OK);
    rk_group_service_shutdown(c.nodes[leader].svc);
    tc_req_init(&r);
    assert_int_equal(tc_apply(&c, leader, 1, &r, -1), RK_ESHUTDOWN);
    assert_int_equal(atomic_load(&r.runs), 0);
    tc_cluster_destroy(&c);
}

/* Overload: a tiny apply queue and a slow state machine give RK_EBUSY
 * instead of blocking, and the node keeps working afterwards. */
static void test_overload_busy(void **state)
{
    (void)state;
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.election_timeout_ms = 300;
    o.raft_options.sync = false;
    o.raft_options.apply_queue_size = 4;
    tc_cluster_t c;
    int leader = start_cluster(&c, "gb", 1, &o);
    int busy = 0, accepted = 0;
    static tc_req_t reqs[2000];
    for (int i = 0; i < 2000; i++) {
        tc_req_init(&reqs[i]);
        int rc = tc_apply(&c, leader, 1, &reqs[i], -1);
        if (rc == RK_EBUSY)
            busy++;
        else if (rc == 0)
            accepted++;
    }
    assert_true(busy > 0);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(c.nodes[leader].node), 5000));
    assert_int_equal(tc_apply_many(&c, leader, 10), 10);
    assert_int_equal(rk_node_state(c.nodes[leader].node), RK_STATE_LEADER);
    tc_cluster_stop_all(&c);
    int ran = 0;
    for (int i = 0; i < 2000; i++) {
        assert_true(atomic_load(&reqs[i].runs) <= 1);
        ran += atomic_load(&reqs[i].runs);
    }
    assert_int_equal(ran, accepted);
    tc_cluster_destroy(&c);
}

typedef struct read_req {
    rk_read_index_closure_t closure;
    atomic_int runs;
    int code;
    int64_t index;
    uint64_t sum_seen;
    tc_counter_t *fsm;
} read_req_t;

static void read_run(rk_read_index_closure_t *self, const rk_status_t *st, int64_t index,
                     const void *ctx, size_t len)
{
    (void)ctx, (void)len;
    read_req_t *r = (read_req_t *)self;
    r->code = st->code;
    r->index = index;
    r->sum_seen = atomic_load(&r->fsm->sum);
    atomic_fetch_add(&r->runs, 1);
}

static bool read_ran(void *p)
{
    return atomic_load(&((read_req_t *)p)->runs) > 0;
}

/* Thesis 6.4: read_index on the leader and on followers sees every write
 * acknowledged before the read started. */
static void test_read_index(void **state)
{
    (void)state;
    tc_cluster_t c;
    int leader = start_cluster(&c, "gr", 3, NULL);
    assert_int_equal(tc_apply_many(&c, leader, 200), 200);
    for (int i = 0; i < 3; i++) {
        read_req_t r = {.closure.run = read_run, .fsm = &c.nodes[i].fsm};
        assert_int_equal(rk_node_read_index(c.nodes[i].node, "x", 1, &r.closure), 0);
        assert_true(tc_wait(read_ran, &r, 5000));
        assert_int_equal(r.code, 0);
        assert_int_equal(r.sum_seen, 200);
        assert_true(rk_node_applied_index(c.nodes[i].node) >= r.index);
    }
    tc_cluster_destroy(&c);
}

typedef struct done_req {
    rk_closure_t closure;
    atomic_int runs;
    int code;
} done_req_t;

static void done_run(rk_closure_t *self, const rk_status_t *st)
{
    done_req_t *d = (done_req_t *)self;
    d->code = st->code;
    atomic_fetch_add(&d->runs, 1);
}

static bool done_ran(void *p)
{
    return atomic_load(&((done_req_t *)p)->runs) > 0;
}

/* Section 7: a follower that missed entries the leader has compacted away
 * catches up by installing the leader's snapshot (copied over GetFile). */
static void test_snapshot_catch_up(void **state)
{
    (void)state;
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.election_timeout_ms = 300;
    o.raft_options.sync = false;
    o.raft_options.max_byte_count_per_rpc = 1024; /* several chunks */
    tc_cluster_t c;
    int leader = start_cluster(&c, "gs", 3, &o);
    int lagger = (leader + 1) % 3;
    tc_stop(&c, lagger);
    assert_int_equal(tc_apply_many(&c, leader, 300), 300);
    done_req_t d = {.closure.run = done_run};
    assert_int_equal(rk_node_snapshot(c.nodes[leader].node, &d.closure), 0);
    assert_true(tc_wait(done_ran, &d, 5000));
    assert_int_equal(d.code, 0);
    assert_int_equal(atomic_load(&c.nodes[leader].fsm.saves), 1);
    assert_int_equal(tc_apply_many(&c, leader, 50), 50);
    assert_int_equal(tc_start(&c, lagger, true), 0);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(c.nodes[leader].node), 10000));
    assert_int_equal(atomic_load(&c.nodes[lagger].fsm.loads), 1);
    assert_int_equal(atomic_load(&c.nodes[lagger].fsm.sum), 350);
    /* and it restarts from its own snapshot + log */
    tc_stop(&c, lagger);
    assert_int_equal(tc_start(&c, lagger, true), 0);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(c.nodes[leader].node), 10000));
    assert_int_equal(atomic_load(&c.nodes[lagger].fsm.sum), 350);
    tc_cluster_destroy(&c);
}

/* Section 4 / thesis 4.3: add a new (empty) peer and a learner while writing,
 * then remove a peer; the new members catch up and the group keeps going. */
static void test_membership(void **state)
{
    (void)state;
    tc_cluster_t c;
    tc_cluster_init(&c, "gm", 5, 3, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tc_start(&c, i, false), 0);
    int leader = tc_wait_leader(&c, 5000);
    assert_true(leader >= 0);
    assert_int_equal(tc_start(&c, 3, true), 0);
    assert_int_equal(tc_start(&c, 4, true), 0);
    assert_int_equal(tc_apply_many(&c, leader, 100), 100);
    done_req_t d = {.closure.run = done_run};
    assert_int_equal(rk_node_add_peer(c.nodes[leader].node, &c.nodes[3].id, &d.closure), 0);
    assert_true(tc_wait(done_ran, &d, 10000));
    assert_int_equal(d.code, 0);
    done_req_t dl = {.closure.run = done_run};
    assert_int_equal(rk_node_add_learners(c.nodes[leader].node, &c.nodes[4].id, 1, &dl.closure), 0);
    assert_true(tc_wait(done_ran, &dl, 10000));
    assert_int_equal(dl.code, 0);
    rk_configuration_t peers;
    rk_node_list_peers(c.nodes[leader].node, &peers);
    assert_int_equal(peers.n_peers, 4);
    assert_int_equal(peers.n_learners, 1);
    assert_int_equal(tc_apply_many(&c, leader, 100), 100);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(c.nodes[leader].node), 10000));
    assert_int_equal(atomic_load(&c.nodes[3].fsm.sum), 200);
    assert_int_equal(atomic_load(&c.nodes[4].fsm.sum), 200);
    int victim = (leader + 1) % 3;
    done_req_t dr = {.closure.run = done_run};
    assert_int_equal(rk_node_remove_peer(c.nodes[leader].node, &c.nodes[victim].id, &dr.closure),
                     0);
    assert_true(tc_wait(done_ran, &dr, 10000));
    assert_int_equal(dr.code, 0);
    rk_node_list_peers(c.nodes[leader].node, &peers);
    assert_int_equal(peers.n_peers, 3);
    done_req_t dx = {.closure.run = done_run};
    assert_int_equal(rk_node_add_peer(c.nodes[leader].node, &c.nodes[3].id, &dx.closure), 0);
    assert_true(tc_wait(done_ran, &dx, 5000));
    assert_int_equal(dx.code, RK_EEXIST);
    tc_cluster_destroy(&c);
}

static bool is_leader_2(void *p)
{
    tc_node_t *t = p;
    return t->node && rk_node_is_leader(t->node);
}

/* Thesis 3.10: transfer leadership to a chosen follower. */
static void test_transfer_leadership(void **state)
{
    (void)state;
    tc_cluster_t c;
    int leader = start_cluster(&c, "gt", 3, NULL);
    assert_int_equal(tc_apply_many(&c, leader, 50), 50);
    int target = (leader + 2) % 3;
    assert_int_equal(rk_node_transfer_leadership_to(c.nodes[target].node, &c.nodes[leader].id),
                     RK_ENOTLEADER);
    assert_int_equal(rk_node_transfer_leadership_to(c.nodes[leader].node, &c.nodes[target].id), 0);
    assert_true(tc_wait(is_leader_2, &c.nodes[target], 5000));
    assert_int_equal(tc_apply_many(&c, target, 50), 50);
    tc_cluster_destroy(&c);
}

/* A process hosts thousands of nodes: what only some of them need (a
 * leader's view of its followers, a queue of tasks) lives outside struct
 * rk_node and is allocated when needed, configurations are interned
 * references, and the service drops its options once the node started.
 * These bounds guard against large per-group arrays creeping back in. */
_Static_assert(sizeof(struct rk_node) <= 12 * 1024, "struct rk_node grew past 12 KiB");
_Static_assert(sizeof(struct rk_group_service) <= 1024, "struct rk_group_service grew past 1 KiB");

typedef struct footprint {
    rk_node_t *n;
    bool lead_obs;   /* leader-only observation state allocated */
    size_t n_rep;    /* followers it holds counters for */
    size_t task_cap; /* task ring slots allocated */
} footprint_t;

static void footprint_on_loop(void *p)
{
    footprint_t *f = p;
    f->lead_obs = f->n->lead_obs != NULL;
    f->n_rep = f->n->lead_obs ? f->n->lead_obs->n_rep : 0;
    pthread_mutex_lock(&f->n->mu);
    f->task_cap = f->n->task_cap;
    pthread_mutex_unlock(&f->n->mu);
}

static footprint_t footprint(rk_node_t *n)
{
    footprint_t f = {.n = n};
    assert_int_equal(node_rt_call(n->rt, footprint_on_loop, &f), 0);
    return f;
}

static bool lead_obs_freed(void *p)
{
    return !footprint(p).lead_obs;
}

/* Followers carry no leader state and no task ring; the leader's task ring
 * grows with what is queued (at most 100 tasks here) and its leader state
 * goes when it steps down. */
static void test_footprint_follows_roles(void **state)
{
    (void)state;
    tc_cluster_t c;
    int leader = start_cluster(&c, "gf", 3, NULL);
    assert_int_equal(tc_apply_many(&c, leader, 100), 100);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(c.nodes[leader].node), 5000));
    for (int i = 0; i < 3; i++) {
        footprint_t f = footprint(c.nodes[i].node);
        if (i == leader) {
            assert_true(f.lead_obs);
            assert_int_equal(f.n_rep, 2);
            assert_true(f.task_cap >= 16 && f.task_cap <= 128); /* not apply_queue_size */
        } else {
            assert_false(f.lead_obs);
            assert_int_equal(f.task_cap, 0);
        }
    }
    int target = (leader + 1) % 3;
    assert_int_equal(rk_node_transfer_leadership_to(c.nodes[leader].node, &c.nodes[target].id), 0);
    assert_true(tc_wait(is_leader_2, &c.nodes[target], 5000));
    assert_true(tc_wait(lead_obs_freed, c.nodes[leader].node, 5000));
    assert_true(footprint(c.nodes[target].node).lead_obs);
    tc_cluster_destroy(&c);
}

/* Two groups on one shared RPC server per process-node: one port each. */
static void test_two_groups_one_server(void **state)
{
    (void)state;
    tc_cluster_t a, b;
    tc_cluster_init(&a, "ga", 3, 3, NULL);
    tc_cluster_init(&b, "gb2", 3, 3, NULL);
    rk_server_t *servers[3];
    for (int i = 0; i < 3; i++) {
        rk_status_t st;
        servers[i] = rk_server_new(&a.nodes[i].id.endpoint, &st);
        assert_non_null(servers[i]);
        b.nodes[i].id = a.nodes[i].id; /* same endpoint */
        a.nodes[i].server = b.nodes[i].server = servers[i];
    }
    b.conf = a.conf;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tc_start(&a, i, false), 0);
        assert_int_equal(tc_start(&b, i, false), 0);
    }
    int la = tc_wait_leader(&a, 5000), lb = tc_wait_leader(&b, 5000);
    assert_true(la >= 0 && lb >= 0);
    assert_int_equal(tc_apply_many(&a, la, 300), 300);
    assert_int_equal(tc_apply_many(&b, lb, 200), 200);
    assert_true(tc_wait_applied(&a, rk_node_last_log_index(a.nodes[la].node), 5000));
    assert_true(tc_wait_applied(&b, rk_node_last_log_index(b.nodes[lb].node), 5000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&a.nodes[i].fsm.sum), 300);
        assert_int_equal(atomic_load(&b.nodes[i].fsm.sum), 200);
    }
    tc_cluster_destroy(&a);
    tc_cluster_destroy(&b);
    for (int i = 0; i < 3; i++)
        rk_server_free(servers[i]);
}

/* Invalid options are refused at init with the field's name. */
static void test_invalid_options(void **state)
{
    (void)state;
    rk_node_options_t o;
    rk_node_options_init(&o);
    rk_status_t st;
    assert_int_equal(rk_node_options_validate(&o, &st), RK_EINVAL);
    tc_counter_t fsm;
    tc_counter_init(&fsm);
    o.fsm = &fsm.sm;
    o.data_path = "/tmp/x";
    assert_int_equal(rk_node_options_validate(&o, &st), 0);
    o.election_timeout_ms = 1;
    assert_int_equal(rk_node_options_validate(&o, &st), RK_EINVAL);
    assert_non_null(strstr(st.msg, "election_timeout_ms"));
    o.election_timeout_ms = 1000;
    o.raft_options.apply_batch = 0;
    rk_peer_id_t self;
    rk_peer_id_parse(&self, "127.0.0.1:1", NULL);
    assert_null(rk_group_service_new("g", &self, &o, &st));
    assert_non_null(strstr(st.msg, "apply_batch"));
    /* a peer list that holds this node twice is a configuration error */
    o.raft_options.apply_batch = 32;
    o.initial_conf.n_peers = 2;
    o.initial_conf.peers[0] = self;
    o.initial_conf.peers[1] = self;
    assert_null(rk_group_service_new("g", &self, &o, &st));
    assert_int_equal(st.code, RK_EINVAL);
    assert_non_null(strstr(st.msg, "initial_conf"));
}

int main(void)
{
    if (getenv("RAFTKIT_LOG") == NULL)
        rk_log_set_level(RK_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_options),
        cmocka_unit_test(test_three_nodes_replicate),
        cmocka_unit_test(test_alive_peers),
        cmocka_unit_test(test_one_and_five_nodes),
        cmocka_unit_test(test_leader_killed),
        cmocka_unit_test(test_apply_errors),
        cmocka_unit_test(test_overload_busy),
        cmocka_unit_test(test_read_index),
        cmocka_unit_test(test_snapshot_catch_up),
        cmocka_unit_test(test_membership),
        cmocka_unit_test(test_transfer_leadership),
        cmocka_unit_test(test_two_groups_one_server),
        cmocka_unit_test(test_footprint_follows_roles),
    };
    int failed = cmocka_run_group_tests_name("node_cluster", tests, NULL, NULL);
    /* every node is freed: none may still hold an interned configuration */
    size_t left = core_conf_interned();
    if (left != 0)
        fprintf(stderr, "%zu interned configurations left\n", left);
    return failed + (left != 0);
}
