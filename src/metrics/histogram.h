/* A fixed-memory, lock-free histogram of non-negative 64-bit values with
 * log-linear buckets (an HdrHistogram-lite), plus counters and gauges.
 *
 * Buckets: values 0..63 each have their own bucket; above that every power of
 * two [2^e, 2^(e+1)) is cut into 32 equal buckets, so a bucket's width is at
 * most 1/32 of its lower bound. A quantile is reported as the middle of its
 * bucket, which is within width/2 <= value/64 of the exact order statistic,
 * and is clamped to the exact min and max. Values >= 2^40 are counted in the
 * last bucket.
 *
 * 1152 buckets of 8 bytes would be 9 KiB per histogram, 200 KiB per node:
 * too much for a process hosting thousands of groups. The buckets are kept
 * in 36 rows of 32 (row r: buckets [32r, 32r + 32)), and a row is allocated
 * the first time a value falls in it. Real latencies and sizes cluster in a
 * few powers of two, so a histogram holds a few rows (about 1 KiB), and
 * summarising or merging it reads only those.
 *
 * Recording is a handful of relaxed atomic adds (no lock, any number of
 * threads), plus one allocation the first time a row is hit. A snapshot
 * taken while others record may see a record's bucket and not yet its sum
 * (or the reverse); quantiles and count are always taken from the same copy
 * of the buckets, so they agree with each other.
 */
#ifndef RAFTKIT_METRICS_HISTOGRAM_H
#define RAFTKIT_METRICS_HISTOGRAM_H

#include <stdatomic.h>
#include <stdint.h>

#include "raftkit/metrics.h"

#define METRICS_HIST_SUB_BITS 5
#define METRICS_HIST_SUB      (1u << METRICS_HIST_SUB_BITS) /* buckets per power of two */
#define METRICS_HIST_MAX_BITS 40                            /* values >= 2^40 clamp */
#define METRICS_HIST_BUCKETS \
    ((METRICS_HIST_MAX_BITS - METRICS_HIST_SUB_BITS + 1) * METRICS_HIST_SUB)
#define METRICS_HIST_CAP  ((UINT64_C(1) << METRICS_HIST_MAX_BITS) - 1)
#define METRICS_HIST_ROWS (METRICS_HIST_BUCKETS / METRICS_HIST_SUB)

typedef struct metrics_hist {
    _Atomic uint64_t count;
    _Atomic uint64_t sum;
    _Atomic uint64_t min; /* UINT64_MAX while empty */
    _Atomic uint64_t max;
    /* Bit r set once rows[r] exists: readers look only at those, without
     * touching the cache lines of the missing rows' pointers. */
    _Atomic uint64_t rows_used;
    /* METRICS_HIST_SUB buckets each; NULL until a value falls in the row */
    _Atomic(_Atomic uint64_t *) rows[METRICS_HIST_ROWS];
} metrics_hist_t;

/* Makes h empty, with no rows. Not safe against concurrent recording (use
 * at creation). */
void metrics_hist_init(metrics_hist_t *h);

/* Frees h's rows; h is empty afterwards. Nobody may record meanwhile. */
void metrics_hist_destroy(metrics_hist_t *h);

/* Row r of h, allocated if it is still missing (the record path's slow
 * side); NULL when out of memory. Any thread. */
_Atomic uint64_t *metrics_hist_row_alloc(metrics_hist_t *h, unsigned r);

/* The bucket v falls in. */
static inline unsigned metrics_hist_index(uint64_t v)
{
    if (v < 2 * METRICS_HIST_SUB)
        return (unsigned)v;
    if (v > METRICS_HIST_CAP)
        v = METRICS_HIST_CAP;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - METRICS_HIST_SUB_BITS;
    return (shift + 1) * METRICS_HIST_SUB + (unsigned)((v >> shift) - METRICS_HIST_SUB);
}

/* Bucket i holds the values [*lo, *lo + *width). */
void metrics_hist_bucket_range(unsigned i, uint64_t *lo, uint64_t *width);

/* Records one value. Lock-free once the value's row exists; any thread. A
 * value whose row cannot be allocated (out of memory) is not recorded. */
static inline void metrics_hist_record(metrics_hist_t *h, uint64_t v)
{
    unsigned i = metrics_hist_index(v);
    _Atomic uint64_t *row =
        atomic_load_explicit(&h->rows[i / METRICS_HIST_SUB], memory_order_acquire);
    if (row == NULL && (row = metrics_hist_row_alloc(h, i / METRICS_HIST_SUB)) == NULL)
        return;
    atomic_fetch_add_explicit(&row[i % METRICS_HIST_SUB], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
    /* min and max settle after the first few records: the compare usually
     * fails without a write, so the lines stay shared between threads. */
    uint64_t cur = atomic_load_explicit(&h->min, memory_order_relaxed);
    while (v < cur && !atomic_compare_exchange_weak_explicit(&h->min, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed)) {
    }
    cur = atomic_load_explicit(&h->max, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(&h->max, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed)) {
    }
}

/* Fills out with count, sum, min, max, mean and the p50/p95/p99/p999
 * quantiles of h. Any thread, concurrently with recording. */
void metrics_hist_summarize(metrics_hist_t *h, rk_histogram_summary_t *out);

/* A plain copy of the buckets of one or more histograms (same buckets, so
 * they add up): the quantiles of several groups' histograms together. */
typedef struct metrics_hist_merged {
    uint64_t total, sum;
    uint64_t min, max; /* UINT64_MAX and 0 while empty */
    uint64_t buckets[METRICS_HIST_BUCKETS];
} metrics_hist_merged_t;

void metrics_hist_merged_init(metrics_hist_merged_t *m);

/* Adds h's buckets, sum, min and max to m. Any thread, concurrently with
 * recording. */
void metrics_hist_merge(metrics_hist_merged_t *m, metrics_hist_t *h);

/* metrics_hist_summarize of what was merged into m. */
void metrics_hist_merged_summarize(const metrics_hist_merged_t *m, rk_histogram_summary_t *out);

/* The q-quantile (0 < q <= 1) of a copy of the buckets holding total
 * values: the middle of the bucket holding the ceil(q * total)-th smallest
 * value, clamped to [min, max]; the smallest and largest ranks give min and
 * max themselves. 0 when total is 0. */
uint64_t metrics_hist_quantile(const uint64_t *buckets, uint64_t total, double q, uint64_t min,
                               uint64_t max);

#endif /* RAFTKIT_METRICS_HISTOGRAM_H */
