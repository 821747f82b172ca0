/* The blocking RPC client of rpc.h: the internal pipelined rpc_client on a
 * private libuv loop that runs only while a call waits, so a client program
 * needs no thread of its own. It also decides, for each failed call, whether
 * the request may have reached the server (rk_rpc_reply_t.maybe_delivered):
 * the rpc client writes a request only on a connection that finished its
 * handshake and says whether it did (rpc_req_t.sent), so a call that ends
 * before that was certainly not delivered, and any failure after is "maybe". */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "rpc/rpc_client.h"
#include "rpc/rpc_tls.h"
#include "src/client/client_internal.h"

struct rk_rpc_client {
    uv_loop_t loop;
    uv_timer_t timer; /* wakes the loop at a waiting call's deadline */
    rpc_client_t *rpc;
    int connect_timeout_ms;
    /* the call in progress */
    bool call_done;
    rk_rpc_reply_t *call_out;
};

uint64_t client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

rk_rpc_client_t *rk_rpc_client_new(const rk_rpc_client_options_t *opts)
{
    return rk_rpc_client_open(opts, NULL);
}

rk_rpc_client_t *rk_rpc_client_open(const rk_rpc_client_options_t *opts, rk_status_t *err)
{
    rpc_tls_ctx_t *tls = NULL;
    if (opts != NULL) {
        rpc_tls_config_t tc = {.cert = opts->tls_cert,
                               .key = opts->tls_key,
                               .ca = opts->tls_ca,
                               .peer_names = opts->tls_peer_names,
                               .cluster_key_file = opts->cluster_key_file};
        if (rpc_tls_ctx_new(&tc, false, &tls, err) != 0)
            return NULL;
    }
    rk_rpc_client_t *c = calloc(1, sizeof *c);
    if (c == NULL || uv_loop_init(&c->loop) != 0) {
        free(c);
        rpc_tls_ctx_unref(tls);
        rk_status_set(err, RK_ENOMEM, "out of memory");
        return NULL;
    }
    c->connect_timeout_ms = opts && opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 1000;
    uv_timer_init(&c->loop, &c->timer);
    rpc_client_opts_t o = {
        .connect_timeout_ms = (uint32_t)c->connect_timeout_ms,
        .backoff_min_ms = 20,
        .backoff_max_ms = 200,
        .name = opts && opts->name ? opts->name : "raftkit-client",
        .tls = tls,
    };
    c->rpc = rpc_client_new(&c->loop, &o);
    rpc_tls_ctx_unref(tls); /* the rpc client holds its reference */
    if (c->rpc == NULL) {
        rk_status_set(err, RK_ENOMEM, "out of memory");
        rk_rpc_client_free(c);
        return NULL;
    }
    return c;
}

static void closed_noop(uv_handle_t *h)
{
    (void)h;
}

void rk_rpc_client_free(rk_rpc_client_t *c)
{
    if (c == NULL)
        return;
    if (c->rpc != NULL)
        rpc_client_close(c->rpc, NULL, NULL);
    uv_close((uv_handle_t *)&c->timer, closed_noop);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    free(c);
}

static void timer_noop(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *flag is set or the deadline (client_now_ms clock)
 * passes. Returns whether the flag was set. */
static bool run_until(rk_rpc_client_t *c, const bool *flag, uint64_t deadline)
{
    while (!*flag) {
        uint64_t now = client_now_ms();
        if (now >= deadline)
            return false;
        uv_timer_start(&c->timer, timer_noop, deadline - now, 0);
        uv_run(&c->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&c->timer);
    return true;
}

static void call_cb(void *arg, const rk_status_t *st, const rpc_resp_t *resp)
{
    rk_rpc_client_t *c = arg;
    rk_rpc_reply_t *out = c->call_out;
    out->status = *st;
    if (st->code == 0 && resp != NULL) {
        out->body = malloc(resp->body_len ? resp->body_len : 1);
        if (out->body == NULL) {
            rk_status_set(&out->status, RK_ENOMEM, "response of %zu bytes", resp->body_len);
        } else {
            memcpy(out->body, resp->body, resp->body_len);
            out->len = resp->body_len;
        }
    }
    c->call_done = true;
}

int client_call(rk_rpc_client_t *c, const rk_endpoint_t *ep, uint32_t method,
                const ProtobufCMessage *req, const void *body, size_t len,
                const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
                ProtobufCMessage **resp, rk_rpc_reply_t *out)
{
    memset(out, 0, sizeof *out);
    if (resp != NULL)
        *resp = NULL;
    if (timeout_ms <= 0)
        timeout_ms = 5000;
    uint64_t deadline = client_now_ms() + (uint64_t)timeout_ms;
    char name[RK_HOST_MAX + 16];
    rk_endpoint_format(ep, name, sizeof name);
    bool sent = false;
    rpc_req_t r = {
        .method = method,
        .msg = req,
        .body = body,
        .body_len = len,
        .timeout_ms = (uint32_t)timeout_ms,
        .sent = &sent,
    };
    c->call_done = false;
    c->call_out = out;
    int rc = RK_EUNREACHABLE;
    rpc_channel_t *ch = NULL;
    for (int attempt = 0; attempt < 2 && rc == RK_EUNREACHABLE; attempt++) {
        ch = rpc_client_channel(c->rpc, name, &out->status);
        if (ch == NULL)
            return out->status.code;
        rc = rpc_channel_call(ch, &r, call_cb, c);
        /* RK_EUNREACHABLE: the channel is down, waiting to retry. A blocking
         * client has nothing else to do meanwhile: start over now with a
         * fresh channel (it connects at once) instead of failing. */
        if (rc == RK_EUNREACHABLE && attempt == 0)
            rpc_channel_close(ch);
    }
    if (rc != 0) {
        if (rc == RK_ETOOBIG)
            rk_status_set(&out->status, rc,
                          "%s: request of %zu bytes is over the RPC frame limit of %u bytes", name,
                          req != NULL ? protobuf_c_message_get_packed_size(req) : len,
                          RPC_DEFAULT_MAX_FRAME);
        else
            rk_status_set(&out->status, rc, "%s: sending: %s", name, rk_strerror(rc));
        return rc;
    }
    /* The rpc client's own timeout ends the call; the margin only guards
     * against a lost timer. */
    if (!run_until(c, &c->call_done, deadline + 1000)) {
        /* close the channel the call is pending on: runs call_cb with RK_ECANCELED */
        rpc_channel_close(ch);
        rk_status_set(&out->status, RK_ETIMEDOUT, "no answer within %d ms", timeout_ms);
    }
    c->call_out = NULL;
    /* An answer (even an error) came from the server; otherwise the rpc
     * client knows whether the frame ever reached a connection. */
    out->maybe_delivered = sent;
    if (out->status.code == 0 && resp_desc != NULL && resp != NULL) {
        *resp = protobuf_c_message_unpack(resp_desc, NULL, out->len, out->body);
        if (*resp == NULL)
            rk_status_set(&out->status, RK_EPROTO, "undecodable %s", resp_desc->name);
    }
    return out->status.code;
}

int rk_rpc_client_call(rk_rpc_client_t *c, const rk_endpoint_t *ep, uint32_t method,
                       const void *body, size_t len, int timeout_ms, rk_rpc_reply_t *out)
{
    if (out == NULL)
        return RK_EINVAL;
    memset(out, 0, sizeof *out);
    if (c == NULL || ep == NULL)
        return rk_status_set(&out->status, RK_EINVAL, "client or endpoint is NULL");
    if (body == NULL && len > 0)
        return rk_status_set(&out->status, RK_EINVAL, "body is NULL with len %zu", len);
    if (method < RK_RPC_APP_FIRST)
        return rk_status_set(&out->status, RK_EINVAL,
                             "method %u is reserved (application methods start at %u)", method,
                             (unsigned)RK_RPC_APP_FIRST);
    return client_call(c, ep, method, NULL, body, len, NULL, timeout_ms, NULL, out);
}

void rk_rpc_reply_release(rk_rpc_reply_t *out)
{
    if (out == NULL)
        return;
    free(out->body);
    out->body = NULL;
    out->len = 0;
}
