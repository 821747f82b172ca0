/* The admin endpoint over real HTTP on loopback: /metrics parses as strict
 * Prometheus text, /status as JSON, /health follows the leader, and garbage
 * (raw bytes, huge headers, unknown paths, wrong methods) gets 4xx while the
 * endpoint keeps serving. With 50 groups: /metrics gives the process totals
 * and per-group series on request, /status a summary and stable pages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "raftkit/log.h"
#include "src/admin/admin.h"
#include "src/metrics/metrics.h"
#include "tests/support/http_client.h"
#include "tests/support/prom_check.h"

static int connect_to(uint16_t port)
{
    int fd = http_connect(port);
    assert_true(fd >= 0);
    return fd;
}

static rk_peer_id_t peer(const char *s)
{
    rk_peer_id_t p;
    assert_int_equal(rk_peer_id_parse(&p, s, NULL), 0);
    return p;
}

static void publish(metrics_node_t *m, rk_node_state_t state, const char *leader)
{
    rk_node_status_t st;
    rk_node_status_init(&st);
    st.state = state;
    st.term = 5;
    if (leader)
        st.leader = peer(leader);
    rk_configuration_parse(&st.conf, "127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083", NULL);
    st.last_log_index = st.committed_index = st.applied_index = 42;
    if (state == RK_STATE_LEADER) {
        st.n_peers = 2;
        for (int i = 0; i < 2; i++) {
            memset(&st.peers[i], 0, sizeof st.peers[i]);
            st.peers[i].peer = st.conf.peers[i + 1];
            st.peers[i].reachable = true;
            st.peers[i].next_index = 43;
            st.peers[i].match_index = 42;
            st.peers[i].last_contact_age_ms = 12;
        }
    }
    metrics_publish_status(m, &st);
}

typedef struct fixture {
    metrics_node_t *m;
    admin_server_t *s;
    uint16_t port;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    rk_peer_id_t self = peer("127.0.0.1:8081");
    f->m = metrics_node_new("counter", &self);
    rk_status_t err;
    f->s = admin_attach("127.0.0.1", 0, f->m, &err);
    if (f->s == NULL)
        fail_msg("admin_attach: %s", err.msg);
    f->port = admin_server_port(f->s);
    assert_true(f->port != 0);
    publish(f->m, RK_STATE_LEADER, "127.0.0.1:8081");
    for (int i = 0; i < 10; i++)
        metrics_record(f->m, METRIC_APPEND_LOGS, 50000);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    admin_detach(f->s, f->m);
    metrics_node_free(f->m);
    free(f);
    return 0;
}

static bool has_header(const http_reply_t *r, const char *h)
{
    return strcasestr(r->headers, h) != NULL;
}

static void metrics_are_prometheus_text(void **state)
{
    fixture_t *f = *state;
    http_reply_t r = http_request(f->port, "GET", "/metrics");
    assert_int_equal(r.code, 200);
    assert_true(has_header(&r, "Content-Type: text/plain; version=0.0.4"));
    char err[256] = "";
    if (prom_check(r.body, err, sizeof err) != 0)
        fail_msg("%s", err);
    double v;
    assert_int_equal(prom_sample(r.body,
                                 "raftkit_append_logs_seconds_count{group=\"counter\","
                                 "peer=\"127.0.0.1:8081\"}",
                                 &v),
                     0);
    assert_true(v == 10);
    assert_int_equal(prom_sample(r.body,
                                 "raftkit_replicator_next_index{group=\"counter\","
                                 "peer=\"127.0.0.1:8081\",follower=\"127.0.0.1:8083\"}",
                                 &v),
                     0);
    assert_true(v == 43);
    http_reply_free(&r);

    r = http_request(f->port, "HEAD", "/metrics");
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body, "");
    http_reply_free(&r);
}

static void status_is_json_of_the_published_status(void **state)
{
    fixture_t *f = *state;
    http_reply_t r = http_request(f->port, "GET", "/status");
    assert_int_equal(r.code, 200);
    assert_true(has_header(&r, "Content-Type: application/json"));
    rk_node_status_t st;
    rk_status_t err;
    if (rk_node_status_from_json(r.body, &st, &err) != 0)
        fail_msg("%s\n%s", err.msg, r.body);
    assert_string_equal(st.group, "counter");
    assert_int_equal(st.state, RK_STATE_LEADER);
    assert_int_equal(st.term, 5);
    assert_int_equal(st.committed_index, 42);
    assert_int_equal(st.conf.n_peers, 3);
    assert_int_equal(st.n_peers, 2);
    assert_int_equal(st.peers[1].last_contact_age_ms, 12);
    http_reply_free(&r);

    r = http_request(f->port, "GET", "/status?group=counter");
    assert_int_equal(r.code, 200);
    http_reply_free(&r);
    r = http_request(f->port, "GET", "/status?group=nope");
    assert_int_equal(r.code, 404);
    http_reply_free(&r);
}

static void health_needs_a_known_leader_and_no_error(void **state)
{
    fixture_t *f = *state;
    http_reply_t r = http_request(f->port, "GET", "/health");
    assert_int_equal(r.code, 200);
    assert_non_null(strstr(r.body, "\"ok\""));
    http_reply_free(&r);

    publish(f->m, RK_STATE_CANDIDATE, NULL);
    r = http_request(f->port, "GET", "/health");
    assert_int_equal(r.code, 503);
    assert_non_null(strstr(r.body, "no leader known"));
    http_reply_free(&r);

    publish(f->m, RK_STATE_FOLLOWER, "127.0.0.1:8082");
    r = http_request(f->port, "GET", "/health");
    assert_int_equal(r.code, 200);
    http_reply_free(&r);

    publish(f->m, RK_STATE_ERROR, "127.0.0.1:8082");
    r = http_request(f->port, "GET", "/health");
    assert_int_equal(r.code, 503);
    assert_non_null(strstr(r.body, "error"));
    http_reply_free(&r);
}

static void still_healthy(const fixture_t *f)
{
    http_reply_t r = http_request(f->port, "GET", "/health");
    assert_int_equal(r.code, 200);
    http_reply_free(&r);
}

static void unknown_paths_and_methods_get_404_and_405(void **state)
{
    fixture_t *f = *state;
    /* "/%00x" and "/metrics%00x" must not read as "/" and "/metrics". */
    const char *paths[] = {"/index.html", "/status.js/",    "/metricsx",
                           "/status/",    "/../etc/passwd", "/%00",
                           "/%00x",       "/metrics%00x",   "*"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        http_reply_t r = http_request(f->port, "GET", paths[i]);
        if (r.code != 404 && r.code != 400)
            fail_msg("GET %s: %d", paths[i], r.code);
        http_reply_free(&r);
    }
    const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        http_reply_t r = http_request(f->port, methods[i], "/metrics");
        if (r.code != 405)
            fail_msg("%s /metrics: %d", methods[i], r.code);
        assert_true(has_header(&r, "Allow: GET, HEAD"));
        http_reply_free(&r);
    }
    /* A POST with a body is refused without reading it. */
    const char post[] = "POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                        "Connection: close\r\n\r\nhello";
    http_reply_t r = http_exchange(f->port, post, sizeof post - 1);
    assert_int_equal(r.code, 405);
    http_reply_free(&r);
    still_healthy(f);
}

static void garbage_gets_400_and_the_endpoint_keeps_running(void **state)
{
    fixture_t *f = *state;
    unsigned char noise[4096];
    uint64_t x = 0x2545F4914F6CDD1Du;
    for (size_t i = 0; i < sizeof noise; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        noise[i] = (unsigned char)x;
    }
    noise[sizeof noise - 4] = '\r', noise[sizeof noise - 3] = '\n';
    noise[sizeof noise - 2] = '\r', noise[sizeof noise - 1] = '\n';
    const char *const texts[] = {
        "\x16\x03\x01\x02\x01\x01\x01\x01\xfc\x03\x03\r\n\r\n", /* TLS-like bytes */
        "GET\r\n\r\n",
        "GET /metrics\r\n\r\n",          /* HTTP/0.9 */
        "GET /metrics HTTP/9.9\r\n\r\n", /* unknown version */
        "GET /metrics HTTP/1.1\r\n\r\n", /* HTTP/1.1 without Host */
        "GET /metrics HTTP/1.1\r\nHost x\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        http_reply_t r = http_exchange(f->port, texts[i], strlen(texts[i]));
        /* 400 (or 505 for the version), or a plain close for what is not
         * HTTP at all: never a 200, never a crash. */
        if (!(r.code == 0 || (r.code >= 400 && r.code < 600)))
            fail_msg("request %zu answered %d", i, r.code);
        http_reply_free(&r);
        still_healthy(f);
    }
    /* A GET with a broken chunked body: the body is never read, so the
     * answer may be 200 as well as 400; what matters is what follows. */
    const char chunked[] =
        "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    http_reply_t r = http_exchange(f->port, chunked, sizeof chunked - 1);
    assert_true(r.code == 200 || r.code == 400 || r.code == 0);
    http_reply_free(&r);
    still_healthy(f);
    r = http_exchange(f->port, (const char *)noise, sizeof noise);
    assert_true(r.code == 0 || r.code == 400);
    http_reply_free(&r);

    /* Headers far past the connection's memory limit. */
    size_t big = 256 * 1024;
    char *huge = malloc(big + 128);
    int n = snprintf(huge, 128, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(huge + n, 'a', big);
    memcpy(huge + n + big, "\r\n\r\n", 5);
    r = http_exchange(f->port, huge, (size_t)n + big + 4);
    if (!(r.code == 0 || r.code == 400 || r.code == 413 || r.code == 414 || r.code == 431))
        fail_msg("huge header answered %d", r.code);
    http_reply_free(&r);
    /* And a huge URL. */
    memcpy(huge, "GET /", 5);
    memset(huge + 5, 'u', big);
    memcpy(huge + 5 + big, " HTTP/1.1\r\nHost: x\r\n\r\n", 23);
    r = http_exchange(f->port, huge, 5 + big + 23);
    if (!(r.code == 0 || r.code == 400 || r.code == 414 || r.code == 431))
        fail_msg("huge URL answered %d", r.code);
    http_reply_free(&r);
    free(huge);
    still_healthy(f);
}

static void a_silent_client_does_not_block_others(void **state)
{
    fixture_t *f = *state;
    int idle[8];
    for (int i = 0; i < 8; i++) {
        idle[i] = connect_to(f->port);
        send(idle[i], "GET /met", 8, MSG_NOSIGNAL); /* and never finish */
    }
    still_healthy(f);
    for (int i = 0; i < 8; i++)
        close(idle[i]);
}

/* The loop keeps publishing while clients scrape: no torn reads, no
 * deadlock, and the publisher is never blocked (trylock). */
static void *busy_loop(void *arg)
{
    fixture_t *f = arg;
    for (int i = 0; i < 20000; i++) {
        publish(f->m, i % 2 ? RK_STATE_LEADER : RK_STATE_FOLLOWER, "127.0.0.1:8081");
        metrics_record(f->m, METRIC_REPLICATE_ENTRIES, (uint64_t)i);
    }
    return NULL;
}

static void scrapes_run_while_the_loop_publishes(void **state)
{
    fixture_t *f = *state;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, busy_loop, f), 0);
    for (int i = 0; i < 20; i++) {
        http_reply_t r = http_request(f->port, "GET", i % 2 ? "/metrics" : "/status");
        assert_int_equal(r.code, 200);
        http_reply_free(&r);
    }
    pthread_join(t, NULL);
}

static void groups_on_one_port_share_a_server(void **state)
{
    (void)state;
    rk_peer_id_t self = peer("127.0.0.1:8081");
    metrics_node_t *a = metrics_node_new("alpha", &self);
    metrics_node_t *b = metrics_node_new("beta", &self);
    uint16_t port = http_free_port();
    assert_int_not_equal(port, 0);
    rk_status_t err;
    admin_server_t *sa = admin_attach("127.0.0.1", port, a, &err);
    assert_non_null(sa);
    admin_server_t *sb = admin_attach("127.0.0.1", port, b, &err);
    assert_ptr_equal(sa, sb);
    publish(a, RK_STATE_LEADER, "127.0.0.1:8081");
    publish(b, RK_STATE_FOLLOWER, NULL);

    http_reply_t r = http_request(port, "GET", "/metrics");
    assert_int_equal(r.code, 200);
    char perr[256] = "";
    if (prom_check(r.body, perr, sizeof perr) != 0)
        fail_msg("%s", perr);
    assert_non_null(strstr(r.body, "group=\"alpha\""));
    assert_non_null(strstr(r.body, "group=\"beta\""));
    http_reply_free(&r);
    r = http_request(port, "GET", "/status");
    assert_int_equal(r.code, 200);
    assert_non_null(strstr(r.body, "\"groups\""));
    http_reply_free(&r);
    r = http_request(port, "GET", "/health"); /* beta has no leader */
    assert_int_equal(r.code, 503);
    http_reply_free(&r);
    r = http_request(port, "GET", "/health?group=alpha");
    assert_int_equal(r.code, 200);
    http_reply_free(&r);

    admin_detach(sb, b);
    r = http_request(port, "GET", "/health");
    assert_int_equal(r.code, 200);
    http_reply_free(&r);
    admin_detach(sa, a);
    /* The last group gone, the port is closed. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    assert_int_not_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    close(fd);
    metrics_node_free(a);
    metrics_node_free(b);
}

/* ---- many groups on one endpoint ---- */

#define MANY 50

typedef struct many {
    metrics_node_t *m[MANY];
    admin_server_t *s;
    uint16_t port;
    metrics_hist_t all; /* every append-logs value of every group */
} many_t;

/* Group gNN: every fifth leads, the others follow gNN's leader; every tenth
 * is quiesced; group NN records NN + 1 log writes and NN tasks. Attached in
 * an order other than their ids', to show that pages follow the ids. */
static int many_setup(void **state)
{
    many_t *f = calloc(1, sizeof *f);
    rk_peer_id_t self = peer("127.0.0.1:8081");
    metrics_hist_init(&f->all);
    f->port = http_free_port();
    for (int k = 0; k < MANY; k++) {
        int i = (k * 7) % MANY; /* 7 and 50 are coprime: every i once */
        char name[16];
        snprintf(name, sizeof name, "g%02d", i);
        f->m[i] = metrics_node_new(name, &self);
        rk_status_t err;
        f->s = admin_attach("127.0.0.1", f->port, f->m[i], &err);
        if (f->s == NULL)
            fail_msg("admin_attach: %s", err.msg);
        rk_node_status_t st;
        rk_node_status_init(&st);
        st.state = i % 5 == 0 ? RK_STATE_LEADER : RK_STATE_FOLLOWER;
        st.term = 2;
        st.quiesced = i % 10 == 0;
        st.leader = peer(i % 5 == 0 ? "127.0.0.1:8081" : "127.0.0.1:8082");
        metrics_publish_status(f->m[i], &st);
        for (int v = 0; v <= i; v++) {
            uint64_t ns = 1000 * (uint64_t)(i * 37 + v * 11 + 1);
            metrics_record(f->m[i], METRIC_APPEND_LOGS, ns);
            metrics_hist_record(&f->all, ns);
        }
        metrics_add(f->m[i], METRIC_APPLY_TASKS, i);
    }
    *state = f;
    return 0;
}

static int many_teardown(void **state)
{
    many_t *f = *state;
    for (int i = 0; i < MANY; i++) {
        admin_detach(f->s, f->m[i]);
        metrics_node_free(f->m[i]);
    }
    metrics_hist_destroy(&f->all);
    free(f);
    return 0;
}

static double sample(const char *body, const char *name)
{
    double v;
    if (prom_sample(body, name, &v) != 0)
        fail_msg("no sample %s", name);
    return v;
}

static void many_groups_metrics_default_to_process_totals(void **state)
{
    many_t *f = *state;
    http_reply_t r = http_request(f->port, "GET", "/metrics");
    assert_int_equal(r.code, 200);
    char err[256] = "";
    if (prom_check(r.body, err, sizeof err) != 0)
        fail_msg("%s", err);
    /* No per-group series past 16 groups. */
    assert_null(strstr(r.body, "group=\""));
    assert_true(sample(r.body, "raftkit_process_groups") == MANY);
    assert_true(sample(r.body, "raftkit_process_groups_state{state=\"LEADER\"}") == 10);
    assert_true(sample(r.body, "raftkit_process_groups_state{state=\"FOLLOWER\"}") == 40);
    assert_true(sample(r.body, "raftkit_process_groups_state{state=\"ERROR\"}") == 0);
    assert_true(sample(r.body, "raftkit_process_groups_quiesced") == 5);
    assert_true(sample(r.body, "raftkit_process_groups_no_leader") == 0);
    /* Counters summed: 0 + 1 + ... + 49; histograms merged: counts add up
     * and the quantiles are those of every value together. */
    assert_true(sample(r.body, "raftkit_process_apply_tasks_total") == MANY * (MANY - 1) / 2);
    assert_true(sample(r.body, "raftkit_process_append_logs_seconds_count") ==
                MANY * (MANY + 1) / 2);
    rk_histogram_summary_t all;
    metrics_hist_summarize(&f->all, &all);
    double p99 = sample(r.body, "raftkit_process_append_logs_seconds{quantile=\"0.99\"}");
    assert_true(fabs(p99 - (double)all.p99 * 1e-9) < 1e-15 + 1e-8 * p99);
    assert_true(sample(r.body, "raftkit_process_append_logs_seconds_sum") > 0);
    http_reply_free(&r);
}

static void many_groups_metrics_per_group_on_request(void **state)
{
    many_t *f = *state;
    http_reply_t r = http_request(f->port, "GET", "/metrics?group=g07");
    assert_int_equal(r.code, 200);
    char err[256] = "";
    if (prom_check(r.body, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_true(sample(r.body, "raftkit_append_logs_seconds_count{group=\"g07\","
                               "peer=\"127.0.0.1:8081\"}") == 8);
    assert_null(strstr(r.body, "group=\"g08\""));
    assert_null(strstr(r.body, "raftkit_process_"));
    http_reply_free(&r);

    r = http_request(f->port, "GET", "/metrics?groups=all");
    assert_int_equal(r.code, 200);
    if (prom_check(r.body, err, sizeof err) != 0)
        fail_msg("%s", err);
    for (int i = 0; i < MANY; i++) {
        char name[128];
        snprintf(name, sizeof name,
                 "raftkit_apply_tasks_total{group=\"g%02d\",peer=\"127.0.0.1:8081\"}", i);
        assert_true(sample(r.body, name) == i);
    }
    assert_true(sample(r.body, "raftkit_process_groups") == MANY);
    http_reply_free(&r);

    r = http_request(f->port, "GET", "/metrics?group=nope");
    assert_int_equal(r.code, 404);
    assert_non_null(strstr(r.body, "unknown group"));
    http_reply_free(&r);
    const char *bad[] = {"/metrics?groups=some",
                         "/metrics?groups=", "/metrics?group=", "/metrics?group=g07&groups=all"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = http_request(f->port, "GET", bad[i]);
        if (r.code != 400 || strstr(r.body, "bad request: ") == NULL)
            fail_msg("GET %s: %d %s", bad[i], r.code, r.body);
        http_reply_free(&r);
    }
}

static json_t *get_json(uint16_t port, const char *path)
{
    http_reply_t r = http_request(port, "GET", path);
    if (r.code != 200)
        fail_msg("GET %s: %d %s", path, r.code, r.body);
    json_error_t jerr;
    json_t *o = json_loads(r.body, 0, &jerr);
    if (o == NULL)
        fail_msg("GET %s: %s", path, jerr.text);
    http_reply_free(&r);
    return o;
}

static json_int_t member(json_t *o, const char *path)
{
    json_t *v = json_object_get(o, path);
    if (!json_is_integer(v))
        fail_msg("no integer %s", path);
    return json_integer_value(v);
}

static void many_groups_status_summary_and_pages(void **state)
{
    many_t *f = *state;
    json_t *o = get_json(f->port, "/status");
    json_t *sum = json_object_get(o, "summary");
    assert_int_equal(member(sum, "groups"), MANY);
    assert_int_equal(member(sum, "leaders"), 10);
    assert_int_equal(member(sum, "followers"), 40);
    assert_int_equal(member(sum, "quiesced"), 5);
    assert_int_equal(member(sum, "no_leader"), 0);
    assert_int_equal(member(sum, "error"), 0);
    assert_int_equal(member(o, "total"), MANY);
    assert_int_equal(json_array_size(json_object_get(o, "groups")), MANY); /* default limit 100 */
    assert_true(json_is_null(json_object_get(o, "next_offset")));
    json_decref(o);

    /* Pages of 7: consecutive, disjoint, in id order, covering every group. */
    int seen = 0;
    for (json_int_t off = 0; seen < MANY + 1;) {
        char path[64];
        snprintf(path, sizeof path, "/status?offset=%lld&limit=7", (long long)off);
        o = get_json(f->port, path);
        json_t *groups = json_object_get(o, "groups");
        assert_int_equal(member(o, "offset"), off);
        assert_int_equal(member(o, "limit"), 7);
        assert_int_equal(member(json_object_get(o, "summary"), "groups"), MANY);
        assert_true(json_array_size(groups) == 7 ||
                    off + (json_int_t)json_array_size(groups) == MANY);
        size_t k;
        json_t *st;
        json_array_foreach(groups, k, st)
        {
            char want[16];
            snprintf(want, sizeof want, "g%02d", seen++);
            assert_string_equal(json_string_value(json_object_get(st, "group")), want);
        }
        json_t *next = json_object_get(o, "next_offset");
        if (json_is_null(next)) {
            json_decref(o);
            break;
        }
        assert_int_equal(json_integer_value(next), off + 7);
        off = json_integer_value(next);
        json_decref(o);
    }
    assert_int_equal(seen, MANY);

    o = get_json(f->port, "/status?offset=50"); /* past the end: an empty page */
    assert_int_equal(json_array_size(json_object_get(o, "groups")), 0);
    json_decref(o);
    o = get_json(f->port, "/status?group=g07");
    assert_string_equal(json_string_value(json_object_get(o, "group")), "g07");
    assert_string_equal(json_string_value(json_object_get(o, "state")), "FOLLOWER");
    json_decref(o);
    o = get_json(f->port, "/status?group=g10");
    assert_true(json_is_true(json_object_get(o, "quiesced")));
    json_decref(o);

    http_reply_t r = http_request(f->port, "GET", "/status?group=nope");
    assert_int_equal(r.code, 404);
    http_reply_free(&r);
    const char *bad[] = {
        "/status?offset=-1",         "/status?offset=abc", "/status?offset=1e3",
        "/status?offset=",           "/status?limit=0",    "/status?limit=1001",
        "/status?limit=10x",         "/status?limit=",     "/status?group=g07&limit=5",
        "/status?offset=99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = http_request(f->port, "GET", bad[i]);
        if (r.code != 400 || strstr(r.body, "bad request: ") == NULL)
            fail_msg("GET %s: %d %s", bad[i], r.code, r.body);
        http_reply_free(&r);
    }
}

static void a_bad_address_or_busy_port_is_an_error(void **state)
{
    (void)state;
    metrics_node_t *m = metrics_node_new("g", NULL);
    rk_status_t err;
    assert_null(admin_attach("not an address!", 0, m, &err));
    assert_int_equal(err.code, RK_EINVAL);
    assert_null(admin_attach("", 0, m, &err));
    assert_int_equal(err.code, RK_EINVAL);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    assert_null(admin_attach("127.0.0.1", ntohs(sa.sin_port), m, &err));
    assert_int_equal(err.code, RK_EIO);
    close(fd);
    metrics_node_free(m);
}

int main(void)
{
    rk_log_set_level(RK_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(metrics_are_prometheus_text, setup, teardown),
        cmocka_unit_test_setup_teardown(status_is_json_of_the_published_status, setup, teardown),
        cmocka_unit_test_setup_teardown(health_needs_a_known_leader_and_no_error, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_paths_and_methods_get_404_and_405, setup, teardown),
        cmocka_unit_test_setup_teardown(garbage_gets_400_and_the_endpoint_keeps_running, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_silent_client_does_not_block_others, setup, teardown),
        cmocka_unit_test_setup_teardown(scrapes_run_while_the_loop_publishes, setup, teardown),
        cmocka_unit_test(groups_on_one_port_share_a_server),
        cmocka_unit_test(a_bad_address_or_busy_port_is_an_error),
        cmocka_unit_test_setup_teardown(many_groups_metrics_default_to_process_totals, many_setup,
                                        many_teardown),
        cmocka_unit_test_setup_teardown(many_groups_metrics_per_group_on_request, many_setup,
                                        many_teardown),
        cmocka_unit_test_setup_teardown(many_groups_status_summary_and_pages, many_setup,
                                        many_teardown),
    };
    return cmocka_run_group_tests_name("admin_http", tests, NULL, NULL);
}
