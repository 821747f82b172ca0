/* The admin endpoint with security on: it speaks HTTPS with the node's
 * certificate (a client that trusts the CA and checks the name gets in, a
 * plain HTTP request gets no answer), /status and /metrics need the bearer
 * token (none or a wrong one: 401), /health stays open, and a group asking
 * for other settings on the same port is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raftkit/log.h"
#include "src/admin/admin.h"
#include "src/metrics/metrics.h"
#include "tests/support/http_client.h"
#include "tests/unit/tls_test_util.h"

static int group_setup(void **state)
{
    (void)state;
    return tls_dir_setup("test-admin-tls", "");
}

static int group_teardown(void **state)
{
    (void)state;
    return tls_dir_teardown();
}

/* GET path over HTTPS (verifying the server as "peer.raftkit" against the
 * test CA) with an optional Authorization header. Returns the status code,
 * 0 when no HTTP answer came, -1 when the TLS handshake failed. */
static int https_get(uint16_t port, const char *path_, const char *auth)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int fd = http_connect(port), code = 0;
    char req[512], buf[4096];
    size_t got = 0;

    assert_non_null(ctx);
    assert_true(fd >= 0);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, tls_path("ca.crt"), NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL *ssl = SSL_new(ctx);
    SSL_set1_host(ssl, "peer.raftkit");
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        code = -1;
        goto out;
    }
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: localhost\r\n%s%s%sConnection: close\r\n\r\n", path_,
             auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
    assert_int_equal(SSL_write(ssl, req, (int)strlen(req)), (int)strlen(req));
    for (int n;
         got < sizeof buf - 1 && (n = SSL_read(ssl, buf + got, (int)(sizeof buf - 1 - got))) > 0;)
        got += (size_t)n;
    buf[got] = '\0';
    if (sscanf(buf, "HTTP/1.1 %d", &code) != 1)
        code = 0;
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    close(fd);
    return code;
}

static void publish_leader(metrics_node_t *m)
{
    rk_node_status_t st;
    rk_node_status_init(&st);
    st.state = RK_STATE_LEADER;
    st.term = 3;
    assert_int_equal(rk_peer_id_parse(&st.leader, "127.0.0.1:8081", NULL), 0);
    rk_configuration_parse(&st.conf, "127.0.0.1:8081", NULL);
    metrics_publish_status(m, &st);
}

static void https_with_a_bearer_token_guards_status_and_metrics(void **state)
{
    (void)state;
    rk_peer_id_t self;
    rk_status_t err;
    assert_int_equal(rk_peer_id_parse(&self, "127.0.0.1:8081", NULL), 0);
    metrics_node_t *m = metrics_node_new("g", &self);
    publish_leader(m);
    admin_security_t sec = {tls_path("node1.crt"), tls_path("node1.key"), "s3cret-token"};
    /* a fixed port (free a moment ago): port 0 servers are never shared */
    admin_server_t *s = NULL;
    for (int i = 0; i < 5 && s == NULL; i++)
        s = admin_attach_secure("127.0.0.1", http_free_port(), m, &sec, &err);
    if (s == NULL)
        fail_msg("admin: %s", err.msg);
    uint16_t port = admin_server_port(s);

    assert_int_equal(https_get(port, "/health", NULL), 200);
    assert_int_equal(https_get(port, "/status", NULL), 401);
    assert_int_equal(https_get(port, "/metrics", NULL), 401);
    assert_int_equal(https_get(port, "/status", "Bearer wrong-token"), 401);
    assert_int_equal(https_get(port, "/status", "Bearer s3cret-tokenX"), 401);
    assert_int_equal(https_get(port, "/status", "Basic s3cret-token"), 401);
    assert_int_equal(https_get(port, "/status", "Bearer s3cret-token"), 200);
    assert_int_equal(https_get(port, "/metrics", "Bearer s3cret-token"), 200);
    /* The query forms are guarded alike, and a refused request learns
     * nothing: not whether a group exists, not whether its query is valid. */
    const char *const queries[] = {"/metrics?group=g",    "/metrics?groups=all",
                                   "/metrics?group=nope", "/metrics?groups=bad",
                                   "/status?group=g",     "/status?offset=0&limit=10",
                                   "/status?limit=0",     "/health?group=nope"};
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        bool open = strncmp(queries[i], "/health", 7) == 0;
        if (!open && https_get(port, queries[i], NULL) != 401)
            fail_msg("%s without a token: not refused", queries[i]);
        if (!open && https_get(port, queries[i], "Bearer wrong-token") != 401)
            fail_msg("%s with a wrong token: not refused", queries[i]);
    }
    assert_int_equal(https_get(port, "/metrics?group=g", "Bearer s3cret-token"), 200);
    assert_int_equal(https_get(port, "/metrics?group=nope", "Bearer s3cret-token"), 404);
    assert_int_equal(https_get(port, "/status?offset=0&limit=10", "Bearer s3cret-token"), 200);
    assert_int_equal(https_get(port, "/status?limit=0", "Bearer s3cret-token"), 400);
    assert_int_equal(https_get(port, "/health?group=nope", NULL), 404);
    /* Plain HTTP on the HTTPS port gets no HTTP answer. */
    char *body = NULL;
    assert_int_equal(http_get(port, "/health", &body), 0);
    free(body);
    /* The endpoint still serves. */
    assert_int_equal(https_get(port, "/health", NULL), 200);

    /* Another group on the same port with other settings is refused. */
    rk_peer_id_t p2;
    assert_int_equal(rk_peer_id_parse(&p2, "127.0.0.1:8082", NULL), 0);
    metrics_node_t *m2 = metrics_node_new("g2", &p2);
    assert_null(admin_attach("127.0.0.1", port, m2, &err));
    assert_int_equal(err.code, RK_EINVAL);
    admin_security_t other = {tls_path("node1.crt"), tls_path("node1.key"), "another"};
    assert_null(admin_attach_secure("127.0.0.1", port, m2, &other, &err));
    /* the same settings share it */
    admin_server_t *s2 = admin_attach_secure("127.0.0.1", port, m2, &sec, &err);
    assert_ptr_equal(s2, s);
    admin_detach(s2, m2);
    metrics_node_free(m2);

    admin_detach(s, m);
    metrics_node_free(m);
}

static void unreadable_certificate_is_refused(void **state)
{
    (void)state;
    rk_peer_id_t self;
    rk_status_t err;
    assert_int_equal(rk_peer_id_parse(&self, "127.0.0.1:8081", NULL), 0);
    metrics_node_t *m = metrics_node_new("g", &self);
    admin_security_t sec = {tls_path("no-such.crt"), tls_path("node1.key"), "t"};
    assert_null(admin_attach_secure("127.0.0.1", 0, m, &sec, &err));
    assert_int_equal(err.code, RK_EINVAL);
    assert_non_null(strstr(err.msg, "no-such.crt"));
    metrics_node_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(https_with_a_bearer_token_guards_status_and_metrics),
        cmocka_unit_test(unreadable_certificate_is_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
