/* storage-bench: append throughput and batch latency of the LMDB log store
 * through the log writer thread, with sync on, and the raw fdatasync latency
 * of the same disk for comparison. Prints figures; asserts nothing.
 *
 *   storage-bench [-n entries] [-s entry_bytes] [-b batch] [-q in_flight]
 *                 [-d dir] [-S (sync off)] [-f fsync_samples]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage/log_writer.h"
#include "tools/common/storage_util.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

typedef struct bench {
    uv_loop_t loop;
    log_writer_t *w;
    log_store_t *log;
    const unsigned char *payload;
    size_t entry_bytes, batch, total, submitted, completed;
    uint64_t next;
    double *lat;
    size_t nlat;
    int failed;
} bench_t;

typedef struct req {
    log_write_req_t r;
    bench_t *b;
    double t0;
    log_entry_t *e;
} req_t;

static void submit(bench_t *b);

static void on_done(log_write_req_t *r, int status)
{
    req_t *q = (req_t *)r;
    bench_t *b = q->b;
    if (status != 0) {
        fprintf(stderr, "storage-bench: write failed: %s\n", rk_strerror(status));
        b->failed = 1;
    }
    b->lat[b->nlat++] = now_us() - q->t0;
    b->completed += q->r.op.n_entries;
    free(q->e);
    free(q);
    if (!b->failed && b->submitted < b->total)
        submit(b);
}

static void submit(bench_t *b)
{
    size_t n = b->total - b->submitted < b->batch ? b->total - b->submitted : b->batch;
    req_t *q = calloc(1, sizeof *q);
    q->b = b;
    q->e = calloc(n, sizeof *q->e);
    for (size_t i = 0; i < n; i++)
        q->e[i] = (log_entry_t){b->next + i, 1, LOG_ENTRY_DATA, b->payload, b->entry_bytes};
    b->next += n;
    b->submitted += n;
    q->r.op = (log_op_t){.store = b->log, .kind = LOG_OP_APPEND, .entries = q->e, .n_entries = n};
    q->t0 = now_us();
    if (log_writer_submit(b->w, &q->r, on_done) != 0) {
        fprintf(stderr, "storage-bench: submit refused\n");
        exit(1);
    }
}

static void raw_fdatasync(const char *dir, int samples)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/fsync-probe", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror("open");
        return;
    }
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    double *lat = calloc((size_t)samples, sizeof *lat);
    for (int i = 0; i < samples; i++) {
        double t0 = now_us();
        if (pwrite(fd, buf, sizeof buf, (off_t)i * (off_t)sizeof buf) != (ssize_t)sizeof buf ||
            fdatasync(fd) != 0) {
            perror("pwrite/fdatasync");
            break;
        }
        lat[i] = now_us() - t0;
    }
    close(fd);
    unlink(path);
    qsort(lat, (size_t)samples, sizeof *lat, cmp_double);
    double sum = 0;
    for (int i = 0; i < samples; i++)
        sum += lat[i];
    printf("raw 4 KiB pwrite+fdatasync: p50 %.0f us, p99 %.0f us, mean %.0f us (%d samples)\n",
           pct(lat, (size_t)samples, 0.50), pct(lat, (size_t)samples, 0.99), sum / samples,
           samples);
    free(lat);
}

int main(int argc, char **argv)
{
    size_t n = 20000, s = 256, batch = 1, depth = 1;
    int fsync_samples = 1000;
    bool sync = true;
    const char *dir_arg = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "n:s:b:q:d:Sf:")) != -1) {
        switch (opt) {
        case 'n':
            n = strtoul(optarg, NULL, 10);
            break;
        case 's':
            s = strtoul(optarg, NULL, 10);
            break;
        case 'b':
            batch = strtoul(optarg, NULL, 10);
            break;
        case 'q':
            depth = strtoul(optarg, NULL, 10);
            break;
        case 'd':
            dir_arg = optarg;
            break;
        case 'S':
            sync = false;
            break;
        case 'f':
            fsync_samples = atoi(optarg);
            break;
        default:
            fprintf(stderr,
                    "usage: %s [-n entries] [-s bytes] [-b batch] [-q in_flight] [-d dir] [-S] [-f "
                    "samples]\n",
                    argv[0]);
            return 2;
        }
    }
    if (batch == 0 || depth == 0 || n == 0)
        return 2;
    char *dir;
    if (dir_arg) {
        dir = malloc(4096);
        snprintf(dir, 4096, "%s/storage-bench-XXXXXX", dir_arg);
        if (mkdtemp(dir) == NULL) {
            perror("mkdtemp");
            return 1;
        }
    } else {
        dir = tu_mkdtemp("bench");
    }
    bench_t b = {.entry_bytes = s, .batch = batch, .total = n, .next = 1};
    unsigned char *payload = malloc(s ? s : 1);
    tu_payload_fill(1, 1, payload, s);
    b.payload = payload;
    b.lat = calloc(n / batch + 2, sizeof *b.lat);

    log_env_t *env;
    rk_status_t st;
    log_env_options_t eo;
    log_env_options_init(&eo);
    eo.sync = sync;
    if (log_env_open(dir, &eo, &env, &st) != 0 ||
        log_store_open(env, "bench", NULL, &b.log, &st) != 0) {
        fprintf(stderr, "storage-bench: %s\n", st.msg);
        return 1;
    }
    uv_loop_init(&b.loop);
    log_writer_start(env, &b.loop, NULL, &b.w, &st);
    printf(
        "storage-bench: %zu entries of %zu bytes, batches of %zu, %zu in flight, sync %s, dir %s\n",
        n, s, batch, depth, sync ? "on" : "off", dir);
    double t0 = now_us();
    for (size_t i = 0; i < depth && b.submitted < b.total; i++)
        submit(&b);
    while (b.completed < b.total && !b.failed)
        uv_run(&b.loop, UV_RUN_ONCE);
    double secs = (now_us() - t0) / 1e6;
    uint64_t txns, ops;
    log_writer_stats(b.w, &txns, &ops);
    log_writer_stop(b.w);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_loop_close(&b.loop);
    qsort(b.lat, b.nlat, sizeof *b.lat, cmp_double);
    printf("appends: %.0f entries/s, %.2f MB/s of payload, %.2f s total\n", (double)n / secs,
           (double)n * (double)s / secs / 1e6, secs);
    printf("batch latency (submit to durable completion): p50 %.0f us, p99 %.0f us; "
           "%llu transactions for %llu batches\n",
           pct(b.lat, b.nlat, 0.50), pct(b.lat, b.nlat, 0.99), (unsigned long long)txns,
           (unsigned long long)ops);
    log_store_close(b.log);
    log_env_close(env);
    if (fsync_samples > 0)
        raw_fdatasync(dir, fsync_samples);
    tu_rm_rf(dir);
    free(dir);
    free(payload);
    free(b.lat);
    return b.failed;
}
