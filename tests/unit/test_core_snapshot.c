/* Raft core: snapshots and log compaction (thesis 5): sending a snapshot to
 * a follower behind the leader's first index, the host's status reports,
 * restore at the follower, stale and matching snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "tests/support/core_harness.h"

static h_cluster_t cl;

/* The host at node i takes a snapshot at its commit and compacts its log. */
static void take_snapshot_and_compact(int i)
{
    h_node_t *n = &cl.n[i];
    core_snapshot_meta_t meta;
    memset(&meta, 0, sizeof meta);
    meta.index = h_commit(&cl, i);
    meta.term = h_log_term(&cl, i, meta.index);
    meta.conf = *core_get_conf(n->core, NULL);
    assert_int_equal(core_snapshot_taken(n->core, &meta), 0);
    mem_log_compact(&n->log, meta.index, meta.term);
    n->snap = meta;
    assert_int_equal(core_compacted(n->core, meta.index, meta.term), 0);
}

/* Scenario 55/57/62: a follower behind the compaction point gets a
 * snapshot, no appends while it is pending, then entries; commit matches. */
static void test_lagging_follower_gets_snapshot(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    cl.n[2].down = true;
    for (int k = 0; k < 20; k++)
        h_propose(&cl, 0, "x");
    h_stabilize(&cl);
    take_snapshot_and_compact(0);
    cl.n[2].down = false;
    h_drop(&cl, -1, -1, -1);
    core_report_unreachable(cl.n[0].core, &cl.n[2].id);
    h_tick(&cl, 0, 1);
    h_deliver(&cl, 0, 2, CORE_MSG_HEARTBEAT);
    h_deliver(&cl, 2, 0, CORE_MSG_HEARTBEAT_RESP);
    h_net_msg_t *s = h_find(&cl, 0, 2, CORE_MSG_SNAP);
    assert_non_null(s);
    assert_non_null(s->m.snap);
    assert_int_equal(s->m.snap->index, 21);
    core_progress_info_t pi[3];
    core_get_progress(cl.n[0].core, pi, 3);
    for (int k = 0; k < 3; k++)
        if (core_peer_eq(&pi[k].peer, &cl.n[2].id)) {
            assert_int_equal(pi[k].state, CORE_PR_SNAPSHOT);
            assert_int_equal(pi[k].pending_snapshot, 21);
        }
    h_propose(&cl, 0, "y");
    assert_int_equal(h_count(&cl, 0, 2, CORE_MSG_APP), 0);
    h_stabilize(&cl);
    core_report_snapshot(cl.n[0].core, &cl.n[2].id, true);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    assert_int_equal(h_log_last(&cl, 2), 22);
    assert_int_equal(h_commit(&cl, 2), 22);
    assert_int_equal(cl.n[2].snap.index, 21);
    h_free(&cl);
}

/* Scenario 57: a failed snapshot goes back to probing from match+1. */
static void test_snapshot_failure_report(void **state)
{
    (void)state;
    h_init(&cl, 2, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    cl.n[1].down = true;
    for (int k = 0; k < 5; k++)
        h_propose(&cl, 0, "x");
    /* single follower down: nothing commits; compact what is committed */
    h_drop(&cl, -1, -1, -1);
    take_snapshot_and_compact(0);
    h_free(&cl);

    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    cl.n[2].down = true;
    for (int k = 0; k < 5; k++)
        h_propose(&cl, 0, "x");
    h_stabilize(&cl);
    take_snapshot_and_compact(0);
    cl.n[2].down = false;
    core_report_unreachable(cl.n[0].core, &cl.n[2].id);
    h_drop(&cl, -1, -1, -1);
    h_tick(&cl, 0, 1);
    h_deliver(&cl, 0, 2, CORE_MSG_HEARTBEAT);
    h_deliver(&cl, 2, 0, CORE_MSG_HEARTBEAT_RESP);
    assert_non_null(h_find(&cl, 0, 2, CORE_MSG_SNAP));
    h_drop(&cl, 0, 2, CORE_MSG_SNAP);
    core_report_snapshot(cl.n[0].core, &cl.n[2].id, false);
    core_progress_info_t pi[3];
    core_get_progress(cl.n[0].core, pi, 3);
    for (int k = 0; k < 3; k++)
        if (core_peer_eq(&pi[k].peer, &cl.n[2].id)) {
            assert_int_equal(pi[k].state, CORE_PR_PROBE);
            assert_int_equal(pi[k].next, pi[k].match + 1);
        }
    /* the next heartbeat round retries and it converges */
    for (int k = 0; k < 3; k++) {
        h_tick(&cl, 0, 1);
        h_stabilize(&cl);
        core_report_snapshot(cl.n[0].core, &cl.n[2].id, true);
    }
    assert_int_equal(h_commit(&cl, 2), h_commit(&cl, 0));
    h_free(&cl);
}

/* Scenario 59: restore replaces the log, adopts the configuration; again is
 * a no-op. Scenario 60: stale or matching snapshots are not installed. */
static void test_restore_and_stale_snapshots(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    uint64_t terms[] = {1, 1, 1};
    h_set_log(&cl, 1, terms, 3, 1);
    core_snapshot_meta_t meta;
    memset(&meta, 0, sizeof meta);
    meta.index = 11;
    meta.term = 11;
    meta.conf.cur.n_peers = 3;
    for (int i = 0; i < 3; i++)
        meta.conf.cur.peers[i] = h_peer(i);
    meta.conf.cur.learners[meta.conf.cur.n_learners++] = h_peer(4);
    core_msg_t m = {
        .type = CORE_MSG_SNAP, .from = h_peer(0), .to = h_peer(1), .term = 11, .snap = &meta};
    h_step(&cl, 1, &m);
    h_drain(&cl, 1);
    core_status_t st;
    core_get_status(cl.n[1].core, &st);
    assert_int_equal(st.last_index, 11);
    assert_int_equal(st.last_term, 11);
    assert_int_equal(st.commit, 11);
    assert_int_equal(cl.n[1].snap.index, 11);
    assert_int_equal(h_log_last(&cl, 1), 11);
    assert_int_equal(core_get_conf(cl.n[1].core, NULL)->cur.n_learners, 1);
    h_net_msg_t *r = h_find(&cl, 1, 0, CORE_MSG_APP_RESP);
    assert_non_null(r);
    assert_int_equal(r->m.index, 11);
    h_drop(&cl, -1, -1, -1);
    size_t before = cl.n[1].n_events;
    h_step(&cl, 1, &m);
    h_drain(&cl, 1);
    assert_int_equal(h_events(&cl, 1, CORE_EV_CONF_CHANGED),
                     h_events(&cl, 1, CORE_EV_CONF_CHANGED)); /* no crash */
    (void)before;
    h_free(&cl);

    /* matching snapshot (2,1) against log [1,1,1] commit 1: commit moves to 2 */
    h_init(&cl, 3, 0, NULL);
    h_set_log(&cl, 1, terms, 3, 1);
    core_msg_t a = {.type = CORE_MSG_APP,
                    .from = h_peer(0),
                    .to = h_peer(1),
                    .term = 1,
                    .index = 1,
                    .log_term = 1,
                    .commit = 1};
    h_step(&cl, 1, &a);
    h_drain(&cl, 1);
    assert_int_equal(h_commit(&cl, 1), 1);
    memset(&meta, 0, sizeof meta);
    meta.index = 1;
    meta.term = 1;
    meta.conf = cl.boot;
    m.term = 1;
    h_step(&cl, 1, &m);
    h_drain(&cl, 1);
    assert_int_equal(cl.n[1].snap.index, 0);
    meta.index = 2;
    h_step(&cl, 1, &m);
    h_drain(&cl, 1);
    assert_int_equal(cl.n[1].snap.index, 0);
    assert_int_equal(h_commit(&cl, 1), 2);
    assert_int_equal(h_log_last(&cl, 1), 3);
    h_free(&cl);
}

/* Scenario 65: an append with prev at the snapshot boundary is accepted. */
static void test_prev_at_snapshot_boundary(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    core_snapshot_meta_t meta;
    memset(&meta, 0, sizeof meta);
    meta.index = 2;
    meta.term = 2;
    meta.conf = cl.boot;
    core_msg_t m = {
        .type = CORE_MSG_SNAP, .from = h_peer(0), .to = h_peer(1), .term = 2, .snap = &meta};
    h_step(&cl, 1, &m);
    h_drain(&cl, 1);
    h_drop(&cl, -1, -1, -1);
    core_entry_t e = {.term = 2, .index = 3};
    core_msg_t a = {.type = CORE_MSG_APP,
                    .from = h_peer(0),
                    .to = h_peer(1),
                    .term = 2,
                    .index = 2,
                    .log_term = 2,
                    .entries = &e,
                    .n_entries = 1,
                    .commit = 3};
    h_step(&cl, 1, &a);
    h_drain(&cl, 1);
    h_net_msg_t *r = h_find(&cl, 1, 0, CORE_MSG_APP_RESP);
    assert_non_null(r);
    assert_false(r->m.reject);
    assert_int_equal(r->m.index, 3);
    assert_int_equal(h_commit(&cl, 1), 3);
    /* stale append below the compaction point (scenario 111) */
    h_drop(&cl, -1, -1, -1);
    core_msg_t old = {.type = CORE_MSG_APP,
                      .from = h_peer(0),
                      .to = h_peer(1),
                      .term = 2,
                      .index = 1,
                      .log_term = 1};
    h_step(&cl, 1, &old);
    h_drain(&cl, 1);
    r = h_find(&cl, 1, 0, CORE_MSG_APP_RESP);
    assert_non_null(r);
    assert_int_equal(r->m.index, 3); /* answered with its commit */
    h_free(&cl);
}

static core_snapshot_meta_t snap_meta(uint64_t index, uint64_t term, const core_conf_t *conf)
{
    core_snapshot_meta_t m;
    memset(&m, 0, sizeof m);
    m.index = index;
    m.term = term;
    m.conf = *conf;
    return m;
}

static void step_snap(int to, uint64_t term, core_snapshot_meta_t *meta)
{
    core_msg_t m = {
        .type = CORE_MSG_SNAP, .from = h_peer(0), .to = h_peer(to), .term = term, .snap = meta};
    h_step(&cl, to, &m);
    h_drain(&cl, to);
}

/* Scenario 56 (thesis 5.1): a follower that needs a snapshot but has been
 * silent for an election timeout gets none (it would be wasted work);
 * once it answers a heartbeat again, it gets one. */
static void test_no_snapshot_to_inactive_follower(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    h_isolate(&cl, 2, true);
    for (int k = 0; k < 10; k++)
        h_propose(&cl, 0, "x");
    h_stabilize(&cl);
    take_snapshot_and_compact(0);
    h_run(&cl, 25); /* two quorum checks: n2 is no longer recently active */
    core_report_unreachable(cl.n[0].core, &cl.n[2].id);
    for (int k = 0; k < 5; k++) {
        h_propose(&cl, 0, "y");
        h_tick(&cl, 0, 1);
        assert_int_equal(h_count(&cl, 0, 2, CORE_MSG_SNAP), 0);
        h_stabilize(&cl);
    }
    assert_int_equal(h_role(&cl, 0), CORE_LEADER);
    h_isolate(&cl, 2, false);
    h_tick(&cl, 0, 1);
    h_deliver(&cl, 0, 2, CORE_MSG_HEARTBEAT);
    h_deliver(&cl, 2, 0, CORE_MSG_HEARTBEAT_RESP);
    assert_non_null(h_find(&cl, 0, 2, CORE_MSG_SNAP));
    h_free(&cl);
}

/* Scenario 61 (thesis 4.1, 5.1): the configuration a snapshot carries is
 * put in effect: a voter demoted by it stops campaigning, a learner promoted
 * by it campaigns, and a joint configuration tracks both halves (winning
 * needs a majority of each). */
static void test_snapshot_carries_config(void **state)
{
    (void)state;
    core_options_t o;
    h_default_opts(&o);
    o.pre_vote = false;
    o.check_quorum = false;
    /* demotes this voter */
    h_init(&cl, 3, 1, &o);
    core_conf_t cf;
    memset(&cf, 0, sizeof cf);
    cf.cur.n_peers = 3;
    cf.cur.peers[0] = h_peer(0);
    cf.cur.peers[1] = h_peer(2);
    cf.cur.peers[2] = h_peer(3);
    cf.cur.n_learners = 1;
    cf.cur.learners[0] = h_peer(1);
    core_snapshot_meta_t m = snap_meta(5, 1, &cf);
    step_snap(1, 1, &m);
    assert_true(core_conf_is_learner(core_get_conf(cl.n[1].core, NULL), &cl.n[1].id));
    assert_int_equal(core_campaign(cl.n[1].core), RK_ESTATE);
    h_tick(&cl, 1, 40);
    assert_int_equal(h_role(&cl, 1), CORE_FOLLOWER);
    /* promotes a learner (n3 was a bootstrap learner) */
    step_snap(3, 1, &m);
    assert_true(core_conf_is_voter(core_get_conf(cl.n[3].core, NULL), &cl.n[3].id));
    h_drop(&cl, -1, -1, -1);
    assert_int_equal(core_campaign(cl.n[3].core), 0);
    h_drain(&cl, 3);
    assert_int_equal(h_role(&cl, 3), CORE_CANDIDATE);
    assert_non_null(h_find(&cl, 3, 0, CORE_MSG_VOTE));
    assert_non_null(h_find(&cl, 3, 2, CORE_MSG_VOTE));
    assert_null(h_find(&cl, 3, 1, CORE_MSG_VOTE)); /* learners are not asked */
    h_free(&cl);

    /* joint (0,1,2) && (1,2,3) at n1 */
    h_init(&cl, 4, 0, &o);
    memset(&cf, 0, sizeof cf);
    cf.joint = true;
    cf.old.n_peers = 3;
    cf.cur.n_peers = 3;
    for (int k = 0; k < 3; k++) {
        cf.old.peers[k] = h_peer(k);
        cf.cur.peers[k] = h_peer(k + 1);
    }
    m = snap_meta(5, 1, &cf);
    step_snap(1, 1, &m);
    assert_true(core_get_conf(cl.n[1].core, NULL)->joint);
    h_drop(&cl, -1, -1, -1);
    assert_int_equal(core_campaign(cl.n[1].core), 0);
    h_drain(&cl, 1);
    uint64_t t = h_term(&cl, 1);
    assert_non_null(h_find(&cl, 1, 0, CORE_MSG_VOTE));
    assert_non_null(h_find(&cl, 1, 2, CORE_MSG_VOTE));
    assert_non_null(h_find(&cl, 1, 3, CORE_MSG_VOTE));
    h_drop(&cl, -1, -1, -1);
    core_msg_t g = {.type = CORE_MSG_VOTE_RESP, .from = h_peer(0), .to = h_peer(1), .term = t};
    h_step(&cl, 1, &g); /* old half: 2 of 3; new half: 1 of 3 */
    assert_int_equal(h_role(&cl, 1), CORE_CANDIDATE);
    g.from = h_peer(3);
    h_step(&cl, 1, &g); /* new half: 2 of 3 */
    h_drain(&cl, 1);
    assert_int_equal(h_role(&cl, 1), CORE_LEADER);
    h_free(&cl);
}

/* Scenario 63 (thesis 5.1): a snapshot arriving while the follower still
 * writes entries, or while it installs an older snapshot, wins: the end
 * state is the newest snapshot; the older write's ack neither brings back
 * the replaced entries nor ends the newer install early (no campaign until
 * it is acked); an append after the snapshot is written after it, in order,
 * and acked only once durable; a stale append below it changes nothing. */
static void test_snapshot_vs_inflight_writes(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    cl.auto_persist = false;
    core_entry_t e[3];
    for (int k = 0; k < 3; k++)
        e[k] = (core_entry_t){.term = 1, .index = (uint64_t)k + 1, .type = CORE_ENTRY_DATA};
    core_msg_t a = {.type = CORE_MSG_APP,
                    .from = h_peer(0),
                    .to = h_peer(1),
                    .term = 1,
                    .entries = e,
                    .n_entries = 3};
    h_step(&cl, 1, &a);
    h_drain(&cl, 1); /* write 1: entries 1..3, pending */
    core_snapshot_meta_t m5 = snap_meta(5, 1, &cl.boot), m8 = snap_meta(8, 1, &cl.boot);
    step_snap(1, 1, &m5); /* write 2: snapshot 5 */
    step_snap(1, 1, &m8); /* write 3: snapshot 8 */
    assert_int_equal(cl.n[1].n_pending, 3);
    h_persist_n(&cl, 1, 2);
    core_status_t st;
    core_get_status(cl.n[1].core, &st);
    assert_int_equal(st.last_index, 8);
    assert_int_equal(st.first_index, 9);
    assert_int_equal(st.commit, 8);
    assert_int_equal(core_campaign(cl.n[1].core), RK_ESTATE); /* 8 not installed yet */
    /* an append right after the snapshot while it installs: queued after it */
    core_entry_t e9 = {.term = 1, .index = 9, .type = CORE_ENTRY_DATA};
    core_msg_t a9 = {.type = CORE_MSG_APP,
                     .from = h_peer(0),
                     .to = h_peer(1),
                     .term = 1,
                     .index = 8,
                     .log_term = 1,
                     .commit = 9,
                     .entries = &e9,
                     .n_entries = 1};
    h_step(&cl, 1, &a9);
    h_step(&cl, 1, &a); /* stale: below the snapshot */
    h_drain(&cl, 1);
    h_drop(&cl, -1, -1, -1);
    h_persist_n(&cl, 1, 1); /* snapshot 8 durable */
    assert_int_equal(cl.n[1].snap.index, 8);
    assert_int_equal(h_log_last(&cl, 1), 8);
    assert_int_equal(h_count(&cl, 1, 0, CORE_MSG_APP_RESP), 1); /* the snapshot's ack */
    h_net_msg_t *r = h_find(&cl, 1, 0, CORE_MSG_APP_RESP);
    assert_int_equal(r->m.index, 8);
    h_drop(&cl, -1, -1, -1);
    h_persist(&cl, 1);
    assert_int_equal(h_log_last(&cl, 1), 9);
    r = h_find(&cl, 1, 0, CORE_MSG_APP_RESP);
    assert_non_null(r);
    assert_false(r->m.reject);
    core_get_status(cl.n[1].core, &st);
    assert_int_equal(st.commit, 9);
    assert_int_equal(st.stable_index, 9);
    h_drain(&cl, 1);
    assert_int_equal(cl.n[1].applied, 9);
    h_free(&cl);
}

/* Scenario 64 (thesis 5.1): the follower crashes mid-install. The leader
 * hears the transfer failed and, at the next heartbeat answer, sends the
 * snapshot again (the restarted follower has its old log, no snapshot;
 * match+1 is compacted, so a probe would only be rejected). A term change
 * during an install does not corrupt it. */
static void test_interrupted_install(void **state)
{
    (void)state;
    h_init(&cl, 3, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    h_isolate(&cl, 2, true);
    for (int k = 0; k < 10; k++)
        h_propose(&cl, 0, "x");
    h_stabilize(&cl);
    take_snapshot_and_compact(0);
    h_isolate(&cl, 2, false);
    uint64_t old_last = h_log_last(&cl, 2);
    core_report_unreachable(cl.n[0].core, &cl.n[2].id); /* back to probing */
    h_tick(&cl, 0, 1);
    h_deliver(&cl, 0, 2, CORE_MSG_HEARTBEAT);
    h_deliver(&cl, 2, 0, CORE_MSG_HEARTBEAT_RESP);
    assert_non_null(h_find(&cl, 0, 2, CORE_MSG_SNAP));
    cl.auto_persist = false;
    h_deliver(&cl, 0, 2, CORE_MSG_SNAP);
    assert_int_equal(cl.n[2].n_pending, 1);
    h_restart(&cl, 2); /* crash: the install never reached the disk */
    cl.auto_persist = true;
    assert_int_equal(h_log_last(&cl, 2), old_last);
    assert_int_equal(cl.n[2].snap.index, 0);
    core_report_snapshot(cl.n[0].core, &cl.n[2].id, false);
    h_tick(&cl, 0, 1);
    h_deliver(&cl, 0, 2, CORE_MSG_HEARTBEAT);
    h_deliver(&cl, 2, 0, CORE_MSG_HEARTBEAT_RESP);
    assert_non_null(h_find(&cl, 0, 2, CORE_MSG_SNAP));
    h_stabilize(&cl);
    core_report_snapshot(cl.n[0].core, &cl.n[2].id, true);
    h_propose(&cl, 0, "z");
    h_stabilize(&cl);
    assert_int_equal(h_commit(&cl, 2), h_commit(&cl, 0));
    assert_int_equal(h_log_last(&cl, 2), h_log_last(&cl, 0));

    /* a higher term arrives while an install is pending */
    h_isolate(&cl, 2, true);
    for (int k = 0; k < 5; k++)
        h_propose(&cl, 0, "w");
    h_stabilize(&cl);
    take_snapshot_and_compact(0);
    h_isolate(&cl, 2, false);
    core_snapshot_meta_t m = cl.n[0].snap;
    uint64_t t = h_term(&cl, 0);
    cl.auto_persist = false;
    step_snap(2, t, &m);
    core_msg_t hb = {.type = CORE_MSG_HEARTBEAT, .from = h_peer(1), .to = h_peer(2), .term = t + 1};
    h_step(&cl, 2, &hb); /* a new leader's heartbeat: the term moves */
    h_drain(&cl, 2);
    h_persist(&cl, 2);
    assert_int_equal(cl.n[2].hs.term, t + 1);
    assert_int_equal(cl.n[2].snap.index, m.index);
    assert_int_equal(h_log_last(&cl, 2), m.index);
    assert_int_equal(h_log_term(&cl, 2, m.index), m.term);
    core_status_t st;
    core_get_status(cl.n[2].core, &st);
    assert_int_equal(st.commit, m.index);
    assert_int_equal(st.stable_index, m.index);
    h_free(&cl);
}

/* Regression (simulator bug 2, thesis 5.1): a node that installed a
 * snapshot from the leader, then leads, sends a lagging follower that
 * installed snapshot -- never its own older local one, whose data its host
 * no longer keeps and which would leave a gap its compacted log cannot
 * fill. */
static void test_installed_snapshot_is_the_one_sent(void **state)
{
    (void)state;
    h_init(&cl, 5, 0, NULL);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
    for (int k = 0; k < 3; k++)
        h_propose(&cl, 0, "a");
    h_stabilize(&cl);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    take_snapshot_and_compact(2); /* n2's own, older snapshot */
    uint64_t old_snap = cl.n[2].snap.index;
    h_isolate(&cl, 1, true);
    h_isolate(&cl, 2, true);
    for (int k = 0; k < 10; k++)
        h_propose(&cl, 0, "b");
    h_stabilize(&cl);
    take_snapshot_and_compact(0);
    uint64_t new_snap = cl.n[0].snap.index;
    assert_true(new_snap > old_snap);
    h_isolate(&cl, 2, false);
    h_isolate(&cl, 1, true); /* healing n2 healed n1-n2 too */
    core_report_unreachable(cl.n[0].core, &cl.n[2].id);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    core_report_snapshot(cl.n[0].core, &cl.n[2].id, true);
    h_tick(&cl, 0, 1);
    h_stabilize(&cl);
    assert_int_equal(cl.n[2].snap.index, new_snap);
    assert_int_equal(core_transfer_leader(cl.n[0].core, &cl.n[2].id), 0);
    h_stabilize(&cl);
    assert_int_equal(h_role(&cl, 2), CORE_LEADER);
    h_isolate(&cl, 1, false); /* n1 still at old_snap or so */
    /* a snapshot n2 sent while n1 was cut off was lost: its host says so */
    core_report_snapshot(cl.n[2].core, &cl.n[1].id, false);
    h_net_msg_t *s = NULL;
    for (int k = 0; k < 5 && s == NULL; k++) {
        h_tick(&cl, 2, 1);
        for (int r = 0; r < 4 && s == NULL; r++) {
            h_deliver(&cl, -1, -1, -1);
            s = h_find(&cl, 2, 1, CORE_MSG_SNAP);
        }
    }
    assert_non_null(s);
    assert_int_equal(s->m.snap->index, new_snap);
    h_free(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lagging_follower_gets_snapshot),
        cmocka_unit_test(test_snapshot_failure_report),
        cmocka_unit_test(test_restore_and_stale_snapshots),
        cmocka_unit_test(test_prev_at_snapshot_boundary),
        cmocka_unit_test(test_no_snapshot_to_inactive_follower),
        cmocka_unit_test(test_snapshot_carries_config),
        cmocka_unit_test(test_snapshot_vs_inflight_writes),
        cmocka_unit_test(test_interrupted_install),
        cmocka_unit_test(test_installed_snapshot_is_the_one_sent),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed + h_conf_leaked();
}
