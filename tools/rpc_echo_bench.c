/* Loopback echo benchmark for the RPC layer: a server thread and a client
 * thread (each with its own loop), `depth` requests of `size` bytes kept in
 * flight on one connection for `secs` seconds; prints requests/s and MB/s.
 * With -a the payload travels as an attachment (echoed back without a
 * copy); -c adds an encode/decode comparison for an AppendEntries batch with
 * payloads inline in protobuf versus in the attachment.
 *
 *   rpc-echo-bench [-s size] [-p depth] [-t secs] [-a] [-c]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rpc/raft.pb-c.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_server.h"

#define M_ECHO (RPC_M_APP_FIRST + 1)

static size_t g_size = 1024;
static unsigned g_depth = 256;
static double g_secs = 5;
static int g_attach;

/* ---- server thread ---- */

typedef struct srv_thread {
    uv_loop_t loop;
    uv_async_t stop;
    rpc_server_t *srv;
    uint16_t port;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready;
} srv_thread_t;

static void echo(rpc_call_t *call, void *arg)
{
    size_t blen, alen;
    const uint8_t *b = rpc_call_body(call, &blen);
    const uint8_t *a = rpc_call_attachment(call, &alen);
    uv_buf_t ab = uv_buf_init((char *)a, (unsigned)alen);

    (void)arg;
    /* The request buffer lives until the call completes and the write has
     * taken its iovecs, so the attachment is echoed without a copy. */
    rpc_call_reply_raw(call, b, blen, &ab, alen ? 1 : 0, NULL, NULL);
}

static void on_stop(uv_async_t *a)
{
    srv_thread_t *t = a->data;
    rpc_server_close(t->srv, NULL, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

static void *server_main(void *arg)
{
    srv_thread_t *t = arg;
    rk_status_t err;

    uv_loop_init(&t->loop);
    t->srv = rpc_server_new(&t->loop, NULL);
    if (t->srv == NULL || rpc_server_listen(t->srv, "127.0.0.1", 0, &err) != 0 ||
        rpc_server_register(t->srv, M_ECHO, NULL, 0, echo, NULL) != 0) {
        fprintf(stderr, "server setup failed: %s\n", err.msg);
        exit(1);
    }
    uv_async_init(&t->loop, &t->stop, on_stop);
    t->stop.data = t;
    pthread_mutex_lock(&t->mu);
    t->port = rpc_server_port(t->srv);
    t->ready = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    uv_loop_close(&t->loop);
    return NULL;
}

/* ---- client ---- */

typedef struct bench {
    uv_loop_t loop;
    rpc_client_t *cli;
    rpc_channel_t *ch;
    uint8_t *payload;
    uint64_t done, errors, bytes;
    uint64_t t_end;
    unsigned outstanding;
    int stopping;
} bench_t;

static void issue(bench_t *b);

static void on_resp(void *arg, const rk_status_t *st, const rpc_resp_t *resp)
{
    bench_t *b = arg;

    b->outstanding--;
    if (st->code != 0) {
        b->errors++;
    } else {
        b->done++;
        b->bytes += resp->body_len + resp->attach_len;
    }
    if (uv_now(&b->loop) >= b->t_end)
        b->stopping = 1;
    if (!b->stopping)
        issue(b);
    else if (b->outstanding == 0)
        rpc_client_close(b->cli, NULL, NULL);
}

static void issue(bench_t *b)
{
    uv_buf_t att = uv_buf_init((char *)b->payload, (unsigned)g_size);
    rpc_req_t req = {.method = M_ECHO, .timeout_ms = 10000};

    if (g_attach) {
        req.attach = &att;
        req.n_attach = 1;
    } else {
        req.body = b->payload;
        req.body_len = g_size;
    }
    if (rpc_channel_call(b->ch, &req, on_resp, b) == 0)
        b->outstanding++;
    else
        b->errors++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- codec comparison ---- */

static void codec_compare(void)
{
    enum { N = 64, SZ = 4096, ITERS = 2000 };
    static uint8_t payload[N][SZ];
    Rk__Entry e[N], *ep[N];
    Rk__AppendEntriesRequest req = RK__APPEND_ENTRIES_REQUEST__INIT;

    req.group_id = "counter";
    req.server_id = "127.0.0.1:8081:0";
    req.peer_id = "127.0.0.1:8082:0";
    req.entries = ep;
    req.n_entries = N;
    for (int mode = 0; mode < 2; mode++) {
        double t0 = now_s();
        size_t total = 0;
        for (int i = 0; i < N; i++) {
            rk__entry__init(&e[i]);
            e[i].term = 3;
            e[i].type = RK__ENTRY_TYPE__ENTRY_DATA;
            if (mode == 0) {
                e[i].data.data = payload[i];
                e[i].data.len = SZ;
            } else {
                e[i].in_attachment = 1;
                e[i].data_len = SZ;
            }
            ep[i] = &e[i];
        }
        for (int it = 0; it < ITERS; it++) {
            size_t len = rk__append_entries_request__get_packed_size(&req);
            uint8_t *buf = malloc(len);
            rk__append_entries_request__pack(&req, buf);
            Rk__AppendEntriesRequest *back = rk__append_entries_request__unpack(NULL, len, buf);
            total += len;
            rk__append_entries_request__free_unpacked(back, NULL);
            free(buf);
        }
        double dt = now_s() - t0;
        printf("codec: AppendEntries %d x %d B payloads %-10s: %.1f us per encode+decode, "
               "protobuf body %zu B\n",
               N, SZ, mode == 0 ? "inline" : "attachment", dt / ITERS * 1e6, total / ITERS);
    }
}

int main(int argc, char **argv)
{
    int opt, codec = 0;
    srv_thread_t st = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pthread_t th;
    bench_t b = {0};
    char ep[32];
    rk_status_t err;

    while ((opt = getopt(argc, argv, "s:p:t:ac")) != -1) {
        switch (opt) {
        case 's':
            g_size = strtoul(optarg, NULL, 10);
            break;
        case 'p':
            g_depth = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't':
            g_secs = strtod(optarg, NULL);
            break;
        case 'a':
            g_attach = 1;
            break;
        case 'c':
            codec = 1;
            break;
        default:
            fprintf(stderr, "usage: %s [-s size] [-p depth] [-t secs] [-a] [-c]\n", argv[0]);
            return 2;
        }
    }
    if (codec)
        codec_compare();
    pthread_create(&th, NULL, server_main, &st);
    pthread_mutex_lock(&st.mu);
    while (!st.ready)
        pthread_cond_wait(&st.cv, &st.mu);
    pthread_mutex_unlock(&st.mu);

    uv_loop_init(&b.loop);
    b.payload = calloc(1, g_size ? g_size : 1);
    b.cli = rpc_client_new(&b.loop, NULL);
    snprintf(ep, sizeof ep, "127.0.0.1:%u", st.port);
    b.ch = rpc_client_channel(b.cli, ep, &err);
    b.t_end = uv_now(&b.loop) + (uint64_t)(g_secs * 1000);
    double t0 = now_s();
    for (unsigned i = 0; i < g_depth; i++)
        issue(&b);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    double dt = now_s() - t0;
    uv_loop_close(&b.loop);
    uv_async_send(&st.stop);
    pthread_join(th, NULL);
    printf(
        "echo: %zu B %s, pipeline %u, %.1f s: %.0f requests/s, %.1f MB/s each way, %llu errors\n",
        g_size, g_attach ? "attachment" : "body", g_depth, dt, b.done / dt, b.bytes / dt / 1e6,
        (unsigned long long)b.errors);
    free(b.payload);
    return b.errors != 0;
}
