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
    core_msg_t a = {.type = CORE_MSG_APP, .from = h_peer(1), .to = h_peer(0), .term = 1,
                    .entries = &e, .n_entries = 1};
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
    core_msg_t hb = {.type = CORE_MSG_HEARTBEAT, .from = h_peer(1), .to = h_peer(0),
                     .term = h_term(&cl, 0) + 1};
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
    core_msg_t a = {.type = CORE_MSG_APP, .from = h_peer(1), .to = h_peer(0), .index = 1,
                    .log_term = 1, .entries = &e, .n_entries = 1};
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
    core_msg_t a = {.type = CORE_MSG_APP, .from = h_peer(1), .to = h_peer(0), .term = 1,
                    .entries = &e, .n_entries = 1, .commit = 1};
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
    core_msg_t pv = {.type = CORE_MSG_PREVOTE, .from = h_peer(2), .to = h_peer(1),
                     .term = term + 1, .index = last, .log_term = term};
    h_tick(&cl, 1, 10);
    h_step(&cl, 1, &pv);
    h_drain(&cl, 1);
    for (size_t k = 0; k < cl.n[1].n_pending; k++)
        assert_false(cl.n[1].pending[k].has_hard_state &&
                     cl.n[1].pending[k].hs.term != term);
    h_free(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_only_after_persist),
        cmocka_unit_test(test_leader_counts_itself_after_persist_10_2_1),
        cmocka_unit_test(test_late_self_vote_not_tallied),
        cmocka_unit_test(test_candidate_waits_for_self_vote),
        cmocka_unit_test(test_self_ack_after_term_change),
        cmocka_unit_test(test_unstable_aba_race),
        cmocka_unit_test(test_duplicate_append_during_write),
        cmocka_unit_test(test_restart_from_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
