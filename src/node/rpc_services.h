/* The RPC services a loop runtime serves besides raft itself: the CLI
 * service (cli_service.c, opened by runtime.c) and the application-RPC
 * handles applications attach to a server (app_rpc_server.c, the public
 * rk_rpc_server_* of raftkit/rpc.h). Handlers run on the
 * runtime's loop thread; work that finishes on other threads (FSM callbacks,
 * application threads) is posted back to the loop with node_rt_post. */
#ifndef RAFTKIT_NODE_RPC_SERVICES_H
#define RAFTKIT_NODE_RPC_SERVICES_H

#include <stdbool.h>

#include "raftkit/rpc.h"
#include "rpc/rpc_server.h"
#include "src/node/node_internal.h"

/* Work to run on the loop thread (cli_post). */
typedef struct cli_post {
    rt_call_t call; /* first: the runtime's queue entry */
    void (*fn)(struct cli_post *p);
} cli_post_t;

/* An application method registered through rk_rpc_server_register. The
 * handle unregisters its methods when it is detached, so a request arriving
 * afterwards gets "no handler" instead of a freed table entry. */
#define CLI_MAX_APP_METHODS 32
typedef struct app_method {
    node_rt_t *rt;
    uint32_t method;
    rk_rpc_handler_fn fn;
    void *arg;
} app_method_t;

/* An rk_rpc_server_t: the runtime's CLI service (one per runtime, owned by
 * it) or an application's handle (rk_rpc_server_attach). */
struct rk_rpc_server {
    node_rt_t *rt;
    app_method_t methods[CLI_MAX_APP_METHODS]; /* L */
    int n_methods;                             /* L */
};

/* Runs p->fn(p) on rt's loop thread: directly when called there, else at
 * the next loop iteration. Any thread; never blocks. Returns 0, or
 * RK_ESHUTDOWN when the runtime's server is gone (then p->fn never runs and
 * p is still the caller's). Completing an outstanding call never sees
 * RK_ESHUTDOWN: the server outlives its calls (node_rt_post). */
int cli_post(node_rt_t *rt, cli_post_t *p);

/* Opens rt's CLI service: registers the CLI methods of rpc/cli.proto on
 * rt->server and stores the service in rt->cli. Loop thread, while the
 * runtime starts. Returns 0, RK_ENOMEM or the registration error (err set). */
int cli_rt_open(node_rt_t *rt, rk_status_t *err);

/* Unregisters the CLI methods. Loop thread, before the server closes. */
void cli_rt_close(node_rt_t *rt);

/* Frees what cli_rt_open allocated; NULL is fine. After the loop stopped. */
void cli_rt_free(struct rk_rpc_server *cli);

#endif /* RAFTKIT_NODE_RPC_SERVICES_H */
