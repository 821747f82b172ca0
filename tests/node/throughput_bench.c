/* Throughput benchmark: a 3-node group on loopback, fsync on (unless
 * argv[2] is "nosync"), N tasks of 8 bytes proposed from one thread as fast
 * as the apply queue takes them; prints tasks/s once every closure ran.
 *
 *   build/tests/node-throughput-bench [N=100000] [nosync]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raftkit/log.h"
#include "tests/node/cluster.h"

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    rk_log_set_level(RK_LOG_ERROR);
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.election_timeout_ms = 1000;
    o.raft_options.sync = !(argc > 2 && strcmp(argv[2], "nosync") == 0);
    tc_cluster_t c;
    tc_cluster_init(&c, "tput", 3, 3, &o);
    for (int i = 0; i < 3; i++)
        if (tc_start(&c, i, false) != 0)
            return 1;
    int leader = tc_wait_leader(&c, 10000);
    if (leader < 0)
        return 1;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int ok = tc_apply_many(&c, leader, n);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double dt = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("3 nodes, loopback, sync=%d: %d/%d tasks acknowledged in %.2f s = %.0f tasks/s\n",
           o.raft_options.sync, ok, n, dt, ok / dt);
    tc_cluster_destroy(&c);
    return ok == n ? 0 : 1;
}
