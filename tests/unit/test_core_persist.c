/* Raft core: persistence ordering with asynchronous storage writes
 * (thesis 10.2.1; etcd async storage writes): replies only after persist,
 * the leader counting itself only once durable, stale acks (ABA). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "tests/support/core_harness.h"

static h_cluster_t cl;

/* Scenario 94: a vote grant and an append ack leave only after the hard
 * state / entries write is acknowledged. */
static void test_reply_only_after_persist(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.pre_vote = false;
    h_init(&cl, 3, 0, &o);
    cl.auto_persist = false;
    core_msg_t v = {.type = CORE_MSG_VOTE, .from = h_peer(1), .to = h_peer(0), .term = 1};
    h_step(&cl, 0, &v);
    h_drain(&cl, 0);
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_VOTE_RESP), 0);
    assert_int_equal(cl.n[0].n_pending, 1);
    assert_true(cl.n[0].pending[0].has_hard_state);
    h_persist(&cl, 0);
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_VOTE_RESP), 1);
    assert_true(core_peer_eq(&cl.n[0].hs.vote, &v.from));

    core_entry_t e = {.term = 1, .index = 1, .type = CORE_ENTRY_DATA};
    core_msg_t a = {.type = CORE_MSG_APP,
                    .from = h_peer(1),
                    .to = h_peer(0),
                    .term = 1,
                    .entries = &e,
                    .n_entries = 1};
    h_step(&cl, 0, &a);
    h_drain(&cl, 0);
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_APP_RESP), 0);
    h_persist(&cl, 0);
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_APP_RESP), 1);
    assert_int_equal(h_log_last(&cl, 0), 1);
    h_free(&cl);
}

/* Scenario 95 (thesis 10.2.1): the leader's own match advances only when its
 * write is acked: a single node commits only then; in 3 nodes a majority of
 * followers can commit before the leader's slow disk finishes. */
static void test_leader_counts_itself_after_persist_10_2_1(void **state)
{
    (void)state;
    h_init(&cl, 1, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    cl.auto_persist = false;
    uint64_t c0 = h_commit(&cl, 0);
    h_propose(&cl, 0, "a");
    assert_int_equal(h_commit(&cl, 0), c0);
    h_persist(&cl, 0);
    assert_int_equal(h_commit(&cl, 0), c0 + 1);
    h_free(&cl);

    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    c0 = h_commit(&cl, 0);
    cl.auto_persist = false;
    h_propose(&cl, 0, "a"); /* leader's write stays pending */
    h_deliver(&cl, 0, -1, CORE_MSG_APP);
    h_persist(&cl, 1);
    h_persist(&cl, 2);
    h_deliver(&cl, -1, 0, CORE_MSG_APP_RESP);
    assert_int_equal(h_commit(&cl, 0), c0 + 1);
    /* but it applies only what it has durably */
    assert_true(cl.n[0].applied <= c0);
    h_persist(&cl, 0);
    h_drain(&cl, 0);
    assert_int_equal(cl.n[0].applied, c0 + 1);
    h_free(&cl);
}

/* Scenario 96: a candidate whose self-vote write is pending loses to a
 * winner's heartbeat; the late ack is never tallied. */
static void test_late_self_vote_not_tallied(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.pre_vote = false;
    h_init(&cl, 3, 0, &o);
    cl.auto_persist = false;
    core_campaign(cl.n[0].core);
    h_drain(&cl, 0);
    assert_int_equal(h_role(&cl, 0), CORE_CANDIDATE);
    core_msg_t hb = {.type = CORE_MSG_HEARTBEAT, .from = h_peer(1), .to = h_peer(0), .term = 1};
    h_step(&cl, 0, &hb);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    /* a grant from n2 arrives too, then the self-vote write completes */
    core_msg_t g = {.type = CORE_MSG_VOTE_RESP, .from = h_peer(2), .to = h_peer(0), .term = 1};
    h_step(&cl, 0, &g);
    h_drain(&cl, 0);
    h_persist(&cl, 0);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    h_free(&cl);
}

/* Scenario 97: a candidate becomes leader only once its persisted real
 * self-vote arrives, even with a peer grant already in. */
static void test_candidate_waits_for_self_vote(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    cl.auto_persist = false;
    core_campaign(cl.n[0].core);
    h_drain(&cl, 0);
    assert_int_equal(h_role(&cl, 0), CORE_PRE_CANDIDATE);
    h_deliver(&cl, 0, 1, CORE_MSG_PREVOTE);
    h_persist(&cl, 1);
    h_deliver(&cl, 1, 0, CORE_MSG_PREVOTE_RESP);
    assert_int_equal(h_role(&cl, 0), CORE_CANDIDATE);
    h_deliver(&cl, 0, 1, CORE_MSG_VOTE);
    h_persist(&cl, 1);
    h_deliver(&cl, 1, 0, CORE_MSG_VOTE_RESP);
    assert_int_equal(h_role(&cl, 0), CORE_CANDIDATE); /* own vote not durable */
    h_persist(&cl, 0);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    h_free(&cl);
}

/* Scenario 98/101: a leader's append ack that completes after it lost the
 * term does not count: it stays follower and commit does not move. */
static void test_self_ack_after_term_change(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    cl.auto_persist = false;
    uint64_t c0 = h_commit(&cl, 0);
    h_propose(&cl, 0, "a");
    h_drop(&cl, -1, -1, -1);
    core_msg_t hb = {
        .type = CORE_MSG_HEARTBEAT, .from = h_peer(1), .to = h_peer(0), .term = h_term(&cl, 0) + 1};
    h_step(&cl, 0, &hb);
    h_drain(&cl, 0);
    h_persist(&cl, 0);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    assert_int_equal(h_commit(&cl, 0), c0);
    h_free(&cl);
}

/* Scenario 99: the unstable-log ABA race. n0 receives 2/1, then 2/2 (after
 * a term change), then 2/3; the writes complete in order; an ack for an
 * older write never marks newer entries stable. */
static void test_unstable_aba_race(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    cl.auto_persist = false;
    uint64_t t1[] = {1};
    h_set_log(&cl, 0, t1, 1, 1);
    core_entry_t e = {.index = 2};
    core_msg_t a = {.type = CORE_MSG_APP,
                    .from = h_peer(1),
                    .to = h_peer(0),
                    .index = 1,
                    .log_term = 1,
                    .entries = &e,
                    .n_entries = 1};
    for (uint64_t t = 1; t <= 3; t++) {
        e.term = t;
        a.term = t + 1;
        a.from = h_peer((int)(t % 2) + 1);
        h_step(&cl, 0, &a);
        h_drain(&cl, 0);
    }
    assert_int_equal(cl.n[0].n_pending, 3);
    core_status_t st;
    h_persist_n(&cl, 0, 1); /* 2/1 durable */
    core_get_status(cl.n[0].core, &st);
    assert_int_equal(st.stable_index, 1); /* 2/1 is not our entry 2 any more */
    assert_int_equal(st.last_term, 3);
    h_persist_n(&cl, 0, 1); /* 2/2 durable */
    core_get_status(cl.n[0].core, &st);
    assert_int_equal(st.stable_index, 1);
    h_persist_n(&cl, 0, 1); /* 2/3 durable */
    core_get_status(cl.n[0].core, &st);
    assert_int_equal(st.stable_index, 2);
    assert_int_equal(h_log_term(&cl, 0, 2), 3);
    /* the core reads entry 2 from storage now: it must be term 3 */
    assert_int_equal(st.last_term, 3);
    h_free(&cl);
}

/* Scenario 102: duplicate delivery during a slow write: no double append. */
static void test_duplicate_append_during_write(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    cl.auto_persist = false;
    core_entry_t e = {.term = 1, .index = 1};
    core_msg_t a = {.type = CORE_MSG_APP,
                    .from = h_peer(1),
                    .to = h_peer(0),
                    .term = 1,
                    .entries = &e,
                    .n_entries = 1,
                    .commit = 1};
    h_step(&cl, 0, &a);
    h_drain(&cl, 0);
    h_step(&cl, 0, &a);
    h_drain(&cl, 0);
    size_t n_entries = 0;
    for (size_t k = 0; k < cl.n[0].n_pending; k++)
        n_entries += cl.n[0].pending[k].n_entries;
    assert_int_equal(n_entries, 1);
    h_persist(&cl, 0);
    h_drain(&cl, 0);
    assert_int_equal(h_log_last(&cl, 0), 1);
    assert_int_equal(cl.n[0].applied, 1);
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_APP_RESP), 2);
    h_free(&cl);
}

/* Scenario 105: restart from disk keeps term, vote and log; pre-votes are
 * not persisted; an unpersisted vote is lost with the crash. */
static void test_restart_from_disk(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_propose(&cl, 0, "a");
    h_stabilize(&cl);
    uint64_t term = h_term(&cl, 1), last = h_last(&cl, 1);
    h_restart(&cl, 1);
    assert_int_equal(h_term(&cl, 1), term);
    assert_int_equal(h_last(&cl, 1), last);
    assert_int_equal(h_role(&cl, 1), CORE_FOLLOWER);
    /* granting a pre-vote writes nothing */
    cl.auto_persist = false;
    core_msg_t pv = {.type = CORE_MSG_PREVOTE,
                     .from = h_peer(2),
                     .to = h_peer(1),
                     .term = term + 1,
                     .index = last,
                     .log_term = term};
    h_tick(&cl, 1, 10);
    h_step(&cl, 1, &pv);
    h_drain(&cl, 1);
    for (size_t k = 0; k < cl.n[1].n_pending; k++)
        assert_false(cl.n[1].pending[k].has_hard_state && cl.n[1].pending[k].hs.term != term);
    h_free(&cl);
}

/* Ticks node i n times without delivering anything; true if it ever left
 * the follower role or sent a (pre-)vote request. */
static bool campaigned_during(int i, int n)
{
    for (int k = 0; k < n; k++) {
        h_tick(&cl, i, 1);
        if (h_role(&cl, i) != CORE_FOLLOWER || h_count(&cl, i, -1, CORE_MSG_PREVOTE) ||
            h_count(&cl, i, -1, CORE_MSG_VOTE))
            return true;
    }
    return false;
}

/* Scenario 100 (§5.4.1, thesis 3.10): a follower whose entries write or
 * snapshot install is still pending on a slow disk does not campaign --
 * not on timeout, not when asked, not on TimeoutNow -- until the write is
 * acknowledged; then it campaigns at the next tick (the timer kept running),
 * and a TimeoutNow received meanwhile is honoured. */
static void test_no_campaign_while_busy(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    uint64_t t = h_term(&cl, 0);
    cl.auto_persist = false;
    h_propose(&cl, 0, "slow");
    h_deliver(&cl, 0, 1, CORE_MSG_APP);
    assert_int_equal(cl.n[1].n_pending, 1); /* n1's write is stuck */
    h_drop(&cl, -1, -1, -1);
    h_isolate(&cl, 0, true);
    assert_false(campaigned_during(1, 40));
    assert_int_equal(core_campaign(cl.n[1].core), RK_ESTATE);
    assert_int_equal(h_term(&cl, 1), t);
    h_persist(&cl, 1);
    h_drop(&cl, -1, -1, -1);
    h_tick(&cl, 1, 1);
    assert_int_equal(h_role(&cl, 1), CORE_PRE_CANDIDATE);
    h_free(&cl);

    /* TimeoutNow while the write is pending: deferred, then honoured */
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    t = h_term(&cl, 0);
    cl.auto_persist = false;
    h_propose(&cl, 0, "slow");
    h_deliver(&cl, 0, 1, CORE_MSG_APP);
    h_drop(&cl, -1, -1, -1);
    core_msg_t tn = {.type = CORE_MSG_TIMEOUT_NOW, .from = h_peer(0), .to = h_peer(1), .term = t};
    h_step(&cl, 1, &tn);
    h_drain(&cl, 1);
    assert_int_equal(h_role(&cl, 1), CORE_FOLLOWER);
    assert_int_equal(h_count(&cl, 1, -1, CORE_MSG_VOTE), 0);
    h_persist(&cl, 1);
    h_drain(&cl, 1);
    assert_int_equal(h_role(&cl, 1), CORE_CANDIDATE);
    assert_int_equal(h_term(&cl, 1), t + 1);
    h_net_msg_t *v = h_find(&cl, 1, 2, CORE_MSG_VOTE);
    assert_non_null(v);
    assert_true(v->m.transfer);
    h_free(&cl);

    /* a snapshot install pending: no campaign either (scenario 59) */
    h_init(&cl, 3, 0, NULL);
    cl.auto_persist = false;
    core_snapshot_meta_t meta;
    memset(&meta, 0, sizeof meta);
    meta.index = 5;
    meta.term = 1;
    meta.conf = cl.boot;
    core_msg_t m = {
        .type = CORE_MSG_SNAP, .from = h_peer(0), .to = h_peer(1), .term = 1, .snap = &meta};
    h_step(&cl, 1, &m);
    h_drain(&cl, 1);
    assert_true(cl.n[1].pending[0].has_snapshot);
    h_drop(&cl, -1, -1, -1);
    assert_false(campaigned_during(1, 40));
    h_persist(&cl, 1);
    h_tick(&cl, 1, 1);
    assert_int_equal(h_role(&cl, 1), CORE_PRE_CANDIDATE);
    h_free(&cl);
}

/* Scenario 103 (thesis 10.2.1): the leader's own append fails after one
 * follower stored the entry. The leader hands over and steps down, the core
 * halts with the I/O error (the host fails the proposal with it), no ack
 * promising the lost write leaves, and the follower holding the entry wins
 * at once and commits it. */
static void test_leader_disk_failure(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    uint64_t t = h_term(&cl, 0);
    cl.auto_persist = false;
    uint64_t idx = 0;
    core_entry_t e = {.type = CORE_ENTRY_DATA, .data = buf_new("x", 1)};
    assert_int_equal(core_propose(cl.n[0].core, &e, 1, &idx, NULL), 0);
    buf_unref(e.data);
    h_drain(&cl, 0);
    assert_int_equal(cl.n[0].n_pending, 1);
    h_deliver(&cl, 0, 1, CORE_MSG_APP);
    h_drop(&cl, 0, 2, -1);
    h_persist(&cl, 1);
    h_deliver(&cl, 1, 0, CORE_MSG_APP_RESP); /* n1 holds idx; no commit yet */
    assert_true(h_commit(&cl, 0) < idx);

    core_t *c0 = cl.n[0].core;
    assert_int_equal(core_persist_failed(c0, 0, RK_EIO), RK_EINVAL);
    assert_int_equal(core_persist_failed(c0, cl.n[0].pending[0].id, 0), RK_EINVAL);
    h_clear_events(&cl, 0);
    assert_int_equal(core_persist_failed(c0, cl.n[0].pending[0].id, RK_EIO), 0);
    h_drain(&cl, 0);
    assert_int_equal(cl.n[0].fatal, RK_EIO);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    bool stepped_down = false;
    for (size_t k = 0; k < cl.n[0].n_events; k++)
        stepped_down |=
            cl.n[0].events[k].type == CORE_EV_ROLE && cl.n[0].events[k].old_role == CORE_LEADER;
    assert_true(stepped_down);
    assert_non_null(h_find(&cl, 0, 1, CORE_MSG_TIMEOUT_NOW)); /* n1 has the most */
    assert_int_equal(h_count(&cl, 0, -1, CORE_MSG_APP_RESP), 0);
    assert_int_equal(core_propose(c0, &e, 1, NULL, NULL), RK_ESTATE);
    assert_int_equal(core_tick(c0), RK_ESTATE);
    assert_int_equal(core_persist_failed(c0, 1, RK_EIO), RK_ESTATE);

    cl.auto_persist = true;
    h_persist(&cl, 1);
    h_persist(&cl, 2);
    h_deliver(&cl, 0, 1, CORE_MSG_TIMEOUT_NOW);
    cl.n[0].down = true; /* the host halted it */
    h_stabilize(&cl);    /* no tick: the handoff elects n1 */
    assert_int_equal(h_role(&cl, 1), CORE_LEADER);
    assert_int_equal(h_term(&cl, 1), t + 1);
    assert_true(h_commit(&cl, 2) >= idx);
    assert_int_equal(h_log_term(&cl, 2, idx), t);
    h_free(&cl);
}

/* Regression (simulator bug 3; §5.2, Log Matching §5.3): a candidate whose
 * term and self-vote are not yet durable does not become leader even when
 * a majority of the others granted; once the write is acked it does. A
 * crash before the ack brings it back at the old term, so leading early
 * could make it lead the same term twice with different entries. */
static void test_no_leadership_before_term_durable(void **state)
{
    (void)state;
    h_init(&cl, 5, 0, NULL);
    cl.opts.pre_vote = false;
    for (int i = 0; i < 5; i++)
        h_restart(&cl, i); /* rebuild with pre-vote off */
    cl.auto_persist = false;
    assert_int_equal(core_campaign(cl.n[0].core), 0);
    h_drain(&cl, 0);
    uint64_t t = h_term(&cl, 0);
    assert_int_equal(cl.n[0].n_pending, 1); /* term + self-vote, pending */
    h_deliver(&cl, 0, -1, CORE_MSG_VOTE);
    for (int i = 1; i < 5; i++)
        h_persist(&cl, i);
    assert_int_equal(h_deliver(&cl, -1, 0, CORE_MSG_VOTE_RESP), 4);
    assert_int_equal(h_role(&cl, 0), CORE_CANDIDATE);
    assert_int_equal(h_count(&cl, 0, -1, CORE_MSG_APP), 0);
    h_persist(&cl, 0);
    h_drain(&cl, 0);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    assert_int_equal(h_term(&cl, 0), t);
    h_free(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_only_after_persist),
        cmocka_unit_test(test_no_campaign_while_busy),
        cmocka_unit_test(test_leader_disk_failure),
        cmocka_unit_test(test_no_leadership_before_term_durable),
        cmocka_unit_test(test_leader_counts_itself_after_persist_10_2_1),
        cmocka_unit_test(test_late_self_vote_not_tallied),
        cmocka_unit_test(test_candidate_waits_for_self_vote),
        cmocka_unit_test(test_self_ack_after_term_change),
        cmocka_unit_test(test_unstable_aba_race),
        cmocka_unit_test(test_duplicate_append_during_write),
        cmocka_unit_test(test_restart_from_disk),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed + h_conf_leaked();
}
