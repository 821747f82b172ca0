/* The admin endpoint over real HTTP on loopback: /metrics parses as strict
 * Prometheus text, /status as JSON, /health follows the leader, and garbage
 * (raw bytes, huge headers, unknown paths, wrong methods) gets 4xx while the
 * endpoint keeps serving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
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
    };
    return cmocka_run_group_tests_name("admin_http", tests, NULL, NULL);
}
