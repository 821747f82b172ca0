/* Integration tests of the node runtime: real nodes, each with its own libuv
 * loop, talking over loopback TCP, with LMDB storage in temporary dirs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "tests/node/cluster.h"

/* Reference: Raft section 5.2 (election) and 5.3 (replication): a 3-node
 * group elects one leader, replicates thousands of tasks, runs every closure
 * exactly once with success, and every state machine reaches the same sum. */
static void test_three_nodes_replicate(void **state)
{
    (void)state;
    tc_cluster_t c;
    tc_cluster_init(&c, "g3", 3, 3, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tc_start(&c, i, false), 0);
    int leader = tc_wait_leader(&c, 5000);
    assert_true(leader >= 0);
    int ok = tc_apply_many(&c, leader, 3000);
    assert_int_equal(ok, 3000);
    int64_t last = rk_node_last_log_index(c.nodes[leader].node);
    assert_true(tc_wait_applied(&c, last, 5000));
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&c.nodes[i].fsm.sum), 3000);
    assert_int_equal(atomic_load(&c.nodes[leader].fsm.leader_starts), 1);
    tc_cluster_stop_all(&c);
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&c.nodes[i].fsm.shutdowns), 1);
    /* restart on the same directories: the log is replayed, no add_peer needed */
    for (int i = 0; i < 3; i++)
        assert_int_equal(tc_start(&c, i, true), 0);
    leader = tc_wait_leader(&c, 5000);
    assert_true(leader >= 0);
    assert_true(tc_wait_applied(&c, last, 5000));
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&c.nodes[i].fsm.sum), 3000);
    assert_int_equal(tc_apply_many(&c, leader, 10), 10);
    tc_cluster_destroy(&c);
}

int main(void)
{
    if (getenv("RAFTKIT_LOG") == NULL)
        rk_log_set_level(RK_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_nodes_replicate),
    };
    return cmocka_run_group_tests_name("node_cluster", tests, NULL, NULL);
}
