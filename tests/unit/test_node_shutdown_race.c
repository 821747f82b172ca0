/* Shutdown against concurrent callers: threads call rk_node_read_index,
 * rk_node_snapshot, rk_node_add_peer and rk_node_apply in a loop while the
 * group service shuts down. The contract under test (closure.h): a call that
 * returned 0 runs its closure exactly once, a call that returned an error
 * never runs it, and no closure runs after on_shutdown.
 *
 * The first test holds callers between their check of the node's state and
 * the queueing of their command (node_test_cmd_hook) while the node shuts
 * down, so the window is hit every time; the second runs the same callers
 * unhindered for several rounds. The third has several threads join the
 * same group service at once (rk_group_service_join is thread-safe, like
 * every function of node.h that does not say otherwise).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/node/node_internal.h"
#include "tests/node/cluster.h"

#define MAX_CALLS 20000
#define WAIT_MS   20000
#define MIN_CALLS 20 /* accepted calls per caller before the shutdown */
#define N_CALLERS 4
#define N_HOOKED  3 /* callers whose calls go through node_test_cmd_hook */
#define N_ROUNDS  5
#define N_JOINERS 3

typedef enum call_kind { CALL_READ, CALL_SNAPSHOT, CALL_ADD_PEER, CALL_APPLY } call_kind_t;

typedef struct rec {
    rk_closure_t closure;
    rk_read_index_closure_t read_closure;
    atomic_int runs;
    atomic_int late; /* runs after on_shutdown */
    int rc;          /* what the call returned */
} rec_t;

typedef struct caller {
    call_kind_t kind;
    rk_node_t *node;
    rec_t *recs;
    int n_recs;
    atomic_int accepted;
    pthread_t thread;
} caller_t;

static tc_counter_t *g_fsm; /* the node's state machine: counts on_shutdown */
static atomic_bool g_stop;  /* callers end */
static atomic_bool g_armed; /* the hook holds callers */
static atomic_bool g_release;
static atomic_int g_held;

static void hold_caller(rk_node_t *n)
{
    (void)n;
    if (!atomic_load(&g_armed))
        return;
    atomic_fetch_add(&g_held, 1);
    for (int waited = 0; !atomic_load(&g_release) && waited < WAIT_MS; waited++)
        tc_msleep(1);
}

static void note_run(rec_t *r)
{
    if (atomic_load(&g_fsm->shutdowns) > 0)
        atomic_fetch_add(&r->late, 1);
    atomic_fetch_add(&r->runs, 1);
}

static void closure_run(rk_closure_t *self, const rk_status_t *st)
{
    (void)st;
    note_run(rk_container_of(self, rec_t, closure));
}

static void read_run(rk_read_index_closure_t *self, const rk_status_t *st, int64_t index,
                     const void *ctx, size_t len)
{
    (void)st, (void)index, (void)ctx, (void)len;
    note_run(rk_container_of(self, rec_t, read_closure));
}

static int call_once(caller_t *c, rec_t *r)
{
    static const rk_peer_id_t absent = {.endpoint = {.host = "127.0.0.1", .port = 1}};
    static const uint8_t value[8] = {1};
    switch (c->kind) {
    case CALL_READ:
        return rk_node_read_index(c->node, "ctx", 3, &r->read_closure);
    case CALL_SNAPSHOT:
        return rk_node_snapshot(c->node, &r->closure);
    case CALL_ADD_PEER:
        return rk_node_add_peer(c->node, &absent, &r->closure);
    case CALL_APPLY: {
        rk_task_t t = {
            .data = value, .len = sizeof(value), .done = &r->closure, .expected_term = -1};
        return rk_node_apply(c->node, &t);
    }
    }
    return RK_EINVAL;
}

/* Calls until told to stop or the node says it is shut down. */
static void *caller_main(void *arg)
{
    caller_t *c = arg;
    while (c->n_recs < MAX_CALLS && !atomic_load(&g_stop)) {
        rec_t *r = &c->recs[c->n_recs++];
        r->closure.run = closure_run;
        r->read_closure.run = read_run;
        r->rc = call_once(c, r);
        if (r->rc == 0)
            atomic_fetch_add(&c->accepted, 1);
        if (r->rc == RK_ESHUTDOWN)
            break;
        tc_msleep(0 == c->n_recs % 8 ? 1 : 0);
    }
    return NULL;
}

static void start_callers(caller_t *callers, rk_node_t *node)
{
    for (int i = 0; i < N_CALLERS; i++) {
        caller_t *c = &callers[i];
        memset(c, 0, sizeof(*c));
        c->kind = (call_kind_t)i;
        c->node = node;
        c->recs = calloc(MAX_CALLS, sizeof(rec_t));
        assert_non_null(c->recs);
        assert_int_equal(pthread_create(&c->thread, NULL, caller_main, c), 0);
    }
}

static bool callers_busy(void *arg)
{
    caller_t *callers = arg;
    for (int i = 0; i < N_CALLERS; i++)
        if (atomic_load(&callers[i].accepted) < MIN_CALLS && callers[i].n_recs < MAX_CALLS)
            return false;
    return true;
}

static bool callers_held(void *arg)
{
    (void)arg;
    return atomic_load(&g_held) >= N_HOOKED;
}

/* After join: every accepted call ran its closure exactly once, before
 * on_shutdown; no refused call ran it. */
static void check_and_free_callers(caller_t *callers)
{
    for (int i = 0; i < N_CALLERS; i++) {
        caller_t *c = &callers[i];
        for (int k = 0; k < c->n_recs; k++) {
            rec_t *r = &c->recs[k];
            int want = r->rc == 0 ? 1 : 0;
            if (atomic_load(&r->runs) != want || atomic_load(&r->late) != 0)
                fail_msg("caller %d call %d returned %d: closure ran %d times (%d after "
                         "on_shutdown)",
                         i, k, r->rc, atomic_load(&r->runs), atomic_load(&r->late));
        }
        free(c->recs);
    }
}

static int start_single_leader(tc_cluster_t *cl, const char *group)
{
    tc_cluster_init(cl, group, 1, 1, NULL);
    if (tc_start(cl, 0, false) != 0)
        return -1;
    g_fsm = &cl->nodes[0].fsm;
    return tc_wait_leader(cl, WAIT_MS);
}

static void reset_flags(void)
{
    atomic_store(&g_stop, false);
    atomic_store(&g_armed, false);
    atomic_store(&g_release, false);
    atomic_store(&g_held, 0);
}

/* Callers that passed the state check hold there while the node shuts down;
 * released afterwards, each either queues its command or is refused. */
static void shutdown_with_callers_between_check_and_queue(void **state)
{
    (void)state;
    tc_cluster_t cl;
    reset_flags();
    assert_int_equal(start_single_leader(&cl, "race_gap"), 0);
    caller_t callers[N_CALLERS];
    node_test_cmd_hook = hold_caller;
    start_callers(callers, cl.nodes[0].node);
    assert_true(tc_wait(callers_busy, callers, WAIT_MS));
    atomic_store(&g_armed, true);
    assert_true(tc_wait(callers_held, NULL, WAIT_MS));
    /* returns once the loop has failed everything queued so far */
    rk_group_service_shutdown(cl.nodes[0].svc);
    atomic_store(&g_release, true);
    atomic_store(&g_stop, true);
    for (int i = 0; i < N_CALLERS; i++)
        pthread_join(callers[i].thread, NULL);
    node_test_cmd_hook = NULL;
    rk_group_service_join(cl.nodes[0].svc);
    assert_int_equal(atomic_load(&g_fsm->shutdowns), 1);
    check_and_free_callers(callers);
    tc_cluster_destroy(&cl);
}

/* The same callers, unhindered, over several start/shutdown rounds. */
static void shutdown_under_concurrent_callers(void **state)
{
    (void)state;
    for (int round = 0; round < N_ROUNDS; round++) {
        tc_cluster_t cl;
        reset_flags();
        assert_int_equal(start_single_leader(&cl, "race_free"), 0);
        caller_t callers[N_CALLERS];
        start_callers(callers, cl.nodes[0].node);
        assert_true(tc_wait(callers_busy, callers, WAIT_MS));
        rk_group_service_shutdown(cl.nodes[0].svc);
        atomic_store(&g_stop, true);
        for (int i = 0; i < N_CALLERS; i++)
            pthread_join(callers[i].thread, NULL);
        rk_group_service_join(cl.nodes[0].svc);
        assert_int_equal(atomic_load(&g_fsm->shutdowns), 1);
        check_and_free_callers(callers);
        tc_cluster_destroy(&cl);
    }
}

static atomic_bool g_in_shutdown;  /* on_shutdown was entered */
static atomic_bool g_end_shutdown; /* on_shutdown may return */

/* on_shutdown that holds the FSM thread until the test lets it go, so the
 * joiners all wait for the same stop. */
static void held_shutdown(rk_state_machine_t *sm)
{
    atomic_fetch_add(&((tc_counter_t *)sm)->shutdowns, 1);
    atomic_store(&g_in_shutdown, true);
    for (int waited = 0; !atomic_load(&g_end_shutdown) && waited < WAIT_MS; waited++)
        tc_msleep(1);
}

static bool flag_set(void *arg)
{
    return atomic_load((atomic_bool *)arg);
}

typedef struct joiner {
    rk_group_service_t *svc;
    atomic_bool started;
    atomic_bool returned;
    pthread_t thread;
} joiner_t;

static void *joiner_main(void *arg)
{
    joiner_t *j = arg;
    atomic_store(&j->started, true);
    rk_group_service_join(j->svc);
    atomic_store(&j->returned, true);
    return NULL;
}

static bool joiners_started(void *arg)
{
    joiner_t *js = arg;
    for (int i = 0; i < N_JOINERS; i++)
        if (!atomic_load(&js[i].started))
            return false;
    return true;
}

static bool joiners_returned(void *arg)
{
    joiner_t *js = arg;
    for (int i = 0; i < N_JOINERS; i++)
        if (!atomic_load(&js[i].returned))
            return false;
    return true;
}

/* Every joiner returns once the service has stopped, which happens once:
 * one on_shutdown, the node in RK_STATE_SHUTDOWN. */
static void concurrent_joins_wait_for_one_stop(void **state)
{
    (void)state;
    tc_cluster_t cl;
    reset_flags();
    atomic_store(&g_in_shutdown, false);
    atomic_store(&g_end_shutdown, false);
    assert_int_equal(start_single_leader(&cl, "race_join"), 0);
    rk_group_service_t *svc = cl.nodes[0].svc;
    /* read by the FSM thread only once the shutdown below is posted to it */
    cl.nodes[0].fsm.sm.on_shutdown = held_shutdown;
    rk_group_service_shutdown(svc);
    assert_true(tc_wait(flag_set, &g_in_shutdown, WAIT_MS));
    joiner_t js[N_JOINERS];
    for (int i = 0; i < N_JOINERS; i++) {
        memset(&js[i], 0, sizeof(js[i]));
        js[i].svc = svc;
        assert_int_equal(pthread_create(&js[i].thread, NULL, joiner_main, &js[i]), 0);
    }
    assert_true(tc_wait(joiners_started, js, WAIT_MS));
    /* Not an assertion: gives the joiners time to get into the join while
     * the FSM thread is still held, which is what the test is about. */
    tc_msleep(100);
    for (int i = 0; i < N_JOINERS; i++)
        assert_false(atomic_load(&js[i].returned)); /* on_shutdown has not returned */
    atomic_store(&g_end_shutdown, true);
    /* a bounded wait: a joiner stuck in the join fails the test, not hangs it */
    assert_true(tc_wait(joiners_returned, js, WAIT_MS));
    for (int i = 0; i < N_JOINERS; i++)
        pthread_join(js[i].thread, NULL);
    assert_int_equal(atomic_load(&cl.nodes[0].fsm.shutdowns), 1);
    assert_int_equal(rk_node_state(cl.nodes[0].node), RK_STATE_SHUTDOWN);
    tc_cluster_destroy(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shutdown_with_callers_between_check_and_queue),
        cmocka_unit_test(shutdown_under_concurrent_callers),
        cmocka_unit_test(concurrent_joins_wait_for_one_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
