/* Stopping a node on the loop thread: no command or task is queued any
 * more, everything queued or waiting fails with RK_ESHUTDOWN (each closure
 * once), the node leaves the runtime's wake-up and tick lists and its FSM
 * executor is told to run on_shutdown after what it already has. Its log
 * writes still in the shared writer complete later (the service waits for
 * them: n->log_reqs).
 */
#include "src/node/node_internal.h"

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
    /* A quiesced leader's followers wait for the leader's process to go
     * before they elect anyone; this process stays. Waking the leader sends
     * them a heartbeat, which wakes them: they elect a new leader one
     * election timeout after it goes silent. */
    if (n->core) {
        core_status_t cs;
        core_get_status(n->core, &cs);
        if (cs.role == CORE_LEADER && cs.quiesced && core_wake(n->core) == 0)
            node_drive(n);
    }
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
    node_wake_close(n);
    node_tick_remove(n);
    liveness_forget(n);
    /* queued even when the node never got an executor: node_free frees it */
    fsm_post_simple(n, FSM_SHUTDOWN, 0, NULL);
}
