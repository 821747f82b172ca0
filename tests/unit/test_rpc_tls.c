/* TLS and cluster keys on the RPC port, from the attacker's side: a live TLS
 * server meets plaintext clients, certificates from another CA, with the
 * wrong names, expired or not yet valid, no certificate at all, wrong
 * cluster keys, random bytes, a ClientHello followed by garbage and a
 * handshake that stalls. Each is refused before a single frame is parsed
 * (the server's frame counter stays put) with one log line naming the
 * cause, and the server goes on serving good clients. Then authorization:
 * the roles a certificate or key gives decide which methods it may call.
 *
 * Certificates come from tools/make-certs.sh --test, written under the
 * build directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "raftkit/log.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_server.h"
#include "rpc/rpc_tls.h"
#include "tests/unit/rpc_test_util.h"
#include "tests/unit/tls_test_util.h"

#define M_ECHO (RPC_M_APP_FIRST + 1)

/* ---- captured log lines ---- */

static char g_logs[64][300];
static unsigned g_nlogs;

static void keep_log(void *arg, rk_log_level_t level, const char *line)
{
    (void)arg;
    if (level >= RK_LOG_WARN && g_nlogs < 64)
        snprintf(g_logs[g_nlogs++], sizeof g_logs[0], "%s", line);
}

static unsigned logs_with(const char *s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < g_nlogs; i++)
        n += strstr(g_logs[i], s) != NULL;
    return n;
}

static int group_setup(void **state)
{
    (void)state;
    if (tls_dir_setup("test-tls", "--test") != 0)
        return -1;
    tls_write_file("keyA", "# key A\n"
                           "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    tls_write_file("keyB", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm\n");
    /* B first (used), A still accepted: the middle of a rotation */
    tls_write_file("keyBA", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm\n"
                            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    tls_write_file("keyAdmin",
                   "admin ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n");
    tls_write_file("keyServerWithAdmin",
                   "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
                   "admin ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n");
    tls_write_file("keyShort", "00112233445566778899aabbccddeeff\n");
    tls_write_file("keyBad", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
                             "this is not a key!\n");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return tls_dir_teardown();
}

/* ---- contexts ---- */

static rpc_tls_ctx_t *cert_ctx(bool server, const char *name, const char *ca, const char *admins)
{
    char crt[64], key[64];
    rpc_tls_ctx_t *ctx;
    rk_status_t err;

    snprintf(crt, sizeof crt, "%s.crt", name);
    snprintf(key, sizeof key, "%s.key", name);
    rpc_tls_config_t cfg = {.cert = tls_path(crt),
                            .key = tls_path(key),
                            .ca = tls_path(ca),
                            .peer_names = "peer.raftkit",
                            .admin_names = admins};
    if (rpc_tls_ctx_new(&cfg, server, &ctx, &err) != 0)
        fail_msg("context for %s: %s", name, err.msg);
    assert_non_null(ctx);
    return ctx;
}

static rpc_tls_ctx_t *key_ctx(bool server, const char *file)
{
    rpc_tls_ctx_t *ctx;
    rk_status_t err;
    rpc_tls_config_t cfg = {.cluster_key_file = tls_path(file)};

    if (rpc_tls_ctx_new(&cfg, server, &ctx, &err) != 0)
        fail_msg("context for %s: %s", file, err.msg);
    return ctx;
}

/* ---- the server ---- */

static void echo_handler(rpc_call_t *call, void *arg)
{
    size_t len;
    const uint8_t *b = rpc_call_body(call, &len);
    (void)arg;
    rpc_call_reply_raw(call, b, len, NULL, 0, NULL, NULL);
}

typedef struct fx {
    uv_loop_t loop;
    rpc_server_t *srv;
    uint16_t port;
} fx_t;

static void start_server(fx_t *f, rpc_tls_ctx_t *ctx)
{
    rpc_server_opts_t so = {.handshake_timeout_ms = 300, .tls = ctx};
    rk_status_t err;

    f->srv = rpc_server_new(&f->loop, &so);
    rpc_tls_ctx_unref(ctx); /* the server holds its own reference */
    assert_non_null(f->srv);
    assert_int_equal(rpc_server_listen(f->srv, "127.0.0.1", 0, &err), 0);
    f->port = rpc_server_port(f->srv);
    assert_int_equal(rpc_server_register(f->srv, M_ECHO, NULL, 0, echo_handler, NULL), 0);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    g_nlogs = 0;
    rk_log_set_sink(keep_log, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->srv != NULL)
        rpc_server_close(f->srv, NULL, NULL);
    bool drained = drain_loop(&f->loop);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_true(drained);
    rk_log_set_sink(NULL, NULL);
    free(f);
    return 0;
}

static rpc_server_stats_t stats(fx_t *f)
{
    rpc_server_stats_t st;
    rpc_server_stats(f->srv, &st);
    return st;
}

/* ---- a client call ---- */

typedef struct outcome {
    bool done;
    int code;
    char msg[RK_STATUS_MSG_MAX];
} outcome_t;

static void done_cb(void *arg, const rk_status_t *st, const rpc_resp_t *resp)
{
    outcome_t *o = arg;
    o->done = true;
    o->code = st->code;
    snprintf(o->msg, sizeof o->msg, "%s", st->msg);
    if (st->code == 0 && resp->method == M_ECHO)
        assert_memory_equal(resp->body, "hello", 5);
}

static void client_closed(void *arg)
{
    *(bool *)arg = true;
}

/* Calls method once with a client using ctx (NULL: plaintext; the
 * reference is consumed). Returns the outcome's code, message in o. */
static int call_with(fx_t *f, rpc_tls_ctx_t *ctx, uint32_t method, outcome_t *o)
{
    rpc_client_opts_t co = {.tls = ctx, .connect_timeout_ms = 3000, .backoff_min_ms = 1000};
    rpc_client_t *cli = rpc_client_new(&f->loop, &co);
    char ep[32];
    rk_status_t err;
    bool closed = false;

    rpc_tls_ctx_unref(ctx);
    assert_non_null(cli);
    memset(o, 0, sizeof *o);
    snprintf(ep, sizeof ep, "127.0.0.1:%u", f->port);
    rpc_channel_t *ch = rpc_client_channel(cli, ep, &err);
    bool app = rpc_method_is_app(method);
    rpc_req_t req = {.method = method,
                     .body = app ? "hello" : NULL,
                     .body_len = app ? 5 : 0,
                     .timeout_ms = 5000};
    assert_int_equal(rpc_channel_call(ch, &req, done_cb, o), 0);
    RUN_UNTIL(&f->loop, o->done, 10000);
    rpc_client_close(cli, client_closed, &closed);
    RUN_UNTIL(&f->loop, closed, 5000);
    return o->code;
}

static void good_client_is_served(fx_t *f)
{
    outcome_t o;
    assert_int_equal(call_with(f, cert_ctx(false, "node2", "ca.crt", NULL), M_ECHO, &o), 0);
}

/* Runs until the server has logged the refusal of one more connection. */
static void expect_refused(fx_t *f, uint64_t refused_before, const char *cause)
{
    RUN_UNTIL(&f->loop, stats(f).tls_refused > refused_before, 5000);
    assert_int_equal(stats(f).tls_refused, refused_before + 1);
    if (logs_with(cause) == 0) {
        for (unsigned i = 0; i < g_nlogs; i++)
            print_message("log: %s\n", g_logs[i]);
        fail_msg("no log line saying '%s'", cause);
    }
}

/* ---- certificates ---- */

static void mutual_tls_call_is_served(void **state)
{
    fx_t *f = *state;
    start_server(f, cert_ctx(true, "node1", "ca.crt", NULL));
    good_client_is_served(f);
    assert_true(stats(f).frames >= 2); /* handshake + the call */
    assert_int_equal(stats(f).tls_refused, 0);
}

static void plaintext_client_is_refused_before_any_frame_is_parsed(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, cert_ctx(true, "node1", "ca.crt", NULL));
    assert_int_not_equal(call_with(f, NULL, M_ECHO, &o), 0);
    expect_refused(f, 0, "plaintext raftkit client on a TLS port");
    assert_int_equal(stats(f).frames, 0);
    assert_int_equal(stats(f).requests, 0);
    good_client_is_served(f);
}

static void tls_client_on_a_plaintext_port_does_not_fall_back(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, NULL);
    assert_int_equal(call_with(f, cert_ctx(false, "node2", "ca.crt", NULL), M_ECHO, &o),
                     RK_EUNREACHABLE);
    assert_non_null(strstr(o.msg, "TLS handshake"));
    assert_int_equal(stats(f).requests, 0);
}

static void certificate_from_another_ca_is_refused(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, cert_ctx(true, "node1", "ca.crt", NULL));
    /* The stranger trusts our CA, but its own certificate is not ours. */
    assert_int_equal(call_with(f, cert_ctx(false, "stranger", "ca.crt", NULL), M_ECHO, &o),
                     RK_EUNREACHABLE);
    expect_refused(f, 0, "client's certificate is signed by an unknown CA");
    assert_int_equal(stats(f).frames, 0);
    good_client_is_served(f);
}

static void client_refuses_a_server_from_another_ca(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, cert_ctx(true, "stranger", "ca.crt", NULL));
    assert_int_equal(call_with(f, cert_ctx(false, "node2", "ca.crt", NULL), M_ECHO, &o),
                     RK_EUNREACHABLE);
    assert_non_null(strstr(o.msg, "server's certificate is signed by an unknown CA"));
    assert_int_equal(stats(f).requests, 0);
}

static void server_without_a_peer_name_is_refused_by_the_client(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, cert_ctx(true, "wrongname", "ca.crt", NULL));
    assert_int_equal(call_with(f, cert_ctx(false, "node2", "ca.crt", NULL), M_ECHO, &o),
                     RK_EUNREACHABLE);
    assert_non_null(strstr(o.msg, "carries none of the names in tls_peer_names"));
    assert_int_equal(stats(f).requests, 0);
}

static void expired_client_certificate_is_refused(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, cert_ctx(true, "node1", "ca.crt", NULL));
    assert_int_equal(call_with(f, cert_ctx(false, "expired", "ca.crt", NULL), M_ECHO, &o),
                     RK_EUNREACHABLE);
    expect_refused(f, 0, "client's certificate has expired");
    assert_int_equal(stats(f).frames, 0);
}

static void not_yet_valid_client_certificate_is_refused(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, cert_ctx(true, "node1", "ca.crt", NULL));
    assert_int_equal(call_with(f, cert_ctx(false, "notyet", "ca.crt", NULL), M_ECHO, &o),
                     RK_EUNREACHABLE);
    expect_refused(f, 0, "client's certificate is not yet valid");
    assert_int_equal(stats(f).frames, 0);
}

static void expired_server_certificate_is_refused_by_the_client(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, cert_ctx(true, "expired", "ca.crt", NULL));
    assert_int_equal(call_with(f, cert_ctx(false, "node2", "ca.crt", NULL), M_ECHO, &o),
                     RK_EUNREACHABLE);
    assert_non_null(strstr(o.msg, "server's certificate has expired"));
}

/* ---- raw attackers ---- */

typedef struct raw {
    uv_tcp_t tcp;
    uv_connect_t creq;
    SSL_CTX *sctx;
    SSL *ssl; /* NULL: send script as is */
    BIO *rb, *wb;
    const uint8_t *script;
    size_t script_len;
    bool eof, closed;
} raw_t;

static void raw_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    static char buf[65536];
    (void)h;
    (void)s;
    *b = uv_buf_init(buf, sizeof buf);
}

static void raw_wrote(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void raw_send(raw_t *r, const void *p, size_t n)
{
    uv_write_t *w = malloc(sizeof *w);
    w->data = malloc(n);
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    uv_write(w, (uv_stream_t *)&r->tcp, &b, 1, raw_wrote);
}

static void raw_pump(raw_t *r)
{
    char out[16384];
    int n;

    SSL_do_handshake(r->ssl);
    while ((n = BIO_read(r->wb, out, sizeof out)) > 0)
        raw_send(r, out, (size_t)n);
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    raw_t *r = s->data;
    if (n < 0) {
        r->eof = true;
        return;
    }
    if (r->ssl != NULL && n > 0) {
        BIO_write(r->rb, b->base, (int)n);
        raw_pump(r);
    }
}

static void raw_connected(uv_connect_t *c, int status)
{
    raw_t *r = c->data;
    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
    if (r->ssl != NULL)
        raw_pump(r);
    else if (r->script_len > 0)
        raw_send(r, r->script, r->script_len);
}

static void raw_closed(uv_handle_t *h)
{
    ((raw_t *)h->data)->closed = true;
}

static void raw_connect(fx_t *f, raw_t *r)
{
    struct sockaddr_in sa;
    uv_tcp_init(&f->loop, &r->tcp);
    r->tcp.data = r;
    r->creq.data = r;
    uv_ip4_addr("127.0.0.1", f->port, &sa);
    uv_tcp_connect(&r->creq, &r->tcp, (struct sockaddr *)&sa, raw_connected);
}

static void raw_finish(fx_t *f, raw_t *r)
{
    RUN_UNTIL(&f->loop, r->eof, 5000);
    uv_close((uv_handle_t *)&r->tcp, raw_closed);
    RUN_UNTIL(&f->loop, r->closed, 1000);
    SSL_free(r->ssl);
    SSL_CTX_free(r->sctx);
}

/* A real TLS 1.3 ClientHello, from a client engine that is then dropped. */
static size_t client_hello(uint8_t *out, size_t cap)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    SSL *s = SSL_new(c);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    SSL_set_bio(s, rb, wb);
    SSL_set_connect_state(s);
    SSL_do_handshake(s);
    int n = BIO_read(wb, out, (int)cap);
    SSL_free(s);
    SSL_CTX_free(c);
    assert_true(n > 0);
    return (size_t)n;
}

static void client_without_a_certificate_is_refused(void **state)
{
    fx_t *f = *state;
    raw_t r = {0};

    start_server(f, cert_ctx(true, "node1", "ca.crt", NULL));
    /* A TLS 1.3 client that trusts the CA but presents no certificate. */
    r.sctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(r.sctx, TLS1_3_VERSION);
    SSL_CTX_load_verify_locations(r.sctx, tls_path("ca.crt"), NULL);
    r.ssl = SSL_new(r.sctx);
    r.rb = BIO_new(BIO_s_mem());
    r.wb = BIO_new(BIO_s_mem());
    SSL_set_bio(r.ssl, r.rb, r.wb);
    SSL_set_connect_state(r.ssl);
    raw_connect(f, &r);
    raw_finish(f, &r);
    expect_refused(f, 0, "the client sent no certificate");
    assert_int_equal(stats(f).frames, 0);
    good_client_is_served(f);
}

static void expect_script_refused(fx_t *f, const uint8_t *script, size_t len, const char *cause)
{
    raw_t r = {.script = script, .script_len = len};
    uint64_t before = stats(f).tls_refused;

    raw_connect(f, &r);
    raw_finish(f, &r);
    expect_refused(f, before, cause);
    assert_int_equal(stats(f).frames, 0);
}

static void garbage_at_a_tls_port_is_refused(void **state)
{
    fx_t *f = *state;
    uint8_t b[2048];
    size_t n;

    start_server(f, cert_ctx(true, "node1", "ca.crt", NULL));
    /* random bytes */
    srand(17);
    for (size_t i = 0; i < 1000; i++)
        b[i] = (uint8_t)rand();
    b[0] = 0x42;
    expect_script_refused(f, b, 1000, "does not speak TLS");
    /* a handshake record header followed by random bytes */
    b[0] = 0x16;
    b[1] = 0x03;
    b[2] = 0x01;
    expect_script_refused(f, b, 1000, "TLS handshake refused");
    /* a real ClientHello followed by garbage */
    n = client_hello(b, sizeof b);
    assert_true(n + 300 <= sizeof b);
    for (size_t i = 0; i < 300; i++)
        b[n + i] = (uint8_t)rand();
    expect_script_refused(f, b, n + 300, "TLS handshake refused");
    /* an HTTP request */
    expect_script_refused(f, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18, "does not speak TLS");
    good_client_is_served(f);
}

static void stalled_handshake_is_closed_by_the_deadline(void **state)
{
    fx_t *f = *state;
    uint8_t b[2048];
    size_t n;

    start_server(f, cert_ctx(true, "node1", "ca.crt", NULL));
    /* Half a ClientHello, then silence. */
    n = client_hello(b, sizeof b);
    expect_script_refused(f, b, n / 2, "TLS handshake not completed within 300 ms");
    /* Nothing at all. */
    expect_script_refused(f, NULL, 0, "TLS handshake not completed within 300 ms");
    good_client_is_served(f);
}

/* ---- cluster keys ---- */

static void cluster_key_call_is_served(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, key_ctx(true, "keyA"));
    if (call_with(f, key_ctx(false, "keyA"), M_ECHO, &o) != 0) {
        for (unsigned i = 0; i < g_nlogs; i++)
            print_message("log: %s\n", g_logs[i]);
        fail_msg("call failed: %s", o.msg);
    }
    assert_int_equal(stats(f).tls_refused, 0);
}

static void wrong_cluster_key_is_refused_on_both_sides(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, key_ctx(true, "keyA"));
    assert_int_equal(call_with(f, key_ctx(false, "keyB"), M_ECHO, &o), RK_EUNREACHABLE);
    assert_non_null(strstr(o.msg, "wrong cluster key"));
    expect_refused(f, 0, "wrong cluster key");
    assert_int_equal(stats(f).frames, 0);
    /* A certificate is no key either. */
    assert_int_equal(call_with(f, cert_ctx(false, "node2", "ca.crt", NULL), M_ECHO, &o),
                     RK_EUNREACHABLE);
    assert_int_equal(stats(f).frames, 0);
    assert_int_equal(call_with(f, key_ctx(false, "keyA"), M_ECHO, &o), 0);
}

static void key_rotation_accepts_old_and_new_keys(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    /* A node in the middle of a rotation lists B (used) and A (accepted). */
    start_server(f, key_ctx(true, "keyBA"));
    assert_int_equal(call_with(f, key_ctx(false, "keyA"), M_ECHO, &o), 0);
    assert_int_equal(call_with(f, key_ctx(false, "keyB"), M_ECHO, &o), 0);
    assert_int_equal(call_with(f, key_ctx(false, "keyBA"), M_ECHO, &o), 0);
}

static void bad_key_files_are_refused_with_the_line(void **state)
{
    rpc_tls_ctx_t *ctx = (void *)1;
    rk_status_t err;
    rpc_tls_config_t cfg = {.cluster_key_file = tls_path("keyShort")};

    (void)state;
    assert_int_equal(rpc_tls_ctx_new(&cfg, true, &ctx, &err), RK_EINVAL);
    assert_null(ctx);
    assert_non_null(strstr(err.msg, "keyShort:1: key is 16 bytes, needs at least 32"));
    cfg.cluster_key_file = tls_path("keyBad");
    assert_int_equal(rpc_tls_ctx_new(&cfg, true, &ctx, &err), RK_EINVAL);
    assert_non_null(strstr(err.msg, "keyBad:2: not a hex or base64 key"));
    cfg.cluster_key_file = tls_path("no-such-file");
    assert_int_equal(rpc_tls_ctx_new(&cfg, true, &ctx, &err), RK_EINVAL);
    assert_non_null(strstr(err.msg, "no-such-file"));
    /* both modes at once */
    rpc_tls_config_t both = {.cluster_key_file = tls_path("keyA"),
                             .cert = tls_path("node1.crt"),
                             .key = tls_path("node1.key"),
                             .ca = tls_path("ca.crt")};
    assert_int_equal(rpc_tls_ctx_new(&both, true, &ctx, &err), RK_EINVAL);
    assert_non_null(strstr(err.msg, "choose one"));
    /* a key that does not match its certificate */
    rpc_tls_config_t mism = {
        .cert = tls_path("node1.crt"), .key = tls_path("node2.key"), .ca = tls_path("ca.crt")};
    assert_int_equal(rpc_tls_ctx_new(&mism, true, &ctx, &err), RK_EINVAL);
    assert_non_null(strstr(err.msg, "does not match"));
    /* a client must name the servers it accepts */
    rpc_tls_config_t nonames = {
        .cert = tls_path("node1.crt"), .key = tls_path("node1.key"), .ca = tls_path("ca.crt")};
    assert_int_equal(rpc_tls_ctx_new(&nonames, false, &ctx, &err), RK_EINVAL);
    assert_non_null(strstr(err.msg, "tls_peer_names"));
    /* base64 and hex give the same key id when they encode the same bytes */
    rpc_cluster_key_t k[2];
    assert_int_equal(rpc_tls_load_keys(tls_path("keyBA"), k, 2, &err), 2);
    assert_int_equal(k[0].len, 48);
    assert_int_equal(k[1].len, 32);
    assert_false(k[0].admin);
    assert_int_equal(rpc_tls_load_keys(tls_path("keyServerWithAdmin"), k, 2, &err), 2);
    assert_false(k[0].admin);
    assert_true(k[1].admin);
}

/* ---- authorization ---- */

/* The call passed the role check when the answer is anything but RK_EPERM
 * (here: no handler registered for the method). */
static void client_certificate_may_call_the_application_only(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, cert_ctx(true, "node1", "ca.crt", "admin.raftkit"));
    assert_int_equal(call_with(f, cert_ctx(false, "client", "ca.crt", NULL), M_ECHO, &o), 0);
    assert_int_equal(
        call_with(f, cert_ctx(false, "client", "ca.crt", NULL), RPC_M_CLI_GET_LEADER, &o),
        RK_ENOTFOUND);
    assert_int_equal(
        call_with(f, cert_ctx(false, "client", "ca.crt", NULL), RPC_M_CLI_RESET_PEER, &o),
        RK_EPERM);
    assert_non_null(strstr(o.msg, "needs the admin role"));
    assert_int_equal(
        call_with(f, cert_ctx(false, "client", "ca.crt", NULL), RPC_M_CLI_CHANGE_PEERS, &o),
        RK_EPERM);
    assert_int_equal(
        call_with(f, cert_ctx(false, "client", "ca.crt", NULL), RPC_M_REQUEST_VOTE, &o), RK_EPERM);
    assert_non_null(strstr(o.msg, "needs the peer role"));
    assert_int_equal(call_with(f, cert_ctx(false, "client", "ca.crt", NULL), RPC_M_GET_FILE, &o),
                     RK_EPERM);
    assert_int_equal(stats(f).denied, 4);
    assert_true(logs_with("refused") >= 1);
    assert_true(logs_with("CN=client.raftkit") >= 1);
}

static void peer_and_admin_certificates_get_their_roles(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, cert_ctx(true, "node1", "ca.crt", "admin.raftkit"));
    /* a node: Raft messages yes (unknown group here), membership no */
    assert_int_equal(call_with(f, cert_ctx(false, "node2", "ca.crt", NULL), RPC_M_REQUEST_VOTE, &o),
                     RK_ENOTFOUND);
    assert_int_equal(
        call_with(f, cert_ctx(false, "node2", "ca.crt", NULL), RPC_M_CLI_RESET_PEER, &o), RK_EPERM);
    /* the admin: membership yes (no handler here), Raft messages no */
    assert_int_equal(
        call_with(f, cert_ctx(false, "admin", "ca.crt", NULL), RPC_M_CLI_RESET_PEER, &o),
        RK_ENOTFOUND);
    assert_int_equal(call_with(f, cert_ctx(false, "admin", "ca.crt", NULL), RPC_M_REQUEST_VOTE, &o),
                     RK_EPERM);
}

static void admin_key_is_told_apart_from_the_cluster_key(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, key_ctx(true, "keyServerWithAdmin"));
    assert_int_equal(call_with(f, key_ctx(false, "keyA"), RPC_M_REQUEST_VOTE, &o), RK_ENOTFOUND);
    assert_int_equal(call_with(f, key_ctx(false, "keyA"), RPC_M_CLI_RESET_PEER, &o), RK_EPERM);
    assert_int_equal(call_with(f, key_ctx(false, "keyAdmin"), RPC_M_CLI_RESET_PEER, &o),
                     RK_ENOTFOUND);
    assert_int_equal(call_with(f, key_ctx(false, "keyAdmin"), RPC_M_REQUEST_VOTE, &o), RK_EPERM);
    assert_int_equal(call_with(f, key_ctx(false, "keyAdmin"), M_ECHO, &o), 0);
}

static void without_tls_every_method_is_allowed_as_before(void **state)
{
    fx_t *f = *state;
    outcome_t o;

    start_server(f, NULL);
    assert_int_equal(call_with(f, NULL, RPC_M_CLI_RESET_PEER, &o), RK_ENOTFOUND);
    assert_int_equal(call_with(f, NULL, RPC_M_REQUEST_VOTE, &o), RK_ENOTFOUND);
    assert_int_equal(stats(f).denied, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(mutual_tls_call_is_served),
        T(plaintext_client_is_refused_before_any_frame_is_parsed),
        T(tls_client_on_a_plaintext_port_does_not_fall_back),
        T(certificate_from_another_ca_is_refused),
        T(client_refuses_a_server_from_another_ca),
        T(server_without_a_peer_name_is_refused_by_the_client),
        T(expired_client_certificate_is_refused),
        T(not_yet_valid_client_certificate_is_refused),
        T(expired_server_certificate_is_refused_by_the_client),
        T(client_without_a_certificate_is_refused),
        T(garbage_at_a_tls_port_is_refused),
        T(stalled_handshake_is_closed_by_the_deadline),
        T(cluster_key_call_is_served),
        T(wrong_cluster_key_is_refused_on_both_sides),
        T(key_rotation_accepts_old_and_new_keys),
        cmocka_unit_test(bad_key_files_are_refused_with_the_line),
        T(client_certificate_may_call_the_application_only),
        T(peer_and_admin_certificates_get_their_roles),
        T(admin_key_is_told_apart_from_the_cluster_key),
        T(without_tls_every_method_is_allowed_as_before),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
