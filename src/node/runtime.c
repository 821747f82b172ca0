/* The loop runtime: one libuv loop on its own thread with the RPC server and
 * client that live on it. A group service owns one, or several groups share
 * one (rk_server_t) so that they are reached through a single port. Other
 * threads get work onto the loop through node_rt_call.
 */
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_resolve.h"
#include "rpc/rpc_server.h"
#include "rpc/rpc_tls.h"
#include "src/node/rpc_services.h"
#include "src/node/node_internal.h"

struct rk_server {
    node_rt_t *rt;
};

static void run_calls(uv_async_t *a)
{
    node_rt_t *rt = a->data;
    for (;;) {
        pthread_mutex_lock(&rt->mu);
        rt_call_t *c = rt->calls;
        if (c) {
            rt->calls = c->next;
            if (rt->calls == NULL)
                rt->calls_tail = NULL;
        }
        pthread_mutex_unlock(&rt->mu);
        if (c == NULL)
            return;
        if (!c->sync) {
            c->fn(c->arg); /* node_rt_post: c may be gone after this */
            continue;
        }
        c->fn(c->arg);
        pthread_mutex_lock(&rt->mu);
        c->done = true;
        pthread_cond_broadcast(&rt->cv);
        pthread_mutex_unlock(&rt->mu);
    }
}

static void loop_main(void *arg)
{
    node_rt_t *rt = arg;
    uv_run(&rt->loop, UV_RUN_DEFAULT);
}

bool node_rt_on_loop(node_rt_t *rt)
{
    uv_thread_t self = uv_thread_self();
    return rt->running && uv_thread_equal(&self, &rt->thread);
}

int node_rt_call(node_rt_t *rt, void (*fn)(void *), void *arg)
{
    if (node_rt_on_loop(rt)) {
        fn(arg);
        return 0;
    }
    rt_call_t c = {.fn = fn, .arg = arg, .sync = true};
    pthread_mutex_lock(&rt->mu);
    if (rt->stopping) {
        pthread_mutex_unlock(&rt->mu);
        return RK_ESHUTDOWN;
    }
    if (rt->calls_tail)
        rt->calls_tail->next = &c;
    else
        rt->calls = &c;
    rt->calls_tail = &c;
    uv_async_send(&rt->call_async);
    while (!c.done)
        pthread_cond_wait(&rt->cv, &rt->mu);
    pthread_mutex_unlock(&rt->mu);
    return 0;
}

int node_rt_post(node_rt_t *rt, rt_call_t *c)
{
    c->sync = false;
    c->done = false;
    c->next = NULL;
    pthread_mutex_lock(&rt->mu);
    if (rt->posts_closed || !rt->running) {
        pthread_mutex_unlock(&rt->mu);
        return RK_ESHUTDOWN;
    }
    if (rt->calls_tail)
        rt->calls_tail->next = c;
    else
        rt->calls = c;
    rt->calls_tail = c;
    uv_async_send(&rt->call_async);
    pthread_mutex_unlock(&rt->mu);
    return 0;
}

typedef struct listen_arg {
    node_rt_t *rt;
    const rk_node_options_t *sec;
    int rc;
    rk_status_t *err;
} listen_arg_t;

static void rt_listen(void *p)
{
    listen_arg_t *a = p;
    node_rt_t *rt = a->rt;
    /* Security: one TLS context for the port, one for the connections to
     * peers (rpc/rpc_tls.h); none without TLS options. */
    rpc_tls_config_t tc;
    rpc_tls_ctx_t *stls = NULL, *ctls = NULL;
    node_tls_config(a->sec, &tc);
    a->rc = rpc_tls_ctx_new(&tc, true, &stls, a->err);
    if (a->rc == 0)
        a->rc = rpc_tls_ctx_new(&tc, false, &ctls, a->err);
    if (a->rc != 0) {
        rpc_tls_ctx_unref(stls);
        return;
    }
    rpc_server_opts_t so = {
        .name = "raftkit", .tls = stls, .handshake_timeout_ms = stls != NULL ? 5000 : 0};
    rt->server = rpc_server_new(&rt->loop, &so);
    rpc_client_opts_t co = {.name = "raftkit",
                            .backoff_min_ms = 50,
                            .backoff_max_ms = 1000,
                            .connect_timeout_ms = 1000,
                            .on_reachability = node_rt_on_reach,
                            .arg = rt,
                            .tls = ctls};
    rt->client = rpc_client_new(&rt->loop, &co);
    rpc_tls_ctx_unref(stls); /* the server and client hold their references */
    rpc_tls_ctx_unref(ctls);
    if (rt->server == NULL || rt->client == NULL) {
        a->rc = rk_status_set(a->err, RK_ENOMEM, "rpc server/client");
        return;
    }
    node_rt_storage_open(rt);
    a->rc = transport_register(rt);
    if (a->rc == 0)
        a->rc = liveness_register(rt);
    if (a->rc != 0) {
        rk_status_set(a->err, a->rc, "registering raft methods");
        return;
    }
    /* Every runtime serves the CLI service, so that any group can be managed
     * with raftkit-cli; a group with disable_cli refuses it per request. */
    a->rc = cli_rt_open(rt, a->err);
    if (a->rc != 0)
        return;
    a->rc = rpc_server_listen(rt->server, rt->listen.host, rt->listen.port, a->err);
    if (a->rc == 0)
        rt->listen.port = rpc_server_port(rt->server);
}

static void closed_cb(void *arg)
{
    (void)arg;
}

/* Loop thread, once the RPC server is gone: no call is outstanding, so no
 * completion can be posted any more; the async handle goes and with it the
 * last reason for the loop to run. */
static void close_posts(void *arg)
{
    node_rt_t *rt = arg;
    pthread_mutex_lock(&rt->mu);
    rt->posts_closed = true;
    pthread_mutex_unlock(&rt->mu);
    run_calls(&rt->call_async); /* anything posted before the flag */
    uv_close((uv_handle_t *)&rt->call_async, NULL);
}

/* Stops the runtime. Synchronous calls are refused from here on, but posts
 * stay open until the RPC server has freed itself: rpc_server_close waits
 * for every call handed to a handler (CLI operations waiting for a node
 * closure, application calls held by the application) to be completed,
 * and those completions reach the loop through node_rt_post. Refusing them
 * would leave the calls outstanding and the server, its connections and
 * buffers never freed. */
static void rt_close_all(void *p)
{
    node_rt_t *rt = p;
    pthread_mutex_lock(&rt->mu);
    rt->stopping = true;
    pthread_mutex_unlock(&rt->mu);
    run_calls(&rt->call_async); /* anything queued before the stop */
    node_rt_storage_stop(rt);
    node_rt_wake_close(rt);
    node_rt_tick_close(rt);
    node_rt_live_close(rt);
    if (rt->client)
        rpc_client_close(rt->client, closed_cb, NULL);
    rt->client = NULL;
    if (rt->server) {
        rpc_server_t *server = rt->server;
        cli_rt_close(rt);
        rt->server = NULL;
        rpc_server_close(server, close_posts, rt);
    } else {
        close_posts(rt);
    }
}

/* A host name to bind is resolved here, on the thread starting the runtime
 * and before its loop runs, so the blocking getaddrinfo never holds up a
 * loop; the runtime then binds the numeric address. */
static int listen_resolve(rk_endpoint_t *ep, rk_status_t *err)
{
    struct sockaddr_storage ss;
    char ep_str[RK_HOST_MAX + 16];
    rk_status_t why;

    rk_endpoint_t probe = *ep;
    probe.port = 1; /* port 0 (any free port) is fine to bind, not to parse */
    rk_endpoint_format(&probe, ep_str, sizeof ep_str);
    if (rpc_endpoint_addr(ep_str, &ss, NULL) == 0)
        return 0; /* an IP literal, or localhost (127.0.0.1 as for clients) */
    rk_endpoint_format(ep, ep_str, sizeof ep_str);
    if (rpc_resolve_sync(ep->host, ep->port, &ss, &why) != 0)
        return rk_status_set(err, RK_EUNREACHABLE,
                             "cannot listen on %s: %s (a listen address such as 0.0.0.0:%u binds "
                             "without resolving the node's own name)",
                             ep_str, why.msg, ep->port);
    rpc_addr_name(&ss, ep->host, sizeof ep->host);
    return 0;
}

int node_rt_new(const rk_endpoint_t *listen, const rk_node_options_t *sec, node_rt_t **out,
                rk_status_t *err)
{
    rk_endpoint_t bind = *listen;
    int rc = listen_resolve(&bind, err);
    if (rc != 0)
        return rc;
    node_rt_t *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return rk_status_set(err, RK_ENOMEM, "runtime");
    rt->listen = bind;
    if (fsm_pool_init(&rt->fsm_pool, sec ? sec->fsm_executor_threads : 0) != 0) {
        free(rt);
        return rk_status_set(err, RK_ENOMEM, "runtime");
    }
    pthread_mutex_init(&rt->mu, NULL);
    pthread_cond_init(&rt->cv, NULL);
    if (uv_loop_init(&rt->loop) != 0) {
        fsm_pool_free(&rt->fsm_pool);
        free(rt);
        return rk_status_set(err, RK_EIO, "uv_loop_init");
    }
    uv_async_init(&rt->loop, &rt->call_async, run_calls);
    rt->call_async.data = rt;
    node_rt_wake_init(rt);
    node_rt_tick_init(rt);
    node_rt_live_init(rt);
    if (uv_thread_create(&rt->thread, loop_main, rt) != 0) {
        uv_close((uv_handle_t *)&rt->call_async, NULL);
        node_rt_wake_close(rt);
        node_rt_tick_close(rt);
        node_rt_live_close(rt);
        uv_run(&rt->loop, UV_RUN_DEFAULT);
        uv_loop_close(&rt->loop);
        fsm_pool_free(&rt->fsm_pool);
        pthread_mutex_destroy(&rt->wake_mu);
        free(rt);
        return rk_status_set(err, RK_EIO, "loop thread");
    }
    rt->running = true;
    listen_arg_t a = {.rt = rt, .sec = sec, .err = err};
    node_rt_call(rt, rt_listen, &a);
    if (a.rc != 0) {
        node_rt_stop(rt);
        node_rt_free(rt);
        return a.rc;
    }
    *out = rt;
    return 0;
}

void node_rt_stop(node_rt_t *rt)
{
    if (!rt->running)
        return;
    node_rt_call(rt, rt_close_all, rt);
    uv_thread_join(&rt->thread);
    rt->running = false;
    fsm_pool_stop(&rt->fsm_pool); /* every group left: no executor has work */
}

void node_rt_free(node_rt_t *rt)
{
    if (rt == NULL)
        return;
    int rc = uv_loop_close(&rt->loop);
    if (rc != 0) {
        /* handles still closing: run the loop here until they are done */
        uv_run(&rt->loop, UV_RUN_DEFAULT);
        uv_loop_close(&rt->loop);
    }
    node_rt_storage_free(rt);
    free(rt->data_path);
    cli_rt_free(rt->cli);
    fsm_pool_free(&rt->fsm_pool);
    free(rt->tick_classes);
    transport_free_batches(rt);
    node_rt_live_free(rt);
    pthread_mutex_destroy(&rt->wake_mu);
    pthread_mutex_destroy(&rt->mu);
    pthread_cond_destroy(&rt->cv);
    free(rt);
}

/* ---- public shared server ---- */

rk_server_t *rk_server_new(const rk_endpoint_t *listen, rk_status_t *err)
{
    return rk_server_new_opts(listen, NULL, err);
}

rk_server_t *rk_server_new_opts(const rk_endpoint_t *listen, const rk_node_options_t *opts,
                                rk_status_t *err)
{
    if (listen == NULL) {
        rk_status_set(err, RK_EINVAL, "listen endpoint is NULL");
        return NULL;
    }
    if (opts != NULL && node_options_check_executors(opts, err) != 0)
        return NULL;
    rk_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        rk_status_set(err, RK_ENOMEM, "server");
        return NULL;
    }
    if (node_rt_new(listen, opts, &s->rt, err) != 0) {
        free(s);
        return NULL;
    }
    if (opts != NULL && opts->data_path != NULL && opts->data_path[0] != '\0') {
        s->rt->data_path = strdup(opts->data_path);
        s->rt->sync = opts->raft_options.sync;
        if (s->rt->data_path == NULL) {
            rk_status_set(err, RK_ENOMEM, "data_path");
            rk_server_free(s);
            return NULL;
        }
    }
    return s;
}

uint16_t rk_server_port(const rk_server_t *s)
{
    return s->rt->listen.port;
}

node_rt_t *node_server_rt(rk_server_t *s)
{
    return s->rt;
}

void rk_server_free(rk_server_t *s)
{
    if (s == NULL)
        return;
    node_rt_stop(s->rt);
    node_rt_free(s->rt);
    free(s);
}
