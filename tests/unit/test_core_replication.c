/* Raft core: log replication, conflict handling, commitment and flow control
 * (§5.3, §5.4.2, Fig. 3.7, thesis 10.2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "src/core/core_internal.h"
#include "tests/support/core_harness.h"

static h_cluster_t cl;

static core_msg_t app(int from, int to, uint64_t term, uint64_t prev, uint64_t prev_term,
                      core_entry_t *ents, size_t n, uint64_t commit)
{
    core_msg_t m = {.type = CORE_MSG_APP,
                    .from = h_peer(from),
                    .to = h_peer(to),
                    .term = term,
                    .index = prev,
                    .log_term = prev_term,
                    .entries = ents,
                    .n_entries = n,
                    .commit = commit};
    return m;
}

/* §5.3: the leader appends the entry to its log, then sends it with the
 * right prev index/term and its commit; commit does not move yet. */
static void test_leader_appends_then_broadcasts_5_3(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    assert_int_equal(h_commit(&cl, 0), 1);
    assert_int_equal(h_propose(&cl, 0, "a"), 0);
    assert_int_equal(h_log_last(&cl, 0), 2);
    h_net_msg_t *m = h_find(&cl, 0, 1, CORE_MSG_APP);
    assert_non_null(m);
    assert_int_equal(m->m.index, 1);
    assert_int_equal(m->m.log_term, 1);
    assert_int_equal(m->m.n_entries, 1);
    assert_int_equal(m->m.commit, 1);
    assert_int_equal(h_commit(&cl, 0), 1);
    h_stabilize(&cl);
    assert_int_equal(h_commit(&cl, 0), 2);
    h_free(&cl);
}

/* §5.3 consistency check and Scenario 28/32: accept when prev matches,
 * reject with a hint otherwise; commit = min(leaderCommit, last new). */
static void test_consistency_check_5_3(void **state)
{
    (void)state;
    uint64_t terms[] = {1, 2};
    struct {
        uint64_t prev, prev_term;
        bool reject;
    } cases[] = {{0, 0, false}, {1, 1, false}, {2, 2, false}, {2, 1, true}, {3, 2, true}};
    for (size_t k = 0; k < 5; k++) {
        h_init(&cl, 3, 0, NULL);
        h_set_log(&cl, 1, terms, 2, 2);
        core_msg_t m = app(0, 1, 2, cases[k].prev, cases[k].prev_term, NULL, 0, 3);
        h_step(&cl, 1, &m);
        h_drain(&cl, 1);
        h_net_msg_t *r = h_find(&cl, 1, 0, CORE_MSG_APP_RESP);
        assert_non_null(r);
        assert_int_equal(r->m.reject, cases[k].reject);
        if (!cases[k].reject) {
            assert_int_equal(r->m.index, cases[k].prev);
            assert_int_equal(h_commit(&cl, 1), cases[k].prev); /* clamp */
        } else {
            assert_true(r->m.reject_hint <= 2);
        }
        h_free(&cl);
    }
}

/* §5.3 step 3 / Scenario 29: truncate only on a real conflict. */
static void test_truncate_only_on_conflict_5_3(void **state)
{
    (void)state;
    uint64_t terms[] = {1, 2};
    struct {
        uint64_t prev, prev_term;
        uint64_t et[2];
        size_t n;
        uint64_t want[3];
        size_t want_n;
    } cases[] = {
        {2, 2, {3}, 1, {1, 2, 3}, 3},
        {1, 1, {3, 4}, 2, {1, 3, 4}, 3},
        {0, 0, {1}, 1, {1, 2}, 2},
        {0, 0, {3}, 1, {3}, 1},
    };
    for (size_t k = 0; k < 4; k++) {
        h_init(&cl, 3, 0, NULL);
        h_set_log(&cl, 1, terms, 2, 2);
        core_entry_t e[2];
        for (size_t j = 0; j < cases[k].n; j++)
            e[j] = (core_entry_t){.term = cases[k].et[j], .index = cases[k].prev + 1 + j};
        core_msg_t m = app(0, 1, 4, cases[k].prev, cases[k].prev_term, e, cases[k].n, 0);
        h_step(&cl, 1, &m);
        h_drain(&cl, 1);
        assert_int_equal(h_log_last(&cl, 1), cases[k].want_n);
        for (size_t j = 0; j < cases[k].want_n; j++)
            assert_int_equal(h_log_term(&cl, 1, j + 1), cases[k].want[j]);
        h_free(&cl);
    }
}

/* Scenario 34: a conflict below the commit index is fatal, never an
 * overwrite. */
static void test_conflict_below_commit_is_fatal(void **state)
{
    (void)state;
    uint64_t terms[] = {1, 1};
    h_init(&cl, 3, 0, NULL);
    h_set_log(&cl, 1, terms, 2, 1);
    core_msg_t m = app(0, 1, 1, 2, 1, NULL, 0, 2);
    h_step(&cl, 1, &m);
    h_drain(&cl, 1);
    assert_int_equal(h_commit(&cl, 1), 2);
    core_entry_t e = {.term = 2, .index = 2};
    m = app(0, 1, 2, 1, 1, &e, 1, 2);
    h_step(&cl, 1, &m);
    h_drain(&cl, 1);
    assert_int_equal(cl.n[1].fatal, RK_ECORRUPT);
    assert_int_equal(h_log_term(&cl, 1, 2), 1);
    assert_int_equal(core_tick(cl.n[1].core), RK_ESTATE);
    h_free(&cl);
}

/* Scenario 35: a heartbeat-level append acks only what it verified. */
static void test_ack_only_verified_prefix(void **state)
{
    (void)state;
    uint64_t terms[] = {1, 2};
    h_init(&cl, 3, 0, NULL);
    h_set_log(&cl, 1, terms, 2, 2);
    core_msg_t m = app(0, 1, 3, 1, 1, NULL, 0, 0);
    h_step(&cl, 1, &m);
    h_drain(&cl, 1);
    h_net_msg_t *r = h_find(&cl, 1, 0, CORE_MSG_APP_RESP);
    assert_non_null(r);
    assert_false(r->m.reject);
    assert_int_equal(r->m.index, 1);
    h_free(&cl);
}

/* Scenario 31 (end of §5.3): fast backtracking skips a whole term; the
 * leader finds the divergence at index 3 (term 2) in one round trip. */
static void test_fast_backtracking_5_3(void **state)
{
    (void)state;
    uint64_t lt[] = {1, 2, 2, 4, 4, 4, 4};
    uint64_t ft[] = {1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
    core_options_t o;
    h_default_opts(&o);
    h_init(&cl, 2, 0, &o);
    h_set_log(&cl, 0, lt, 7, 4);
    h_set_log(&cl, 1, ft, 11, 4);
    /* n0 campaigns; n1 grants (n0's last term 4 > 3). */
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    assert_int_equal(h_log_last(&cl, 1), 8);
    for (uint64_t i = 1; i <= 3; i++)
        assert_int_equal(h_log_term(&cl, 1, i), lt[i - 1]);
    assert_int_equal(h_log_term(&cl, 1, 4), 4);
    assert_int_equal(h_log_term(&cl, 1, 8), 5);
    h_free(&cl);

    /* the reject hint itself */
    h_init(&cl, 2, 0, &o);
    h_set_log(&cl, 1, ft, 11, 4);
    core_msg_t m = app(0, 1, 5, 7, 4, NULL, 0, 0);
    h_step(&cl, 1, &m);
    h_drain(&cl, 1);
    h_net_msg_t *r = h_find(&cl, 1, 0, CORE_MSG_APP_RESP);
    assert_non_null(r);
    assert_true(r->m.reject);
    assert_int_equal(r->m.reject_hint, 7);
    assert_int_equal(r->m.reject_hint_term, 3);
    h_free(&cl);
}

/* Fig. 3.7 / §5.4.2 (scenario 41): entries of older terms are never
 * committed by counting replicas; only once a current-term entry is
 * replicated does everything commit. */
static void test_old_term_entries_not_committed_by_counting_5_4_2(void **state)
{
    (void)state;
    uint64_t lt[] = {1, 2};
    core_options_t o;
    h_default_opts(&o);
    o.pre_vote = false;
    h_init(&cl, 2, 0, &o);
    h_set_log(&cl, 0, lt, 2, 2);
    h_set_log(&cl, 1, NULL, 0, 2);
    core_campaign(cl.n[0].core);
    h_drain(&cl, 0);
    h_deliver(&cl, 0, 1, CORE_MSG_VOTE);
    h_deliver(&cl, 1, 0, CORE_MSG_VOTE_RESP);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    assert_int_equal(h_term(&cl, 0), 3);
    assert_int_equal(h_log_last(&cl, 0), 3); /* no-op 3/3 */
    h_drop(&cl, -1, -1, -1);
    /* follower acks 1, then 2 (old terms): commit stays 0 */
    rk_peer_id_t p0 = h_peer(0), p1 = h_peer(1);
    core_msg_t ack = {.type = CORE_MSG_APP_RESP, .from = p1, .to = p0, .term = 3, .index = 1};
    h_step(&cl, 0, &ack);
    assert_int_equal(h_commit(&cl, 0), 0);
    ack.index = 2;
    h_step(&cl, 0, &ack);
    assert_int_equal(h_commit(&cl, 0), 0);
    ack.index = 3;
    h_step(&cl, 0, &ack);
    assert_int_equal(h_commit(&cl, 0), 3);
    h_free(&cl);
}

/* Scenario 42: commit needs an entry from the new term (5 nodes). */
static void test_commit_needs_new_term_entry(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.pre_vote = false;
    o.check_quorum = false;
    h_init(&cl, 5, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    /* two entries reach only n1 */
    for (int i = 2; i < 5; i++)
        h_cut(&cl, 0, i, true);
    h_propose(&cl, 0, "a");
    h_propose(&cl, 0, "b");
    h_stabilize(&cl);
    assert_int_equal(h_commit(&cl, 0), 1);
    for (int i = 2; i < 5; i++)
        h_cut(&cl, 0, i, false);
    /* n1 elected at term 2 with its appends dropped */
    cl.n[0].down = true;
    core_campaign(cl.n[1].core);
    h_drain_all(&cl);
    h_deliver(&cl, 1, -1, CORE_MSG_VOTE);
    h_deliver(&cl, -1, 1, CORE_MSG_VOTE_RESP);
    assert_int_equal(h_role(&cl, 1), CORE_LEADER);
    h_drop(&cl, 1, -1, CORE_MSG_APP);
    assert_int_equal(h_commit(&cl, 1), 1);
    h_tick(&cl, 1, 1); /* heartbeat: responses resume probing */
    h_stabilize(&cl);
    assert_int_equal(h_commit(&cl, 1), 4);
    for (int i = 2; i < 5; i++)
        assert_int_equal(h_commit(&cl, i) >= 3, true);
    h_free(&cl);
}

/* Scenario 44: heartbeats carry min(commit, follower match). */
static void test_heartbeat_commit_capped(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_cut(&cl, 0, 2, true);
    h_propose(&cl, 0, "a");
    h_stabilize(&cl);
    assert_int_equal(h_commit(&cl, 0), 2);
    h_tick(&cl, 0, 1);
    h_net_msg_t *m1 = h_find(&cl, 0, 1, CORE_MSG_HEARTBEAT);
    h_net_msg_t *m2 = h_find(&cl, 0, 2, CORE_MSG_HEARTBEAT);
    assert_non_null(m1);
    assert_non_null(m2);
    assert_int_equal(m1->m.commit, 2);
    assert_int_equal(m2->m.commit, 1);
    h_free(&cl);
}

/* Scenario 48/49: a probing follower gets one append, then nothing until it
 * answers; then it switches to replicate and gets streamed appends. */
static void test_probe_then_replicate(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    core_report_unreachable(cl.n[0].core, &cl.n[1].id); /* replicate -> probe */
    for (int k = 0; k < 5; k++)
        h_propose(&cl, 0, "x");
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_APP), 1);
    assert_int_equal(h_count(&cl, 0, 2, CORE_MSG_APP), 5);
    h_deliver(&cl, 0, 1, CORE_MSG_APP);
    h_deliver(&cl, 1, 0, CORE_MSG_APP_RESP);
    core_progress_info_t pi[3];
    assert_int_equal(core_get_progress(cl.n[0].core, pi, 3), 3);
    for (int k = 0; k < 3; k++)
        if (core_peer_eq(&pi[k].peer, &cl.n[1].id))
            assert_int_equal(pi[k].state, CORE_PR_REPLICATE);
    /* the answer released the backlog in one append; then one per proposal */
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_APP), 1);
    h_propose(&cl, 0, "y");
    h_propose(&cl, 0, "z");
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_APP), 3);
    h_free(&cl);
}

/* Scenario 50: a full inflight window (count or bytes) stops sending; an
 * ack frees up to its index; a stale ack frees nothing. */
static void test_inflight_window(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.max_inflight_msgs = 3;
    h_init(&cl, 2, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    for (int k = 0; k < 6; k++)
        h_propose(&cl, 0, "x");
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_APP), 3);
    /* deliver the first; its ack frees one slot -> one more append */
    h_net_msg_t *m = h_find(&cl, 0, 1, CORE_MSG_APP);
    core_msg_t first = m->m;
    assert_int_equal(first.entries[0].index, 2);
    cl.auto_persist = true;
    h_deliver(&cl, 0, 1, CORE_MSG_APP); /* all three get delivered */
    size_t acks = h_count(&cl, 1, 0, CORE_MSG_APP_RESP);
    assert_int_equal(acks, 3);
    h_deliver(&cl, 1, 0, CORE_MSG_APP_RESP);
    /* the window reopened: the remaining 3 entries went */
    size_t apps = 0;
    for (size_t k = 0; k < cl.n_net; k++)
        if (cl.net[k].m.type == CORE_MSG_APP && cl.net[k].to == 1)
            apps += cl.net[k].m.n_entries;
    assert_int_equal(apps, 3);
    /* a stale ack changes nothing */
    core_msg_t stale = {.type = CORE_MSG_APP_RESP,
                        .from = h_peer(1),
                        .to = h_peer(0),
                        .term = h_term(&cl, 0),
                        .index = 2};
    size_t before = cl.n_net;
    h_step(&cl, 0, &stale);
    h_drain(&cl, 0);
    assert_int_equal(cl.n_net, before);
    h_free(&cl);

    /* byte cap */
    h_default_opts(&o);
    o.max_inflight_bytes = 100;
    o.max_entries_per_msg = 1;
    h_init(&cl, 2, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    char big[60];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = 0;
    for (int k = 0; k < 5; k++)
        h_propose(&cl, 0, big);
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_APP), 2); /* 83 bytes each: 2 fill 100 */
    h_free(&cl);
}

/* The inflight window's ring is allocated with the first append in flight
 * and grows with what is in flight, within max_inflight_msgs; a follower
 * (every peer of most groups in a big process) holds none. */
static void test_inflight_window_grows_on_demand(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.max_inflight_msgs = 10;
    o.max_entries_per_msg = 1;
    h_init(&cl, 2, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    core_progress_t *pr = progress_find(cl.n[0].core, &cl.n[1].id);
    assert_non_null(pr);
    uint32_t idle_cap = pr->infl_cap;
    assert_true(idle_cap <= 4);
    for (int k = 0; k < 15; k++)
        h_propose(&cl, 0, "x");
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_APP), 10); /* the window, no more */
    assert_int_equal(pr->infl_count, 10);
    assert_int_equal(pr->infl_cap, 10);
    for (size_t i = 0; i < cl.n[1].core->n_prs; i++)
        assert_null(cl.n[1].core->prs[i].infl);
    cl.auto_persist = true;
    h_stabilize(&cl);
    assert_int_equal(h_log_last(&cl, 1), 16);
    assert_int_equal(h_commit(&cl, 1), 16);
    assert_int_equal(pr->infl_count, 0);
    h_free(&cl);
}

/* Batching: max entries per message. */
static void test_batching_per_message(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.max_entries_per_msg = 4;
    h_init(&cl, 2, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    cl.n[1].down = true;
    for (int k = 0; k < 10; k++)
        h_propose(&cl, 0, "x");
    h_drop(&cl, -1, -1, -1);
    cl.n[1].down = false;
    core_report_unreachable(cl.n[0].core, &cl.n[1].id);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    assert_int_equal(h_log_last(&cl, 1), 11);
    assert_int_equal(h_commit(&cl, 1), 11);
    h_free(&cl);
}

/* Scenario 53: n2's window full and its appends dropped; a heartbeat round
 * makes it reject the gap and catch up (no livelock). */
static void test_dropped_stream_recovers(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.max_inflight_msgs = 2;
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    for (int k = 0; k < 6; k++) {
        h_propose(&cl, 0, "x");
        h_drop(&cl, 0, 2, CORE_MSG_APP);
        h_stabilize(&cl);
    }
    assert_int_equal(h_commit(&cl, 0), 7);
    for (int k = 0; k < 12; k++) {
        h_tick(&cl, 0, 1);
        h_stabilize(&cl);
    }
    assert_int_equal(h_log_last(&cl, 2), 7);
    assert_int_equal(h_commit(&cl, 2), 7);
    h_free(&cl);
}

/* Scenario 106: a stale-term append is ignored; log untouched. */
static void test_stale_term_append_ignored_5_1(void **state)
{
    (void)state;
    uint64_t terms[] = {1};
    h_init(&cl, 3, 0, NULL);
    h_set_log(&cl, 1, terms, 1, 2);
    core_entry_t e = {.term = 1, .index = 2};
    core_msg_t m = app(0, 1, 1, 1, 1, &e, 1, 0);
    h_step(&cl, 1, &m);
    h_drain(&cl, 1);
    assert_int_equal(h_log_last(&cl, 1), 1);
    h_net_msg_t *r = h_find(&cl, 1, 0, CORE_MSG_APP_RESP);
    assert_non_null(r); /* tells the stale leader our term */
    assert_int_equal(r->m.term, 2);
    h_free(&cl);
}

/* Scenario 108/109: reordered appends and late rejections never rewind
 * next below match. */
static void test_reordered_and_stale_rejections(void **state)
{
    (void)state;
    h_init(&cl, 2, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    h_propose(&cl, 0, "a");
    h_stabilize(&cl);
    uint64_t match_before = 2;
    /* a late rejection of prev=1 */
    core_msg_t rej = {.type = CORE_MSG_APP_RESP,
                      .from = h_peer(1),
                      .to = h_peer(0),
                      .term = h_term(&cl, 0),
                      .index = 1,
                      .reject = true,
                      .reject_hint = 0};
    h_step(&cl, 0, &rej);
    h_drain(&cl, 0);
    core_progress_info_t pi[2];
    core_get_progress(cl.n[0].core, pi, 2);
    for (int k = 0; k < 2; k++) {
        if (!pi[k].is_self) {
            assert_int_equal(pi[k].match, match_before);
            assert_int_equal(pi[k].state, CORE_PR_REPLICATE);
            assert_true(pi[k].next >= match_before + 1);
        }
    }
    assert_int_equal(h_count(&cl, 0, 1, CORE_MSG_APP), 0);
    h_free(&cl);
}

/* Scenario 113: responses from unknown peers create no progress. */
static void test_unknown_peer_response_dropped(void **state)
{
    (void)state;
    h_init(&cl, 2, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    core_msg_t r = {.type = CORE_MSG_APP_RESP,
                    .from = h_peer(5),
                    .to = h_peer(0),
                    .term = h_term(&cl, 0),
                    .index = 1};
    h_step(&cl, 0, &r);
    core_progress_info_t pi[4];
    assert_int_equal(core_get_progress(cl.n[0].core, pi, 4), 2);
    h_free(&cl);
}

/* Scenario 37: the uncommitted-bytes cap. */
static void test_uncommitted_cap(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.max_uncommitted_bytes = 10;
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    cl.n[1].down = cl.n[2].down = true;
    assert_int_equal(h_propose(&cl, 0, "12345"), 0);
    assert_int_equal(h_propose(&cl, 0, "12345"), 0);
    assert_int_equal(h_propose(&cl, 0, "1"), RK_EBUSY);
    assert_int_equal(h_propose(&cl, 0, ""), 0);
    h_free(&cl);
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    assert_int_equal(h_propose(&cl, 0, "a very large proposal over the cap"), 0);
    h_free(&cl);
}

/* Proposals at a follower fail with RK_ENOTLEADER. */
static void test_propose_not_leader(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    assert_int_equal(h_propose(&cl, 1, "a"), RK_ENOTLEADER);
    h_free(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leader_appends_then_broadcasts_5_3),
        cmocka_unit_test(test_consistency_check_5_3),
        cmocka_unit_test(test_truncate_only_on_conflict_5_3),
        cmocka_unit_test(test_conflict_below_commit_is_fatal),
        cmocka_unit_test(test_ack_only_verified_prefix),
        cmocka_unit_test(test_fast_backtracking_5_3),
        cmocka_unit_test(test_old_term_entries_not_committed_by_counting_5_4_2),
        cmocka_unit_test(test_commit_needs_new_term_entry),
        cmocka_unit_test(test_heartbeat_commit_capped),
        cmocka_unit_test(test_probe_then_replicate),
        cmocka_unit_test(test_inflight_window),
        cmocka_unit_test(test_inflight_window_grows_on_demand),
        cmocka_unit_test(test_batching_per_message),
        cmocka_unit_test(test_dropped_stream_recovers),
        cmocka_unit_test(test_stale_term_append_ignored_5_1),
        cmocka_unit_test(test_reordered_and_stale_rejections),
        cmocka_unit_test(test_unknown_peer_response_dropped),
        cmocka_unit_test(test_uncommitted_cap),
        cmocka_unit_test(test_propose_not_leader),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed + h_conf_leaked();
}
