/* rk_rpc_server_*: lets an application register its own methods on the RPC
 * port of a raftkit server (rpc.h), and complete calls from any thread. */
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "src/cli/cli_internal.h"

/* The runtime behind an rk_server_t. node/runtime.c keeps the definition
 * private; this mirrors it (one pointer) until the node module exports an
 * accessor. */
struct rk_server {
    node_rt_t *rt;
};

static void drain(uv_async_t *a)
{
    rk_rpc_server_t *s = a->data;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        cli_post_t *p = s->head;
        if (p != NULL) {
            s->head = p->next;
            if (s->head == NULL)
                s->tail = NULL;
        }
        pthread_mutex_unlock(&s->mu);
        if (p == NULL)
            return;
        p->fn(p);
    }
}

bool cli_on_loop(const rk_rpc_server_t *s)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &s->loop_thread);
}

void cli_post(rk_rpc_server_t *s, cli_post_t *p)
{
    if (cli_on_loop(s)) {
        p->fn(p);
        return;
    }
    p->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->tail != NULL)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->async);
}

typedef struct attach_arg {
    rk_rpc_server_t *s;
    int rc;
} attach_arg_t;

static void attach_on_loop(void *p)
{
    attach_arg_t *a = p;
    rk_rpc_server_t *s = a->s;
    s->loop_thread = uv_thread_self();
    if (s->rt->server == NULL) {
        a->rc = RK_ESHUTDOWN;
        return;
    }
    if ((a->rc = uv_async_init(&s->rt->loop, &s->async, drain)) != 0) {
        a->rc = RK_ENOMEM;
        return;
    }
    s->async.data = s;
    s->async_open = true;
    int rc = cli_service_register(s);
    s->cli_registered = rc == 0;
    a->rc = rc == RK_EEXIST ? 0 : rc;
}

rk_rpc_server_t *rk_rpc_server_attach(rk_server_t *srv, rk_status_t *err)
{
    if (srv == NULL) {
        rk_status_set(err, RK_EINVAL, "server is NULL");
        return NULL;
    }
    rk_rpc_server_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        rk_status_set(err, RK_ENOMEM, "rpc server handle");
        return NULL;
    }
    s->rt = srv->rt;
    pthread_mutex_init(&s->mu, NULL);
    attach_arg_t a = {s, 0};
    int rc = node_rt_call(s->rt, attach_on_loop, &a);
    if (rc == 0)
        rc = a.rc;
    if (rc != 0) {
        rk_status_set(err, rc, "attaching to the server: %s", rk_strerror(rc));
        rk_rpc_server_detach(s);
        return NULL;
    }
    return s;
}

typedef struct reg_arg {
    rk_rpc_server_t *s;
    uint32_t method;
    rk_rpc_handler_fn fn;
    void *arg;
    int rc;
} reg_arg_t;

struct rk_rpc_call {
    cli_post_t post; /* completion posted to the loop */
    rk_rpc_server_t *srv;
    rpc_call_t *call;
    int code;
    char msg[RK_STATUS_MSG_MAX];
    void *body;
    size_t len;
};

static void app_handler(rpc_call_t *call, void *arg)
{
    app_method_t *m = arg;
    rk_rpc_call_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        rpc_call_fail(call, RK_ENOMEM, "out of memory");
        return;
    }
    c->srv = m->srv;
    c->call = call;
    size_t len;
    const uint8_t *body = rpc_call_body(call, &len);
    m->fn(c, body, len, m->arg);
}

static void reg_on_loop(void *p)
{
    reg_arg_t *a = p;
    rk_rpc_server_t *s = a->s;
    if (s->rt->server == NULL) {
        a->rc = RK_ESHUTDOWN;
        return;
    }
    if (s->n_methods == CLI_MAX_APP_METHODS) {
        a->rc = RK_ETOOBIG;
        return;
    }
    app_method_t *m = &s->methods[s->n_methods];
    *m = (app_method_t){s, a->fn, a->arg};
    a->rc = rpc_server_register(s->rt->server, a->method, NULL, 0, app_handler, m);
    if (a->rc == 0)
        s->n_methods++;
}

int rk_rpc_server_register(rk_rpc_server_t *s, uint32_t method, rk_rpc_handler_fn fn, void *arg)
{
    if (s == NULL || fn == NULL || method < RK_RPC_APP_FIRST || method == CLI_M_NODE_STATUS)
        return RK_EINVAL;
    reg_arg_t a = {s, method, fn, arg, 0};
    int rc = node_rt_call(s->rt, reg_on_loop, &a);
    return rc ? rc : a.rc;
}

static void close_on_loop(void *p)
{
    rk_rpc_server_t *s = p;
    if (s->async_open) {
        drain(&s->async);
        uv_close((uv_handle_t *)&s->async, NULL);
        s->async_open = false;
    }
}

void rk_rpc_server_detach(rk_rpc_server_t *s)
{
    if (s == NULL)
        return;
    /* The close callback is NULL and the handle lives in s: the loop is
     * still running, so give it one round trip to finish the close before
     * freeing. */
    if (node_rt_call(s->rt, close_on_loop, s) == 0)
        node_rt_call(s->rt, close_on_loop, s);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- completing calls ---- */

static void complete_on_loop(cli_post_t *p)
{
    rk_rpc_call_t *c = (rk_rpc_call_t *)p;
    if (c->code != 0)
        rpc_call_fail(c->call, c->code, "%s", c->msg);
    else
        rpc_call_reply_raw(c->call, c->body, c->len, NULL, 0, NULL, NULL);
    free(c->body);
    free(c);
}

void rk_rpc_call_reply(rk_rpc_call_t *call, const void *body, size_t len)
{
    call->code = 0;
    call->body = malloc(len ? len : 1);
    if (call->body == NULL) {
        call->code = RK_ENOMEM;
        snprintf(call->msg, sizeof call->msg, "response of %zu bytes", len);
    } else if (len) {
        memcpy(call->body, body, len);
    }
    call->len = len;
    call->post.fn = complete_on_loop;
    cli_post(call->srv, &call->post);
}

void rk_rpc_call_fail(rk_rpc_call_t *call, int code, const char *msg)
{
    call->code = code ? code : RK_EINTERNAL;
    snprintf(call->msg, sizeof call->msg, "%s", msg ? msg : "");
    call->post.fn = complete_on_loop;
    cli_post(call->srv, &call->post);
}

const char *rk_rpc_call_peer(const rk_rpc_call_t *call)
{
    return rpc_call_peer_name(call->call);
}
