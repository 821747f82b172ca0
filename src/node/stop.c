/* Stopping a node on the loop thread: no command or task is queued any
 * more, everything queued or waiting fails with RK_ESHUTDOWN (each closure
 * once), the handles close and the FSM thread is told to run on_shutdown
 * after what it already has. Its log writes still in the shared writer
 * complete later (the service waits for them: n->log_reqs).
 */
#include "src/node/node_internal.h"

static void handle_closed(uv_handle_t *h)
{
    rk_node_t *n = h->data;
    n->close_pending--;
}

/* Fails what waits on the loop: queued commands and tasks, reads, the
 * membership change and its catch-up; stops snapshot transfers. */
static void fail_waiting(rk_node_t *n)
{
    node_drain_cmds(n);
    node_drain_tasks(n);
    while (n->reads) {
        node_cmd_t *c = n->reads;
        n->reads = c->next;
        node_post_read_result(n, c, RK_ESHUTDOWN, 0, "node shut down");
    }
    if (n->conf_cmd) {
        node_fail_cmd(n, n->conf_cmd, RK_ESHUTDOWN, "node shut down");
        n->conf_cmd = NULL;
    }
    catchup_abort(n, RK_ESHUTDOWN, "node shut down");
    snap_stop(n);
}

void node_loop_stop(rk_node_t *n)
{
    if (n->stopping)
        return;
    n->stopping = true;
    /* From here on no command or task is queued (node_post_cmd and
     * rk_node_apply check it under n->mu), so the drains below are the last. */
    pthread_mutex_lock(&n->mu);
    n->shutdown_requested = true;
    pthread_mutex_unlock(&n->mu);
    node_set_state(n, RK_STATE_SHUTTING);
    if (n->core) {
        node_publish_status(n); /* listeners hear of the shutdown */
        transport_remove_node(n);
        fail_waiting(n);
    }
    pthread_mutex_lock(&n->mu);
    bool open = n->handles_open;
    n->handles_open = false;
    pthread_mutex_unlock(&n->mu);
    if (open) {
        n->close_pending = 4;
        uv_close((uv_handle_t *)&n->tick_timer, handle_closed);
        node_wake_close(n, handle_closed);
    }
    if (n->fsm_started)
        fsm_post_simple(n, FSM_SHUTDOWN, 0, NULL);
}
