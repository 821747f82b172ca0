/* The life of an example server, shared by kv-server and counter-server:
 * read the options, start its groups (one, or one per shard) on a shared
 * raftkit server that also serves the application's method, wait for SIGINT
 * or SIGTERM, stop. */
#ifndef EXAMPLES_APP_SERVER_H
#define EXAMPLES_APP_SERVER_H

#include <stdint.h>

#include "examples/common/app_conf.h"
#include "raftkit/node.h"
#include "raftkit/rpc.h"

/* Parses argv into c (app_conf_parse) and applies the log level. Returns -1
 * when the server should start, else the exit code for main: 0 after
 * --help, 2 for bad options (the reason is printed on stderr). */
int app_server_conf(app_conf_t *c, int argc, char **argv, const char *prog,
                    const char *default_group);

/* What app_server_run starts: the c->shards groups of app_group_id, each
 * with its own state machine, behind one application method. */
typedef struct app_server_spec {
    const char *prog;               /* names the program in messages */
    rk_state_machine_t *const *fsm; /* fsm[i]: group i's state machine */
    uint32_t method;                /* the application method (>= RK_RPC_APP_FIRST) */
    rk_rpc_handler_fn handler;
    void *handler_arg;
    /* node[i]: group i's node, published once it runs and set to NULL
     * before it is freed; the handler reads it to reach the node (NULL:
     * still starting). */
    rk_node_t *_Atomic *node;
} app_server_spec_t;

/* Blocks SIGINT and SIGTERM (every raftkit thread inherits the mask),
 * creates c->data, starts the server and the groups, and waits for one of
 * those signals. A single group keeps its data in c->data itself; with
 * shards, group G-i keeps its own in c->data/groups/G-i. Then stops in the
 * order that keeps the handler safe: it unregisters the method first (no
 * new request reaches the handler), then shuts the groups down (their
 * closures complete the calls in flight), then frees the server. Main
 * thread. Returns the exit code: 0 after a signal, 1 when something could
 * not start (the reason is printed on stderr), as when c->data holds the
 * data of another shard count. */
int app_server_run(const app_conf_t *c, const app_server_spec_t *spec);

#endif /* EXAMPLES_APP_SERVER_H */
