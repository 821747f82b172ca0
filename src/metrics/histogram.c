/* Quantiles and summaries over the log-linear histogram of histogram.h. The
 * recording side is inline in the header; this file is the (rarer) reading
 * side. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/metrics/histogram.h"

void metrics_hist_init(metrics_hist_t *h)
{
    atomic_init(&h->count, 0);
    atomic_init(&h->sum, 0);
    atomic_init(&h->min, UINT64_MAX);
    atomic_init(&h->max, 0);
    atomic_init(&h->rows_used, 0);
    for (unsigned r = 0; r < METRICS_HIST_ROWS; r++)
        atomic_init(&h->rows[r], NULL);
}

void metrics_hist_destroy(metrics_hist_t *h)
{
    for (unsigned r = 0; r < METRICS_HIST_ROWS; r++)
        free((void *)atomic_load_explicit(&h->rows[r], memory_order_relaxed));
    metrics_hist_init(h);
}

_Atomic uint64_t *metrics_hist_row_alloc(metrics_hist_t *h, unsigned r)
{
    _Atomic uint64_t *row = calloc(METRICS_HIST_SUB, sizeof *row);
    if (row == NULL)
        return NULL;
    for (unsigned i = 0; i < METRICS_HIST_SUB; i++)
        atomic_init(&row[i], 0);
    /* Two threads may race to add the row: the loser frees its copy and
     * counts in the winner's. */
    _Atomic uint64_t *cur = NULL;
    if (atomic_compare_exchange_strong_explicit(&h->rows[r], &cur, row, memory_order_acq_rel,
                                                memory_order_acquire)) {
        atomic_fetch_or_explicit(&h->rows_used, UINT64_C(1) << r, memory_order_release);
        return row;
    }
    free((void *)row);
    return cur;
}

void metrics_hist_bucket_range(unsigned i, uint64_t *lo, uint64_t *width)
{
    if (i < 2 * METRICS_HIST_SUB) {
        *lo = i;
        *width = 1;
        return;
    }
    unsigned shift = i / METRICS_HIST_SUB - 1;
    uint64_t b = METRICS_HIST_SUB + i % METRICS_HIST_SUB;
    *lo = b << shift;
    *width = UINT64_C(1) << shift;
}

uint64_t metrics_hist_quantile(const uint64_t *buckets, uint64_t total, double q, uint64_t min,
                               uint64_t max)
{
    if (total == 0)
        return 0;
    /* The rank of the order statistic: the nearest-rank definition, so p100
     * is the largest value and p50 of {1,2} is 1. */
    double r = ceil(q * (double)total);
    uint64_t rank = r < 1 ? 1 : (r > (double)total ? total : (uint64_t)r);
    /* The extremes are known exactly. */
    if (rank == total)
        return max;
    if (rank == 1)
        return min;
    uint64_t cum = 0;
    unsigned i = 0;
    for (; i < METRICS_HIST_BUCKETS; i++) {
        cum += buckets[i];
        if (cum >= rank)
            break;
    }
    if (i == METRICS_HIST_BUCKETS)
        return max; /* buckets moved on since total was counted */
    uint64_t lo, width;
    metrics_hist_bucket_range(i, &lo, &width);
    uint64_t v = lo + width / 2;
    if (v < min)
        v = min;
    if (v > max)
        v = max;
    return v;
}

void metrics_hist_merged_init(metrics_hist_merged_t *m)
{
    memset(m, 0, sizeof *m);
    m->min = UINT64_MAX;
}

void metrics_hist_merge(metrics_hist_merged_t *m, metrics_hist_t *h)
{
    uint64_t total = 0;
    uint64_t used = atomic_load_explicit(&h->rows_used, memory_order_acquire);
    for (; used != 0; used &= used - 1) {
        unsigned r = (unsigned)__builtin_ctzll(used);
        _Atomic uint64_t *row = atomic_load_explicit(&h->rows[r], memory_order_acquire);
        for (unsigned i = 0; i < METRICS_HIST_SUB; i++) {
            uint64_t c = atomic_load_explicit(&row[i], memory_order_relaxed);
            m->buckets[r * METRICS_HIST_SUB + i] += c;
            total += c;
        }
    }
    if (total == 0)
        return;
    uint64_t min = atomic_load_explicit(&h->min, memory_order_relaxed);
    uint64_t max = atomic_load_explicit(&h->max, memory_order_relaxed);
    if (min > max) /* a record in flight updated its bucket before min/max */
        min = max;
    m->total += total;
    m->sum += atomic_load_explicit(&h->sum, memory_order_relaxed);
    if (min < m->min)
        m->min = min;
    if (max > m->max)
        m->max = max;
}

void metrics_hist_merged_summarize(const metrics_hist_merged_t *m, rk_histogram_summary_t *out)
{
    memset(out, 0, sizeof *out);
    if (m->total == 0)
        return;
    out->count = m->total;
    out->sum = m->sum;
    out->min = (int64_t)m->min;
    out->max = (int64_t)m->max;
    out->mean = (double)out->sum / (double)m->total;
    out->p50 = (int64_t)metrics_hist_quantile(m->buckets, m->total, 0.50, m->min, m->max);
    out->p95 = (int64_t)metrics_hist_quantile(m->buckets, m->total, 0.95, m->min, m->max);
    out->p99 = (int64_t)metrics_hist_quantile(m->buckets, m->total, 0.99, m->min, m->max);
    out->p999 = (int64_t)metrics_hist_quantile(m->buckets, m->total, 0.999, m->min, m->max);
}

void metrics_hist_summarize(metrics_hist_t *h, rk_histogram_summary_t *out)
{
    metrics_hist_merged_t m; /* 9 KiB: fine on any thread's stack */
    metrics_hist_merged_init(&m);
    metrics_hist_merge(&m, h);
    metrics_hist_merged_summarize(&m, out);
}
