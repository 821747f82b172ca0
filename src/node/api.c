/* The node's public calls that queue work: rk_node_apply (the task ring),
 * read_index, snapshot and the membership changes (commands, node_post_cmd),
 * and the leadership transfer run on the loop. Each checks its arguments,
 * then either accepts the closure (it runs exactly once) or returns an error
 * and never runs it. The getters are in state.c, reset_peers in
 * reset_peers.c.
 */
#include <stdlib.h>
#include <string.h>

#include "src/metrics/metrics.h"
#include "src/node/node_internal.h"

/* Q: the task ring is full: doubles it, up to apply_queue_size tasks (a
 * node that never sees a burst never pays for the whole queue). Returns 0,
 * RK_EBUSY when it is at its limit, RK_ENOMEM. */
static int grow_tasks(rk_node_t *n)
{
    size_t max = (size_t)n->opts.raft_options.apply_queue_size;
    if (n->task_cap >= max)
        return RK_EBUSY;
    size_t cap = n->task_cap > 0 ? 2 * n->task_cap : 16;
    if (cap > max)
        cap = max;
    node_task_t *t = malloc(cap * sizeof *t);
    if (t == NULL)
        return RK_ENOMEM;
    for (size_t i = 0; i < n->task_count; i++)
        t[i] = n->tasks[(n->task_head + i) % n->task_cap];
    free(n->tasks);
    n->tasks = t;
    n->task_cap = cap;
    n->task_head = 0;
    return 0;
}

int rk_node_apply(rk_node_t *n, const rk_task_t *task)
{
    if (n == NULL || task == NULL || (task->len > 0 && task->data == NULL) ||
        (task->done != NULL && task->task_done != NULL))
        return RK_EINVAL;
    rk_closure_t *done = task->task_done ? &task->task_done->closure : task->done;
    if (task->len > (size_t)n->opts.raft_options.max_body_size)
        return RK_EINVAL;
    buf_t *b = task->len ? buf_new(task->data, task->len) : NULL;
    if (task->len && b == NULL)
        return RK_ENOMEM;
    pthread_mutex_lock(&n->mu);
    int rc = 0;
    if (n->shutdown_requested || !n->handles_open)
        rc = RK_ESHUTDOWN;
    else if (n->task_count == n->task_cap)
        rc = grow_tasks(n);
    if (rc != 0) {
        pthread_mutex_unlock(&n->mu);
        if (rc == RK_EBUSY)
            metrics_add(n->metrics, METRIC_APPLY_BUSY_REJECTIONS, 1);
        buf_unref(b);
        return rc;
    }
    n->tasks[(n->task_head + n->task_count) % n->task_cap] =
        (node_task_t){.data = b,
                      .done = done,
                      .expected_term = task->expected_term,
                      .task_closure = task->task_done != NULL};
    bool first = n->task_count++ == 0;
    if (first)
        node_wake_locked(n);
    pthread_mutex_unlock(&n->mu);
    metrics_add(n->metrics, METRIC_APPLY_TASKS, 1);
    return 0;
}

void (*node_test_cmd_hook)(rk_node_t *n);

/* Queues a command from a public entry point. On error c is freed and its
 * closure never runs. */
static int post_new_cmd(rk_node_t *n, node_cmd_t *c)
{
    if (node_test_cmd_hook)
        node_test_cmd_hook(n);
    int rc = node_post_cmd(n, c);
    if (rc != 0) {
        if (c->type == CMD_READ) {
            free(c->u.read.ctx);
            free(c->u.read.item);
        }
        free(c);
    }
    return rc;
}

int rk_node_read_index(rk_node_t *n, const void *ctx, size_t len, rk_read_index_closure_t *done)
{
    if (n == NULL || done == NULL || (len > 0 && ctx == NULL))
        return RK_EINVAL;
    node_cmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return RK_ENOMEM;
    c->type = CMD_READ;
    c->u.read.done = done;
    c->u.read.t0_ns = metrics_now_ns();
    if ((c->u.read.item = calloc(1, sizeof(fsm_item_t))) == NULL) {
        free(c);
        return RK_ENOMEM;
    }
    if (len > 0) {
        if ((c->u.read.ctx = malloc(len)) == NULL) {
            free(c->u.read.item);
            free(c);
            return RK_ENOMEM;
        }
        memcpy(c->u.read.ctx, ctx, len);
        c->u.read.ctx_len = len;
    }
    return post_new_cmd(n, c);
}

int rk_node_snapshot(rk_node_t *n, rk_closure_t *done)
{
    if (n == NULL)
        return RK_EINVAL;
    node_cmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return RK_ENOMEM;
    c->type = CMD_SNAPSHOT;
    c->u.snapshot.done = done;
    return post_new_cmd(n, c);
}

static int conf_cmd(rk_node_t *n, node_conf_op_t op, const rk_configuration_t *conf,
                    const rk_peer_id_t *peers, size_t count, rk_closure_t *done)
{
    if (n == NULL || count > RK_CONF_MAX_PEERS || (count > 0 && peers == NULL))
        return RK_EINVAL;
    if (conf != NULL && rk_configuration_validate(conf, NULL) != 0)
        return RK_EINVAL;
    if (conf != NULL && conf->n_peers == 0)
        return RK_EINVAL;
    node_cmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return RK_ENOMEM;
    c->type = CMD_CHANGE_CONF;
    c->u.change.op = op;
    if (conf)
        c->u.change.conf = *conf;
    for (size_t i = 0; i < count; i++)
        c->u.change.peers[i] = peers[i];
    c->u.change.n_peers = count;
    c->u.change.done = done;
    return post_new_cmd(n, c);
}

int rk_node_add_peer(rk_node_t *n, const rk_peer_id_t *peer, rk_closure_t *done)
{
    return peer ? conf_cmd(n, CONF_OP_ADD_PEER, NULL, peer, 1, done) : RK_EINVAL;
}

int rk_node_remove_peer(rk_node_t *n, const rk_peer_id_t *peer, rk_closure_t *done)
{
    return peer ? conf_cmd(n, CONF_OP_REMOVE_PEER, NULL, peer, 1, done) : RK_EINVAL;
}

int rk_node_change_peers(rk_node_t *n, const rk_configuration_t *conf, rk_closure_t *done)
{
    return conf ? conf_cmd(n, CONF_OP_CHANGE_PEERS, conf, NULL, 0, done) : RK_EINVAL;
}

int rk_node_add_learners(rk_node_t *n, const rk_peer_id_t *l, size_t count, rk_closure_t *done)
{
    return count ? conf_cmd(n, CONF_OP_ADD_LEARNERS, NULL, l, count, done) : RK_EINVAL;
}

int rk_node_remove_learners(rk_node_t *n, const rk_peer_id_t *l, size_t count, rk_closure_t *done)
{
    return count ? conf_cmd(n, CONF_OP_REMOVE_LEARNERS, NULL, l, count, done) : RK_EINVAL;
}

int rk_node_reset_learners(rk_node_t *n, const rk_peer_id_t *l, size_t count, rk_closure_t *done)
{
    return conf_cmd(n, CONF_OP_RESET_LEARNERS, NULL, l, count, done);
}

typedef struct transfer_arg {
    rk_node_t *n;
    const rk_peer_id_t *peer;
    int rc;
} transfer_arg_t;

static void transfer_on_loop(void *p)
{
    transfer_arg_t *a = p;
    rk_node_t *n = a->n;
    if (n->stopping || n->core == NULL) {
        a->rc = RK_ESHUTDOWN;
        return;
    }
    a->rc = core_transfer_leader(n->core, a->peer);
    node_drive(n);
}

int rk_node_transfer_leadership_to(rk_node_t *n, const rk_peer_id_t *peer)
{
    if (n == NULL || peer == NULL)
        return RK_EINVAL;
    transfer_arg_t a = {.n = n, .peer = peer};
    if (node_rt_call(n->rt, transfer_on_loop, &a) != 0)
        return RK_ESHUTDOWN;
    return a.rc;
}
