/* The FSM executor pool: the groups of a runtime share a fixed number of
 * executor threads (rk_node_options_t.fsm_executor_threads).
 *
 *  - 40 groups on one server with 2 executors run on exactly 2 FSM threads;
 *    each group's callbacks never overlap, come in log order and stay on one
 *    thread; every closure runs exactly once across a shutdown with tasks
 *    in flight, none after its group's on_shutdown; the threads end with the
 *    server. A lone group service has one FSM thread.
 *  - A group whose on_apply is held does not stop a group on the other
 *    executor from committing and applying, and keeps its own leadership
 *    (heartbeats run on the loop) while its commits go on.
 *  - A group with a large backlog yields to another group of its executor
 *    after a bounded turn instead of applying the whole backlog first.
 *  - Out-of-range fsm_executor_threads is refused with a clear error.
 *
 * Waits are bounded waits for events; nothing asserts a duration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/core/core_internal.h"
#include "src/node/node_internal.h"
#include "tests/node/cluster.h"
#include "tools/common/storage_util.h"

#define WAIT_MS    20000
#define MAX_HOSTS  3
#define MAX_GROUPS 40

/* ------------------------------------------------------- state machine */

typedef struct psm {
    rk_state_machine_t sm;
    atomic_int inside;         /* a callback of this replica is running */
    atomic_int overlaps;       /* callbacks that found another one running */
    atomic_int out_of_order;   /* entries not after the previous one */
    atomic_int thread_changes; /* callbacks on another thread than the first */
    atomic_int shutdowns;
    atomic_uint_fast64_t applied; /* data entries */
    uint64_t last_index;
    pthread_t thread;
    bool has_thread;
    atomic_bool hold;                /* on_apply waits while set */
    atomic_bool held;                /* on_apply is waiting */
    struct psm *watch;               /* another replica whose progress on_apply notes */
    atomic_uint_fast64_t watch_seen; /* watch->applied at this replica's last entry */
} psm_t;

static pthread_mutex_t g_hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_hold_cv = PTHREAD_COND_INITIALIZER;

static void enter(psm_t *p)
{
    if (atomic_fetch_add(&p->inside, 1) != 0)
        atomic_fetch_add(&p->overlaps, 1);
    pthread_t self = pthread_self();
    if (!p->has_thread) {
        p->thread = self;
        p->has_thread = true;
    } else if (!pthread_equal(p->thread, self)) {
        atomic_fetch_add(&p->thread_changes, 1);
    }
}

static void leave(psm_t *p)
{
    atomic_fetch_sub(&p->inside, 1);
}

static void wait_released(psm_t *p)
{
    pthread_mutex_lock(&g_hold_mu);
    while (atomic_load(&p->hold)) {
        atomic_store(&p->held, true);
        pthread_cond_wait(&g_hold_cv, &g_hold_mu);
    }
    atomic_store(&p->held, false);
    pthread_mutex_unlock(&g_hold_mu);
}

static void release(psm_t *p)
{
    pthread_mutex_lock(&g_hold_mu);
    atomic_store(&p->hold, false);
    pthread_cond_broadcast(&g_hold_cv);
    pthread_mutex_unlock(&g_hold_mu);
}

static void p_apply(rk_state_machine_t *sm, rk_iterator_t *it)
{
    psm_t *p = (psm_t *)sm;
    enter(p);
    for (; rk_iterator_valid(it); rk_iterator_next(it)) {
        wait_released(p);
        uint64_t index = (uint64_t)rk_iterator_index(it);
        if (index <= p->last_index)
            atomic_fetch_add(&p->out_of_order, 1);
        p->last_index = index;
        if (p->watch)
            atomic_store(&p->watch_seen, atomic_load(&p->watch->applied));
        atomic_fetch_add(&p->applied, 1);
    }
    leave(p);
}

static void p_leader_start(rk_state_machine_t *sm, int64_t term)
{
    (void)term;
    enter((psm_t *)sm);
    leave((psm_t *)sm);
}

static void p_leader_stop(rk_state_machine_t *sm, const rk_status_t *st)
{
    (void)st;
    enter((psm_t *)sm);
    leave((psm_t *)sm);
}

static void p_conf(rk_state_machine_t *sm, const rk_configuration_t *conf)
{
    (void)conf;
    enter((psm_t *)sm);
    leave((psm_t *)sm);
}

static void p_following(rk_state_machine_t *sm, const rk_leader_change_t *lc)
{
    (void)lc;
    enter((psm_t *)sm);
    leave((psm_t *)sm);
}

static void p_shutdown(rk_state_machine_t *sm)
{
    psm_t *p = (psm_t *)sm;
    enter(p);
    atomic_fetch_add(&p->shutdowns, 1);
    leave(p);
}

static void psm_init(psm_t *p)
{
    memset(p, 0, sizeof(*p));
    p->sm.on_apply = p_apply;
    p->sm.on_leader_start = p_leader_start;
    p->sm.on_leader_stop = p_leader_stop;
    p->sm.on_configuration_committed = p_conf;
    p->sm.on_start_following = p_following;
    p->sm.on_stop_following = p_following;
    p->sm.on_shutdown = p_shutdown;
}

/* ------------------------------------------------------------ requests */

typedef struct req {
    rk_closure_t closure;
    psm_t *sm; /* the proposing replica's state machine */
    atomic_int runs;
    atomic_int late; /* runs after that replica's on_shutdown */
    atomic_int code;
    int rc; /* rk_node_apply's */
} req_t;

static void req_run(rk_closure_t *self, const rk_status_t *st)
{
    req_t *r = rk_container_of(self, req_t, closure);
    if (atomic_load(&r->sm->shutdowns) > 0)
        atomic_fetch_add(&r->late, 1);
    atomic_store(&r->code, st->code);
    atomic_fetch_add(&r->runs, 1);
}

typedef struct reqs {
    req_t *r;
    int n;
} reqs_t;

static bool reqs_ran(void *arg)
{
    reqs_t *q = arg;
    for (int i = 0; i < q->n; i++)
        if (q->r[i].rc == 0 && atomic_load(&q->r[i].runs) == 0)
            return false;
    return true;
}

/* ------------------------------------------------------- hosts, groups */

/* MAX_HOSTS servers (one runtime each) hosting the same groups. */
typedef struct hosts {
    int n_hosts, n_groups;
    char *root; /* scratch directory */
    rk_server_t *server[MAX_HOSTS];
    rk_peer_id_t id[MAX_HOSTS];
    rk_group_service_t *svc[MAX_HOSTS][MAX_GROUPS];
    rk_node_t *node[MAX_HOSTS][MAX_GROUPS];
    psm_t sm[MAX_HOSTS][MAX_GROUPS];
} hosts_t;

static void hosts_start(hosts_t *h, int n_hosts, int n_groups, int executors)
{
    memset(h, 0, sizeof(*h));
    h->n_hosts = n_hosts;
    h->n_groups = n_groups;
    h->root = tu_mkdtemp("fsm-pool");
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.election_timeout_ms = 300;
    o.raft_options.sync = false;
    o.fsm_executor_threads = executors;
    rk_configuration_t conf;
    rk_configuration_init(&conf);
    rk_status_t st;
    for (int s = 0; s < n_hosts; s++) {
        rk_endpoint_t ep = {.host = "127.0.0.1", .port = 0};
        h->server[s] = rk_server_new_opts(&ep, &o, &st);
        assert_non_null(h->server[s]);
        h->id[s].endpoint = ep;
        h->id[s].endpoint.port = rk_server_port(h->server[s]);
        h->id[s].priority = RK_PRIORITY_DISABLED;
        assert_int_equal(rk_configuration_add_peer(&conf, &h->id[s]), 0);
    }
    o.initial_conf = conf;
    for (int g = 0; g < n_groups; g++) {
        for (int s = 0; s < n_hosts; s++) {
            char group[16], dir[4200];
            snprintf(group, sizeof(group), "g%d", g);
            snprintf(dir, sizeof(dir), "%s/h%d-g%d", h->root, s, g);
            psm_init(&h->sm[s][g]);
            o.fsm = &h->sm[s][g].sm;
            o.data_path = dir;
            h->svc[s][g] = rk_group_service_new_shared(group, &h->id[s], &o, h->server[s], &st);
            assert_non_null(h->svc[s][g]);
            h->node[s][g] = rk_group_service_start(h->svc[s][g], &st);
            if (h->node[s][g] == NULL)
                fail_msg("starting g%d on host %d: %s", g, s, st.msg);
        }
    }
}

/* Shuts every group down (all first, then joins), then the servers. */
static void hosts_stop(hosts_t *h)
{
    for (int s = 0; s < h->n_hosts; s++)
        for (int g = 0; g < h->n_groups; g++)
            rk_group_service_shutdown(h->svc[s][g]);
    for (int s = 0; s < h->n_hosts; s++) {
        for (int g = 0; g < h->n_groups; g++) {
            rk_group_service_join(h->svc[s][g]);
            rk_group_service_free(h->svc[s][g]);
            h->svc[s][g] = NULL;
            h->node[s][g] = NULL;
        }
        rk_server_free(h->server[s]);
        h->server[s] = NULL;
    }
    tu_rm_rf(h->root);
    free(h->root);
    h->root = NULL;
}

typedef struct group_arg {
    hosts_t *h;
    int g;
} group_arg_t;

/* Host of g's only leader, or -1. */
static int leader_of(hosts_t *h, int g)
{
    int leader = -1, count = 0;
    for (int s = 0; s < h->n_hosts; s++)
        if (rk_node_is_leader(h->node[s][g])) {
            leader = s;
            count++;
        }
    return count == 1 ? leader : -1;
}

static bool all_led(void *arg)
{
    hosts_t *h = arg;
    for (int g = 0; g < h->n_groups; g++)
        if (leader_of(h, g) < 0)
            return false;
    return true;
}

/* Proposes one entry on g's leader with r's closure; returns rk_node_apply's rc. */
static int propose(hosts_t *h, int g, req_t *r)
{
    int s = leader_of(h, g);
    assert_true(s >= 0);
    static const uint8_t value[8] = {1};
    memset(r, 0, sizeof(*r));
    r->closure.run = req_run;
    r->sm = &h->sm[s][g];
    rk_task_t t = {.data = value, .len = sizeof(value), .done = &r->closure, .expected_term = -1};
    while ((r->rc = rk_node_apply(h->node[s][g], &t)) == RK_EBUSY)
        tc_msleep(1);
    return r->rc;
}

/* Every accepted request ran its closure once (with want, unless want < 0),
 * none after on_shutdown; a refused one never ran it. */
static void check_reqs(const reqs_t *q, int want)
{
    for (int i = 0; i < q->n; i++) {
        req_t *r = &q->r[i];
        int runs = atomic_load(&r->runs);
        if (runs != (r->rc == 0 ? 1 : 0) || atomic_load(&r->late) != 0)
            fail_msg("request %d (rc %d): closure ran %d times, %d after on_shutdown", i, r->rc,
                     runs, atomic_load(&r->late));
        if (want >= 0 && r->rc == 0 && atomic_load(&r->code) != want)
            fail_msg("request %d: code %d, want %d", i, atomic_load(&r->code), want);
    }
}

/* Threads of this process named by the FSM executors. */
static int fsm_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue; /* the thread ended meanwhile */
        if (fgets(comm, sizeof(comm), f) != NULL && strcmp(comm, "raftkit-fsm\n") == 0)
            count++;
        fclose(f);
    }
    closedir(d);
    return count;
}

/* -------------------------------------------------------------- tests */

static void executors_do_not_grow_with_groups(void **state)
{
    (void)state;
    enum { PER_GROUP = 20 };
    assert_int_equal(fsm_threads(), 0);
    hosts_t *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    hosts_start(h, 1, MAX_GROUPS, 2);
    assert_true(tc_wait(all_led, h, WAIT_MS));

    reqs_t q = {calloc(2 * MAX_GROUPS * PER_GROUP, sizeof(req_t)), 0};
    assert_non_null(q.r);
    for (int k = 0; k < PER_GROUP; k++)
        for (int g = 0; g < MAX_GROUPS; g++)
            assert_int_equal(propose(h, g, &q.r[q.n++]), 0);
    assert_true(tc_wait(reqs_ran, &q, WAIT_MS));
    check_reqs(&q, RK_OK);
    assert_int_equal(fsm_threads(), 2);

    pthread_t seen[2];
    int n_seen = 0;
    for (int g = 0; g < MAX_GROUPS; g++) {
        psm_t *p = &h->sm[0][g];
        assert_int_equal(atomic_load(&p->applied), PER_GROUP);
        assert_int_equal(atomic_load(&p->overlaps), 0);
        assert_int_equal(atomic_load(&p->out_of_order), 0);
        assert_int_equal(atomic_load(&p->thread_changes), 0);
        assert_true(p->has_thread);
        bool known = false;
        for (int i = 0; i < n_seen; i++)
            known = known || pthread_equal(seen[i], p->thread);
        if (!known) {
            assert_true(n_seen < 2);
            seen[n_seen++] = p->thread;
        }
    }
    assert_int_equal(n_seen, 2); /* the groups are spread over both */

    /* shutdown with tasks in flight in every group */
    int before = q.n;
    for (int k = 0; k < PER_GROUP; k++)
        for (int g = 0; g < MAX_GROUPS; g++)
            propose(h, g, &q.r[q.n++]);
    hosts_stop(h);
    check_reqs(&q, -1);
    for (int g = 0; g < MAX_GROUPS; g++) {
        psm_t *p = &h->sm[0][g];
        assert_int_equal(atomic_load(&p->shutdowns), 1);
        assert_int_equal(atomic_load(&p->overlaps), 0);
        assert_int_equal(atomic_load(&p->out_of_order), 0);
        assert_int_equal(atomic_load(&p->thread_changes), 0);
    }
    assert_true(q.n > before);
    assert_int_equal(fsm_threads(), 0); /* they end with the server */
    free(q.r);
    free(h);
}

static void lone_group_has_one_executor(void **state)
{
    (void)state;
    tc_cluster_t c;
    tc_cluster_init(&c, "lone", 1, 1, NULL); /* fsm_executor_threads 0: one per CPU */
    assert_int_equal(tc_start(&c, 0, false), 0);
    assert_true(tc_wait_leader(&c, WAIT_MS) >= 0);
    assert_int_equal(tc_apply_many(&c, 0, 10), 10);
    assert_int_equal(fsm_threads(), 1);
    tc_cluster_destroy(&c);
    assert_int_equal(fsm_threads(), 0);
}

static bool held(void *arg)
{
    return atomic_load(&((psm_t *)arg)->held);
}

typedef struct applied_arg {
    hosts_t *h;
    int g;
    int64_t index;
} applied_arg_t;

static bool group_applied(void *arg)
{
    applied_arg_t *a = arg;
    for (int s = 0; s < a->h->n_hosts; s++)
        if (rk_node_applied_index(a->h->node[s][a->g]) < a->index)
            return false;
    return true;
}

/* Three hosts with 2 executors each and two groups, bound to different
 * executors on every host. Group 0's on_apply is held on every replica:
 * group 1 still commits and applies, and group 0 keeps its leader and term
 * for three election timeouts of every replica's own clock while its
 * commits go on without being applied. */
static void held_group_does_not_stop_the_other_executor(void **state)
{
    (void)state;
    enum { ELECTION_TICKS = 10, OTHER = 50, MAX_HELD = 400 };
    hosts_t *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    hosts_start(h, 3, 2, 2);
    for (int s = 0; s < 3; s++)
        assert_ptr_not_equal(h->node[s][0]->fsm_exec, h->node[s][1]->fsm_exec);
    assert_true(tc_wait(all_led, h, WAIT_MS));

    reqs_t q0 = {calloc(MAX_HELD, sizeof(req_t)), 0}, q1 = {calloc(OTHER, sizeof(req_t)), 0};
    assert_non_null(q0.r);
    assert_non_null(q1.r);
    int l0 = leader_of(h, 0);
    int64_t term = rk_node_term(h->node[l0][0]);
    for (int s = 0; s < 3; s++)
        atomic_store(&h->sm[s][0].hold, true);
    assert_int_equal(propose(h, 0, &q0.r[q0.n++]), 0);
    assert_true(tc_wait(held, &h->sm[l0][0], WAIT_MS));
    int64_t held_at = rk_node_applied_index(h->node[l0][0]) + 1;

    for (int i = 0; i < OTHER; i++)
        assert_int_equal(propose(h, 1, &q1.r[q1.n++]), 0);
    assert_true(tc_wait(reqs_ran, &q1, WAIT_MS));
    check_reqs(&q1, RK_OK);
    applied_arg_t a1 = {h, 1, rk_node_last_log_index(h->node[leader_of(h, 1)][1])};
    assert_true(tc_wait(group_applied, &a1, WAIT_MS));
    assert_true(atomic_load(&h->sm[l0][0].held)); /* group 0 is still held */

    /* Three election timeouts on every replica's clock, proposing to group
     * 0 meanwhile. */
    uint64_t end[3];
    for (int s = 0; s < 3; s++)
        end[s] = tc_node_ticks(h->node[s][0]) + 3 * ELECTION_TICKS;
    bool passed = false;
    for (int polls = 0; !passed && polls < 2 * WAIT_MS / 10; polls++) {
        if (q0.n < MAX_HELD)
            assert_int_equal(propose(h, 0, &q0.r[q0.n++]), 0);
        passed = true;
        for (int s = 0; s < 3; s++)
            passed = passed && tc_node_ticks(h->node[s][0]) >= end[s];
        tc_msleep(10);
    }
    assert_true(passed);
    assert_int_equal(leader_of(h, 0), l0);
    assert_int_equal(rk_node_term(h->node[l0][0]), term);
    assert_true(rk_node_committed_index(h->node[l0][0]) > held_at); /* commits went on */
    assert_int_equal(rk_node_applied_index(h->node[l0][0]), held_at - 1);
    assert_int_equal(atomic_load(&q0.r[0].runs), 0);

    for (int s = 0; s < 3; s++)
        release(&h->sm[s][0]);
    assert_true(tc_wait(reqs_ran, &q0, WAIT_MS));
    check_reqs(&q0, RK_OK);
    hosts_stop(h);
    for (int s = 0; s < 3; s++)
        for (int g = 0; g < 2; g++) {
            assert_int_equal(atomic_load(&h->sm[s][g].overlaps), 0);
            assert_int_equal(atomic_load(&h->sm[s][g].out_of_order), 0);
            assert_int_equal(atomic_load(&h->sm[s][g].shutdowns), 1);
        }
    free(q0.r);
    free(q1.r);
    free(h);
}

typedef struct queued_arg {
    rk_node_t *n;
    uint64_t index;
} queued_arg_t;

/* The node's FSM queue holds the commit of index: it waits for a turn. */
static bool commit_queued(void *arg)
{
    queued_arg_t *a = arg;
    bool q = false;
    pthread_mutex_lock(&a->n->fsm_mu);
    for (fsm_item_t *it = a->n->fsm_head; it != NULL; it = it->next)
        q = q || (it->type == FSM_COMMITTED && it->a >= a->index);
    pthread_mutex_unlock(&a->n->fsm_mu);
    return q;
}

static bool committed(void *arg)
{
    applied_arg_t *a = arg;
    return rk_node_committed_index(a->h->node[0][a->g]) >= a->index;
}

/* One executor, two one-member groups. Group 0 gets a backlog of BACKLOG
 * committed entries while its on_apply is held, then group 1 gets one entry;
 * once group 0 is released, group 1's entry is applied before group 0's
 * backlog is through: group 0 yielded after a bounded turn. */
static void busy_group_yields_to_others(void **state)
{
    (void)state;
    enum { BACKLOG = 3000 };
    hosts_t *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    hosts_start(h, 1, 2, 1);
    assert_ptr_equal(h->node[0][0]->fsm_exec, h->node[0][1]->fsm_exec);
    assert_true(tc_wait(all_led, h, WAIT_MS));
    psm_t *busy = &h->sm[0][0], *other = &h->sm[0][1];
    other->watch = busy;

    reqs_t q = {calloc(BACKLOG + 2, sizeof(req_t)), 0};
    assert_non_null(q.r);
    atomic_store(&busy->hold, true);
    assert_int_equal(propose(h, 0, &q.r[q.n++]), 0);
    assert_true(tc_wait(held, busy, WAIT_MS));
    for (int i = 0; i < BACKLOG; i++)
        assert_int_equal(propose(h, 0, &q.r[q.n++]), 0);
    applied_arg_t c0 = {h, 0, rk_node_applied_index(h->node[0][0]) + 1 + BACKLOG};
    assert_true(tc_wait(committed, &c0, WAIT_MS));

    queued_arg_t qa = {h->node[0][1], (uint64_t)rk_node_last_log_index(h->node[0][1]) + 1};
    assert_int_equal(propose(h, 1, &q.r[q.n++]), 0);
    assert_true(tc_wait(commit_queued, &qa, WAIT_MS)); /* behind group 0 */
    release(busy);
    assert_true(tc_wait(reqs_ran, &q, WAIT_MS));
    check_reqs(&q, RK_OK);
    assert_int_equal(atomic_load(&busy->applied), 1 + BACKLOG);
    /* group 0's progress when group 1 applied its entry */
    uint64_t seen = atomic_load(&other->watch_seen);
    assert_true(seen < 1 + BACKLOG);
    hosts_stop(h);
    free(q.r);
    free(h);
}

static void bad_executor_count_refused(void **state)
{
    (void)state;
    rk_node_options_t o;
    rk_node_options_init(&o);
    psm_t p;
    psm_init(&p);
    o.fsm = &p.sm;
    o.data_path = "unused";
    rk_peer_id_t self = {.endpoint = {.host = "127.0.0.1", .port = 1}};
    rk_configuration_init(&o.initial_conf);
    assert_int_equal(rk_configuration_add_peer(&o.initial_conf, &self), 0);
    rk_status_t st;
    int bad[] = {-1, RK_FSM_EXECUTOR_THREADS_MAX + 1};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.fsm_executor_threads = bad[i];
        rk_status_clear(&st);
        assert_null(rk_group_service_new("g", &self, &o, &st));
        assert_int_equal(st.code, RK_EINVAL);
        assert_non_null(strstr(st.msg, "fsm_executor_threads"));
        rk_endpoint_t ep = {.host = "127.0.0.1", .port = 0};
        rk_status_clear(&st);
        assert_null(rk_server_new_opts(&ep, &o, &st));
        assert_int_equal(st.code, RK_EINVAL);
        assert_non_null(strstr(st.msg, "fsm_executor_threads"));
    }
    o.fsm_executor_threads = RK_FSM_EXECUTOR_THREADS_MAX;
    rk_group_service_t *svc = rk_group_service_new("g", &self, &o, &st);
    assert_non_null(svc);
    rk_group_service_free(svc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(executors_do_not_grow_with_groups),
        cmocka_unit_test(lone_group_has_one_executor),
        cmocka_unit_test(held_group_does_not_stop_the_other_executor),
        cmocka_unit_test(busy_group_yields_to_others),
        cmocka_unit_test(bad_executor_count_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
