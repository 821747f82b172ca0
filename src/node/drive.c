/* The drive: on the loop thread, feeds the core its inputs (commands,
 * batches of proposals, applied progress, ticks) and carries out its
 * updates until it has none left, then flushes the round's log writes.
 */
#include <stdlib.h>

#include "src/metrics/metrics.h"
#include "src/node/node_internal.h"

enum { TASK_BATCH = 1024 };

/* Why the task cannot be proposed now (NULL: it can); *code the error. */
static const char *task_refusal(rk_node_t *n, const core_status_t *cs, const node_task_t *t,
                                int *code)
{
    if (n->stopping) {
        *code = RK_ESHUTDOWN;
        return "node is shutting down";
    }
    if (n->fatal || node_in_error(n)) {
        *code = RK_ESTATE;
        return "node is in the error state";
    }
    if (cs->role != CORE_LEADER) {
        *code = RK_ENOTLEADER;
        return "not the leader";
    }
    if (t->expected_term != -1 && (uint64_t)t->expected_term != cs->term) {
        *code = RK_ETERM;
        return "expected_term differs from the leader's term";
    }
    return NULL;
}

/* Proposes the m tasks of batch as one run of entries; each closure waits
 * for its entry to be applied (pend_push), or fails at once. */
static void propose_batch(rk_node_t *n, node_task_t *batch, core_entry_t *ents, size_t m)
{
    uint64_t first = 0, term = 0;
    int rc = core_propose(n->core, ents, m, &first, &term);
    for (size_t i = 0; i < m; i++) {
        if (rc == 0) {
            if (batch[i].done &&
                pend_push(n, first + i, term, batch[i].done, batch[i].task_closure) != 0)
                fsm_post_closure(n, batch[i].done, RK_ENOMEM, "pending queue");
        } else {
            fsm_post_closure(n, batch[i].done, rc,
                             rc == RK_ETRANSFER ? "leadership transfer in progress"
                                                : "proposal refused");
        }
        buf_unref(batch[i].data);
    }
}

/* Takes up to TASK_BATCH tasks off the queue. */
static size_t take_tasks(rk_node_t *n, node_task_t *batch)
{
    size_t k = 0;
    pthread_mutex_lock(&n->mu);
    while (k < TASK_BATCH && n->task_count > 0) {
        batch[k++] = n->tasks[n->task_head];
        n->task_head = (n->task_head + 1) % n->task_cap;
        n->task_count--;
    }
    pthread_mutex_unlock(&n->mu);
    return k;
}

void node_drain_tasks(rk_node_t *n)
{
    node_task_t batch[TASK_BATCH];
    core_entry_t ents[TASK_BATCH];
    for (;;) {
        size_t k = take_tasks(n, batch);
        if (k == 0)
            return;
        core_status_t cs;
        core_get_status(n->core, &cs);
        size_t m = 0;
        for (size_t i = 0; i < k; i++) {
            node_task_t *t = &batch[i];
            int code = 0;
            const char *why = task_refusal(n, &cs, t, &code);
            if (why != NULL) {
                fsm_post_closure(n, t->done, code, why);
                buf_unref(t->data);
                t->data = NULL;
                continue;
            }
            ents[m] = (core_entry_t){.type = CORE_ENTRY_DATA, .data = t->data};
            batch[m++] = *t;
        }
        if (m > 0)
            propose_batch(n, batch, ents, m);
        if (k < TASK_BATCH)
            return;
    }
}

void node_drain_cmds(rk_node_t *n)
{
    pthread_mutex_lock(&n->mu);
    node_cmd_t *c = n->cmds;
    n->cmds = n->cmds_tail = NULL;
    pthread_mutex_unlock(&n->mu);
    while (c) {
        node_cmd_t *next = c->next;
        node_run_cmd(n, c);
        c = next;
    }
}

/* Tells the core what the FSM applied since; may start a snapshot
 * (snapshot_log_count). */
static void report_applied(rk_node_t *n)
{
    uint64_t applied = atomic_load(&n->applied);
    if (applied <= n->applied_seen)
        return;
    core_applied(n->core, applied);
    n->applied_seen = applied;
    if (n->opts.snapshot_log_count > 0 && !n->snapshot_running &&
        applied - n->last_snapshot_index >= (uint64_t)n->opts.snapshot_log_count)
        snap_exec_maybe_start(n, NULL, false);
}

void node_drive(rk_node_t *n)
{
    if (n->core == NULL || n->booting)
        return;
    node_drain_cmds(n);
    if (!n->fatal)
        node_drain_tasks(n);
    if (n->fatal)
        return;
    report_applied(n);
    /* The round's log writes are held until the runtime flushes them, with
     * those of every other group driven in this loop iteration
     * (node_rt_storage_flush); their completions wake the node again. */
    while (!n->fatal && core_has_update(n->core)) {
        core_update_t u;
        core_update_get(n->core, &u);
        node_handle_update(n, &u);
        core_update_release(&u);
        if (n->ack_now != 0 && !n->fatal) {
            core_persisted(n->core, n->ack_now);
            n->persisted_id = n->ack_now;
        }
        n->ack_now = 0;
    }
    node_publish_status(n);
}

/* Reads the core never answered (lost messages) time out. */
static void expire_reads(rk_node_t *n, uint64_t now)
{
    node_cmd_t **pp = &n->reads;
    while (*pp) {
        node_cmd_t *c = *pp;
        if (c->u.read.deadline <= now) {
            *pp = c->next;
            node_post_read_result(n, c, RK_ETIMEDOUT, 0, "read index timed out");
        } else {
            pp = &c->next;
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    rk_node_t *n = t->data;
    if (n->stopping || n->fatal || n->booting)
        return;
    core_tick(n->core);
    catchup_tick(n);
    uint64_t now = node_now_ms(n);
    expire_reads(n, now);
    if (n->opts.snapshot_interval_secs > 0 && now >= n->snapshot_due_ms) {
        n->snapshot_due_ms = now + (uint64_t)n->opts.snapshot_interval_secs * 1000;
        if (!n->snapshot_running && atomic_load(&n->applied) > n->last_snapshot_index)
            snap_exec_maybe_start(n, NULL, false);
    }
    node_drive(n);
}

void node_tick_start(rk_node_t *n)
{
    uint64_t tick = (uint64_t)n->opts.election_timeout_ms / NODE_ELECTION_TICKS;
    uv_timer_init(&n->rt->loop, &n->tick_timer);
    n->tick_timer.data = n;
    uv_timer_start(&n->tick_timer, on_tick, tick, tick);
}
