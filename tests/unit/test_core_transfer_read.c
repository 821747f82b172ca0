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

static int transfer_done_status(int i, bool *found)
{
    *found = false;
    int st = 0;
    for (size_t k = 0; k < cl.n[i].n_events; k++)
        if (cl.n[i].events[k].type == CORE_EV_TRANSFER_DONE) {
            *found = true;
            st = cl.n[i].events[k].status;
        }
    return st;
}

static rk_configuration_t voters3(int a, int b, int c)
{
    rk_configuration_t t;
    memset(&t, 0, sizeof t);
    t.n_peers = 3;
    t.peers[0] = h_peer(a);
    t.peers[1] = h_peer(b);
    t.peers[2] = h_peer(c);
    return t;
}

/* Scenario 86 (thesis 3.10, 4.3): a transfer to n2, a voter of the outgoing
 * half of a joint configuration, is pending when the joint entry commits
 * and the leader's automatic leave removes n2: the transfer is aborted
 * (RK_ECANCELED), TimeoutNow never goes to n2, the leader stays and takes
 * proposals again. A higher-term campaign also clears the transfer state. */
static void test_transfer_aborted_by_conf_change(void **state)
{
    (void)state;
    h_init(&cl, 3, 1, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    h_cut(&cl, 0, 2, true); /* n2 cannot catch up, so no TimeoutNow yet */
    rk_configuration_t t = voters3(0, 1, 3);
    assert_int_equal(core_change_conf(cl.n[0].core, &t, NULL), 0);
    h_drain(&cl, 0);
    assert_true(core_get_conf(cl.n[0].core, NULL)->joint);
    assert_int_equal(core_transfer_leader(cl.n[0].core, &cl.n[2].id), 0);
    assert_int_equal(h_propose(&cl, 0, "x"), RK_ETRANSFER);
    h_clear_events(&cl, 0);
    h_stabilize(&cl); /* joint commits via n1, n3; C_new {0,1,3} appended */
    assert_false(core_get_conf(cl.n[0].core, NULL)->joint);
    core_status_t st;
    core_get_status(cl.n[0].core, &st);
    assert_false(st.transferring);
    bool found;
    assert_int_equal(transfer_done_status(0, &found), RK_ECANCELED);
    assert_true(found);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    assert_int_equal(h_count(&cl, 0, 2, CORE_MSG_TIMEOUT_NOW), 0);
    assert_int_equal(h_propose(&cl, 0, "y"), 0);
    h_stabilize(&cl);
    assert_int_equal(h_commit(&cl, 0), h_last(&cl, 0));
    assert_int_equal(core_transfer_leader(cl.n[0].core, &cl.n[2].id), RK_EUNKNOWNPEER);
    h_free(&cl);

    /* a higher-term campaign (here a transfer-flagged one, past the lease)
     * deposes the leader before it could send TimeoutNow */
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    h_cut(&cl, 0, 2, true);
    h_propose(&cl, 0, "lag");
    h_stabilize(&cl);
    assert_int_equal(core_transfer_leader(cl.n[0].core, &cl.n[2].id), 0);
    h_clear_events(&cl, 0);
    core_msg_t v = {.type = CORE_MSG_VOTE,
                    .from = h_peer(1),
                    .to = h_peer(0),
                    .term = h_term(&cl, 0) + 1,
                    .index = h_last(&cl, 1),
                    .log_term = h_log_term(&cl, 1, h_last(&cl, 1)),
                    .transfer = true};
    h_step(&cl, 0, &v);
    h_drain(&cl, 0);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    core_get_status(cl.n[0].core, &st);
    assert_false(st.transferring);
    assert_int_equal(transfer_done_status(0, &found), RK_ECANCELED);
    assert_true(found);
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

/* Scenario 91 (thesis 6.4): n0 leads; the acks of its read A are held
 * back; n0 is cut off (check-quorum off, so it keeps believing it leads)
 * while n1/n2 elect a new leader and commit more; read B is started at the
 * stale n0; then the network heals and the old acks for A arrive, twice.
 * They confirm A, with the commit index it had when A was issued (the
 * heartbeats they answer left after A was registered, so n0 was leader
 * then), but they cannot confirm B (its round is newer); B fails once n0
 * learns the new term, and is never answered with an index below the new
 * leader's commit. */
static void test_stale_leader_read_not_confirmed(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.check_quorum = false;
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_propose(&cl, 0, "a");
    h_stabilize(&cl);
    uint64_t commit_a = h_commit(&cl, 0);
    assert_int_equal(core_read_index(cl.n[0].core, 1), 0);
    h_drain(&cl, 0);
    h_deliver(&cl, 0, -1, CORE_MSG_HEARTBEAT);
    core_msg_t acks[2];
    size_t n_acks = 0;
    for (int f = 1; f <= 2; f++) {
        h_net_msg_t *r = h_find(&cl, f, 0, CORE_MSG_HEARTBEAT_RESP);
        assert_non_null(r);
        assert_int_equal(r->m.ctx, 1);
        acks[n_acks++] = r->m; /* no entries: a plain copy is enough */
    }
    h_drop(&cl, -1, -1, -1);
    assert_null(find_read(0, 1));

    h_isolate(&cl, 0, true);
    h_run(&cl, 40);
    int l = h_leader(&cl);
    assert_true(l == 1 || l == 2);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER); /* stale, unaware */
    h_propose(&cl, l, "b");
    h_stabilize(&cl);
    uint64_t commit_new = h_commit(&cl, l);
    assert_true(commit_new > commit_a);
    assert_int_equal(core_read_index(cl.n[0].core, 2), 0);
    h_drain(&cl, 0);
    h_drop(&cl, -1, -1, -1);

    h_isolate(&cl, 0, false);
    for (size_t k = 0; k < n_acks; k++)
        h_step(&cl, 0, &acks[k]);
    h_step(&cl, 0, &acks[0]); /* duplicate */
    h_drain(&cl, 0);
    core_read_state_t *a = find_read(0, 1);
    assert_non_null(a);
    assert_int_equal(a->status, 0);
    assert_int_equal(a->index, commit_a);
    assert_null(find_read(0, 2));
    h_run(&cl, 3);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    core_read_state_t *b = find_read(0, 2);
    assert_non_null(b);
    assert_int_not_equal(b->status, 0);
    for (size_t k = 0; k < cl.n[0].n_reads; k++)
        if (cl.n[0].reads[k].ctx == 2 && cl.n[0].reads[k].status == 0)
            assert_true(cl.n[0].reads[k].index >= commit_new);
    h_free(&cl);
}

/* Scenario 92 (thesis 6.4.1): lease reads answer at once with the commit
 * once a heartbeat round was acked (the lease runs from its send). */
static void test_lease_read_6_4_1(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.read_only = CORE_READ_LEASE;
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    h_run(&cl, 1); /* the lease starts with the first acked heartbeat */
    core_read_index(cl.n[0].core, 5);
    h_drain(&cl, 0);
    assert_non_null(find_read(0, 5));
    assert_int_equal(find_read(0, 5)->index, h_commit(&cl, 0));
    assert_int_equal(h_count(&cl, 0, -1, CORE_MSG_HEARTBEAT), 0);
    h_free(&cl);
}

/* Simulator bug 6 (thesis 6.4.1, 3.10): the lease rests on followers not
 * voting for anyone else within an election timeout of hearing from the
 * leader, and a TimeoutNow election skips exactly that. So once n0 sent
 * TimeoutNow, it serves reads through heartbeat rounds for the rest of its
 * term -- even after the transfer timed out, since the TimeoutNow may still
 * arrive. Here it does arrive late: n1 wins term+1 with n2 and commits a
 * write while n0, cut off, still believes it leads; a read at n0 must not be
 * answered with its old commit index. Before the fix both reads were
 * answered at once from the lease. */
static void test_no_lease_reads_after_timeout_now(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.read_only = CORE_READ_LEASE;
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    assert_int_equal(core_transfer_leader(cl.n[0].core, &cl.n[1].id), 0);
    h_drain(&cl, 0);
    h_net_msg_t *tn = h_find(&cl, 0, 1, CORE_MSG_TIMEOUT_NOW);
    assert_non_null(tn);
    core_msg_t late = tn->m; /* no entries: a plain copy is enough */
    h_drop(&cl, 0, 1, CORE_MSG_TIMEOUT_NOW);
    h_clear_events(&cl, 0);
    h_run(&cl, o.election_ticks + 2); /* the transfer times out */
    assert_int_equal(h_events(&cl, 0, CORE_EV_TRANSFER_DONE), 1);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);

    core_read_index(cl.n[0].core, 8);
    h_drain(&cl, 0);
    assert_null(find_read(0, 8)); /* no lease: a heartbeat round */
    assert_true(h_count(&cl, 0, -1, CORE_MSG_HEARTBEAT) > 0);
    h_stabilize(&cl);
    assert_non_null(find_read(0, 8));
    assert_int_equal(find_read(0, 8)->status, 0);

    uint64_t old_commit = h_commit(&cl, 0);
    h_isolate(&cl, 0, true);
    h_step(&cl, 1, &late);
    h_stabilize(&cl);
    assert_int_equal(h_role(&cl, 1), CORE_LEADER);
    assert_int_equal(h_propose(&cl, 1, "b"), 0);
    h_stabilize(&cl);
    uint64_t commit_new = h_commit(&cl, 1);
    assert_true(commit_new > old_commit);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER); /* stale, unaware */
    core_read_index(cl.n[0].core, 9);
    h_drain(&cl, 0);
    assert_null(find_read(0, 9));
    h_drop(&cl, -1, -1, -1);
    h_isolate(&cl, 0, false);
    h_run(&cl, 3);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    for (size_t k = 0; k < cl.n[0].n_reads; k++)
        if (cl.n[0].reads[k].ctx == 9 && cl.n[0].reads[k].status == 0)
            assert_true(cl.n[0].reads[k].index >= commit_new);

    /* A new term brings a new lease. */
    assert_int_equal(core_transfer_leader(cl.n[1].core, &cl.n[0].id), 0);
    h_stabilize(&cl);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    h_run(&cl, 1); /* a heartbeat acked in the new term */
    core_read_index(cl.n[0].core, 10);
    h_drain(&cl, 0);
    assert_non_null(find_read(0, 10));
    assert_int_equal(find_read(0, 10)->index, h_commit(&cl, 0));
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
    core_msg_t hb = {
        .type = CORE_MSG_HEARTBEAT, .from = h_peer(1), .to = h_peer(0), .term = h_term(&cl, 0) + 1};
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
        cmocka_unit_test(test_no_lease_reads_after_timeout_now),
        cmocka_unit_test(test_reads_fail_on_step_down),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed + h_conf_leaked();
}
