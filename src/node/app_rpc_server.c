/* rk_rpc_server_*: lets an application register its own methods on the RPC
 * port of a raftkit server (rpc.h), and complete calls from any thread. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "src/node/rpc_services.h"

static void run_post(void *arg)
{
    cli_post_t *p = arg;
    p->fn(p);
}

int cli_post(node_rt_t *rt, cli_post_t *p)
{
    if (node_rt_on_loop(rt)) {
        p->fn(p);
        return 0;
    }
    p->call.fn = run_post;
    p->call.arg = p;
    return node_rt_post(rt, &p->call);
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
    s->rt = node_server_rt(srv);
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
    node_rt_t *rt;   /* not the handle: a call may outlive rk_rpc_server_detach */
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
    c->rt = m->rt;
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
    *m = (app_method_t){s->rt, a->method, a->fn, a->arg};
    a->rc = rpc_server_register(s->rt->server, a->method, NULL, 0, app_handler, m);
    if (a->rc == 0)
        s->n_methods++;
}

int rk_rpc_server_register(rk_rpc_server_t *s, uint32_t method, rk_rpc_handler_fn fn, void *arg)
{
    if (s == NULL || fn == NULL || method < RK_RPC_APP_FIRST)
        return RK_EINVAL;
    reg_arg_t a = {s, method, fn, arg, 0};
    int rc = node_rt_call(s->rt, reg_on_loop, &a);
    return rc ? rc : a.rc;
}

static void unregister_on_loop(void *p)
{
    rk_rpc_server_t *s = p;
    if (s->rt->server != NULL)
        for (int i = 0; i < s->n_methods; i++)
            rpc_server_unregister(s->rt->server, s->methods[i].method);
    s->n_methods = 0;
}

void rk_rpc_server_detach(rk_rpc_server_t *s)
{
    if (s == NULL)
        return;
    /* Once unregister_on_loop ran no request can reach s's table any more;
     * calls already handed out complete through the runtime, not s. When
     * the runtime is already stopping its server no longer dispatches. */
    node_rt_call(s->rt, unregister_on_loop, s);
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

static void complete(rk_rpc_call_t *call)
{
    call->post.fn = complete_on_loop;
    /* Cannot fail: the runtime takes posts until its server has no
     * outstanding call, and call->call is one (see node_rt_post). */
    int rc = cli_post(call->rt, &call->post);
    assert(rc == 0);
    (void)rc;
}

int rk_rpc_call_reply(rk_rpc_call_t *call, const void *body, size_t len)
{
    if (call == NULL || (body == NULL && len > 0))
        return RK_EINVAL; /* the call stays the caller's, not completed */
    call->code = 0;
    call->body = malloc(len ? len : 1);
    if (call->body == NULL) {
        call->code = RK_ENOMEM;
        snprintf(call->msg, sizeof call->msg, "response of %zu bytes", len);
    } else if (len) {
        memcpy(call->body, body, len);
    }
    call->len = len;
    complete(call);
    return 0;
}

void rk_rpc_call_fail(rk_rpc_call_t *call, int code, const char *msg)
{
    call->code = code ? code : RK_EINTERNAL;
    snprintf(call->msg, sizeof call->msg, "%s", msg ? msg : "");
    complete(call);
}

const char *rk_rpc_call_peer(const rk_rpc_call_t *call)
{
    return rpc_call_peer_name(call->call);
}
