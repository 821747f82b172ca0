/* Raft core: leader election, pre-vote and check-quorum scenarios (§5.2,
 * §5.4.1, thesis 9.6, 6.2, 4.2.3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "tests/support/core_harness.h"

static core_options_t opts_no_prevote(void)
{
    core_options_t o;
    h_default_opts(&o);
    o.pre_vote = false;
    o.check_quorum = false;
    return o;
}

/* §5.2: a node boots as follower; the election timeout starts an election
 * with term+1, a self-vote and vote requests carrying the last log entry. */
static void test_timeout_starts_election_5_2(void **state)
{
    (void)state;
    static h_cluster_t cl;
    core_options_t o = opts_no_prevote();
    h_init(&cl, 3, 0, &o);
    cl.auto_persist = false;
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    h_tick(&cl, 0, 20); /* 2*et bounds the randomized timeout */
    assert_int_equal(h_role(&cl, 0), CORE_CANDIDATE);
    assert_int_equal(h_term(&cl, 0), 1);
    h_net_msg_t *m = h_find(&cl, 0, 1, CORE_MSG_VOTE);
    assert_non_null(m);
    assert_int_equal(m->m.term, 1);
    assert_int_equal(m->m.index, 0);
    assert_non_null(h_find(&cl, 0, 2, CORE_MSG_VOTE));
    h_free(&cl);
}

/* §5.2: randomized timeouts in [et, 2et): every value occurs. */
static void test_randomized_timeout_range_5_2(void **state)
{
    (void)state;
    bool seen[30] = {0};
    core_options_t o = opts_no_prevote();
    for (uint64_t seed = 1; seed <= 400; seed++) {
        static h_cluster_t cl;
        o.seed = seed;
        h_init(&cl, 3, 0, &o);
        int t = 0;
        while (h_role(&cl, 0) == CORE_FOLLOWER && t < 30) {
            core_tick(cl.n[0].core);
            t++;
        }
        assert_true(t >= 10 && t < 20);
        seen[t] = true;
        h_free(&cl);
    }
    for (int t = 10; t < 20; t++)
        assert_true(seen[t]);
}

/* §5.2: majority of grants wins, majority of rejections loses. */
static void test_election_outcome_5_2(void **state)
{
    (void)state;
    static h_cluster_t cl;
    core_options_t o = opts_no_prevote();
    h_init(&cl, 5, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    assert_int_equal(h_term(&cl, 0), 1);
    for (int i = 1; i < 5; i++) {
        assert_int_equal(h_role(&cl, i), CORE_FOLLOWER);
        assert_int_equal(h_commit(&cl, i), 1); /* the leader's no-op */
    }
    h_free(&cl);

    /* 2 of 5 reachable: stays candidate */
    h_init(&cl, 5, 0, &o);
    h_cut(&cl, 0, 3, true);
    h_cut(&cl, 0, 4, true);
    h_cut(&cl, 0, 2, true);
    assert_int_equal(h_elect(&cl, 0), CORE_CANDIDATE);
    h_free(&cl);

    /* single voter elects itself at once (after persisting its vote) */
    h_init(&cl, 1, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_free(&cl);
}

/* §5.2: one vote per term; repeating the grant to the same candidate is safe. */
static void test_one_vote_per_term_5_2(void **state)
{
    (void)state;
    static h_cluster_t cl;
    core_options_t o = opts_no_prevote();
    h_init(&cl, 3, 0, &o);
    rk_peer_id_t p1 = h_peer(1), p2 = h_peer(2), p0 = h_peer(0);
    core_msg_t v = {.type = CORE_MSG_VOTE, .from = p1, .to = p0, .term = 1};
    h_step(&cl, 0, &v);
    h_drain(&cl, 0);
    h_net_msg_t *r = h_find(&cl, 0, 1, CORE_MSG_VOTE_RESP);
    assert_non_null(r);
    assert_false(r->m.reject);
    v.from = p2;
    h_step(&cl, 0, &v);
    h_drain(&cl, 0);
    r = h_find(&cl, 0, 2, CORE_MSG_VOTE_RESP);
    assert_non_null(r);
    assert_true(r->m.reject);
    h_drop(&cl, -1, -1, -1);
    v.from = p1;
    h_step(&cl, 0, &v);
    h_drain(&cl, 0);
    r = h_find(&cl, 0, 1, CORE_MSG_VOTE_RESP);
    assert_non_null(r);
    assert_false(r->m.reject);
    h_free(&cl);
}

/* §5.4.1: vote only for a log at least as up to date. */
static void test_up_to_date_vote_5_4_1(void **state)
{
    (void)state;
    struct {
        uint64_t idx, term;
        bool grant;
    } cases[] = {{1, 1, false}, {2, 1, false}, {3, 1, false}, {1, 2, false},
                 {2, 2, true},  {3, 2, true},  {1, 3, true},  {3, 3, true}};
    uint64_t terms[] = {1, 2};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        static h_cluster_t cl;
        core_options_t o = opts_no_prevote();
        h_init(&cl, 3, 0, &o);
        h_set_log(&cl, 0, terms, 2, 2);
        core_msg_t v = {.type = CORE_MSG_VOTE,
                        .from = h_peer(1),
                        .to = h_peer(0),
                        .term = 3,
                        .index = cases[k].idx,
                        .log_term = cases[k].term};
        h_step(&cl, 0, &v);
        h_drain(&cl, 0);
        h_net_msg_t *r = h_find(&cl, 0, 1, CORE_MSG_VOTE_RESP);
        assert_non_null(r);
        assert_int_equal(r->m.reject, !cases[k].grant);
        assert_int_equal(h_term(&cl, 0), 3);
        h_free(&cl);
    }
}

/* §5.1: a higher term demotes a leader; a lower-term candidate is rejected
 * with our term and steps down. */
static void test_higher_term_demotes_5_1(void **state)
{
    (void)state;
    static h_cluster_t cl;
    core_options_t o = opts_no_prevote();
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    core_msg_t hb = {.type = CORE_MSG_HEARTBEAT, .from = h_peer(1), .to = h_peer(0), .term = 2};
    h_step(&cl, 0, &hb);
    h_drain(&cl, 0);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    assert_int_equal(h_term(&cl, 0), 2);
    assert_true(h_events(&cl, 0, CORE_EV_ROLE) >= 1);
    h_free(&cl);
}

/* §5.2 / Fig 3.x: a candidate hearing an append of its term yields. */
static void test_candidate_yields_5_2(void **state)
{
    (void)state;
    static h_cluster_t cl;
    core_options_t o = opts_no_prevote();
    h_init(&cl, 3, 0, &o);
    h_isolate(&cl, 2, true);
    assert_int_equal(h_elect(&cl, 2), CORE_CANDIDATE);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER); /* term 1 as well? n0 is at term 1 */
    h_isolate(&cl, 2, false);
    h_propose(&cl, 0, "x");
    h_tick(&cl, 0, 1); /* the probe to n2 was lost; the heartbeat resumes it */
    h_stabilize(&cl);
    assert_int_equal(h_role(&cl, 2), CORE_FOLLOWER);
    assert_int_equal(h_last(&cl, 2), h_last(&cl, 0));
    h_free(&cl);
}

/* Scenario 8: newer-term uncommitted entries get overwritten. */
static void test_overwrite_newer_logs(void **state)
{
    (void)state;
    static h_cluster_t cl;
    core_options_t o = opts_no_prevote();
    h_init(&cl, 5, 0, &o);
    uint64_t t1[] = {1}, t2[] = {2};
    h_set_log(&cl, 0, t1, 1, 1);
    h_set_log(&cl, 1, t1, 1, 1);
    h_set_log(&cl, 2, t2, 1, 2);
    h_set_log(&cl, 3, NULL, 0, 2);
    h_set_log(&cl, 4, NULL, 0, 2);
    for (int i = 3; i < 5; i++) { /* n3, n4 voted for n2 in term 2 */
        cl.n[i].hs.vote = h_peer(2);
        h_restart(&cl, i);
    }
    assert_int_equal(h_elect(&cl, 0), CORE_FOLLOWER);
    assert_int_equal(h_term(&cl, 0), 2);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    assert_int_equal(h_term(&cl, 0), 3);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(h_log_last(&cl, i), 2);
        assert_int_equal(h_log_term(&cl, i, 1), 1);
        assert_int_equal(h_log_term(&cl, i, 2), 3);
    }
    h_free(&cl);
}

/* Scenario 9: dueling candidates; the shorter log is rejected. */
static void test_dueling_candidates(void **state)
{
    (void)state;
    static h_cluster_t cl;
    core_options_t o = opts_no_prevote();
    h_init(&cl, 3, 0, &o);
    h_cut(&cl, 0, 2, true);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    assert_int_equal(h_elect(&cl, 2), CORE_CANDIDATE);
    h_cut(&cl, 0, 2, false);
    h_elect(&cl, 2);
    assert_int_not_equal(h_role(&cl, 2), CORE_LEADER);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    assert_int_equal(h_log_last(&cl, 1), 1);
    assert_int_equal(h_log_last(&cl, 2), 0);
    h_free(&cl);
}

/* Scenario 11: learners never campaign. */
static void test_learner_never_campaigns(void **state)
{
    (void)state;
    static h_cluster_t cl;
    h_init(&cl, 1, 1, NULL);
    h_tick(&cl, 1, 100);
    assert_int_equal(h_role(&cl, 1), CORE_FOLLOWER);
    assert_int_equal(h_term(&cl, 1), 0);
    assert_int_equal(core_campaign(cl.n[1].core), RK_ESTATE);
    h_free(&cl);
}

/* Scenario 13 (thesis 9.6): a failed pre-vote keeps the term. */
static void test_prevote_failure_keeps_term_9_6(void **state)
{
    (void)state;
    static h_cluster_t cl;
    h_init(&cl, 3, 0, NULL);
    h_isolate(&cl, 0, true);
    h_elect(&cl, 0);
    assert_int_equal(h_role(&cl, 0), CORE_PRE_CANDIDATE);
    assert_int_equal(h_term(&cl, 0), 0);
    h_free(&cl);
}

/* Scenario 14: a pre-vote is stateless at the voter. */
static void test_prevote_stateless_9_6(void **state)
{
    (void)state;
    static h_cluster_t cl;
    h_init(&cl, 3, 0, NULL);
    core_msg_t v = {.type = CORE_MSG_PREVOTE, .from = h_peer(1), .to = h_peer(0), .term = 5};
    h_step(&cl, 0, &v);
    h_drain(&cl, 0);
    h_net_msg_t *r = h_find(&cl, 0, 1, CORE_MSG_PREVOTE_RESP);
    assert_non_null(r);
    assert_false(r->m.reject);
    assert_int_equal(r->m.term, 5);
    assert_int_equal(h_term(&cl, 0), 0);
    assert_true(core_peer_is_none(&cl.n[0].hs.vote));
    h_free(&cl);
}

/* Scenario 15: a rejoining node cannot disrupt with pre-vote. */
static void test_rejoining_node_cannot_disrupt_9_6(void **state)
{
    (void)state;
    static h_cluster_t cl;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    uint64_t term = h_term(&cl, 0);
    h_isolate(&cl, 2, true);
    for (int k = 0; k < 5; k++)
        h_elect(&cl, 2);
    h_isolate(&cl, 2, false);
    h_elect(&cl, 2);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    assert_int_equal(h_term(&cl, 0), term);
    h_free(&cl);
}

/* Scenario 16: a stale log cannot win a pre-vote; an up-to-date node can. */
static void test_stale_log_cannot_win_prevote(void **state)
{
    (void)state;
    static h_cluster_t cl;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_isolate(&cl, 2, true);
    h_propose(&cl, 0, "a");
    h_stabilize(&cl);
    h_isolate(&cl, 2, false);
    /* leader gone */
    cl.n[0].down = true;
    h_tick(&cl, 1, 10); /* past the lease of n1 & n2 (election timeout) */
    h_tick(&cl, 2, 10);
    h_elect(&cl, 2);
    assert_int_not_equal(h_role(&cl, 2), CORE_LEADER);
    assert_int_equal(h_term(&cl, 2), 1);
    assert_int_equal(h_elect(&cl, 1), CORE_LEADER);
    h_free(&cl);
}

/* Scenario 20 (thesis 6.2): check-quorum makes a lone leader step down. */
static void test_check_quorum_step_down_6_2(void **state)
{
    (void)state;
    static h_cluster_t cl;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_isolate(&cl, 0, true);
    for (int k = 0; k < 25; k++) {
        h_tick(&cl, 0, 1);
        h_stabilize(&cl);
    }
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    h_free(&cl);

    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    for (int k = 0; k < 50; k++) {
        h_tick(&cl, 0, 1);
        h_stabilize(&cl);
    }
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    h_free(&cl);
}

/* Scenario 21/22 (thesis 4.2.3): followers with a live leader ignore vote
 * requests at higher terms; the leader's term never moves. */
static void test_lease_ignores_disruptive_votes_4_2_3(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.pre_vote = false;
    static h_cluster_t cl;
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    uint64_t term = h_term(&cl, 0);
    h_isolate(&cl, 2, true);
    h_elect(&cl, 2);
    h_elect(&cl, 2);
    h_cut(&cl, 0, 2, false); /* n2 reaches only the follower n1 */
    h_cut(&cl, 1, 2, false);
    h_cut(&cl, 0, 2, true);
    h_elect(&cl, 2);
    assert_int_equal(h_term(&cl, 1), term);
    assert_int_equal(h_role(&cl, 1), CORE_FOLLOWER);
    /* once n1's own timer expired (no leader contact), it grants */
    h_isolate(&cl, 0, true);
    h_tick(&cl, 1, 10);
    h_elect(&cl, 2);
    assert_true(h_term(&cl, 1) > term);
    h_free(&cl);
}

/* Scenario 23: a stuck higher-term candidate is freed by the leader's
 * heartbeat response (check-quorum, no pre-vote). */
static void test_free_stuck_candidate(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.pre_vote = false;
    static h_cluster_t cl;
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_isolate(&cl, 2, true);
    h_elect(&cl, 2);
    h_elect(&cl, 2);
    uint64_t t2 = h_term(&cl, 2);
    assert_true(t2 > h_term(&cl, 0));
    h_isolate(&cl, 2, false);
    h_tick(&cl, 0, 1); /* heartbeat */
    h_stabilize(&cl);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    assert_int_equal(h_term(&cl, 0), t2);
    /* an election now succeeds */
    h_run(&cl, 60);
    assert_true(h_leader(&cl) >= 0);
    h_free(&cl);
}

/* Scenario 26: a late pre-vote grant is not counted as a real vote. */
static void test_late_prevote_grant_not_counted(void **state)
{
    (void)state;
    static h_cluster_t cl;
    h_init(&cl, 5, 0, NULL);
    core_campaign(cl.n[0].core);
    h_drain(&cl, 0);
    /* n1, n2 grant the pre-vote; n3, n4 hold theirs */
    h_deliver(&cl, 0, 1, CORE_MSG_PREVOTE);
    h_deliver(&cl, 0, 2, CORE_MSG_PREVOTE);
    h_deliver(&cl, 1, 0, CORE_MSG_PREVOTE_RESP);
    h_deliver(&cl, 2, 0, CORE_MSG_PREVOTE_RESP);
    assert_int_equal(h_role(&cl, 0), CORE_CANDIDATE);
    /* late pre-vote grants from n3, n4 */
    h_deliver(&cl, 0, 3, CORE_MSG_PREVOTE);
    h_deliver(&cl, 0, 4, CORE_MSG_PREVOTE);
    h_deliver(&cl, 3, 0, CORE_MSG_PREVOTE_RESP);
    h_deliver(&cl, 4, 0, CORE_MSG_PREVOTE_RESP);
    assert_int_equal(h_role(&cl, 0), CORE_CANDIDATE);
    h_free(&cl);
}

/* Scenario 22: a node that knows it was removed never campaigns. */
static void test_removed_server_cannot_disrupt_4_2_3(void **state)
{
    (void)state;
    static h_cluster_t cl;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    rk_configuration_t t;
    memset(&t, 0, sizeof t);
    t.n_peers = 2;
    t.peers[0] = h_peer(0);
    t.peers[1] = h_peer(1);
    assert_int_equal(core_change_conf(cl.n[0].core, &t, NULL), 0);
    h_stabilize(&cl);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    uint64_t idx;
    const core_conf_t *cf = core_get_conf(cl.n[0].core, &idx);
    assert_false(cf->joint);
    assert_int_equal(cf->cur.n_peers, 2);
    /* n2 never learns it was removed (the leave entry is not sent to it); it
     * keeps timing out, but pre-vote and the followers' lease keep the
     * leader's term where it is (thesis 4.2.3). */
    uint64_t term = h_term(&cl, 0);
    for (int k = 0; k < 100; k++) {
        h_tick(&cl, 0, 1);
        h_tick(&cl, 1, 1);
        h_tick(&cl, 2, 1);
        h_stabilize(&cl);
    }
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    assert_int_equal(h_term(&cl, 0), term);
    h_free(&cl);
}

/* JRaft priority: a lower-priority node waits while the higher one lives;
 * priority 0 never campaigns. */
static void test_priority_election(void **state)
{
    (void)state;
    static h_cluster_t cl;
    h_init(&cl, 3, 0, NULL);
    /* rebuild n0 with priority 0 and n1 with 5, n2 with 10 */
    cl.boot.cur.peers[0].priority = 0;
    cl.boot.cur.peers[1].priority = 5;
    cl.boot.cur.peers[2].priority = 10;
    for (int i = 0; i < 3; i++) {
        cl.n[i].id.priority = cl.boot.cur.peers[i].priority;
        h_restart(&cl, i);
    }
    h_tick(&cl, 0, 200);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    assert_int_equal(h_term(&cl, 0), 0);
    /* n1 alone: waits at first, then decays and runs */
    h_tick(&cl, 1, 19);
    assert_int_equal(h_role(&cl, 1), CORE_FOLLOWER);
    h_tick(&cl, 1, 100);
    h_stabilize(&cl);
    assert_int_equal(h_role(&cl, 1), CORE_LEADER);
    h_free(&cl);
}

/* Scenario 12 (§5.2, Fig. 3.1 "respond after persisting"): when the write
 * carrying a vote grant or our own candidacy fails, the core halts: the
 * grant never leaves, and a halted candidate cannot become leader. A vote
 * request that is merely lost does not stop the election. */
static void test_io_failure_at_candidacy(void **state)
{
    (void)state;
    static h_cluster_t cl;
    core_options_t o = opts_no_prevote();
    h_init(&cl, 3, 0, &o);
    cl.auto_persist = false;
    /* a grant whose write fails */
    core_msg_t v = {.type = CORE_MSG_VOTE, .from = h_peer(1), .to = h_peer(0), .term = 1};
    h_step(&cl, 0, &v);
    h_drain(&cl, 0);
    assert_int_equal(cl.n[0].n_pending, 1);
    assert_int_equal(core_persist_failed(cl.n[0].core, cl.n[0].pending[0].id, RK_EIO), 0);
    h_drain(&cl, 0);
    assert_int_equal(cl.n[0].fatal, RK_EIO);
    assert_int_equal(h_count(&cl, 0, -1, CORE_MSG_VOTE_RESP), 0);
    assert_int_equal(h_step(&cl, 0, &v), RK_ESTATE);
    /* a grant produced after an earlier write failed: dropped by the core */
    h_free(&cl);
    h_init(&cl, 3, 0, &o);
    cl.auto_persist = false;
    v.term = 1;
    h_step(&cl, 0, &v);
    h_drain(&cl, 0); /* update 1 pending: term 1, vote n1 */
    core_msg_t v2 = {.type = CORE_MSG_VOTE, .from = h_peer(2), .to = h_peer(0), .term = 2};
    h_step(&cl, 0, &v2); /* grant for term 2 waits for the next update */
    assert_int_equal(core_persist_failed(cl.n[0].core, cl.n[0].pending[0].id, RK_EIO), 0);
    h_drain(&cl, 0);
    assert_int_equal(cl.n[0].n_pending, 2);
    assert_int_equal(cl.n[0].pending[1].n_msgs_after, 0);
    assert_int_equal(cl.n[0].pending[1].id, 0);
    h_free(&cl);

    /* our own candidacy's write fails: grants arriving later change nothing */
    h_init(&cl, 3, 0, &o);
    cl.auto_persist = false;
    assert_int_equal(core_campaign(cl.n[0].core), 0);
    h_drain(&cl, 0);
    assert_int_equal(h_role(&cl, 0), CORE_CANDIDATE);
    assert_int_equal(core_persist_failed(cl.n[0].core, cl.n[0].pending[0].id, RK_EIO), 0);
    h_drain(&cl, 0);
    core_msg_t g = {.type = CORE_MSG_VOTE_RESP, .from = h_peer(1), .to = h_peer(0), .term = 1};
    assert_int_equal(h_step(&cl, 0, &g), RK_ESTATE);
    assert_int_equal(h_role(&cl, 0), CORE_CANDIDATE);
    h_free(&cl);

    /* a lost vote request is just a lost message */
    h_init(&cl, 3, 0, &o);
    core_campaign(cl.n[0].core);
    h_drain(&cl, 0);
    h_drop(&cl, 0, 2, CORE_MSG_VOTE);
    h_stabilize(&cl);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    h_free(&cl);
}

/* Scenario 25 (thesis 6.2): a peer added one tick before the leader's
 * quorum check starts out active, so the check keeps the leader; after a
 * whole election timeout with no word from it, the leader steps down. */
static void test_new_peer_before_quorum_check_6_2(void **state)
{
    (void)state;
    static h_cluster_t cl;
    h_init(&cl, 1, 0, NULL); /* n1 is not in the harness: never answers */
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_tick(&cl, 0, 9); /* the check runs at the 10th tick */
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    rk_configuration_t t;
    memset(&t, 0, sizeof t);
    t.n_peers = 2;
    t.peers[0] = h_peer(0);
    t.peers[1] = h_peer(1);
    assert_int_equal(core_change_conf(cl.n[0].core, &t, NULL), 0);
    h_drain(&cl, 0);
    h_tick(&cl, 0, 1);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    h_tick(&cl, 0, 9);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    h_tick(&cl, 0, 1);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    h_free(&cl);
}

/* Scenario 112 (thesis 6.2, 9.6): a heartbeat from a leader at term 2
 * reaching n2 at term 3 is answered with term 3, which deposes the leader
 * (the stuck node is freed). With pre-vote n2 never left term 2 (it is only
 * a pre-candidate), so the same heartbeat makes it follow and the leader
 * survives. */
static void test_stale_heartbeat_to_higher_term_candidate(void **state)
{
    (void)state;
    static h_cluster_t cl;
    core_options_t o;
    h_default_opts(&o);
    o.pre_vote = false;
    o.check_quorum = true;
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    uint64_t t = h_term(&cl, 0);
    h_isolate(&cl, 2, true);
    h_tick(&cl, 2, 40); /* campaigns alone, pushing its term up */
    h_drop(&cl, -1, -1, -1);
    assert_true(h_term(&cl, 2) > t);
    h_isolate(&cl, 2, false);
    h_tick(&cl, 0, 1);
    h_deliver(&cl, 0, 2, CORE_MSG_HEARTBEAT);
    h_net_msg_t *r = h_find(&cl, 2, 0, CORE_MSG_APP_RESP);
    assert_non_null(r);
    assert_int_equal(r->m.term, h_term(&cl, 2));
    h_deliver(&cl, 2, 0, CORE_MSG_APP_RESP);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    assert_int_equal(h_term(&cl, 0), h_term(&cl, 2));
    h_free(&cl);

    o.pre_vote = true;
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    t = h_term(&cl, 0);
    h_isolate(&cl, 2, true);
    h_tick(&cl, 2, 40);
    h_drop(&cl, -1, -1, -1);
    assert_int_equal(h_term(&cl, 2), t);
    assert_int_equal(h_role(&cl, 2), CORE_PRE_CANDIDATE);
    h_isolate(&cl, 2, false);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    assert_int_equal(h_term(&cl, 0), t);
    assert_int_equal(h_role(&cl, 2), CORE_FOLLOWER);
    h_free(&cl);
}

/* Scenario 114 (§5.2): the heartbeat timer only matters at a leader: a
 * follower or candidate ticking short of its election timeout sends
 * nothing; a leader sends exactly one heartbeat per peer per interval. */
static void test_heartbeat_trigger_only_at_leader_5_2(void **state)
{
    (void)state;
    static h_cluster_t cl;
    core_options_t o = opts_no_prevote();
    o.heartbeat_ticks = 2;
    h_init(&cl, 3, 0, &o);
    h_tick(&cl, 1, 9); /* below the election timeout (>= 10) */
    assert_int_equal(cl.n_net, 0);
    core_campaign(cl.n[1].core);
    h_drain(&cl, 1);
    h_drop(&cl, -1, -1, -1);
    h_tick(&cl, 1, 5); /* candidate: re-election needs >= 10 ticks */
    assert_int_equal(h_count(&cl, 1, -1, CORE_MSG_HEARTBEAT), 0);
    assert_int_equal(cl.n_net, 0);
    h_drop(&cl, -1, -1, -1);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    h_tick(&cl, 0, 1);
    assert_int_equal(h_count(&cl, 0, -1, CORE_MSG_HEARTBEAT), 0);
    h_tick(&cl, 0, 1);
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_HEARTBEAT), 1);
    assert_int_equal(h_count(&cl, 0, 2, CORE_MSG_HEARTBEAT), 1);
    assert_int_equal(h_count(&cl, 0, 0, -1), 0);
    h_free(&cl);
}

/* Scenarios 24 and 93 (thesis 4.2.3): a follower told to forget its leader
 * keeps its term and stops guarding the leader's lease: it answers an
 * up-to-date pre-candidate at once (it would ignore it otherwise), still
 * rejects a stale one; a heartbeat brings the leader back. Under lease
 * reads forgetting is refused; at a leader it is a no-op. */
static void test_forget_leader(void **state)
{
    (void)state;
    static h_cluster_t cl;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_propose(&cl, 0, "x");
    h_stabilize(&cl);
    uint64_t t = h_term(&cl, 1);
    core_msg_t pv = {.type = CORE_MSG_PREVOTE,
                     .from = h_peer(2),
                     .to = h_peer(1),
                     .term = t + 1,
                     .index = h_last(&cl, 2),
                     .log_term = h_log_term(&cl, 2, h_last(&cl, 2))};
    h_step(&cl, 1, &pv);
    h_drain(&cl, 1);
    assert_int_equal(h_count(&cl, 1, 2, CORE_MSG_PREVOTE_RESP), 0); /* lease */
    assert_int_equal(core_forget_leader(cl.n[1].core), 0);
    core_status_t st;
    core_get_status(cl.n[1].core, &st);
    assert_true(core_peer_is_none(&st.leader));
    assert_int_equal(st.term, t);
    h_step(&cl, 1, &pv);
    h_drain(&cl, 1);
    h_net_msg_t *r = h_find(&cl, 1, 2, CORE_MSG_PREVOTE_RESP);
    assert_non_null(r);
    assert_false(r->m.reject);
    h_drop(&cl, -1, -1, -1);
    pv.index = 1; /* stale log */
    pv.log_term = 1;
    h_step(&cl, 1, &pv);
    h_drain(&cl, 1);
    r = h_find(&cl, 1, 2, CORE_MSG_PREVOTE_RESP);
    assert_non_null(r);
    assert_true(r->m.reject);
    assert_int_equal(h_term(&cl, 1), t);
    h_drop(&cl, -1, -1, -1);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    core_get_status(cl.n[1].core, &st);
    assert_true(core_peer_eq(&st.leader, &cl.n[0].id));
    assert_int_equal(core_forget_leader(cl.n[0].core), 0);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    h_free(&cl);

    core_options_t o;
    h_default_opts(&o);
    o.read_only = CORE_READ_LEASE;
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    assert_int_equal(core_forget_leader(cl.n[1].core), RK_ESTATE);
    core_get_status(cl.n[1].core, &st);
    assert_true(core_peer_eq(&st.leader, &cl.n[0].id));
    h_free(&cl);
}

/* Scenario 18 (thesis 9.6): n2, cut off, keeps failing pre-votes at the
 * old term while leadership moves to n1 at a higher term. Healed, with n1
 * then crashed, the survivors n0 and n2 still elect a leader: the low-term
 * pre-candidate grants the up-to-date n0's pre-vote and vote; no stall. */
static void test_smaller_term_node_completes_election_9_6(void **state)
{
    (void)state;
    static h_cluster_t cl;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    uint64_t t = h_term(&cl, 0);
    h_isolate(&cl, 2, true);
    h_tick(&cl, 2, 40);
    h_drop(&cl, -1, -1, -1);
    assert_int_equal(h_role(&cl, 2), CORE_PRE_CANDIDATE);
    assert_int_equal(h_term(&cl, 2), t);
    assert_int_equal(core_transfer_leader(cl.n[0].core, &cl.n[1].id), 0);
    h_stabilize(&cl);
    assert_int_equal(h_role(&cl, 1), CORE_LEADER);
    assert_int_equal(h_propose(&cl, 1, "x"), 0);
    h_stabilize(&cl);
    h_isolate(&cl, 2, false);
    cl.n[1].down = true;
    h_run(&cl, 80);
    int l = h_leader(&cl);
    assert_true(l == 0 || l == 2);
    assert_true(h_term(&cl, l) > t + 1);
    assert_int_equal(h_propose(&cl, l, "y"), 0);
    h_stabilize(&cl);
    assert_int_equal(h_commit(&cl, 0), h_last(&cl, 0));
    assert_int_equal(h_commit(&cl, 2), h_commit(&cl, 0));
    h_free(&cl);
}

/* Regression (simulator bug 4; Fig. 3.1 "reply false if term <
 * currentTerm"): even with pre-vote and check-quorum off, a heartbeat from
 * a stale leader is answered with the receiver's term, so a leader that was
 * removed while cut off, and that nobody contacts any more, steps down
 * instead of leading its old term forever. */
static void test_stale_leader_told_the_term_without_options(void **state)
{
    (void)state;
    static h_cluster_t cl;
    core_options_t o = opts_no_prevote();
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    uint64_t t = h_term(&cl, 0);
    h_isolate(&cl, 0, true);
    assert_int_equal(h_elect(&cl, 1), CORE_LEADER);
    h_isolate(&cl, 0, false);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    h_tick(&cl, 0, 1);
    h_deliver(&cl, 0, 2, CORE_MSG_HEARTBEAT);
    h_net_msg_t *r = h_find(&cl, 2, 0, CORE_MSG_APP_RESP);
    assert_non_null(r);
    assert_true(r->m.term > t);
    h_deliver(&cl, 2, 0, CORE_MSG_APP_RESP);
    assert_int_equal(h_role(&cl, 0), CORE_FOLLOWER);
    assert_int_equal(h_term(&cl, 0), h_term(&cl, 1));
    h_free(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_starts_election_5_2),
        cmocka_unit_test(test_randomized_timeout_range_5_2),
        cmocka_unit_test(test_election_outcome_5_2),
        cmocka_unit_test(test_one_vote_per_term_5_2),
        cmocka_unit_test(test_up_to_date_vote_5_4_1),
        cmocka_unit_test(test_higher_term_demotes_5_1),
        cmocka_unit_test(test_candidate_yields_5_2),
        cmocka_unit_test(test_overwrite_newer_logs),
        cmocka_unit_test(test_dueling_candidates),
        cmocka_unit_test(test_learner_never_campaigns),
        cmocka_unit_test(test_prevote_failure_keeps_term_9_6),
        cmocka_unit_test(test_prevote_stateless_9_6),
        cmocka_unit_test(test_rejoining_node_cannot_disrupt_9_6),
        cmocka_unit_test(test_stale_log_cannot_win_prevote),
        cmocka_unit_test(test_check_quorum_step_down_6_2),
        cmocka_unit_test(test_lease_ignores_disruptive_votes_4_2_3),
        cmocka_unit_test(test_free_stuck_candidate),
        cmocka_unit_test(test_late_prevote_grant_not_counted),
        cmocka_unit_test(test_removed_server_cannot_disrupt_4_2_3),
        cmocka_unit_test(test_priority_election),
        cmocka_unit_test(test_io_failure_at_candidacy),
        cmocka_unit_test(test_new_peer_before_quorum_check_6_2),
        cmocka_unit_test(test_stale_heartbeat_to_higher_term_candidate),
        cmocka_unit_test(test_heartbeat_trigger_only_at_leader_5_2),
        cmocka_unit_test(test_forget_leader),
        cmocka_unit_test(test_smaller_term_node_completes_election_9_6),
        cmocka_unit_test(test_stale_leader_told_the_term_without_options),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed + h_conf_leaked();
}
