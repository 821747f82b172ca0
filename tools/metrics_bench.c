/* Micro-benchmark of metric recording: ns per histogram record, with one
 * thread and with two threads recording into the same histogram (the worst
 * case: every record contends for the same cache lines), plus the cost of a
 * summary (what a scrape pays per histogram) and of a timed record
 * (two clock reads). Prints figures; asserts nothing.
 *
 * metrics_bench --groups G: G groups' metrics hubs (a third leading with two
 * followers, the rest following, some quiesced, some lagging) on one admin
 * endpoint; prints the memory the hubs take, the cost of a status
 * publication, and the time and size of each admin resource over HTTP.
 * With --serve it then prints "serving on port P" and serves until its
 * standard input closes (tests/status-page pages through such groups).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raftkit/log.h"
#include "src/admin/admin.h"
#include "src/metrics/metrics.h"
#include "tests/support/http_client.h"

#define N 20000000u

static metrics_hist_t *shared;

static void *worker(void *arg)
{
    uint64_t n = (uint64_t)(uintptr_t)arg;
    uint64_t x = 88172645463325252u;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        metrics_hist_record(shared, 1000 + (x & 0xfffff)); /* ~1 us .. 1 ms */
    }
    return NULL;
}

static double run(int threads)
{
    pthread_t t[2];
    uint64_t t0 = metrics_now_ns();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)N);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    uint64_t dt = metrics_now_ns() - t0;
    return (double)dt / N; /* wall ns per record per thread */
}

static int micro(void)
{
    metrics_hist_t *h = malloc(sizeof *h);
    metrics_hist_init(h);
    shared = h;
    printf("histogram: %u buckets, %zu bytes + %zu per row of %u in use\n", METRICS_HIST_BUCKETS,
           sizeof *h, METRICS_HIST_SUB * sizeof(uint64_t), METRICS_HIST_SUB);
    printf("record, 1 thread:                %6.2f ns/record\n", run(1));
    metrics_hist_destroy(h);
    metrics_hist_init(h);
    shared = h;
    printf("record, 2 threads, shared hist:  %6.2f ns/record (wall, per thread)\n", run(2));

    rk_histogram_summary_t s;
    uint64_t t0 = metrics_now_ns();
    for (int i = 0; i < 10000; i++)
        metrics_hist_summarize(h, &s);
    printf("summarize (p50..p999):           %6.0f ns\n", (double)(metrics_now_ns() - t0) / 10000);

    metrics_node_t *m = metrics_node_new("bench", NULL);
    t0 = metrics_now_ns();
    for (unsigned i = 0; i < N / 4; i++) {
        uint64_t s0 = metrics_now_ns();
        metrics_record_since(m, METRIC_APPEND_LOGS, s0);
    }
    printf("timed record (2 clock reads):    %6.2f ns/record\n",
           (double)(metrics_now_ns() - t0) / (N / 4));
    t0 = metrics_now_ns();
    for (int i = 0; i < 1000; i++)
        rk_metrics_free(metrics_snapshot(m));
    printf("node snapshot (%d metrics):      %6.0f ns\n", METRIC__COUNT,
           (double)(metrics_now_ns() - t0) / 1000);
    rk_metrics_t *snap = metrics_snapshot(m);
    t0 = metrics_now_ns();
    for (int i = 0; i < 1000; i++)
        free(rk_metrics_to_prometheus(snap));
    printf("prometheus render:               %6.0f ns\n", (double)(metrics_now_ns() - t0) / 1000);
    rk_metrics_free(snap);
    metrics_node_free(m);
    metrics_hist_destroy(h);
    free(h);
    return 0;
}

/* ---- --groups G ---- */

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Group i's status: every third one leads (two followers), the rest follow;
 * every fifth is quiesced, every 97th has a follower 5000 entries behind. */
static void fake_status(rk_node_status_t *st, size_t i)
{
    rk_node_status_init(st);
    bool lead = i % 3 == 0;
    st->state = lead ? RK_STATE_LEADER : RK_STATE_FOLLOWER;
    st->term = 3;
    st->quiesced = i % 5 == 0;
    rk_configuration_parse(&st->conf, "127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083", NULL);
    st->leader = st->conf.peers[lead ? 0 : 1];
    st->last_log_index = st->committed_index = st->applied_index = 1000 + (int64_t)i;
    if (!lead)
        return;
    st->n_peers = 2;
    for (int k = 0; k < 2; k++) {
        rk_peer_status_t *p = &st->peers[k];
        memset(p, 0, sizeof *p);
        p->peer = st->conf.peers[k + 1];
        p->reachable = true;
        p->match_index = st->last_log_index - (i % 97 == 0 && k == 1 ? 5000 : 0);
        p->next_index = p->match_index + 1;
        p->log_lags = st->last_log_index - p->match_index;
        p->heartbeat_times = 100;
        p->last_contact_age_ms = 20;
    }
}

static void fetch(uint16_t port, const char *path)
{
    enum { RUNS = 5 };
    double best = 0;
    size_t bytes = 0;
    int code = 0;
    for (int r = 0; r < RUNS; r++) {
        uint64_t t0 = metrics_now_ns();
        http_reply_t rep = http_request(port, "GET", path);
        double ms = (double)(metrics_now_ns() - t0) / 1e6;
        if (r == 0 || ms < best)
            best = ms;
        bytes = strlen(rep.body);
        code = rep.code;
        http_reply_free(&rep);
    }
    printf("GET %-32s %3d %10zu bytes %9.2f ms (best of %d)\n", path, code, bytes, best, RUNS);
}

static int groups_mode(size_t g, bool serve)
{
    rk_log_set_level(RK_LOG_WARN);
    metrics_node_t **hubs = calloc(g, sizeof *hubs);
    rk_node_status_t *st = malloc(sizeof *st);
    rk_peer_id_t self;
    rk_peer_id_parse(&self, "127.0.0.1:8081", NULL);
    long rss0 = rss_kib();
    for (size_t i = 0; i < g; i++) {
        char name[32];
        snprintf(name, sizeof name, "g%05zu", i);
        hubs[i] = metrics_node_new(name, &self);
        if (hubs[i] == NULL) {
            fprintf(stderr, "metrics_bench: out of memory at group %zu\n", i);
            return 1;
        }
        fake_status(st, i);
        metrics_publish_status(hubs[i], st);
        /* What an idle group that was elected and took a few writes has. */
        for (uint64_t k = 0; k < 20; k++) {
            metrics_record(hubs[i], METRIC_APPEND_LOGS, 40000 + k * 1000);
            metrics_record(hubs[i], METRIC_APPEND_LOGS_COUNT, 1);
            metrics_record(hubs[i], METRIC_APPEND_LOGS_BYTES, 100 + k);
            metrics_record(hubs[i], METRIC_FSM_APPLY_TASKS, 2000 + k * 10);
            metrics_record(hubs[i], METRIC_FSM_APPLY_TASKS_COUNT, 1);
            metrics_record(hubs[i], METRIC_FSM_COMMIT, 90000 + k * 500);
            metrics_record(hubs[i], METRIC_SAVE_RAFT_META, 30000);
        }
        metrics_add(hubs[i], METRIC_APPLY_TASKS, 20);
    }
    long rss1 = rss_kib();
    printf("%zu groups: metrics hubs take %.1f KiB each (RSS %+ld KiB)\n", g,
           (double)(rss1 - rss0) / (double)g, rss1 - rss0);

    /* The loop's side: one publication per group, as every tick does (the
     * same status again: no event to derive). */
    uint64_t t0 = metrics_now_ns();
    for (size_t i = 0; i < g; i++) {
        fake_status(st, i);
        metrics_publish_status(hubs[i], st);
    }
    uint64_t t1 = metrics_now_ns();
    for (size_t i = 0; i < g; i++)
        fake_status(st, i);
    uint64_t t2 = metrics_now_ns();
    printf("publish an unchanged status: %.0f ns per group (building it: %.0f ns more)\n",
           (double)((t1 - t0) - (t2 - t1)) / (double)g, (double)(t2 - t1) / (double)g);
    /* What an idle follower's loop does instead (node_obs_publish). */
    t0 = metrics_now_ns();
    for (size_t i = 0; i < g; i++)
        metrics_publish_touch(hubs[i]);
    printf("publish the time only (idle follower): %.0f ns per group\n",
           (double)(metrics_now_ns() - t0) / (double)g);

    rk_status_t err;
    admin_server_t *s = NULL;
    uint16_t port = http_free_port();
    for (size_t i = 0; i < g; i++) {
        if ((s = admin_attach("127.0.0.1", port, hubs[i], &err)) == NULL) {
            fprintf(stderr, "metrics_bench: admin_attach: %s\n", err.msg);
            return 1;
        }
    }
    if (serve) {
        printf("serving on port %u\n", port);
        fflush(stdout);
        char buf[256];
        while (fread(buf, 1, sizeof buf, stdin) > 0) {
        }
    } else {
        fetch(port, "/metrics");
        fetch(port, "/metrics?group=g00003");
        fetch(port, "/status");
        fetch(port, "/status?offset=5000&limit=1000");
        fetch(port, "/status?group=g00003");
        fetch(port, "/health");
        /* About 14 KB per group: past a few thousand groups more than the
         * HTTP client here waits for. */
        if (g <= 2000)
            fetch(port, "/metrics?groups=all");
        else
            printf("GET /metrics?groups=all: skipped above 2000 groups (see ?group= per group)\n");
    }
    for (size_t i = 0; i < g; i++) {
        admin_detach(s, hubs[i]);
        metrics_node_free(hubs[i]);
    }
    free(hubs);
    free(st);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 1)
        return micro();
    size_t g = 0;
    bool serve = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--groups") == 0 && i + 1 < argc)
            g = (size_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--serve") == 0)
            serve = true;
        else
            g = 0, i = argc;
    }
    if (g == 0 || g > 1000000) {
        fprintf(stderr, "usage: metrics_bench [--groups G [--serve]]  (G from 1 to 1000000)\n");
        return 2;
    }
    return groups_mode(g, serve);
}
