/* Hostile input against a live server: raw sockets send garbage, huge
 * lengths, truncated frames, undecodable bodies, frames before the
 * handshake and unknown methods. Each bad connection is closed with exactly
 * one log line; an unknown method gets an error answer; and afterwards the
 * server still answers a good client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "raftkit/log.h"
#include "rpc/raft.pb-c.h"
#include "rpc/rpc.pb-c.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_handshake.h"
#include "rpc/rpc_server.h"
#include "tests/unit/rpc_test_util.h"

#define M_ECHO (RPC_M_APP_FIRST + 1)

static unsigned g_warn_closed, g_warn_other;

static void count_log(void *arg, rk_log_level_t level, const char *line)
{
    (void)arg;
    if (level < RK_LOG_WARN)
        return;
    if (strstr(line, "connection closed") != NULL)
        g_warn_closed++;
    else
        g_warn_other++;
}

/* ---- a raw client: write a script, collect what comes back until EOF ---- */

typedef struct raw {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    const uint8_t *script;
    size_t script_len;
    bool half_close; /* shut our write side after the script */
    bool eof, closed;
    uint8_t in[4096];
    size_t in_len;
} raw_t;

static void raw_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    raw_t *r = h->data;
    (void)s;
    *b = uv_buf_init((char *)r->in + r->in_len, (unsigned)(sizeof r->in - r->in_len));
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    raw_t *r = s->data;
    (void)b;
    if (n < 0)
        r->eof = true; /* EOF or reset: the server closed */
    else
        r->in_len += (size_t)n;
}

static void raw_wrote(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void raw_shut(uv_shutdown_t *s, int status)
{
    (void)s;
    (void)status;
}

static void raw_connected(uv_connect_t *c, int status)
{
    raw_t *r = c->data;
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t b = uv_buf_init((char *)r->script, (unsigned)r->script_len);

    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
    uv_write(w, (uv_stream_t *)&r->tcp, &b, 1, raw_wrote);
    if (r->half_close)
        uv_shutdown(&r->sreq, (uv_stream_t *)&r->tcp, raw_shut);
}

static void raw_closed(uv_handle_t *h)
{
    ((raw_t *)h->data)->closed = true;
}

/* Connects, sends the script, and runs until the server closes the
 * connection (returns true) or wait_ms pass (false). */
static bool raw_exchange(uv_loop_t *loop, uint16_t port, raw_t *r, const void *script, size_t len,
                         bool half_close, uint64_t wait_ms)
{
    struct sockaddr_in sa;

    memset(r, 0, sizeof *r);
    r->script = script;
    r->script_len = len;
    r->half_close = half_close;
    uv_tcp_init(loop, &r->tcp);
    r->tcp.data = r;
    r->creq.data = r;
    uv_ip4_addr("127.0.0.1", port, &sa);
    uv_tcp_connect(&r->creq, &r->tcp, (struct sockaddr *)&sa, raw_connected);
    return run_until(loop, &r->eof, wait_ms);
}

static void raw_close(uv_loop_t *loop, raw_t *r)
{
    uv_close((uv_handle_t *)&r->tcp, raw_closed);
    run_until(loop, &r->closed, 1000);
}

/* ---- frames ---- */

typedef struct script {
    uint8_t b[8192];
    size_t len;
} script_t;

static void add_frame(script_t *s, uint8_t flags, uint32_t method, uint64_t corr,
                      const ProtobufCMessage *m, const void *raw, size_t raw_len)
{
    rpc_frame_hdr_t h = {.flags = flags, .method = method, .corr_id = corr};
    size_t len;
    uint8_t *f = rpc_frame_pack(&h, m, raw, raw_len, &len);
    assert_true(s->len + len <= sizeof s->b);
    memcpy(s->b + s->len, f, len);
    s->len += len;
    free(f);
}

static void add_hello(script_t *s)
{
    Rk__Handshake hello;
    rpc_handshake_hello(&hello, "raw-test");
    add_frame(s, 0, RPC_M_HANDSHAKE, 1, &hello.base, NULL, 0);
}

static void add_header(script_t *s, uint8_t flags, uint32_t method, uint32_t body, uint32_t att)
{
    rpc_frame_hdr_t h = {RPC_WIRE_VERSION, flags, method, 5, body, att};
    rpc_frame_hdr_encode(&h, s->b + s->len);
    s->len += RPC_FRAME_HDR_LEN;
}

/* ---- the server ---- */

static void echo_handler(rpc_call_t *call, void *arg)
{
    size_t len;
    const uint8_t *b = rpc_call_body(call, &len);
    (void)arg;
    rpc_call_reply_raw(call, b, len, NULL, 0, NULL, NULL);
}

static unsigned g_handled;

static void count_handler(rpc_call_t *call, void *arg)
{
    (void)arg;
    g_handled++;
    rpc_call_done(call);
}

static void rv_handler(rpc_call_t *call, void *arg)
{
    (void)arg;
    rpc_call_done(call);
}

typedef struct fx {
    uv_loop_t loop;
    rpc_server_t *srv;
    uint16_t port;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    rpc_server_opts_t so = {.max_frame = 1u << 20, .handshake_timeout_ms = 200};
    rk_status_t err;

    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->srv = rpc_server_new(&f->loop, &so);
    assert_int_equal(rpc_server_listen(f->srv, "127.0.0.1", 0, &err), 0);
    f->port = rpc_server_port(f->srv);
    assert_int_equal(rpc_server_register(f->srv, M_ECHO, NULL, 0, echo_handler, NULL), 0);
    assert_int_equal(rpc_server_register(f->srv, RPC_M_REQUEST_VOTE, NULL, 0, rv_handler, NULL), 0);
    assert_int_equal(rpc_server_add_route(f->srv, "g", "127.0.0.1:1:0", NULL), 0);
    g_warn_closed = g_warn_other = 0;
    rk_log_set_sink(count_log, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    rpc_server_close(f->srv, NULL, NULL);
    bool drained = drain_loop(&f->loop);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_true(drained);
    rk_log_set_sink(NULL, NULL);
    free(f);
    return 0;
}

/* Sends the script on a fresh connection; asserts the server closed it and
 * wrote exactly one more "connection closed" line. */
static void expect_closed(fx_t *f, const script_t *s, bool half_close, const char *what)
{
    raw_t r;
    unsigned before = g_warn_closed;
    rpc_server_stats_t st0, st1;

    rpc_server_stats(f->srv, &st0);
    if (!raw_exchange(&f->loop, f->port, &r, s->b, s->len, half_close, 5000))
        fail_msg("server kept the connection open after %s", what);
    /* The close is logged from the server's close callback. */
    for (int i = 0; i < 100 && g_warn_closed == before; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    rpc_server_stats(f->srv, &st1);
    assert_int_equal(g_warn_closed, before + 1);
    assert_int_equal(st1.closed_bad_input, st0.closed_bad_input + 1);
    raw_close(&f->loop, &r);
}

/* The client side of a good call, to prove the server still serves. */
static void done_cb(void *arg, const rk_status_t *st, const rpc_resp_t *resp)
{
    int *code = arg;
    *code = st->code;
    if (st->code == 0)
        assert_memory_equal(resp->body, "still here", 10);
}

static void good_client_is_served(fx_t *f)
{
    rpc_client_t *cli = rpc_client_new(&f->loop, NULL);
    char ep[32];
    rk_status_t err;
    int code = 1;
    bool done = false;

    snprintf(ep, sizeof ep, "127.0.0.1:%u", f->port);
    rpc_channel_t *ch = rpc_client_channel(cli, ep, &err);
    rpc_req_t req = {.method = M_ECHO, .body = "still here", .body_len = 10, .timeout_ms = 5000};
    assert_int_equal(rpc_channel_call(ch, &req, done_cb, &code), 0);
    RUN_UNTIL(&f->loop, code != 1, 10000);
    assert_int_equal(code, 0);
    rpc_client_close(cli, NULL, NULL);
    (void)done;
}

static void garbage_before_the_handshake_closes_the_connection(void **state)
{
    fx_t *f = *state;
    script_t s = {.len = 0};

    memcpy(s.b, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    s.len = 27;
    expect_closed(f, &s, false, "an HTTP request");
    good_client_is_served(f);
}

static void a_request_before_the_handshake_closes_the_connection(void **state)
{
    fx_t *f = *state;
    script_t s = {.len = 0};

    add_frame(&s, 0, M_ECHO, 1, NULL, "hi", 2);
    expect_closed(f, &s, false, "a request without handshake");
}

static void a_huge_length_closes_the_connection_at_once(void **state)
{
    fx_t *f = *state;
    script_t s = {.len = 0};

    add_hello(&s);
    add_header(&s, 0, M_ECHO, 0x7fffffffu, 0);
    /* The server must not wait for (or allocate) 2 GiB: it closes on the
     * header alone. */
    expect_closed(f, &s, false, "a 2 GiB length");
    s.len = 0;
    add_hello(&s);
    add_header(&s, 0, M_ECHO, 1u << 19, 1u << 19); /* body + attachment over 1 MiB */
    expect_closed(f, &s, false, "body plus attachment over the limit");
    good_client_is_served(f);
}

static void a_truncated_frame_closes_the_connection(void **state)
{
    fx_t *f = *state;
    script_t s = {.len = 0};

    add_hello(&s);
    add_header(&s, 0, M_ECHO, 100, 0);
    memset(s.b + s.len, 'x', 40);
    s.len += 40;
    expect_closed(f, &s, true, "a truncated frame");
    good_client_is_served(f);
}

static void an_undecodable_body_closes_the_connection(void **state)
{
    fx_t *f = *state;
    script_t s = {.len = 0};
    uint8_t junk[16];

    memset(junk, 0xff, sizeof junk);
    add_hello(&s);
    add_frame(&s, RPC_F_ONEWAY, RPC_M_REQUEST_VOTE, 0, NULL, junk, sizeof junk);
    expect_closed(f, &s, false, "an undecodable RequestVote");
    s.len = 0;
    /* An undecodable handshake, too. */
    add_frame(&s, 0, RPC_M_HANDSHAKE, 1, NULL, junk, sizeof junk);
    expect_closed(f, &s, false, "an undecodable handshake");
    good_client_is_served(f);
}

/* A heartbeat batch (one frame carrying many groups' heartbeats) is decoded
 * whole: one malformed item makes the frame undecodable, and the
 * connection is closed before any item reaches the handler. */
static void a_heartbeat_batch_with_a_malformed_item_closes_the_connection(void **state)
{
    fx_t *f = *state;
    script_t s = {.len = 0};
    Rk__Heartbeat hb = RK__HEARTBEAT__INIT, *hbp = &hb;
    Rk__HeartbeatBatch b = RK__HEARTBEAT_BATCH__INIT;
    uint8_t body[256];

    assert_int_equal(
        rpc_server_register(f->srv, RPC_M_HEARTBEAT_BATCH, NULL, 0, count_handler, NULL), 0);
    hb.group_id = "g";
    hb.server_id = "127.0.0.1:2:0";
    hb.peer_id = "127.0.0.1:1:0";
    hb.term = 3;
    b.n_heartbeats = 1;
    b.heartbeats = &hbp;
    size_t len = rk__heartbeat_batch__pack(&b, body);
    /* a second item (field 1, length 4) that is an unterminated varint */
    const uint8_t bad_item[] = {0x0a, 4, 0xff, 0xff, 0xff, 0xff};
    memcpy(body + len, bad_item, sizeof bad_item);
    len += sizeof bad_item;
    add_hello(&s);
    add_frame(&s, RPC_F_ONEWAY, RPC_M_HEARTBEAT_BATCH, 0, NULL, body, len);
    g_handled = 0;
    expect_closed(f, &s, false, "a heartbeat batch with a malformed item");
    assert_int_equal(g_handled, 0);
    good_client_is_served(f);
}

static void bad_flags_versions_and_stray_responses_close_the_connection(void **state)
{
    fx_t *f = *state;
    script_t s = {.len = 0};

    add_hello(&s);
    add_frame(&s, RPC_F_RESPONSE, M_ECHO, 9, NULL, "r", 1);
    expect_closed(f, &s, false, "a response sent to the server");
    s.len = 0;
    add_hello(&s);
    add_header(&s, 0x40, M_ECHO, 0, 0);
    expect_closed(f, &s, false, "unknown flags");
    s.len = 0;
    add_hello(&s);
    add_frame(&s, 0, M_ECHO, 2, NULL, "ok", 2);
    s.b[s.len - 2 - RPC_FRAME_HDR_LEN + 2] = 7; /* version byte of the second frame */
    expect_closed(f, &s, false, "a wrong version mid-stream");
    good_client_is_served(f);
}

static void an_unknown_method_gets_an_error_answer_and_the_connection_stays(void **state)
{
    fx_t *f = *state;
    script_t s = {.len = 0};
    raw_t r;
    rpc_frame_hdr_t h;
    size_t off;
    long n;

    add_hello(&s);
    add_frame(&s, 0, RPC_M_APP_FIRST + 77, 42, NULL, "?", 1);
    add_frame(&s, RPC_F_ONEWAY, 9999, 0, NULL, "?", 1); /* dropped quietly */
    add_frame(&s, 0, M_ECHO, 43, NULL, "ok", 2);
    assert_false(raw_exchange(&f->loop, f->port, &r, s.b, s.len, false, 300));
    /* handshake response, error for 42, echo for 43 */
    n = rpc_frame_next(r.in, r.in_len, 1 << 20, &h, NULL);
    assert_true(n > 0);
    assert_int_equal(h.method, RPC_M_HANDSHAKE);
    off = (size_t)n;
    n = rpc_frame_next(r.in + off, r.in_len - off, 1 << 20, &h, NULL);
    assert_true(n > 0);
    assert_int_equal(h.corr_id, 42);
    assert_int_equal(h.flags, RPC_F_RESPONSE | RPC_F_ERROR);
    Rk__ErrorResponse *er =
        rk__error_response__unpack(NULL, h.body_len, r.in + off + RPC_FRAME_HDR_LEN);
    assert_non_null(er);
    assert_int_equal(er->code, RK_ENOTFOUND);
    rk__error_response__free_unpacked(er, NULL);
    off += (size_t)n;
    n = rpc_frame_next(r.in + off, r.in_len - off, 1 << 20, &h, NULL);
    assert_true(n > 0);
    assert_int_equal(h.corr_id, 43);
    assert_int_equal(h.flags, RPC_F_RESPONSE);
    assert_false(r.eof);
    raw_close(&f->loop, &r);
    assert_int_equal(g_warn_closed, 0);
}

static void a_connection_that_never_says_hello_is_closed_after_the_deadline(void **state)
{
    fx_t *f = *state;
    script_t s = {.len = 0};

    /* Connects and sends nothing at all (and one byte short of a header). */
    expect_closed(f, &s, false, "silence");
    add_hello(&s);
    s.len--;
    expect_closed(f, &s, false, "an incomplete handshake");
    good_client_is_served(f);
}

static void many_bad_connections_in_a_row_leave_the_server_serving(void **state)
{
    fx_t *f = *state;
    script_t s = {.len = 0};
    uint8_t rnd[512];
    uint32_t x = 12345;

    for (int i = 0; i < 20; i++) {
        s.len = 0;
        if (i % 2)
            add_hello(&s);
        for (size_t k = 0; k < sizeof rnd; k++) {
            x = x * 1103515245u + 12345u;
            rnd[k] = (uint8_t)(x >> 16);
        }
        memcpy(s.b + s.len, rnd, sizeof rnd);
        s.len += sizeof rnd;
        expect_closed(f, &s, false, "random bytes");
    }
    good_client_is_served(f);
    assert_int_equal(g_warn_other, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(garbage_before_the_handshake_closes_the_connection),
        T(a_request_before_the_handshake_closes_the_connection),
        T(a_huge_length_closes_the_connection_at_once),
        T(a_truncated_frame_closes_the_connection),
        T(an_undecodable_body_closes_the_connection),
        T(a_heartbeat_batch_with_a_malformed_item_closes_the_connection),
        T(bad_flags_versions_and_stray_responses_close_the_connection),
        T(an_unknown_method_gets_an_error_answer_and_the_connection_stays),
        T(a_connection_that_never_says_hello_is_closed_after_the_deadline),
        T(many_bad_connections_in_a_row_leave_the_server_serving),
    };
    return cmocka_run_group_tests_name("rpc_badinput", tests, NULL, NULL);
}
