/* Stopping a node on the loop thread: no command or task is queued any
 * more, everything queued or waiting fails with RK_ESHUTDOWN (each closure
 * once), the log writer finishes, the handles close and the node's FSM
 * executor is told to run on_shutdown after what it already has.
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
    if (n->writer) {
        log_writer_stop(n->writer); /* runs outstanding completions (they free) */
        n->writer = NULL;
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
    /* queued even when the node never got an executor: node_free frees it */
    fsm_post_simple(n, FSM_SHUTDOWN, 0, NULL);
}
