/* The CLI service and application RPC on real nodes: every group service
 * serves the CLI (no rk_rpc_server_attach needed), disable_cli refuses it
 * with a clear error, GetNodeStatus carries the full status including the
 * leader's replication progress, a detached application handle leaves no
 * handler behind (and a call it handed out still completes), and the
 * blocking client tells "never sent" from "maybe delivered". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftkit/client.h"
#include "raftkit/log.h"
#include "raftkit/rpc.h"
#include "tests/node/cluster.h"

static void plain_group_services_serve_the_cli_with_full_status(void **state)
{
    (void)state;
    tc_cluster_t c;
    tc_cluster_init(&c, "gcli", 3, 3, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tc_start(&c, i, false), 0);
    int leader = tc_wait_leader(&c, 5000);
    assert_true(leader >= 0);
    assert_int_equal(tc_apply_many(&c, leader, 20), 20);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(c.nodes[leader].node), 5000));

    rk_cli_client_t *cli = rk_cli_client_new(2000);
    rk_peer_id_t l;
    rk_status_t st;
    assert_int_equal(rk_cli_get_leader(cli, "gcli", &c.conf, &l, &st), 0);
    assert_true(rk_peer_id_equal(&l, &c.nodes[leader].id));

    rk_node_status_t *s = malloc(sizeof *s);
    /* The published status is at most a tick old: poll until the leader's
     * view shows both followers caught up. */
    int64_t last = rk_node_last_log_index(c.nodes[leader].node);
    bool caught_up = false;
    for (int i = 0; i < 100 && !caught_up; i++) {
        assert_int_equal(rk_cli_node_status(cli, "gcli", &c.nodes[leader].id, s, &st), 0);
        caught_up =
            s->n_peers == 2 && s->peers[0].match_index == last && s->peers[1].match_index == last;
        if (!caught_up)
            tc_msleep(20);
    }
    assert_true(caught_up);
    assert_int_equal(s->state, RK_STATE_LEADER);
    assert_true(rk_peer_id_equal(&s->self, &c.nodes[leader].id));
    assert_int_equal(s->committed_index, last);
    assert_int_equal(s->conf.n_peers, 3);
    for (int i = 0; i < 2; i++) {
        assert_true(s->peers[i].reachable);
        assert_int_equal(s->peers[i].next_index, last + 1);
        assert_int_equal(s->peers[i].log_lags, 0);
        assert_true(s->peers[i].last_contact_age_ms >= 0);
    }
    int f = (leader + 1) % 3;
    assert_int_equal(rk_cli_node_status(cli, "gcli", &c.nodes[f].id, s, &st), 0);
    assert_int_equal(s->state, RK_STATE_FOLLOWER);
    assert_true(rk_peer_id_equal(&s->leader, &c.nodes[leader].id));
    assert_int_equal(s->n_peers, 0);
    free(s);

    /* reset_learners through the CLI: add one, then reset to none. */
    rk_peer_id_t learner;
    assert_int_equal(rk_peer_id_parse(&learner, "127.0.0.1:1", NULL), 0);
    rk_configuration_t out;
    assert_int_equal(rk_cli_reset_learners(cli, "gcli", &c.conf, &learner, 1, &out, &st), 0);
    assert_int_equal(out.n_learners, 1);
    assert_true(rk_peer_id_equal(&out.learners[0], &learner));
    /* The answer carries the voters too (LearnersOpResponse.new_peers). */
    assert_int_equal(out.n_peers, 3);
    assert_int_equal(rk_cli_reset_learners(cli, "gcli", &c.conf, NULL, 0, &out, &st), 0);
    assert_int_equal(out.n_learners, 0);
    rk_cli_client_free(cli);
    tc_cluster_destroy(&c);
}

static void disable_cli_refuses_cli_requests_with_a_clear_error(void **state)
{
    (void)state;
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.disable_cli = true;
    tc_cluster_t c;
    tc_cluster_init(&c, "gnocli", 1, 1, &o);
    assert_int_equal(tc_start(&c, 0, false), 0);
    assert_true(tc_wait_leader(&c, 5000) == 0);
    rk_cli_client_t *cli = rk_cli_client_new(2000);
    rk_peer_id_t l;
    rk_status_t st;
    assert_int_equal(rk_cli_get_leader(cli, "gnocli", &c.conf, &l, &st), RK_ESTATE);
    assert_non_null(strstr(st.msg, "disable_cli"));
    rk_node_status_t *s = malloc(sizeof *s);
    assert_int_equal(rk_cli_node_status(cli, "gnocli", &c.nodes[0].id, s, &st), RK_ESTATE);
    free(s);
    rk_cli_client_free(cli);
    tc_cluster_destroy(&c);
}

/* ---- application methods and detach ---- */

#define M_ECHO (RK_RPC_APP_FIRST + 7)
#define M_HOLD (RK_RPC_APP_FIRST + 8)

static _Atomic(rk_rpc_call_t *) held;

static void h_echo(rk_rpc_call_t *call, const void *body, size_t len, void *arg)
{
    (void)arg;
    rk_rpc_call_reply(call, body, len);
}

static void h_hold(rk_rpc_call_t *call, const void *body, size_t len, void *arg)
{
    (void)body, (void)len, (void)arg;
    atomic_store(&held, call); /* completed later by the test, after detach */
}

typedef struct call_arg {
    rk_endpoint_t ep;
    rk_rpc_reply_t reply;
    int rc;
} call_arg_t;

static void *call_thread(void *p)
{
    call_arg_t *a = p;
    rk_rpc_client_t *cl = rk_rpc_client_new(NULL);
    a->rc = rk_rpc_client_call(cl, &a->ep, M_HOLD, "x", 1, 5000, &a->reply);
    rk_rpc_client_free(cl);
    return NULL;
}

static bool call_held(void *p)
{
    (void)p;
    return atomic_load(&held) != NULL;
}

/* A server on a free loopback port (*ep gets it) with the RPC server
 * attached. */
static rk_rpc_server_t *start_rpc_server(rk_endpoint_t *ep, rk_server_t **srv)
{
    rk_status_t st;
    assert_int_equal(rk_endpoint_parse(ep, "127.0.0.1:1", NULL), 0);
    ep->port = 0; /* any free port */
    *srv = rk_server_new(ep, &st);
    assert_non_null(*srv);
    ep->port = rk_server_port(*srv);
    rk_rpc_server_t *rs = rk_rpc_server_attach(*srv, &st);
    assert_non_null(rs);
    return rs;
}

static void detach_unregisters_methods_and_held_calls_still_complete(void **state)
{
    (void)state;
    rk_endpoint_t ep;
    rk_server_t *srv;
    rk_rpc_server_t *rs = start_rpc_server(&ep, &srv);
    rk_status_t st;
    assert_int_equal(rk_rpc_server_register(rs, M_ECHO, h_echo, NULL), 0);
    assert_int_equal(rk_rpc_server_register(rs, M_HOLD, h_hold, NULL), 0);
    assert_int_equal(rk_rpc_server_register(rs, M_ECHO, h_echo, NULL), RK_EEXIST);

    rk_rpc_client_t *cl = rk_rpc_client_new(NULL);
    rk_rpc_reply_t r;
    assert_int_equal(rk_rpc_client_call(cl, &ep, M_ECHO, "hello", 5, 2000, &r), 0);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.body, "hello", 5);
    assert_true(r.maybe_delivered);
    rk_rpc_reply_release(&r);

    /* A call the handler keeps, completed after the handle is gone. */
    call_arg_t a = {.ep = ep};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, call_thread, &a), 0);
    assert_true(tc_wait(call_held, NULL, 5000));
    rk_rpc_server_detach(rs);

    /* No window: the methods are gone the moment detach returned. */
    assert_int_equal(rk_rpc_client_call(cl, &ep, M_ECHO, "again", 5, 2000, &r), RK_ENOTFOUND);
    assert_true(r.maybe_delivered); /* the server answered */
    rk_rpc_reply_release(&r);

    /* A NULL body with a length is refused and leaves the call open. */
    assert_int_equal(rk_rpc_call_reply(atomic_load(&held), NULL, 4), RK_EINVAL);
    assert_int_equal(rk_rpc_call_reply(atomic_load(&held), "late", 4), 0);
    pthread_join(th, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.reply.len, 4);
    assert_memory_equal(a.reply.body, "late", 4);
    rk_rpc_reply_release(&a.reply);

    /* A fresh handle can take the same ids again. */
    rs = rk_rpc_server_attach(srv, &st);
    assert_non_null(rs);
    assert_int_equal(rk_rpc_server_register(rs, M_ECHO, h_echo, NULL), 0);
    assert_int_equal(rk_rpc_client_call(cl, &ep, M_ECHO, "back", 4, 2000, &r), 0);
    rk_rpc_reply_release(&r);
    rk_rpc_server_detach(rs);
    rk_server_free(srv);

    rk_rpc_client_free(cl);

    /* Nobody listens any more: a client that never had a connection knows
     * its request was certainly not delivered. (One with an open connection
     * may have written it before noticing the close: that is "maybe".) */
    cl = rk_rpc_client_new(NULL);
    assert_int_equal(rk_rpc_client_call(cl, &ep, M_ECHO, "gone", 4, 2000, &r), RK_EUNREACHABLE);
    assert_false(r.maybe_delivered);
    rk_rpc_reply_release(&r);
    rk_rpc_client_free(cl);
}

static void *free_thread(void *p)
{
    rk_server_free(p);
    return NULL;
}

static bool listener_gone(void *p)
{
    rk_rpc_client_t *cl = rk_rpc_client_new(NULL);
    rk_rpc_reply_t r;
    int rc = rk_rpc_client_call(cl, p, M_ECHO, "x", 1, 2000, &r);
    rk_rpc_reply_release(&r);
    rk_rpc_client_free(cl);
    return rc == RK_EUNREACHABLE;
}

/* A call the application still holds when the server stops: completing it
 * while rk_server_free runs must reach the loop, so that the RPC server sees
 * its last outstanding call end and frees itself, its connections and
 * buffers (LSan checks that under make asan), and rk_server_free returns. */
static void a_call_completed_while_the_server_stops_is_released(void **state)
{
    (void)state;
    rk_endpoint_t ep;
    rk_server_t *srv;
    rk_rpc_server_t *rs = start_rpc_server(&ep, &srv);
    assert_int_equal(rk_rpc_server_register(rs, M_HOLD, h_hold, NULL), 0);
    atomic_store(&held, NULL);

    call_arg_t a = {.ep = ep};
    pthread_t th, fr;
    assert_int_equal(pthread_create(&th, NULL, call_thread, &a), 0);
    assert_true(tc_wait(call_held, NULL, 5000));
    rk_rpc_server_detach(rs);

    assert_int_equal(pthread_create(&fr, NULL, free_thread, srv), 0);
    /* The listener closes when the stop begins; the held call keeps the
     * server (and so the loop) alive until it is completed. */
    assert_true(tc_wait(listener_gone, &ep, 5000));
    rk_rpc_call_reply(atomic_load(&held), "late", 4);
    pthread_join(fr, NULL);
    pthread_join(th, NULL);
    /* The client's connection was closed by the stopping server. */
    assert_int_not_equal(a.rc, 0);
    rk_rpc_reply_release(&a.reply);
}

int main(void)
{
    rk_log_set_level(RK_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_group_services_serve_the_cli_with_full_status),
        cmocka_unit_test(disable_cli_refuses_cli_requests_with_a_clear_error),
        cmocka_unit_test(detach_unregisters_methods_and_held_calls_still_complete),
        cmocka_unit_test(a_call_completed_while_the_server_stops_is_released),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
