/* Raft core: leadership transfer (thesis 3.10) and linearizable reads
 * (ReadIndex, thesis 6.4; leases, 6.4.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "tests/support/core_harness.h"

static h_cluster_t cl;

static core_read_state_t *find_read(int i, uint64_t ctx)
{
    for (size_t k = 0; k < cl.n[i].n_reads; k++)
        if (cl.n[i].reads[k].ctx == ctx)
            return &cl.n[i].reads[k];
    return NULL;
}

/* Scenario 82/84: transfer to an up-to-date node; it campaigns at once,
 * past pre-vote and the followers' lease, and wins. Transfer back works. */
static void test_transfer_up_to_date_3_10(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    assert_int_equal(core_transfer_leader(cl.n[0].core, &cl.n[1].id), 0);
    h_drain(&cl, 0);
    assert_non_null(h_find(&cl, 0, 1, CORE_MSG_TIMEOUT_NOW));
    assert_int_equal(h_propose(&cl, 0, "x"), RK_ETRANSFER);
    h_stabilize(&cl);
    assert_int_equal(h_role(&cl, 1), CORE_LEADER);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    assert_int_equal(core_transfer_leader(cl.n[1].core, &cl.n[0].id), 0);
    h_stabilize(&cl);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    h_free(&cl);
}

/* Scenario 83: transfer to a lagging node catches it up first. */
static void test_transfer_to_lagging_node_3_10(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_isolate(&cl, 2, true);
    for (int k = 0; k < 5; k++)
        h_propose(&cl, 0, "x");
    h_stabilize(&cl);
    h_isolate(&cl, 2, false);
    assert_int_equal(core_transfer_leader(cl.n[0].core, &cl.n[2].id), 0);
    h_drain(&cl, 0);
    assert_null(h_find(&cl, 0, 2, CORE_MSG_TIMEOUT_NOW));
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    assert_int_equal(h_role(&cl, 2), CORE_LEADER);
    assert_int_equal(h_log_last(&cl, 2), h_log_last(&cl, 1));
    h_free(&cl);
}

/* Scenario 85/87: the transfer aborts after an election timeout; asking
 * again does not extend it; self cancels; unknown ids are refused. */
static void test_transfer_timeout_and_cancel(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    cl.n[2].down = true;
    h_propose(&cl, 0, "x"); /* n2 lags */
    h_stabilize(&cl);
    assert_int_equal(core_transfer_leader(cl.n[0].core, &cl.n[2].id), 0);
    h_tick(&cl, 0, 5);
    h_stabilize(&cl);
    assert_int_equal(core_transfer_leader(cl.n[0].core, &cl.n[2].id), 0);
    h_tick(&cl, 0, 5);
    h_stabilize(&cl);
    core_status_t st;
    core_get_status(cl.n[0].core, &st);
    assert_false(st.transferring);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    assert_int_equal(h_propose(&cl, 0, "y"), 0);
    assert_true(h_events(&cl, 0, CORE_EV_TRANSFER_DONE) >= 1);

    assert_int_equal(core_transfer_leader(cl.n[0].core, &cl.n[2].id), 0);
    assert_int_equal(core_transfer_leader(cl.n[0].core, &cl.n[0].id), 0);
    core_get_status(cl.n[0].core, &st);
    assert_false(st.transferring);
    rk_peer_id_t unknown = h_peer(6);
    assert_int_equal(core_transfer_leader(cl.n[0].core, &unknown), RK_EUNKNOWNPEER);
    assert_int_equal(core_transfer_leader(cl.n[1].core, &cl.n[2].id), RK_ENOTLEADER);
    h_free(&cl);
}

/* Scenario 86: removing the transferee aborts the transfer. */
static void test_transfer_aborted_by_conf_change(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    cl.n[2].down = true;
    h_propose(&cl, 0, "x");
    h_stabilize(&cl);
    /* change first (transfers refuse changes), then transfer during joint */
    rk_configuration_t t;
    memset(&t, 0, sizeof t);
    t.n_peers = 2;
    t.peers[0] = h_peer(0);
    t.peers[1] = h_peer(1);
    assert_int_equal(core_change_conf(cl.n[0].core, &t, NULL), 0);
    h_stabilize(&cl);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    core_status_t st;
    core_get_status(cl.n[0].core, &st);
    assert_false(st.transferring);
    assert_int_equal(core_transfer_leader(cl.n[0].core, &cl.n[2].id), RK_EUNKNOWNPEER);
    h_free(&cl);
}

/* Scenario 89/90 (thesis 6.4): a new leader answers reads only after its
 * no-op commits, with index = commit, after a heartbeat round. */
static void test_read_index_round_6_4(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    core_campaign(cl.n[0].core);
    h_drain_all(&cl);
    h_deliver(&cl, 0, -1, CORE_MSG_PREVOTE);
    h_deliver(&cl, -1, 0, CORE_MSG_PREVOTE_RESP);
    h_deliver(&cl, 0, -1, CORE_MSG_VOTE);
    h_deliver(&cl, -1, 0, CORE_MSG_VOTE_RESP);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    assert_int_equal(core_read_index(cl.n[0].core, 42), 0);
    h_drain(&cl, 0);
    assert_null(find_read(0, 42));
    assert_int_equal(h_count(&cl, 0, -1, CORE_MSG_HEARTBEAT), 0);
    h_stabilize(&cl); /* no-op commits, then the round completes */
    core_read_state_t *r = find_read(0, 42);
    assert_non_null(r);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->index, 1);

    /* batching: two reads in one input batch share one round */
    h_propose(&cl, 0, "a");
    h_stabilize(&cl);
    core_read_index(cl.n[0].core, 43);
    core_read_index(cl.n[0].core, 44);
    h_drain(&cl, 0);
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_HEARTBEAT), 1);
    assert_null(find_read(0, 43));
    h_deliver(&cl, 0, 1, CORE_MSG_HEARTBEAT);
    h_deliver(&cl, 1, 0, CORE_MSG_HEARTBEAT_RESP);
    assert_non_null(find_read(0, 43));
    assert_non_null(find_read(0, 44));
    assert_int_equal(find_read(0, 44)->index, 2);
    h_free(&cl);
}

/* Scenario 89: reads from a follower are forwarded and answered. */
static void test_follower_read_index(void **state)
{
    (void)state;
    h_init(&cl, 3, 1, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_propose(&cl, 0, "a");
    h_stabilize(&cl);
    assert_int_equal(core_read_index(cl.n[1].core, 7), 0);
    assert_int_equal(core_read_index(cl.n[3].core, 8), 0); /* learner */
    h_stabilize(&cl);
    assert_non_null(find_read(1, 7));
    assert_int_equal(find_read(1, 7)->index, 2);
    assert_non_null(find_read(3, 8));
    h_free(&cl);

    h_init(&cl, 3, 0, NULL);
    assert_int_equal(core_read_index(cl.n[1].core, 7), RK_ENOLEADER);
    h_free(&cl);
}

/* Scenario 91: a stale, isolated leader never confirms a read. */
static void test_stale_leader_read_not_confirmed(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    h_isolate(&cl, 0, true);
    h_run(&cl, 40); /* n1 or n2 takes over; n0 steps down by check-quorum */
    int l = h_leader(&cl);
    assert_true(l == 1 || l == 2);
    if (h_role(&cl, 0) == CORE_LEADER) {
        core_read_index(cl.n[0].core, 9);
        h_drain(&cl, 0);
    }
    h_isolate(&cl, 0, false);
    h_run(&cl, 3);
    core_read_state_t *r = find_read(0, 9);
    assert_true(r == NULL || r->status != 0);
    h_free(&cl);
}

/* Scenario 92 (thesis 6.4.1): lease reads answer at once with the commit. */
static void test_lease_read_6_4_1(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.read_only = CORE_READ_LEASE;
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    core_read_index(cl.n[0].core, 5);
    h_drain(&cl, 0);
    assert_non_null(find_read(0, 5));
    assert_int_equal(find_read(0, 5)->index, h_commit(&cl, 0));
    assert_int_equal(h_count(&cl, 0, -1, CORE_MSG_HEARTBEAT), 0);
    h_free(&cl);
}

/* Pending reads fail when leadership is lost. */
static void test_reads_fail_on_step_down(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    core_read_index(cl.n[0].core, 11);
    h_drain(&cl, 0);
    h_drop(&cl, -1, -1, -1);
    core_msg_t hb = {.type = CORE_MSG_HEARTBEAT, .from = h_peer(1), .to = h_peer(0),
                     .term = h_term(&cl, 0) + 1};
    h_step(&cl, 0, &hb);
    h_drain(&cl, 0);
    core_read_state_t *r = find_read(0, 11);
    assert_non_null(r);
    assert_int_equal(r->status, RK_ENOTLEADER);
    h_free(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transfer_up_to_date_3_10),
        cmocka_unit_test(test_transfer_to_lagging_node_3_10),
        cmocka_unit_test(test_transfer_timeout_and_cancel),
        cmocka_unit_test(test_transfer_aborted_by_conf_change),
        cmocka_unit_test(test_read_index_round_6_4),
        cmocka_unit_test(test_follower_read_index),
        cmocka_unit_test(test_stale_leader_read_not_confirmed),
        cmocka_unit_test(test_lease_read_6_4_1),
        cmocka_unit_test(test_reads_fail_on_step_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
