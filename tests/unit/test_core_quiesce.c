/* Raft core: quiescence of idle groups (src/core/quiesce.c). A leader
 * quiesces only when idle and caught up; a follower only on a notice that
 * matches its log and is not older than a heartbeat it saw; work wakes the
 * group; a quiesced follower campaigns only once the host says the
 * leader's process is down; a lease read after waking needs a fresh round. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "tests/support/core_harness.h"

static h_cluster_t cl;

static void quiesce_cluster(int voters, int learners, core_read_only_option_t ro)
{
    core_options_t o;
    h_default_opts(&o);
    o.quiesce = true;
    o.read_only = ro;
    h_init(&cl, voters, learners, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    /* Every follower answered recently, and a new core accepts notices
     * only after an election timeout (restart_guard, quiesce.c). */
    h_run(&cl, (int)o.election_ticks);
}

static bool quiesced(int i)
{
    return core_quiesced(cl.n[i].core);
}

static core_read_state_t *find_read(int i, uint64_t ctx)
{
    for (size_t k = 0; k < cl.n[i].n_reads; k++)
        if (cl.n[i].reads[k].ctx == ctx)
            return &cl.n[i].reads[k];
    return NULL;
}

/* Quiesces n0 and delivers the notices; every node ends quiesced. */
static void quiesce_all(void)
{
    assert_int_equal(core_quiesce(cl.n[0].core), 0);
    h_stabilize(&cl);
    for (int i = 0; i < cl.count; i++)
        assert_true(quiesced(i));
}

/* Node `from` asks node `to` for a pre-vote in to's next term, with the
 * last entry of node `log_of`'s log; to handles it and sends its answers. */
static void step_prevote(int from, int to, int log_of)
{
    core_msg_t pv;
    memset(&pv, 0, sizeof pv);
    pv.type = CORE_MSG_PREVOTE;
    pv.from = h_peer(from);
    pv.to = h_peer(to);
    pv.term = h_term(&cl, to) + 1;
    pv.index = h_last(&cl, log_of);
    pv.log_term = h_log_term(&cl, log_of, pv.index);
    assert_int_equal(h_step(&cl, to, &pv), 0);
    h_drain(&cl, to);
}

static void test_option_off_refuses_and_default_is_off(void **state)
{
    (void)state;
    core_options_t o;
    core_options_init(&o);
    assert_false(o.quiesce);
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    assert_int_equal(core_quiesce(cl.n[0].core), RK_ESTATE);
    assert_false(quiesced(0));
    h_free(&cl);
}

/* Not idle: an entry not yet replicated to n2 (the append to it is lost). */
static void test_quiesce_only_when_idle_and_caught_up(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_SAFE);
    assert_int_equal(core_quiesce(cl.n[1].core), RK_ENOTLEADER);
    h_cut(&cl, 0, 2, true);
    assert_int_equal(h_propose(&cl, 0, "x"), 0);
    h_stabilize(&cl);
    assert_int_equal(h_commit(&cl, 0), h_last(&cl, 0));     /* committed by n0, n1 */
    assert_int_equal(core_quiesce(cl.n[0].core), RK_EBUSY); /* n2 lags */
    assert_false(quiesced(0));

    h_cut(&cl, 0, 2, false);
    h_run(&cl, 2); /* a heartbeat answer from n2 brings it up to date */
    quiesce_all();
    /* Quiesced: ticks send nothing. */
    h_tick(&cl, 0, 30);
    assert_int_equal(h_count(&cl, 0, -1, -1), 0);
    assert_true(quiesced(0));
    h_free(&cl);
}

/* A learner is a member too: the group does not quiesce while it lags. */
static void test_lagging_learner_blocks_quiesce(void **state)
{
    (void)state;
    quiesce_cluster(3, 1, CORE_READ_SAFE);
    h_isolate(&cl, 3, true);
    assert_int_equal(h_propose(&cl, 0, "x"), 0);
    h_stabilize(&cl);
    assert_int_equal(core_quiesce(cl.n[0].core), RK_EBUSY);
    h_isolate(&cl, 3, false);
    h_run(&cl, 2);
    quiesce_all();
    h_free(&cl);
}

/* A notice that does not match the follower's log is refused, and the
 * refusal wakes the leader, which heartbeats again. */
static void test_lagging_follower_refuses_notice_and_wakes_leader(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_SAFE);
    assert_int_equal(core_quiesce(cl.n[0].core), 0);
    h_drain(&cl, 0);
    h_net_msg_t *nm = h_find(&cl, 0, 2, CORE_MSG_HEARTBEAT);
    assert_non_null(nm);
    assert_true(nm->m.quiesce);
    nm->m.index++; /* as if n2 missed the last entry */
    h_deliver(&cl, 0, -1, CORE_MSG_HEARTBEAT);
    h_drain_all(&cl);
    assert_true(quiesced(1));
    assert_false(quiesced(2));
    h_net_msg_t *r = h_find(&cl, 2, 0, CORE_MSG_HEARTBEAT_RESP);
    assert_non_null(r);
    assert_false(r->m.quiesce);
    h_deliver(&cl, -1, 0, CORE_MSG_HEARTBEAT_RESP);
    h_drain(&cl, 0);
    assert_false(quiesced(0));
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_HEARTBEAT), 1);
    assert_int_equal(h_count(&cl, 0, 2, CORE_MSG_HEARTBEAT), 1);
    h_stabilize(&cl);
    assert_false(quiesced(1)); /* the leader's heartbeat woke it */
    h_free(&cl);
}

static void test_proposal_wakes_the_group(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_SAFE);
    quiesce_all();
    uint64_t before = h_commit(&cl, 0);
    assert_int_equal(h_propose(&cl, 0, "y"), 0);
    assert_false(quiesced(0));
    h_stabilize(&cl);
    assert_int_equal(h_commit(&cl, 0), before + 1);
    assert_false(quiesced(1));
    assert_false(quiesced(2));
    /* Awake again: ticks heartbeat. */
    h_tick(&cl, 0, 1);
    assert_int_equal(h_count(&cl, 0, -1, CORE_MSG_HEARTBEAT), 2);
    h_free(&cl);
}

static void test_read_wakes_the_leader_and_needs_a_round(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_SAFE);
    quiesce_all();
    assert_int_equal(core_read_index(cl.n[0].core, 9), 0);
    h_drain(&cl, 0);
    assert_false(quiesced(0));
    assert_null(find_read(0, 9));
    assert_true(h_count(&cl, 0, -1, CORE_MSG_HEARTBEAT) >= 2);
    h_stabilize(&cl);
    assert_non_null(find_read(0, 9));
    assert_int_equal(find_read(0, 9)->index, h_commit(&cl, 0));
    h_free(&cl);
}

/* A follower read forwarded to a quiesced leader wakes it. */
static void test_forwarded_read_wakes_the_leader(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_SAFE);
    quiesce_all();
    assert_int_equal(core_read_index(cl.n[1].core, 4), 0);
    h_stabilize(&cl);
    assert_false(quiesced(0));
    assert_non_null(find_read(1, 4));
    assert_int_equal(find_read(1, 4)->status, 0);
    h_free(&cl);
}

/* While the host says nothing, a quiesced follower never campaigns however
 * many ticks pass; once told the leader's process is down it campaigns
 * within an election timeout (the randomized part) and can win. */
static void test_follower_campaigns_only_after_process_down(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_SAFE);
    quiesce_all();
    h_isolate(&cl, 0, true);
    for (int i = 1; i < 3; i++)
        h_tick(&cl, i, 100);
    assert_int_equal(h_count(&cl, -1, -1, -1), 0);
    assert_int_equal(h_role(&cl, 1), CORE_FOLLOWER);
    assert_true(quiesced(1));

    assert_int_equal(core_leader_process_down(cl.n[1].core), 0);
    assert_int_equal(core_leader_process_down(cl.n[2].core), 0);
    assert_false(quiesced(1));
    core_status_t st;
    core_get_status(cl.n[1].core, &st);
    assert_true(core_peer_is_none(&st.leader));
    int k = 0;
    while (h_role(&cl, 1) == CORE_FOLLOWER && h_role(&cl, 2) == CORE_FOLLOWER && k < 10) {
        h_tick(&cl, 1, 1);
        h_tick(&cl, 2, 1);
        k++;
    }
    assert_true(k < 10); /* within election_ticks of the signal */
    h_stabilize(&cl);
    int l = h_leader(&cl);
    assert_true(l == 1 || l == 2);
    assert_true(h_term(&cl, l) > h_term(&cl, 0));
    h_free(&cl);
}

/* A vote request wakes a quiesced follower with its counter at zero: it
 * then refuses a disruptive pre-vote (thesis 4.2.3) as an awake follower
 * that just heard from its leader would, and counts toward an election. */
static void test_vote_request_wakes_follower_counting_from_zero(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_SAFE);
    quiesce_all();
    step_prevote(2, 1, 1);
    assert_false(quiesced(1));
    assert_int_equal(h_count(&cl, 1, 2, CORE_MSG_PREVOTE_RESP), 0); /* ignored: in lease */
    h_isolate(&cl, 1, true);
    h_tick(&cl, 1, 20); /* counts again: campaigns */
    assert_int_not_equal(h_role(&cl, 1), CORE_FOLLOWER);
    h_free(&cl);
}

/* A quiesced leader skips check-quorum however long it is cut off; woken,
 * it runs it from a clean window, as a new leader does: every follower
 * counts as active for the first election timeout, so it steps down at the
 * end of the second one, not at once for the silence while quiesced. */
static void test_check_quorum_restarts_clean_after_wake(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_SAFE);
    quiesce_all();
    h_isolate(&cl, 0, true);
    h_tick(&cl, 0, 50);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    assert_int_equal(core_wake(cl.n[0].core), 0);
    assert_false(quiesced(0));
    h_tick(&cl, 0, 19);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    h_tick(&cl, 0, 1);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    h_free(&cl);
}

/* The lease does not survive quiescence: a lease read right after waking
 * (no tick in between, as when the host did not tick the quiesced group)
 * waits for a quorum round sent after the wake. */
static void test_lease_read_after_wake_needs_a_fresh_round(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_LEASE);
    assert_int_equal(core_read_index(cl.n[0].core, 1), 0);
    h_drain(&cl, 0);
    assert_non_null(find_read(0, 1)); /* control: the lease runs */
    quiesce_all();
    assert_int_equal(core_read_index(cl.n[0].core, 2), 0);
    h_drain(&cl, 0);
    assert_false(quiesced(0));
    assert_null(find_read(0, 2));
    /* Late answers to the notice renew nothing either. */
    h_deliver(&cl, -1, 0, CORE_MSG_HEARTBEAT_RESP);
    h_drain(&cl, 0);
    assert_null(find_read(0, 2));
    h_stabilize(&cl);
    assert_non_null(find_read(0, 2));
    h_free(&cl);
}

/* A notice delayed past a wake is refused by a follower that already saw a
 * newer heartbeat: that follower's ack may back the leader's new lease. */
static void test_delayed_notice_after_newer_heartbeat_is_refused(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_LEASE);
    assert_int_equal(core_quiesce(cl.n[0].core), 0);
    h_drain(&cl, 0);
    h_net_msg_t *nm = h_find(&cl, 0, 1, CORE_MSG_HEARTBEAT);
    assert_non_null(nm);
    core_msg_t late = nm->m; /* no entries: a shallow copy is the message */
    h_drop(&cl, 0, 1, CORE_MSG_HEARTBEAT);
    assert_int_equal(core_wake(cl.n[0].core), 0);
    h_stabilize(&cl); /* the post-wake heartbeat reaches n1 */
    assert_false(quiesced(1));
    assert_int_equal(h_step(&cl, 1, &late), 0);
    h_drain(&cl, 1);
    assert_false(quiesced(1));
    h_net_msg_t *r = h_find(&cl, 1, 0, CORE_MSG_HEARTBEAT_RESP);
    assert_non_null(r);
    assert_false(r->m.quiesce);
    h_free(&cl);
}

/* Control for the test above: the same notice, not overtaken, is accepted. */
static void test_notice_not_overtaken_is_accepted(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_LEASE);
    assert_int_equal(core_quiesce(cl.n[0].core), 0);
    h_drain(&cl, 0);
    h_net_msg_t *nm = h_find(&cl, 0, 1, CORE_MSG_HEARTBEAT);
    assert_non_null(nm);
    core_msg_t late = nm->m;
    h_drop(&cl, 0, 1, CORE_MSG_HEARTBEAT);
    assert_int_equal(h_step(&cl, 1, &late), 0);
    h_drain(&cl, 1);
    assert_true(quiesced(1));
    h_free(&cl);
}

/* A heartbeat sent before the notice but delivered after it (the network
 * reorders) leaves the follower quiesced; one sent after a wake does not. */
static void test_reordered_older_heartbeat_does_not_wake(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_SAFE);
    h_tick(&cl, 0, 1);
    h_net_msg_t *hb = h_find(&cl, 0, 1, CORE_MSG_HEARTBEAT);
    assert_non_null(hb);
    core_msg_t old = hb->m;
    h_drop(&cl, 0, -1, CORE_MSG_HEARTBEAT);
    quiesce_all();
    assert_int_equal(h_step(&cl, 1, &old), 0);
    h_drain(&cl, 1);
    assert_true(quiesced(1));

    assert_int_equal(core_wake(cl.n[0].core), 0);
    h_drain(&cl, 0);
    h_net_msg_t *nw = h_find(&cl, 0, 1, CORE_MSG_HEARTBEAT);
    assert_non_null(nw);
    assert_true(nw->m.ctx > old.ctx);
    h_deliver(&cl, 0, 1, CORE_MSG_HEARTBEAT);
    h_drain(&cl, 1);
    assert_false(quiesced(1));
    h_free(&cl);
}

/* A pre-vote reaching a quiesced leader (e.g. from a follower that
 * restarted and timed out) wakes it: it heartbeats again at once. */
static void test_prevote_wakes_quiesced_leader(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_SAFE);
    quiesce_all();
    step_prevote(2, 0, 2);
    assert_false(quiesced(0));
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    assert_int_equal(h_count(&cl, 0, -1, CORE_MSG_HEARTBEAT), 2);
    h_free(&cl);
}

/* The host's signals only act on a quiesced follower. */
static void test_process_down_and_forget_leader(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_SAFE);
    assert_int_equal(core_leader_process_down(cl.n[1].core), 0);
    core_status_t st;
    core_get_status(cl.n[1].core, &st);
    assert_false(core_peer_is_none(&st.leader)); /* not quiesced: no-op */
    assert_int_equal(core_leader_process_down(cl.n[0].core), 0);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    quiesce_all();
    assert_int_equal(core_forget_leader(cl.n[2].core), 0);
    assert_false(quiesced(2));
    h_isolate(&cl, 2, true);
    h_tick(&cl, 2, 20);
    assert_int_not_equal(h_role(&cl, 2), CORE_FOLLOWER);
    h_free(&cl);
}

/* A crash forgets quiescence: the restarted follower counts again. */
static void test_restarted_follower_is_not_quiesced(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_SAFE);
    quiesce_all();
    h_restart(&cl, 1);
    assert_false(quiesced(1));
    h_isolate(&cl, 1, true);
    h_tick(&cl, 1, 20);
    assert_int_not_equal(h_role(&cl, 1), CORE_FOLLOWER);
    h_free(&cl);
}

/* A restarted follower lost the ctx of the newest heartbeat it acked, so
 * for an election timeout it refuses notices (one delayed past its crash
 * could be older than that heartbeat); the refusal wakes the leader. */
static void test_restarted_follower_refuses_notices_for_a_timeout(void **state)
{
    (void)state;
    quiesce_cluster(3, 0, CORE_READ_LEASE);
    h_restart(&cl, 1);
    assert_int_equal(core_quiesce(cl.n[0].core), 0);
    h_drain(&cl, 0);
    h_deliver(&cl, 0, -1, CORE_MSG_HEARTBEAT);
    h_drain_all(&cl);
    assert_false(quiesced(1));
    assert_true(quiesced(2));
    h_deliver(&cl, -1, 0, CORE_MSG_HEARTBEAT_RESP);
    h_drain(&cl, 0);
    assert_false(quiesced(0)); /* n1's refusal woke it */
    h_run(&cl, 10);
    quiesce_all();
    h_free(&cl);
}

/* A configuration change wakes the group; the new member keeps it awake
 * until it has caught up. */
static void test_membership_change_wakes(void **state)
{
    (void)state;
    quiesce_cluster(3, 1, CORE_READ_SAFE);
    quiesce_all();
    uint64_t ci;
    rk_configuration_t t = core_get_conf(cl.n[0].core, &ci)->cur;
    rk_configuration_remove_learner(&t, &cl.n[3].id);
    rk_configuration_add_peer(&t, &cl.n[3].id);
    uint64_t idx;
    assert_int_equal(core_change_conf(cl.n[0].core, &t, &idx), 0);
    assert_false(quiesced(0));
    h_stabilize(&cl);
    for (int i = 1; i < 4; i++)
        assert_false(quiesced(i));
    h_free(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_off_refuses_and_default_is_off),
        cmocka_unit_test(test_quiesce_only_when_idle_and_caught_up),
        cmocka_unit_test(test_lagging_learner_blocks_quiesce),
        cmocka_unit_test(test_lagging_follower_refuses_notice_and_wakes_leader),
        cmocka_unit_test(test_proposal_wakes_the_group),
        cmocka_unit_test(test_read_wakes_the_leader_and_needs_a_round),
        cmocka_unit_test(test_forwarded_read_wakes_the_leader),
        cmocka_unit_test(test_follower_campaigns_only_after_process_down),
        cmocka_unit_test(test_vote_request_wakes_follower_counting_from_zero),
        cmocka_unit_test(test_check_quorum_restarts_clean_after_wake),
        cmocka_unit_test(test_lease_read_after_wake_needs_a_fresh_round),
        cmocka_unit_test(test_delayed_notice_after_newer_heartbeat_is_refused),
        cmocka_unit_test(test_notice_not_overtaken_is_accepted),
        cmocka_unit_test(test_reordered_older_heartbeat_does_not_wake),
        cmocka_unit_test(test_prevote_wakes_quiesced_leader),
        cmocka_unit_test(test_process_down_and_forget_leader),
        cmocka_unit_test(test_restarted_follower_is_not_quiesced),
        cmocka_unit_test(test_restarted_follower_refuses_notices_for_a_timeout),
        cmocka_unit_test(test_membership_change_wakes),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed + h_conf_leaked();
}
