/* The log-linear histogram: bucket geometry, and quantiles checked against a
 * sorted-array oracle within the documented 1/64 relative error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "src/metrics/histogram.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rnd(void)
{
    /* xorshift64*: deterministic, so a failure replays. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717u;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The nearest-rank order statistic: the ceil(q*n)-th smallest. */
static uint64_t oracle(const uint64_t *sorted, size_t n, double q)
{
    double r = ceil(q * (double)n);
    size_t rank = r < 1 ? 1 : (size_t)r;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

static void assert_close(uint64_t est, uint64_t exact)
{
    uint64_t diff = est > exact ? est - exact : exact - est;
    if (exact < 2 * METRICS_HIST_SUB)
        assert_int_equal(est, exact);
    else if (diff * 64 > exact)
        fail_msg("estimate %llu vs exact %llu: error above 1/64", (unsigned long long)est,
                 (unsigned long long)exact);
}

static void every_value_falls_in_the_range_of_its_bucket(void **state)
{
    (void)state;
    unsigned prev = 0;
    for (uint64_t v = 0; v < 100000; v++) {
        unsigned i = metrics_hist_index(v);
        uint64_t lo, w;
        metrics_hist_bucket_range(i, &lo, &w);
        assert_true(lo <= v && v < lo + w);
        assert_true(i == prev || i == prev + 1); /* buckets are contiguous */
        prev = i;
        if (v >= 2 * METRICS_HIST_SUB)
            assert_true(w * METRICS_HIST_SUB <= lo); /* width at most 1/32 of the bound */
    }
    for (int k = 0; k < 100000; k++) {
        uint64_t v = rnd() >> (rnd() % 64);
        unsigned i = metrics_hist_index(v);
        assert_true(i < METRICS_HIST_BUCKETS);
        if (v <= METRICS_HIST_CAP) {
            uint64_t lo, w;
            metrics_hist_bucket_range(i, &lo, &w);
            assert_true(lo <= v && v - lo < w);
        } else {
            assert_int_equal(i, METRICS_HIST_BUCKETS - 1);
        }
    }
    assert_int_equal(metrics_hist_index(METRICS_HIST_CAP), METRICS_HIST_BUCKETS - 1);
}

static void values_below_64_are_exact(void **state)
{
    (void)state;
    metrics_hist_t *h = malloc(sizeof *h);
    metrics_hist_init(h);
    for (uint64_t v = 1; v <= 50; v++)
        metrics_hist_record(h, v);
    rk_histogram_summary_t s;
    metrics_hist_summarize(h, &s);
    assert_int_equal(s.count, 50);
    assert_int_equal(s.sum, 50 * 51 / 2);
    assert_int_equal(s.min, 1);
    assert_int_equal(s.max, 50);
    assert_int_equal(s.p50, 25);
    assert_int_equal(s.p95, 48);
    assert_int_equal(s.p99, 50);
    assert_true(fabs(s.mean - 25.5) < 1e-9);
    metrics_hist_destroy(h);
    free(h);
}

static void an_empty_histogram_summarizes_to_zeros(void **state)
{
    (void)state;
    metrics_hist_t *h = malloc(sizeof *h);
    metrics_hist_init(h);
    rk_histogram_summary_t s;
    memset(&s, 0xff, sizeof s);
    metrics_hist_summarize(h, &s);
    assert_int_equal(s.count, 0);
    assert_int_equal(s.min, 0);
    assert_int_equal(s.max, 0);
    assert_int_equal(s.p99, 0);
    assert_true(s.mean == 0.0);
    metrics_hist_destroy(h);
    free(h);
}

typedef uint64_t (*gen_fn)(void);
static uint64_t gen_uniform_small(void)
{
    return rnd() % 1000;
}
static uint64_t gen_latency_ns(void) /* log-uniform over 1 us .. 100 ms */
{
    double e = 3.0 + 5.0 * (double)(rnd() >> 11) / 9007199254740992.0;
    return (uint64_t)pow(10.0, e);
}
static uint64_t gen_heavy_tail(void) /* mostly ~50 us, 1 % around 2 s */
{
    return rnd() % 100 == 0 ? 2000000000u + rnd() % 100000000u : 40000 + rnd() % 20000;
}
static uint64_t gen_constant(void)
{
    return 123456789;
}
static uint64_t gen_any(void)
{
    return rnd() >> (24 + rnd() % 40);
}

static void check_against_oracle(gen_fn gen, size_t n)
{
    uint64_t *vals = malloc(n * sizeof *vals);
    metrics_hist_t *h = malloc(sizeof *h);
    metrics_hist_init(h);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        vals[i] = gen();
        sum += vals[i];
        metrics_hist_record(h, vals[i]);
    }
    qsort(vals, n, sizeof *vals, cmp_u64);
    rk_histogram_summary_t s;
    metrics_hist_summarize(h, &s);
    assert_int_equal(s.count, n);
    assert_int_equal(s.sum, sum);
    assert_int_equal(s.min, vals[0]);
    assert_int_equal(s.max, vals[n - 1]);
    assert_close((uint64_t)s.p50, oracle(vals, n, 0.5));
    assert_close((uint64_t)s.p95, oracle(vals, n, 0.95));
    assert_close((uint64_t)s.p99, oracle(vals, n, 0.99));
    assert_close((uint64_t)s.p999, oracle(vals, n, 0.999));

    /* Any quantile, straight from the buckets. */
    metrics_hist_merged_t *copy = malloc(sizeof *copy);
    metrics_hist_merged_init(copy);
    metrics_hist_merge(copy, h);
    for (double q = 0.001; q <= 1.0; q += 0.0173)
        assert_close(metrics_hist_quantile(copy->buckets, n, q, vals[0], vals[n - 1]),
                     oracle(vals, n, q));
    assert_int_equal(metrics_hist_quantile(copy->buckets, n, 1.0, vals[0], vals[n - 1]),
                     vals[n - 1]);
    free(copy);
    metrics_hist_destroy(h);
    free(h);
    free(vals);
}

static void quantiles_match_a_sorted_array_within_one_64th(void **state)
{
    (void)state;
    gen_fn gens[] = {gen_uniform_small, gen_latency_ns, gen_heavy_tail, gen_constant, gen_any};
    size_t sizes[] = {1, 2, 3, 10, 999, 20000};
    for (size_t g = 0; g < sizeof gens / sizeof gens[0]; g++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
            check_against_oracle(gens[g], sizes[k]);
}

static void values_past_the_cap_keep_exact_min_max_and_count(void **state)
{
    (void)state;
    metrics_hist_t *h = malloc(sizeof *h);
    metrics_hist_init(h);
    metrics_hist_record(h, UINT64_C(1) << 50);
    metrics_hist_record(h, UINT64_C(1) << 45);
    metrics_hist_record(h, 7);
    rk_histogram_summary_t s;
    metrics_hist_summarize(h, &s);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.min, 7);
    assert_int_equal(s.max, (int64_t)(UINT64_C(1) << 50));
    assert_int_equal(s.p50, (int64_t)(UINT64_C(1) << 40) - (int64_t)(UINT64_C(1) << 33));
    assert_true(s.p99 <= s.max && s.p99 >= (int64_t)METRICS_HIST_CAP / 2);
    metrics_hist_destroy(h);
    free(h);
}

/* Rows are allocated as values reach them: a histogram of values that
 * cluster in one power of two holds one row, not all 36. */
static void only_the_rows_values_fall_in_are_allocated(void **state)
{
    (void)state;
    metrics_hist_t *h = malloc(sizeof *h);
    metrics_hist_init(h);
    for (uint64_t v = 40000; v < 60000; v += 7) /* all in [2^15, 2^16) */
        metrics_hist_record(h, v);
    unsigned rows = 0;
    for (unsigned r = 0; r < METRICS_HIST_ROWS; r++)
        rows += atomic_load(&h->rows[r]) != NULL;
    assert_int_equal(rows, 1);
    metrics_hist_record(h, 3);
    metrics_hist_record(h, UINT64_C(1) << 50);
    rows = 0;
    for (unsigned r = 0; r < METRICS_HIST_ROWS; r++)
        rows += atomic_load(&h->rows[r]) != NULL;
    assert_int_equal(rows, 3);
    metrics_hist_destroy(h);
    free(h);
}

/* Merged histograms summarise exactly like one histogram that recorded
 * every value: the process totals of the admin endpoint rely on it. */
static void merged_histograms_summarize_like_one(void **state)
{
    (void)state;
    metrics_hist_t *parts = malloc(3 * sizeof *parts), *all = malloc(sizeof *all);
    for (int i = 0; i < 3; i++)
        metrics_hist_init(&parts[i]);
    metrics_hist_init(all);
    for (int i = 0; i < 30000; i++) {
        uint64_t v = gen_latency_ns();
        metrics_hist_record(&parts[i % 3 == 0 ? 0 : (i % 7 == 0 ? 1 : 2)], v);
        metrics_hist_record(all, v);
    }
    metrics_hist_merged_t *m = malloc(sizeof *m);
    metrics_hist_merged_init(m);
    for (int i = 0; i < 3; i++)
        metrics_hist_merge(m, &parts[i]);
    rk_histogram_summary_t a, b;
    metrics_hist_merged_summarize(m, &a);
    metrics_hist_summarize(all, &b);
    assert_int_equal(a.count, 30000);
    assert_memory_equal(&a, &b, sizeof a);

    metrics_hist_merged_init(m); /* nothing merged: zeros */
    metrics_hist_merged_summarize(m, &a);
    assert_int_equal(a.count, 0);
    assert_int_equal(a.min, 0);
    for (int i = 0; i < 3; i++)
        metrics_hist_destroy(&parts[i]);
    metrics_hist_destroy(all);
    free(parts);
    free(all);
    free(m);
}

#define THREAD_RECORDS 200000
static void *record_many(void *arg)
{
    metrics_hist_t *h = arg;
    for (uint64_t i = 1; i <= THREAD_RECORDS; i++)
        metrics_hist_record(h, i);
    return NULL;
}

static void concurrent_recording_loses_nothing(void **state)
{
    (void)state;
    metrics_hist_t *h = malloc(sizeof *h);
    metrics_hist_init(h);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, record_many, h), 0);
    rk_histogram_summary_t s;
    metrics_hist_summarize(h, &s); /* while recording: must not crash or exceed */
    assert_true(s.count <= 2 * THREAD_RECORDS);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    metrics_hist_summarize(h, &s);
    assert_int_equal(s.count, 2 * THREAD_RECORDS);
    assert_int_equal(s.sum, (uint64_t)THREAD_RECORDS * (THREAD_RECORDS + 1));
    assert_int_equal(s.min, 1);
    assert_int_equal(s.max, THREAD_RECORDS);
    assert_close((uint64_t)s.p50, THREAD_RECORDS / 2);
    metrics_hist_destroy(h);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_value_falls_in_the_range_of_its_bucket),
        cmocka_unit_test(values_below_64_are_exact),
        cmocka_unit_test(an_empty_histogram_summarizes_to_zeros),
        cmocka_unit_test(quantiles_match_a_sorted_array_within_one_64th),
        cmocka_unit_test(values_past_the_cap_keep_exact_min_max_and_count),
        cmocka_unit_test(concurrent_recording_loses_nothing),
        cmocka_unit_test(only_the_rows_values_fall_in_are_allocated),
        cmocka_unit_test(merged_histograms_summarize_like_one),
    };
    return cmocka_run_group_tests_name("metrics_histogram", tests, NULL, NULL);
}
