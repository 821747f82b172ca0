/* Startup benchmark: how long a node takes to come back on a data directory
 * holding N log entries, (a) with no snapshot (everything is replayed) and
 * (b) with a snapshot taken K entries before the end (only K are replayed).
 * Prints figures; asserts nothing about time.
 *
 *   build/tests/node-startup-bench [N=1000000] [K=1000]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raftkit/log.h"
#include "src/node/node_internal.h"
#include "storage/log_store.h"
#include "storage/meta_store.h"
#include "storage/snapshot_store.h"
#include "tests/node/cluster.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double start_and_wait(tc_cluster_t *c, int64_t last)
{
    double t0 = now_s();
    if (tc_start(c, 0, true) != 0)
        exit(1);
    while (rk_node_applied_index(c->nodes[0].node) < last)
        tc_msleep(1);
    double dt = now_s() - t0;
    tc_stop(c, 0);
    return dt;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    long k = argc > 2 ? atol(argv[2]) : 1000;
    rk_log_set_level(RK_LOG_WARN);
    tc_cluster_t c;
    tc_cluster_init(&c, "bench", 1, 1, NULL);
    if (tc_start(&c, 0, false) != 0 || tc_wait_leader(&c, 5000) != 0)
        return 1;
    tc_stop(&c, 0);

    /* seed the log directly: n entries of 8 bytes, all committed */
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/log", c.nodes[0].dir);
    log_env_t *env;
    log_store_t *s;
    rk_status_t st;
    log_env_options_t eo;
    log_env_options_init(&eo);
    eo.sync = false;
    if (log_env_open(dir, &eo, &env, &st) || log_store_open(env, "bench", NULL, &s, &st)) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    meta_hard_state_t hs;
    meta_store_load(s, &hs, &st);
    uint64_t first = log_store_last_index(s) + 1, term = hs.term;
    uint64_t one = 1;
    log_entry_t *batch = calloc(10000, sizeof(*batch));
    double t0 = now_s();
    for (uint64_t i = first; i < first + (uint64_t)n;) {
        size_t m = 0;
        for (; m < 10000 && i < first + (uint64_t)n; m++, i++)
            batch[m] = (log_entry_t){
                .index = i, .term = term, .type = LOG_ENTRY_DATA, .data = &one, .len = 8};
        if (log_store_append(s, batch, m, &st) != 0) {
            fprintf(stderr, "append: %s\n", st.msg);
            return 1;
        }
    }
    uint64_t last = log_store_last_index(s);
    hs.commit = last;
    meta_store_save(s, &hs, &st);
    printf("seeded %ld entries in %.2f s (last index %llu)\n", n, now_s() - t0,
           (unsigned long long)last);
    log_store_close(s);
    log_env_close(env);

    double a = start_and_wait(&c, (int64_t)last);
    printf("startup, no snapshot, replaying %llu entries: %.3f s\n", (unsigned long long)last, a);

    /* a snapshot k entries before the end */
    snap_store_t *ss;
    snprintf(dir, sizeof(dir), "%s/snapshot", c.nodes[0].dir);
    if (snap_store_open(dir, &ss, &st) != 0)
        return 1;
    snap_writer_t *w;
    uint64_t si = last - (uint64_t)k;
    if (snap_writer_begin(ss, si, term, &c.conf, NULL, &w, &st) != 0)
        return 1;
    char body[64];
    int len =
        snprintf(body, sizeof(body), "%llu %llu\n", (unsigned long long)si, (unsigned long long)si);
    snap_writer_write_file(w, "counter", body, (size_t)len, &st);
    if (snap_writer_commit(w, &st) != 0) {
        fprintf(stderr, "snapshot: %s\n", st.msg);
        return 1;
    }
    snap_store_close(ss);
    double b = start_and_wait(&c, (int64_t)last);
    printf("startup, snapshot at %llu, log of %llu entries, replaying %ld: %.3f s\n",
           (unsigned long long)si, (unsigned long long)last, k, b);
    free(batch);
    tc_cluster_destroy(&c);
    return 0;
}
