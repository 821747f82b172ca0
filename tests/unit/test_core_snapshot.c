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
    /* drop entries <= index from the in-memory log */
    size_t drop = (size_t)(meta.index - n->compact_index);
    for (size_t k = 0; k < drop; k++)
        buf_unref(n->log[k].data);
    memmove(n->log, n->log + drop, (n->log_n - drop) * sizeof *n->log);
    n->log_n -= drop;
    n->compact_index = meta.index;
    n->compact_term = meta.term;
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
    core_msg_t m = {.type = CORE_MSG_SNAP, .from = h_peer(0), .to = h_peer(1), .term = 11,
                    .snap = &meta};
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
    core_msg_t a = {.type = CORE_MSG_APP, .from = h_peer(0), .to = h_peer(1), .term = 1,
                    .index = 1, .log_term = 1, .commit = 1};
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
    core_msg_t m = {.type = CORE_MSG_SNAP, .from = h_peer(0), .to = h_peer(1), .term = 2,
                    .snap = &meta};
    h_step(&cl, 1, &m);
    h_drain(&cl, 1);
    h_drop(&cl, -1, -1, -1);
    core_entry_t e = {.term = 2, .index = 3};
    core_msg_t a = {.type = CORE_MSG_APP, .from = h_peer(0), .to = h_peer(1), .term = 2,
                    .index = 2, .log_term = 2, .entries = &e, .n_entries = 1, .commit = 3};
    h_step(&cl, 1, &a);
    h_drain(&cl, 1);
    h_net_msg_t *r = h_find(&cl, 1, 0, CORE_MSG_APP_RESP);
    assert_non_null(r);
    assert_false(r->m.reject);
    assert_int_equal(r->m.index, 3);
    assert_int_equal(h_commit(&cl, 1), 3);
    /* stale append below the compaction point (scenario 111) */
    h_drop(&cl, -1, -1, -1);
    core_msg_t old = {.type = CORE_MSG_APP, .from = h_peer(0), .to = h_peer(1), .term = 2,
                      .index = 1, .log_term = 1};
    h_step(&cl, 1, &old);
    h_drain(&cl, 1);
    r = h_find(&cl, 1, 0, CORE_MSG_APP_RESP);
    assert_non_null(r);
    assert_int_equal(r->m.index, 3); /* answered with its commit */
    h_free(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lagging_follower_gets_snapshot),
        cmocka_unit_test(test_snapshot_failure_report),
        cmocka_unit_test(test_restore_and_stale_snapshots),
        cmocka_unit_test(test_prev_at_snapshot_boundary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
