/* Raft core: the leader's read lease (thesis 6.4.1) against the shapes of
 * simulator bug 7, where a leader answered lease reads after another leader
 * had been elected and had completed a write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "src/core/core_internal.h"
#include "tests/support/core_harness.h"

static h_cluster_t cl;

static core_read_state_t *find_read(int i, uint64_t ctx)
{
    for (size_t k = 0; k < cl.n[i].n_reads; k++)
        if (cl.n[i].reads[k].ctx == ctx)
            return &cl.n[i].reads[k];
    return NULL;
}

static void lease_cluster(uint32_t lease_ticks)
{
    core_options_t o;
    h_default_opts(&o);
    o.read_only = CORE_READ_LEASE;
    o.lease_ticks = lease_ticks;
    h_init(&cl, 3, 0, &o);
    assert_int_equal(h_elect(&cl, 0), CORE_LEADER);
    h_stabilize(&cl);
}

/* One tick at every node (the same clock rate everywhere), n times, with
 * whatever n0 sends lost. */
static void tick_all_dropping_n0(int n)
{
    for (int k = 0; k < n; k++) {
        for (int i = 0; i < 3; i++)
            h_tick(&cl, i, 1);
        h_drop(&cl, 0, -1, -1);
    }
}

/* Elects n1 with n2 (n0 cut off) and commits a write there; returns the new
 * commit index. */
static uint64_t elect_n1_and_write(void)
{
    h_stabilize(&cl);
    if (h_role(&cl, 1) != CORE_LEADER)
        assert_int_equal(h_elect(&cl, 1), CORE_LEADER);
    assert_int_equal(h_propose(&cl, 1, "w"), 0);
    h_stabilize(&cl);
    return h_commit(&cl, 1);
}

/* Thesis 6.4.1: "the leader's lease starts when it sends the heartbeat",
 * not when the acks arrive. n1 and n2 get a heartbeat at once, but their
 * acks reach n0 eight ticks later. Two ticks after that the followers'
 * election timeout since the heartbeat has run out: n1 wins a new term with
 * n2 and commits a write. n0 still leads in its own view (check-quorum saw
 * the late acks) and must not answer a read from its lease: ten ticks have
 * passed since the send. Counting from the acks' arrival (before the fix)
 * it answered at once with its old commit index. */
static void test_lease_counts_from_the_heartbeat_send(void **state)
{
    (void)state;
    lease_cluster(9);
    h_tick(&cl, 0, 1);
    h_deliver(&cl, 0, -1, CORE_MSG_HEARTBEAT);
    h_drop(&cl, 0, -1, -1);
    tick_all_dropping_n0(8);
    h_deliver(&cl, -1, 0, CORE_MSG_HEARTBEAT_RESP); /* late acks */
    h_drop(&cl, 0, -1, -1);
    uint64_t old_commit = h_commit(&cl, 0);

    h_isolate(&cl, 0, true);
    tick_all_dropping_n0(2);
    uint64_t commit_new = elect_n1_and_write();
    assert_true(commit_new > old_commit);
    assert_int_equal(h_role(&cl, 0), CORE_LEADER); /* stale, unaware */

    core_read_index(cl.n[0].core, 7);
    h_drain(&cl, 0);
    assert_null(find_read(0, 7)); /* no lease: a heartbeat round */
    assert_true(h_count(&cl, 0, -1, CORE_MSG_HEARTBEAT) > 0);
    h_free(&cl);
}

/* The lease is renewed by heartbeats a quorum acked, and only for
 * lease_ticks ticks from their send (0 = election_ticks - 1). */
static void test_lease_expires_lease_ticks_after_the_acked_send(void **state)
{
    (void)state;
    lease_cluster(0);
    h_run(&cl, 1); /* a heartbeat round, acked */
    core_read_index(cl.n[0].core, 1);
    h_drain(&cl, 0);
    assert_non_null(find_read(0, 1));
    assert_int_equal(find_read(0, 1)->index, h_commit(&cl, 0));

    h_isolate(&cl, 0, true);
    h_tick(&cl, 0, 8); /* 8 < 9 ticks since the acked send */
    core_read_index(cl.n[0].core, 2);
    h_drain(&cl, 0);
    assert_non_null(find_read(0, 2));
    h_tick(&cl, 0, 1); /* 9: the followers may now vote for others */
    core_read_index(cl.n[0].core, 3);
    h_drain(&cl, 0);
    assert_null(find_read(0, 3));
    h_free(&cl);
}

/* A node restarted under lease reads does not know the leader any more, but
 * it may have acked the heartbeat the leader's lease runs from: it refuses
 * votes for an election timeout. Here n1 has been cut off from n0 for an
 * election timeout, so n0's lease rests on n2 alone; n2 acks a heartbeat and
 * restarts, n0 is cut off, and n1 campaigns: n2 must not vote for it while
 * n0's lease runs. Before the fix n2 granted at once, n1 won and committed a
 * write, and n0 answered reads from its lease with its old commit index. */
static void test_restarted_node_honours_the_lease(void **state)
{
    (void)state;
    lease_cluster(0);
    h_cut(&cl, 0, 1, true);
    h_run(&cl, 10); /* n0 and n2 exchange heartbeats; n1's lease on n0 ends */
    h_restart(&cl, 2);
    h_isolate(&cl, 0, true);
    uint64_t old_commit = h_commit(&cl, 0);
    h_stabilize(&cl);
    if (h_role(&cl, 1) != CORE_LEADER)
        (void)h_elect(&cl, 1);
    assert_int_not_equal(h_role(&cl, 1), CORE_LEADER);
    assert_int_equal(h_term(&cl, 2), h_term(&cl, 0));

    core_read_index(cl.n[0].core, 4); /* served from the lease: still sound */
    h_drain(&cl, 0);
    assert_non_null(find_read(0, 4));
    assert_int_equal(find_read(0, 4)->index, old_commit);

    tick_all_dropping_n0(10); /* n2's timeout since its restart has passed */
    assert_true(elect_n1_and_write() > old_commit);
    h_free(&cl);
}

/* A forced campaign (core_campaign) would cast our own vote against the
 * lease we gave the leader: refused while the lease runs. */
static void test_forced_campaign_refused_within_the_lease(void **state)
{
    (void)state;
    lease_cluster(0);
    h_run(&cl, 1);
    assert_int_equal(core_campaign(cl.n[1].core), RK_ESTATE);
    h_isolate(&cl, 0, true);
    tick_all_dropping_n0(10);
    if (h_role(&cl, 1) == CORE_FOLLOWER)
        assert_int_equal(core_campaign(cl.n[1].core), 0);
    h_free(&cl);
}

/* The ring of heartbeat send ticks the lease runs from is allocated with
 * the first round a leader sends: followers (most cores of a multi-raft
 * process) hold none, and the leader's lease still serves reads at once. */
static void test_round_ring_only_at_the_leader(void **state)
{
    (void)state;
    lease_cluster(0);
    h_run(&cl, 2);
    assert_non_null(cl.n[0].core->round_ticks);
    assert_null(cl.n[1].core->round_ticks);
    assert_null(cl.n[2].core->round_ticks);
    assert_int_equal(core_read_index(cl.n[0].core, 7), 0);
    h_drain(&cl, 0);
    core_read_state_t *r = find_read(0, 7);
    assert_non_null(r); /* answered from the lease, no round needed */
    assert_int_equal(r->index, h_commit(&cl, 0));
    h_free(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lease_counts_from_the_heartbeat_send),
        cmocka_unit_test(test_lease_expires_lease_ticks_after_the_acked_send),
        cmocka_unit_test(test_restarted_node_honours_the_lease),
        cmocka_unit_test(test_forced_campaign_refused_within_the_lease),
        cmocka_unit_test(test_round_ring_only_at_the_leader),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed + h_conf_leaked();
}
