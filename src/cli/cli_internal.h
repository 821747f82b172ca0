/* Internals of src/cli: the application-RPC wrapper attached to a node
 * runtime (rpc_attach.c) and the CLI service registered through it
 * (cli_service.c). Both run their handlers on the runtime's loop thread and
 * complete work that finished on other threads (FSM callbacks, application
 * threads) by posting it back to the loop through one uv_async. */
#ifndef RAFTKIT_CLI_INTERNAL_H
#define RAFTKIT_CLI_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

#include "raftkit/rpc.h"
#include "rpc/rpc_server.h"
#include "src/client/client_internal.h"
#include "src/node/node_internal.h"

/* Work to run on the loop thread (cli_post). */
typedef struct cli_post {
    void (*fn)(struct cli_post *p);
    struct cli_post *next;
} cli_post_t;

/* An application method registered through rk_rpc_server_register. The rpc
 * server has no way to unregister, so the table lives in the handle and a
 * request arriving between rk_rpc_server_detach and rk_server_free would find
 * it gone: detach only after the groups are joined, right before freeing. */
#define CLI_MAX_APP_METHODS 32
typedef struct app_method {
    struct rk_rpc_server *srv;
    rk_rpc_handler_fn fn;
    void *arg;
} app_method_t;

struct rk_rpc_server {
    node_rt_t *rt;
    uv_async_t async; /* L: drains posts */
    bool async_open;  /* L */
    uv_thread_t loop_thread;
    pthread_mutex_t mu;
    cli_post_t *head, *tail; /* guarded by mu */
    bool cli_registered;     /* this handle registered the CLI service */
    app_method_t methods[CLI_MAX_APP_METHODS];
    int n_methods;
};

/* Runs p->fn(p) on the loop thread: directly when called there, else at the
 * next loop iteration. Any thread; never blocks. */
void cli_post(rk_rpc_server_t *s, cli_post_t *p);

bool cli_on_loop(const rk_rpc_server_t *s);

/* Registers the CLI methods on s's RPC server. Loop thread. Returns 0, or
 * RK_EEXIST when another component registered them first (then they are
 * served by that one). */
int cli_service_register(rk_rpc_server_t *s);

#endif /* RAFTKIT_CLI_INTERNAL_H */
