/* Wake-ups and the command queue: how work reaches the node's loop. Other
 * threads queue commands (node_post_cmd) and wake the loop through an async
 * handle; the loop thread wakes itself through a check handle instead,
 * which runs node_drive once per loop iteration however many wake-ups came.
 */
#include "src/node/node_internal.h"

static void kick_idle_cb(uv_idle_t *h)
{
    (void)h; /* only there so that the poll phase does not block */
}

void node_wake(rk_node_t *n)
{
    if (node_rt_on_loop(n->rt)) {
        if (n->handles_open && !n->kick_pending) {
            n->kick_pending = true;
            uv_idle_start(&n->kick_idle, kick_idle_cb);
        }
        return;
    }
    pthread_mutex_lock(&n->mu);
    if (n->handles_open)
        uv_async_send(&n->wake);
    pthread_mutex_unlock(&n->mu);
}

int node_post_cmd(rk_node_t *n, node_cmd_t *c)
{
    c->next = NULL;
    pthread_mutex_lock(&n->mu);
    /* checked and queued under one lock: node_loop_stop sets
     * shutdown_requested under it before its last drain of n->cmds */
    if (n->shutdown_requested || !n->handles_open) {
        pthread_mutex_unlock(&n->mu);
        return RK_ESHUTDOWN;
    }
    if (n->cmds_tail)
        n->cmds_tail->next = c;
    else
        n->cmds = c;
    n->cmds_tail = c;
    uv_async_send(&n->wake);
    pthread_mutex_unlock(&n->mu);
    return 0;
}

static void on_kick(uv_check_t *h)
{
    rk_node_t *n = h->data;
    if (!n->kick_pending)
        return;
    n->kick_pending = false;
    uv_idle_stop(&n->kick_idle);
    if (!n->stopping)
        node_drive(n); /* a kick from inside keeps the idle handle on: next round */
}

static void on_wake(uv_async_t *a)
{
    rk_node_t *n = a->data;
    if (!n->stopping)
        node_drive(n);
}

void node_wake_open(rk_node_t *n)
{
    uv_async_init(&n->rt->loop, &n->wake, on_wake);
    n->wake.data = n;
    uv_idle_init(&n->rt->loop, &n->kick_idle);
    n->kick_idle.data = n;
    uv_check_init(&n->rt->loop, &n->kick_check);
    n->kick_check.data = n;
    uv_check_start(&n->kick_check, on_kick);
}

void node_wake_close(rk_node_t *n, uv_close_cb cb)
{
    uv_close((uv_handle_t *)&n->wake, cb);
    uv_close((uv_handle_t *)&n->kick_idle, cb);
    uv_close((uv_handle_t *)&n->kick_check, cb);
}
