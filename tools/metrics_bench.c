/* Micro-benchmark of metric recording: ns per histogram record, with one
 * thread and with two threads recording into the same histogram (the worst
 * case: every record contends for the same cache lines), plus the cost of a
 * summary (what a scrape pays per histogram) and of a timed record
 * (two clock reads). Prints figures; asserts nothing. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "src/metrics/metrics.h"

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

int main(void)
{
    metrics_hist_t *h = malloc(sizeof *h);
    metrics_hist_init(h);
    shared = h;
    printf("histogram: %u buckets, %zu bytes each\n", METRICS_HIST_BUCKETS, sizeof *h);
    printf("record, 1 thread:                %6.2f ns/record\n", run(1));
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
