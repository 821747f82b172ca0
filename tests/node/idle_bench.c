/* Idle benchmark: G groups of 3 replicas on 3 shared servers (rk_server_t)
 * in this one process, all idle once elected; prints the CPU the process
 * used over 10 s (from /proc/self/stat), in percent of one core. Asserts
 * nothing about time.
 *
 *   build/tests/node-idle-bench [G=300] [QUIESCE=1]
 *
 * Each group has its own storage here: run with sync off (the default of
 * this program) and RAFTKIT_JOURNAL=0 for many groups.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "raftkit/log.h"
#include "tests/node/cluster.h"

static void quiet(void *arg, rk_log_level_t level, const char *line)
{
    (void)arg;
    (void)level;
    (void)line;
}

/* utime + stime of this process, in seconds. */
static double cpu_s(void)
{
    char buf[4096];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* fields 14 and 15, counted from the state (field 3) after the name */
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int groups = argc > 1 ? atoi(argv[1]) : 300;
    bool quiesce = argc > 2 ? atoi(argv[2]) != 0 : true;
    if (groups <= 0) {
        fprintf(stderr, "usage: %s [GROUPS] [QUIESCE (0 or 1)]\n", argv[0]);
        return 2;
    }
    rk_log_set_sink(quiet, NULL);
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.raft_options.sync = false;
    o.raft_options.quiesce = quiesce;
    tc_cluster_t *g = calloc((size_t)groups, sizeof *g);
    rk_server_t *srv[3];
    for (int k = 0; k < groups; k++) {
        char name[32];
        snprintf(name, sizeof name, "idle%d", k);
        tc_cluster_init(&g[k], name, 3, 3, &o);
        if (k == 0)
            continue;
        for (int i = 0; i < 3; i++)
            g[k].nodes[i].id = g[0].nodes[i].id; /* one port per server */
        g[k].conf = g[0].conf;
    }
    for (int i = 0; i < 3; i++) {
        rk_status_t st;
        srv[i] = rk_server_new(&g[0].nodes[i].id.endpoint, &st);
        if (srv[i] == NULL) {
            fprintf(stderr, "server: %s\n", st.msg);
            return 1;
        }
        for (int k = 0; k < groups; k++)
            g[k].nodes[i].server = srv[i];
    }
    for (int k = 0; k < groups; k++)
        for (int i = 0; i < 3; i++)
            if (tc_start(&g[k], i, false) != 0) {
                fprintf(stderr, "group %d replica %d did not start\n", k, i);
                return 1;
            }
    int led = 0;
    for (int k = 0; k < groups; k++)
        led += tc_wait_leader(&g[k], 30000) >= 0;
    sleep(10); /* elections and their aftermath settle */
    double c0 = cpu_s(), t0 = now_s();
    sleep(10);
    double c1 = cpu_s(), t1 = now_s();
    printf(
        "node-idle-bench: groups=%d replicas=3 quiesce=%d led=%d idle_cpu_pct=%.1f over %.1f s\n",
        groups, quiesce, led, 100.0 * (c1 - c0) / (t1 - t0), t1 - t0);
    fflush(stdout);
    for (int k = 0; k < groups; k++)
        tc_cluster_destroy(&g[k]);
    for (int i = 0; i < 3; i++)
        rk_server_free(srv[i]);
    free(g);
    return 0;
}
