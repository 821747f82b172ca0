/* The RPC transport over loopback TCP: every message type end to end,
 * one-way frames, pipelining with out-of-order answers, attachments without
 * copies, timeouts, routing errors, reconnect after a server restart (calls
 * in flight fail exactly once), unreachable peers reported once per change,
 * and the per-connection output bounds on both sides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "raftkit/log.h"
#include "rpc/cli.pb-c.h"
#include "rpc/raft.pb-c.h"
#include "rpc/rpc.pb-c.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_handshake.h"
#include "rpc/rpc_raft.h"
#include "rpc/rpc_server.h"
#include "tests/unit/rpc_test_util.h"

#define GROUP  "counter"
#define SELF   "127.0.0.1:8081:0"
#define M_ECHO (RPC_M_APP_FIRST + 1)
#define M_HOLD (RPC_M_APP_FIRST + 2)

/* ---- fixture: one loop, one server, one client ---- */

typedef struct fx {
    uv_loop_t loop;
    rpc_server_t *srv;
    rpc_client_t *cli;
    rpc_channel_t *ch;
    char ep[64];
    uint16_t port;
    /* handler side */
    rpc_call_t *held[512];
    unsigned n_held;
    unsigned n_handled;
    arena_t arena;
    /* reachability */
    unsigned n_unreach, n_reach;
    /* log lines */
    unsigned n_warn_unreach;
    unsigned n_drop_warn, n_drop_debug; /* "dropping one-way" lines */
} fx_t;

static fx_t *g_fx;

static void count_log(void *arg, rk_log_level_t level, const char *line)
{
    fx_t *f = arg;
    if (level >= RK_LOG_WARN && strstr(line, "peer unreachable") != NULL)
        f->n_warn_unreach++;
    if (strstr(line, "dropping one-way") != NULL) {
        if (level >= RK_LOG_WARN)
            f->n_drop_warn++;
        else
            f->n_drop_debug++;
    }
}

static void on_reach(void *arg, rpc_channel_t *ch, bool reachable, const rk_status_t *why)
{
    fx_t *f = arg;
    (void)ch;
    (void)why;
    if (reachable)
        f->n_reach++;
    else
        f->n_unreach++;
}

static void echo_handler(rpc_call_t *call, void *arg)
{
    size_t blen, alen;
    const uint8_t *body = rpc_call_body(call, &blen);
    const uint8_t *att = rpc_call_attachment(call, &alen);
    uv_buf_t b = uv_buf_init((char *)att, (unsigned)alen);

    (void)arg;
    g_fx->n_handled++;
    /* The attachment stays valid until the call completes, so it can be
     * echoed back without a copy. */
    rpc_call_reply_raw(call, body, blen, &b, alen ? 1 : 0, NULL, NULL);
}

static void hold_handler(rpc_call_t *call, void *arg)
{
    fx_t *f = arg;
    f->n_handled++;
    assert_true(f->n_held < 512);
    f->held[f->n_held++] = call;
}

static void start_server(fx_t *f, uint16_t port, const rpc_server_opts_t *so)
{
    rk_status_t err;
    f->srv = rpc_server_new(&f->loop, so);
    assert_non_null(f->srv);
    assert_int_equal(rpc_server_listen(f->srv, "127.0.0.1", port, &err), 0);
    f->port = rpc_server_port(f->srv);
    assert_true(f->port != 0);
    assert_int_equal(rpc_server_register(f->srv, M_ECHO, NULL, 0, echo_handler, f), 0);
    assert_int_equal(rpc_server_register(f->srv, M_HOLD, NULL, 0, hold_handler, f), 0);
    assert_int_equal(rpc_server_add_route(f->srv, GROUP, SELF, f), 0);
}

static void fx_setup_opts(fx_t *f, const rpc_server_opts_t *so, const rpc_client_opts_t *co_in)
{
    rpc_client_opts_t co = co_in ? *co_in : (rpc_client_opts_t){0};
    rk_status_t err;

    memset(f, 0, sizeof *f);
    g_fx = f;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    rk_log_set_sink(count_log, f);
    start_server(f, 0, so);
    co.on_reachability = on_reach;
    co.arg = f;
    co.name = "test-client";
    f->cli = rpc_client_new(&f->loop, &co);
    assert_non_null(f->cli);
    snprintf(f->ep, sizeof f->ep, "127.0.0.1:%u", f->port);
    f->ch = rpc_client_channel(f->cli, f->ep, &err);
    assert_non_null(f->ch);
}

static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    fx_setup_opts(f, NULL, NULL);
    *state = f;
    return 0;
}

static void release_held(fx_t *f)
{
    while (f->n_held > 0)
        rpc_call_done(f->held[--f->n_held]);
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;

    release_held(f);
    if (f->cli != NULL)
        rpc_client_close(f->cli, NULL, NULL);
    if (f->srv != NULL)
        rpc_server_close(f->srv, NULL, NULL);
    bool drained = drain_loop(&f->loop);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_true(drained);
    rk_log_set_sink(NULL, NULL);
    arena_free(&f->arena);
    free(f);
    return 0;
}

/* ---- a recorded call outcome ---- */

typedef struct outcome {
    int calls; /* how many times the callback ran */
    int code;
    char msg[RK_STATUS_MSG_MAX];
    uint8_t body[4096];
    size_t body_len;
    uint8_t att[8192];
    size_t att_len;
    ProtobufCMessage *msg_copy; /* repacked/unpacked copy of the decoded response */
    bool done;
    unsigned order; /* completion rank */
} outcome_t;

static unsigned g_rank;

static void record(void *arg, const rk_status_t *st, const rpc_resp_t *resp)
{
    outcome_t *o = arg;
    o->calls++;
    o->code = st->code;
    snprintf(o->msg, sizeof o->msg, "%s", st->msg);
    o->done = true;
    o->order = g_rank++;
    if (resp != NULL) {
        assert_true(resp->body_len <= sizeof o->body && resp->attach_len <= sizeof o->att);
        memcpy(o->body, resp->body, resp->body_len);
        o->body_len = resp->body_len;
        memcpy(o->att, resp->attach, resp->attach_len);
        o->att_len = resp->attach_len;
        if (resp->msg != NULL) {
            size_t len;
            uint8_t *b = pack_alloc(resp->msg, &len);
            o->msg_copy = protobuf_c_message_unpack(resp->msg->descriptor, NULL, len, b);
            free(b);
        }
    }
}

static void outcome_free(outcome_t *o)
{
    if (o->msg_copy != NULL)
        protobuf_c_message_free_unpacked(o->msg_copy, NULL);
    o->msg_copy = NULL;
}

static int call_raw(fx_t *f, uint32_t method, const char *body, uint32_t timeout_ms, outcome_t *o)
{
    rpc_req_t req = {0};
    req.method = method;
    req.body = body;
    req.body_len = strlen(body);
    req.timeout_ms = timeout_ms;
    return rpc_channel_call(f->ch, &req, record, o);
}

/* ---- built-in messages end to end ---- */

/* Replies to any request/response built-in with a filled response of the
 * registered type, seeded by the method id so the client can rebuild it. */
static void builtin_handler(rpc_call_t *call, void *arg)
{
    fx_t *f = arg;
    const rpc_method_info_t *mi = rpc_method_info(rpc_call_method(call));
    arena_t a = {.n = 0};

    f->n_handled++;
    /* The request arrived decoded and, if routed, routed to this (group, peer). */
    assert_non_null(rpc_call_request(call));
    assert_ptr_equal(rpc_call_route_ctx(call), (mi->flags & RPC_MF_ROUTED) ? f : NULL);
    if (rpc_call_is_oneway(call)) {
        /* Keep a copy to compare with what was sent. */
        size_t len;
        uint8_t *b = pack_alloc(rpc_call_request(call), &len);
        ProtobufCMessage *cp = protobuf_c_message_unpack(mi->req, NULL, len, b);
        free(b);
        assert_non_null(cp);
        f->held[f->n_held] = (rpc_call_t *)cp; /* reuse the array as storage */
        f->n_held++;
        rpc_call_done(call);
        return;
    }
    rpc_call_reply(call, fill_message(&a, mi->resp, mi->id + 1000, 0), NULL, 0, NULL, NULL);
    arena_free(&a);
}

/* Builds a request filled by seed, with routing fields pointing at SELF
 * (routed methods; the others carry no routing fields). */
static ProtobufCMessage *routed_request(fx_t *f, const rpc_method_info_t *mi, unsigned seed)
{
    ProtobufCMessage *m = fill_message(&f->arena, mi->req, seed, 0);
    if (!(mi->flags & RPC_MF_ROUTED))
        return m;
    const ProtobufCFieldDescriptor *g =
        protobuf_c_message_descriptor_get_field_by_name(mi->req, "group_id");
    const ProtobufCFieldDescriptor *p =
        protobuf_c_message_descriptor_get_field_by_name(mi->req, "peer_id");
    *(const char **)((char *)m + g->offset) = GROUP;
    *(const char **)((char *)m + p->offset) = SELF;
    return m;
}

static void every_request_method_round_trips_over_tcp(void **state)
{
    fx_t *f = *state;
    unsigned n, sent = 0;
    const rpc_method_info_t *all = rpc_method_all(&n);
    outcome_t *o = calloc(n, sizeof *o);

    for (unsigned i = 0; i < n; i++)
        if (all[i].id != RPC_M_HANDSHAKE)
            assert_int_equal(rpc_server_register(f->srv, all[i].id, NULL, 0, builtin_handler, f),
                             0);
    for (unsigned i = 0; i < n; i++) {
        if (all[i].resp == NULL || all[i].id == RPC_M_HANDSHAKE)
            continue;
        rpc_req_t req = {
            .method = all[i].id, .msg = routed_request(f, &all[i], i), .timeout_ms = 5000};
        assert_int_equal(rpc_channel_call(f->ch, &req, record, &o[i]), 0);
        sent++;
    }
    bool all_done = false;
    while (!all_done) {
        all_done = true;
        for (unsigned i = 0; i < n; i++)
            if (all[i].resp != NULL && all[i].id != RPC_M_HANDSHAKE && !o[i].done)
                all_done = false;
        if (!all_done)
            uv_run(&f->loop, UV_RUN_ONCE); /* each call has a 5 s timeout */
    }
    for (unsigned i = 0; i < n; i++) {
        if (all[i].resp == NULL || all[i].id == RPC_M_HANDSHAKE)
            continue;
        arena_t a = {.n = 0};
        assert_int_equal(o[i].code, 0);
        assert_int_equal(o[i].calls, 1);
        assert_non_null(o[i].msg_copy);
        assert_true(msg_equal(o[i].msg_copy, fill_message(&a, all[i].resp, all[i].id + 1000, 0)));
        arena_free(&a);
        outcome_free(&o[i]);
    }
    assert_true(sent >= 13);
    free(o);
}

static void every_raft_message_arrives_one_way_intact(void **state)
{
    fx_t *f = *state;
    unsigned n, sent = 0;
    const rpc_method_info_t *all = rpc_method_all(&n);
    ProtobufCMessage *sent_msgs[64];

    for (unsigned i = 0; i < n; i++)
        if (all[i].id != RPC_M_HANDSHAKE)
            assert_int_equal(rpc_server_register(f->srv, all[i].id, NULL, 0, builtin_handler, f),
                             0);
    for (unsigned i = 0; i < n; i++) {
        if (!(all[i].flags & RPC_MF_ONEWAY))
            continue;
        rpc_req_t req = {.method = all[i].id, .msg = routed_request(f, &all[i], i)};
        sent_msgs[sent++] = (ProtobufCMessage *)req.msg;
        assert_int_equal(rpc_channel_send(f->ch, &req), 0);
    }
    assert_int_equal(sent, 13);
    /* One-way frames keep no state on the client. */
    assert_int_equal(rpc_channel_inflight(f->ch), 0);
    RUN_UNTIL(&f->loop, f->n_held >= sent, 10000);
    /* One connection, in order: the i-th received is the i-th sent. */
    for (unsigned i = 0; i < sent; i++) {
        ProtobufCMessage *got = (ProtobufCMessage *)f->held[i];
        assert_true(msg_equal(got, sent_msgs[i]));
        protobuf_c_message_free_unpacked(got, NULL);
    }
    f->n_held = 0;
}

/* ---- pipelining ---- */

static void pipelined_requests_answered_out_of_order_reach_their_callers(void **state)
{
    fx_t *f = *state;
    enum { N = 256 };
    outcome_t *o = calloc(N, sizeof *o);
    char body[32];

    g_rank = 0;
    for (unsigned i = 0; i < N; i++) {
        snprintf(body, sizeof body, "req-%u", i);
        assert_int_equal(call_raw(f, M_HOLD, body, 10000, &o[i]), 0);
    }
    assert_int_equal(rpc_channel_inflight(f->ch), N);
    /* All N are at the server at once: they were pipelined, not serialized. */
    RUN_UNTIL(&f->loop, f->n_held >= N, 10000);
    /* Answer in reverse order, echoing each request's own body. */
    for (int i = N - 1; i >= 0; i--) {
        size_t len;
        const uint8_t *b = rpc_call_body(f->held[i], &len);
        rpc_call_reply_raw(f->held[i], b, len, NULL, 0, NULL, NULL);
    }
    f->n_held = 0;
    RUN_UNTIL(&f->loop, o[0].done, 10000);
    for (unsigned i = 0; i < N; i++) {
        snprintf(body, sizeof body, "req-%u", i);
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].code, 0);
        assert_int_equal(o[i].body_len, strlen(body));
        assert_memory_equal(o[i].body, body, strlen(body));
        assert_int_equal(o[i].order, N - 1 - i);
    }
    assert_int_equal(rpc_channel_inflight(f->ch), 0);
    free(o);
}

/* ---- attachments ---- */

static int g_released;
static void count_release(void *arg)
{
    (void)arg;
    g_released++;
}

static void attachments_travel_beside_the_body_and_are_released_once(void **state)
{
    fx_t *f = *state;
    static char a1[3000], a2[5000];
    uv_buf_t att[2] = {uv_buf_init(a1, sizeof a1), uv_buf_init(a2, sizeof a2)};
    outcome_t *o = calloc(1, sizeof *o);
    rpc_req_t req = {.method = M_ECHO,
                     .body = "hdr",
                     .body_len = 3,
                     .attach = att,
                     .n_attach = 2,
                     .release = count_release,
                     .timeout_ms = 5000};

    for (size_t i = 0; i < sizeof a1; i++)
        a1[i] = (char)i;
    for (size_t i = 0; i < sizeof a2; i++)
        a2[i] = (char)(i * 7);
    g_released = 0;
    assert_int_equal(rpc_channel_call(f->ch, &req, record, o), 0);
    assert_true(run_until(&f->loop, &o->done, 5000));
    assert_int_equal(o->code, 0);
    assert_int_equal(o->body_len, 3);
    assert_int_equal(o->att_len, sizeof a1 + sizeof a2);
    assert_memory_equal(o->att, a1, sizeof a1);
    assert_memory_equal(o->att + sizeof a1, a2, sizeof a2);
    assert_int_equal(g_released, 1);
    free(o);
}

/* Follower side of AppendEntries: resolves the payloads in place. */
typedef struct ae_seen {
    bool done;
    int rc;
    size_t n;
    char data[3][16];
    bool in_attachment_range[3];
} ae_seen_t;

static ae_seen_t g_ae;

static void ae_handler(rpc_call_t *call, void *arg)
{
    const Rk__AppendEntriesRequest *req = (const Rk__AppendEntriesRequest *)rpc_call_request(call);
    size_t alen;
    const uint8_t *att = rpc_call_attachment(call, &alen);
    rpc_entry_view_t v[8];

    (void)arg;
    g_ae.n = req->n_entries;
    g_ae.rc = rpc_entries_resolve(req, att, alen, v);
    for (size_t i = 0; i < req->n_entries && i < 3 && g_ae.rc == 0; i++) {
        snprintf(g_ae.data[i], sizeof g_ae.data[i], "%.*s", (int)v[i].len, (const char *)v[i].data);
        /* Zero copy on receive: the view points into the received frame. */
        g_ae.in_attachment_range[i] = v[i].data >= att && v[i].data + v[i].len <= att + alen;
    }
    g_ae.done = true;
    rpc_call_done(call);
}

static void append_entries_payloads_in_the_attachment_arrive_in_place(void **state)
{
    fx_t *f = *state;
    Rk__AppendEntriesRequest req = RK__APPEND_ENTRIES_REQUEST__INIT;
    Rk__Entry e[3] = {RK__ENTRY__INIT, RK__ENTRY__INIT, RK__ENTRY__INIT};
    Rk__Entry *ep[3] = {&e[0], &e[1], &e[2]};
    const void *payloads[3] = {"set x=1", "noop", "set y=22"};
    size_t lens[3] = {7, 4, 8};
    uv_buf_t bufs[3];

    memset(&g_ae, 0, sizeof g_ae);
    g_released = 0;
    assert_int_equal(rpc_server_register(f->srv, RPC_M_APPEND_ENTRIES, NULL, 0, ae_handler, f), 0);
    req.group_id = GROUP;
    req.server_id = "127.0.0.1:8082:0";
    req.peer_id = SELF;
    req.term = 5;
    req.entries = ep;
    req.n_entries = 3;
    rpc_entries_to_attachment(ep, 3, payloads, lens, bufs);
    rpc_req_t r = {.method = RPC_M_APPEND_ENTRIES,
                   .msg = &req.base,
                   .attach = bufs,
                   .n_attach = 3,
                   .release = count_release};
    assert_int_equal(rpc_channel_send(f->ch, &r), 0);
    assert_true(run_until(&f->loop, &g_ae.done, 5000));
    assert_int_equal(g_ae.rc, 0);
    assert_int_equal(g_ae.n, 3);
    assert_string_equal(g_ae.data[0], "set x=1");
    assert_string_equal(g_ae.data[1], "noop");
    assert_string_equal(g_ae.data[2], "set y=22");
    for (int i = 0; i < 3; i++)
        assert_true(g_ae.in_attachment_range[i]);
    run_for(&f->loop, 10);
    assert_int_equal(g_released, 1);
}

static void frames_over_the_limit_are_refused_before_sending(void **state)
{
    fx_t *f = *state;
    rpc_client_opts_t co = {.max_frame = 4096};
    rpc_client_t *cli = rpc_client_new(&f->loop, &co);
    rk_status_t err;
    rpc_channel_t *ch = rpc_client_channel(cli, f->ep, &err);
    static char big[4096];
    uv_buf_t att = uv_buf_init(big, sizeof big);
    rpc_req_t req = {.method = M_ECHO,
                     .body = "x",
                     .body_len = 1,
                     .attach = &att,
                     .n_attach = 1,
                     .release = count_release};
    outcome_t o = {0};

    g_released = 0;
    assert_int_equal(rpc_channel_call(ch, &req, record, &o), RK_ETOOBIG);
    assert_int_equal(rpc_channel_send(ch, &req), RK_ETOOBIG);
    assert_int_equal(o.calls, 0);
    assert_int_equal(g_released, 0); /* refused: the buffers stay the caller's */
    assert_int_equal(rpc_channel_call(ch, NULL, record, &o), RK_EINVAL);
    assert_null(rpc_client_channel(cli, "nohost", &err));
    assert_int_equal(err.code, RK_EINVAL);
    rpc_client_close(cli, NULL, NULL);
}

/* ---- timeouts ---- */

static void a_request_without_answer_times_out_once_and_a_late_answer_is_dropped(void **state)
{
    fx_t *f = *state;
    outcome_t o = {0}, ok = {0};

    assert_int_equal(call_raw(f, M_HOLD, "slow", 50, &o), 0);
    assert_true(run_until(&f->loop, &o.done, 5000));
    assert_int_equal(o.code, RK_ETIMEDOUT);
    assert_int_equal(f->n_held, 1);
    /* The server answers after all: nobody waits, the callback stays at one
     * run, and the connection keeps working. */
    rpc_call_reply_raw(f->held[0], "late", 4, NULL, 0, NULL, NULL);
    f->n_held = 0;
    assert_int_equal(call_raw(f, M_ECHO, "next", 5000, &ok), 0);
    assert_true(run_until(&f->loop, &ok.done, 5000));
    assert_int_equal(ok.code, 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(rpc_channel_inflight(f->ch), 0);
}

/* ---- routing and errors ---- */

static void noop_handler(rpc_call_t *call, void *arg)
{
    (void)arg;
    g_fx->n_handled++;
    rpc_call_done(call);
}

static void unknown_group_peer_and_method_get_error_responses(void **state)
{
    fx_t *f = *state;
    Rk__GetLeaderRequest gl = RK__GET_LEADER_REQUEST__INIT;
    Rk__Heartbeat hb = RK__HEARTBEAT__INIT;
    outcome_t o1 = {0}, o2 = {0}, o3 = {0}, o4 = {0}, o5 = {0};
    rpc_req_t req = {.method = RPC_M_CLI_GET_LEADER, .msg = &gl.base, .timeout_ms = 5000};

    assert_int_equal(rpc_server_register(f->srv, RPC_M_CLI_GET_LEADER, NULL, 0, noop_handler, f),
                     0);
    assert_int_equal(rpc_server_register(f->srv, RPC_M_HEARTBEAT, NULL, 0, noop_handler, f), 0);
    assert_int_equal(rpc_server_register(f->srv, RPC_M_CLI_GET_LEADER, NULL, 0, noop_handler, f),
                     RK_EEXIST);
    assert_int_equal(rpc_server_register(f->srv, RPC_M_CLI_ADD_PEER,
                                         &rk__add_peer_request__descriptor, 0, noop_handler, f),
                     RK_EINVAL);
    assert_int_equal(
        rpc_server_register(f->srv, RPC_M_APP_FIRST + 50, NULL, RPC_MF_ROUTED, noop_handler, f),
        RK_EINVAL);
    assert_int_equal(rpc_server_register(f->srv, 500, NULL, 0, noop_handler, f), RK_EINVAL);
    gl.group_id = "nosuchgroup";
    gl.peer_id = SELF;
    assert_int_equal(rpc_channel_call(f->ch, &req, record, &o1), 0);
    gl.group_id = GROUP;
    gl.peer_id = "127.0.0.1:9999:0";
    assert_int_equal(rpc_channel_call(f->ch, &req, record, &o2), 0);
    req.method = RPC_M_CLI_ADD_PEER; /* no handler registered */
    req.msg = NULL;
    assert_int_equal(rpc_channel_call(f->ch, &req, record, &o3), 0);
    /* One-way to an unknown group: dropped, no answer, the connection lives. */
    hb.group_id = "nosuchgroup";
    hb.peer_id = SELF;
    rpc_req_t ow = {.method = RPC_M_HEARTBEAT, .msg = &hb.base};
    for (int i = 0; i < 100; i++)
        assert_int_equal(rpc_channel_send(f->ch, &ow), 0);
    /* Empty peer_id goes to the group's first peer. */
    gl.peer_id = "";
    req.method = RPC_M_CLI_GET_LEADER;
    req.msg = &gl.base;
    assert_int_equal(rpc_channel_call(f->ch, &req, record, &o4), 0);
    assert_true(run_until(&f->loop, &o4.done, 5000));
    assert_int_equal(o1.code, RK_ENOGROUP);
    assert_non_null(strstr(o1.msg, "nosuchgroup"));
    assert_int_equal(o2.code, RK_EUNKNOWNPEER);
    assert_int_equal(o3.code, RK_ENOTFOUND);
    assert_int_equal(o4.code, 0);
    assert_int_equal(f->n_handled, 1);
    outcome_free(&o4);
    /* After removing the route the group is unknown. */
    assert_int_equal(rpc_server_remove_route(f->srv, GROUP, SELF), 0);
    assert_int_equal(rpc_server_remove_route(f->srv, GROUP, SELF), RK_ENOTFOUND);
    assert_int_equal(rpc_channel_call(f->ch, &req, record, &o5), 0);
    assert_true(run_until(&f->loop, &o5.done, 5000));
    assert_int_equal(o5.code, RK_ENOGROUP);
    rpc_server_stats_t st;
    rpc_server_stats(f->srv, &st);
    assert_int_equal(st.closed_bad_input, 0);
    assert_int_equal(st.rejected, 104);
}

static unsigned rejected(const fx_t *f)
{
    rpc_server_stats_t st;
    rpc_server_stats(f->srv, &st);
    return (unsigned)st.rejected;
}

/* Peers keep sending to a group for a while after it stops on this server
 * (answers in flight, heartbeats): dropped like any unknown group's, but
 * logged at debug; a group never seen here still gets the warning. */
static void stopped_group_traffic_is_dropped_without_a_warning(void **state)
{
    fx_t *f = *state;
    Rk__Heartbeat hb = RK__HEARTBEAT__INIT;
    rpc_req_t ow = {.method = RPC_M_HEARTBEAT, .msg = &hb.base};
    rk_log_level_t saved = rk_log_get_level();

    rk_log_set_level(RK_LOG_DEBUG);
    assert_int_equal(rpc_server_register(f->srv, RPC_M_HEARTBEAT, NULL, 0, noop_handler, f), 0);
    assert_int_equal(rpc_server_remove_route(f->srv, GROUP, SELF), 0);
    hb.group_id = GROUP;
    hb.peer_id = SELF;
    for (int i = 0; i < 10; i++)
        assert_int_equal(rpc_channel_send(f->ch, &ow), 0);
    RUN_UNTIL(&f->loop, rejected(f) == 10, 5000);
    assert_int_equal(f->n_drop_warn, 0);
    assert_int_equal(f->n_drop_debug, 10);
    hb.group_id = "nosuchgroup";
    assert_int_equal(rpc_channel_send(f->ch, &ow), 0);
    RUN_UNTIL(&f->loop, rejected(f) == 11, 5000);
    assert_int_equal(f->n_drop_warn, 1);
    /* the group comes back: served again */
    assert_int_equal(rpc_server_add_route(f->srv, GROUP, SELF, f), 0);
    hb.group_id = GROUP;
    assert_int_equal(rpc_channel_send(f->ch, &ow), 0);
    RUN_UNTIL(&f->loop, f->n_handled == 1, 5000);
    assert_int_equal(rejected(f), 11);
    rk_log_set_level(saved);
}

static void handler_failure_reaches_the_caller_with_code_and_message(void **state)
{
    fx_t *f = *state;
    outcome_t o = {0};

    assert_int_equal(call_raw(f, M_HOLD, "x", 5000, &o), 0);
    RUN_UNTIL(&f->loop, f->n_held > 0, 10000);
    rpc_call_fail(f->held[0], RK_ENOTLEADER, "leader is %s", "127.0.0.1:8082");
    f->n_held = 0;
    assert_true(run_until(&f->loop, &o.done, 5000));
    assert_int_equal(o.code, RK_ENOTLEADER);
    assert_string_equal(o.msg, "leader is 127.0.0.1:8082");
}

/* ---- restart ---- */

static void server_closed(void *arg)
{
    *(bool *)arg = true;
}

static void server_restart_fails_in_flight_calls_once_then_reconnects(void **state)
{
    fx_t *f = *state;
    outcome_t o[8] = {{0}}, after = {0};
    bool closed = false;
    uint16_t port = f->port;

    for (int i = 0; i < 8; i++)
        assert_int_equal(call_raw(f, M_HOLD, "inflight", 10000, &o[i]), 0);
    RUN_UNTIL(&f->loop, f->n_held >= 8, 10000);
    assert_int_equal(f->n_reach, 1);
    /* The server goes away with all eight calls unanswered. */
    rpc_server_close(f->srv, server_closed, &closed);
    f->srv = NULL;
    assert_true(run_until(&f->loop, &o[7].done, 5000));
    for (int i = 0; i < 8; i++) {
        assert_true(run_until(&f->loop, &o[i].done, 5000));
        assert_int_equal(o[i].code, RK_EUNREACHABLE);
        assert_non_null(strstr(o[i].msg, "in flight"));
    }
    assert_int_equal(f->n_unreach, 1);
    /* The server finishes closing once its handlers completed the calls. */
    release_held(f);
    assert_true(run_until(&f->loop, &closed, 5000));
    /* Same port, new server: the channel reconnects by itself. */
    start_server(f, port, NULL);
    assert_int_equal(f->port, port);
    RUN_UNTIL(&f->loop, f->n_reach >= 2, 10000);
    assert_int_equal(call_raw(f, M_ECHO, "again", 5000, &after), 0);
    assert_true(run_until(&f->loop, &after.done, 5000));
    assert_int_equal(after.code, 0);
    /* Still exactly once each, after everything. */
    for (int i = 0; i < 8; i++)
        assert_int_equal(o[i].calls, 1);
    assert_int_equal(f->n_unreach, 1);
    assert_int_equal(f->n_warn_unreach, 1);
}

/* ---- unreachable peers ---- */

static void unreachable_peer_is_reported_once_and_refused_fast_while_backing_off(void **state)
{
    fx_t *f = *state;
    rpc_client_opts_t co = {.backoff_min_ms = 5, .backoff_max_ms = 20, .connect_timeout_ms = 1000};
    rpc_client_t *cli;
    rpc_channel_t *ch;
    rk_status_t err;
    outcome_t o = {0};
    char ep[64];
    uint16_t dead_port;

    /* A port that was just free: bind a server, take its port, close it. */
    {
        bool closed = false;
        rpc_server_t *tmp = rpc_server_new(&f->loop, NULL);
        assert_int_equal(rpc_server_listen(tmp, "127.0.0.1", 0, &err), 0);
        dead_port = rpc_server_port(tmp);
        rpc_server_close(tmp, server_closed, &closed);
        assert_true(run_until(&f->loop, &closed, 5000));
    }
    co.on_reachability = on_reach;
    co.arg = f;
    cli = rpc_client_new(&f->loop, &co);
    snprintf(ep, sizeof ep, "127.0.0.1:%u", dead_port);
    ch = rpc_client_channel(cli, ep, &err);
    assert_non_null(ch);
    rpc_req_t req = {.method = M_ECHO, .body = "x", .body_len = 1, .timeout_ms = 5000};
    /* The first call waits for the first attempt, which fails. */
    assert_int_equal(rpc_channel_call(ch, &req, record, &o), 0);
    assert_true(run_until(&f->loop, &o.done, 5000));
    assert_int_equal(o.code, RK_EUNREACHABLE);
    assert_false(rpc_channel_reachable(ch));
    /* While backing off, calls and sends fail at once, without a callback. */
    assert_int_equal(rpc_channel_call(ch, &req, record, &o), RK_EUNREACHABLE);
    assert_int_equal(rpc_channel_send(ch, &req), RK_EUNREACHABLE);
    /* Many retries later (5, 10, 20, 20... ms) still one report, one line. */
    run_for(&f->loop, 300);
    assert_int_equal(f->n_unreach, 1);
    assert_int_equal(f->n_warn_unreach, 1);
    assert_int_equal(o.calls, 1);
    rpc_client_close(cli, NULL, NULL);
}

/* ---- output bounds ---- */

/* A fake server that completes the handshake by hand and then never reads. */
typedef struct mute_srv {
    uv_tcp_t listener, conn;
    bool accepted, conn_open;
    uint8_t buf[4096];
    size_t len;
} mute_srv_t;

static void mute_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    mute_srv_t *m = h->data;
    (void)s;
    *b = uv_buf_init((char *)m->buf + m->len, (unsigned)(sizeof m->buf - m->len));
}

static void mute_written(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void mute_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    mute_srv_t *m = s->data;
    rpc_frame_hdr_t h;
    (void)b;
    if (n <= 0)
        return;
    m->len += (size_t)n;
    if (rpc_frame_next(m->buf, m->len, 4096, &h, NULL) > 0) {
        Rk__HandshakeResponse resp = RK__HANDSHAKE_RESPONSE__INIT;
        rpc_frame_hdr_t rh = {
            .flags = RPC_F_RESPONSE, .method = RPC_M_HANDSHAKE, .corr_id = h.corr_id};
        size_t len;
        resp.version = RPC_WIRE_VERSION;
        uint8_t *out = rpc_frame_pack(&rh, &resp.base, NULL, 0, &len);
        uv_write_t *w = malloc(sizeof *w);
        uv_buf_t wb = uv_buf_init((char *)out, (unsigned)len);
        w->data = out;
        uv_write(w, s, &wb, 1, mute_written);
        uv_read_stop(s); /* and never read again */
    }
}

static void mute_accept(uv_stream_t *l, int status)
{
    mute_srv_t *m = l->data;
    assert_int_equal(status, 0);
    uv_tcp_init(l->loop, &m->conn);
    m->conn.data = m;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&m->conn), 0);
    m->accepted = m->conn_open = true;
    uv_read_start((uv_stream_t *)&m->conn, mute_alloc, mute_read);
}

static void client_refuses_with_busy_when_a_peer_stops_reading(void **state)
{
    fx_t *f = *state;
    mute_srv_t m = {0};
    struct sockaddr_in sa;
    int len = sizeof sa;
    rpc_client_opts_t co = {.max_pending_out = 1u << 20};
    rpc_client_t *cli;
    rpc_channel_t *ch;
    rk_status_t err;
    char ep[64];
    static char chunk[64 << 10];
    uv_buf_t att = uv_buf_init(chunk, sizeof chunk);
    int busy = 0;
    unsigned sent = 0;
    size_t max_pending = 0;

    uv_tcp_init(&f->loop, &m.listener);
    m.listener.data = &m;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&m.listener, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&m.listener, 8, mute_accept), 0);
    uv_tcp_getsockname(&m.listener, (struct sockaddr *)&sa, &len);
    snprintf(ep, sizeof ep, "127.0.0.1:%u", ntohs(sa.sin_port));
    cli = rpc_client_new(&f->loop, &co);
    ch = rpc_client_channel(cli, ep, &err);
    rpc_channel_connect(ch);
    RUN_UNTIL(&f->loop, rpc_channel_reachable(ch), 10000);
    /* Kernel buffers absorb a few MB; past them the client must say busy
     * instead of buffering without bound. */
    rpc_req_t req = {
        .method = RPC_M_APP_FIRST + 9, .body = "b", .body_len = 1, .attach = &att, .n_attach = 1};
    for (int i = 0; i < 4096 && busy == 0; i++) {
        int rv = rpc_channel_send(ch, &req);
        if (rv == RK_EBUSY)
            busy = 1;
        else
            assert_int_equal(rv, 0), sent++;
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (rpc_channel_pending_out(ch) > max_pending)
            max_pending = rpc_channel_pending_out(ch);
    }
    assert_int_equal(busy, 1);
    assert_true(max_pending <= (1u << 20));
    assert_true(sent < 4096);
    rpc_client_close(cli, NULL, NULL);
    uv_close((uv_handle_t *)&m.conn, NULL);
    uv_close((uv_handle_t *)&m.listener, NULL);
}

/* A raw client that pipelines requests and never reads the answers. */
static void raw_written(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void raw_connected(uv_connect_t *c, int status)
{
    *(int *)c->data = status == 0 ? 1 : -1;
}

static void server_stops_reading_and_bounds_output_to_a_client_that_does_not_read(void **state)
{
    fx_t *f = *state;
    rpc_server_opts_t so = {.max_pending_out = 1u << 20};
    uv_tcp_t raw;
    uv_connect_t creq;
    struct sockaddr_in sa;
    int connected = 0;
    rpc_server_stats_t st;
    Rk__Handshake hello;

    /* A second server with a small output bound. */
    rpc_server_t *big = f->srv;
    rk_status_t err;
    f->srv = rpc_server_new(&f->loop, &so);
    assert_int_equal(rpc_server_listen(f->srv, "127.0.0.1", 0, &err), 0);
    assert_int_equal(rpc_server_register(f->srv, M_ECHO, NULL, 0, echo_handler, f), 0);
    uv_tcp_init(&f->loop, &raw);
    uv_ip4_addr("127.0.0.1", rpc_server_port(f->srv), &sa);
    creq.data = &connected;
    uv_tcp_connect(&creq, &raw, (struct sockaddr *)&sa, raw_connected);
    RUN_UNTIL(&f->loop, connected != 0, 10000);
    assert_int_equal(connected, 1);
    rpc_handshake_hello(&hello, "raw");
    size_t body = 256u << 10;
    char *payload = calloc(1, body);
    for (unsigned i = 0; i < 200; i++) {
        rpc_frame_hdr_t h = {.method = i == 0 ? RPC_M_HANDSHAKE : M_ECHO, .corr_id = i + 1};
        size_t len;
        uint8_t *fr = i == 0 ? rpc_frame_pack(&h, &hello.base, NULL, 0, &len)
                             : rpc_frame_pack(&h, NULL, payload, body, &len);
        uv_write_t *w = malloc(sizeof *w);
        uv_buf_t b = uv_buf_init((char *)fr, (unsigned)len);
        w->data = fr;
        assert_int_equal(uv_write(w, (uv_stream_t *)&raw, &b, 1, raw_written), 0);
    }
    free(payload);
    /* 50 MB of answers are due; the server must pause instead of queueing. */
    RUN_UNTIL(&f->loop, (rpc_server_stats(f->srv, &st), st.paused > 0 && st.requests > 4), 10000);
    run_for(&f->loop, 200);
    rpc_server_stats(f->srv, &st);
    assert_true(st.paused >= 1);
    assert_true(st.requests < 199);
    /* A frame may be admitted only while less than the bound is pending. */
    assert_true(st.max_pending_out_seen <= (1u << 20) + (256u << 10) + 64);
    uv_close((uv_handle_t *)&raw, NULL);
    /* The server survives, and the normal one still serves. */
    outcome_t o = {0};
    rpc_server_close(f->srv, NULL, NULL);
    f->srv = big;
    assert_int_equal(call_raw(f, M_ECHO, "alive", 5000, &o), 0);
    assert_true(run_until(&f->loop, &o.done, 5000));
    assert_int_equal(o.code, 0);
}

static void closing_the_client_fails_outstanding_calls_with_shutdown(void **state)
{
    fx_t *f = *state;
    outcome_t o = {0};

    assert_int_equal(call_raw(f, M_HOLD, "pending", 10000, &o), 0);
    RUN_UNTIL(&f->loop, f->n_held > 0, 10000);
    rpc_client_close(f->cli, NULL, NULL);
    f->cli = NULL;
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.code, RK_ESHUTDOWN);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(every_request_method_round_trips_over_tcp),
        T(every_raft_message_arrives_one_way_intact),
        T(pipelined_requests_answered_out_of_order_reach_their_callers),
        T(attachments_travel_beside_the_body_and_are_released_once),
        T(append_entries_payloads_in_the_attachment_arrive_in_place),
        T(frames_over_the_limit_are_refused_before_sending),
        T(a_request_without_answer_times_out_once_and_a_late_answer_is_dropped),
        T(unknown_group_peer_and_method_get_error_responses),
        T(stopped_group_traffic_is_dropped_without_a_warning),
        T(handler_failure_reaches_the_caller_with_code_and_message),
        T(server_restart_fails_in_flight_calls_once_then_reconnects),
        T(unreachable_peer_is_reported_once_and_refused_fast_while_backing_off),
        T(client_refuses_with_busy_when_a_peer_stops_reading),
        T(server_stops_reading_and_bounds_output_to_a_client_that_does_not_read),
        T(closing_the_client_fails_outstanding_calls_with_shutdown),
    };
    return cmocka_run_group_tests_name("rpc_transport", tests, NULL, NULL);
}
