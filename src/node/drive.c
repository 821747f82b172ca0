/* The drive: on the loop thread, feeds the core its inputs (commands,
 * batches of proposals, applied progress, ticks) and carries out its
 * updates until it has none left, then flushes the round's log writes.
 *
 * Ticks: one timer per runtime. Each node ticks every election_timeout_ms /
 * NODE_ELECTION_TICKS; nodes of the same period form a tick class, a small
 * wheel of lists by due time. The timer visits only the nodes on the lists:
 * a quiesced group (src/core/quiesce.c) leaves its list and costs nothing
 * per tick until something wakes its core.
 */
#include <stdlib.h>
#include <sys/types.h>

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
    node_tick_update(n);
    liveness_update(n);
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

/* A leader that appended nothing for NODE_QUIESCE_IDLE_TICKS ticks asks
 * its core to quiesce; the core refuses (RK_EBUSY) unless the group is
 * idle by the rule of src/core/quiesce.c, and it is asked again next tick. */
static void quiesce_maybe(rk_node_t *n)
{
    if (!n->opts.raft_options.quiesce)
        return;
    core_status_t cs;
    core_get_status(n->core, &cs);
    if (cs.role != CORE_LEADER || cs.quiesced || cs.last_index != n->idle_last) {
        n->idle_last = cs.last_index;
        n->idle_ticks = 0;
        return;
    }
    if (++n->idle_ticks >= NODE_QUIESCE_IDLE_TICKS)
        core_quiesce(n->core);
}

/* Most ticks a late timer firing catches up at once: past three election
 * timeouts every timer of the core has run out anyway. */
#define NODE_TICK_CATCHUP_MAX (3 * NODE_ELECTION_TICKS)

/* ticks: the periods that passed since the node's last tick (more than one
 * when the loop was stalled or the process stopped). A leader's core is
 * told about every one of them: its read lease counts ticks, and a lease
 * that ran out in real time while the loop stood still must not look alive
 * because the ticks it missed were never counted (a repeating timer fires
 * only once after a stall). Other roles get one tick: for them a missed
 * tick only delays an election (and keeps refusing votes for longer, which
 * is the side a lease relies on), while catching up would make a follower
 * whose loop was busy campaign before reading the heartbeats waiting for
 * it. */
static void node_tick(rk_node_t *n, uint64_t now, uint64_t ticks)
{
    core_status_t cs;
    core_get_status(n->core, &cs);
    if (cs.role != CORE_LEADER)
        ticks = 1;
    if (ticks > NODE_TICK_CATCHUP_MAX)
        ticks = NODE_TICK_CATCHUP_MAX;
    for (uint64_t i = 0; i < ticks && !n->fatal; i++)
        core_tick(n->core);
    catchup_tick(n);
    expire_reads(n, now);
    if (n->opts.snapshot_interval_secs > 0 && now >= n->snapshot_due_ms) {
        n->snapshot_due_ms = now + (uint64_t)n->opts.snapshot_interval_secs * 1000;
        if (!n->snapshot_running && atomic_load(&n->applied) > n->last_snapshot_index)
            snap_exec_maybe_start(n, NULL, false);
    }
    quiesce_maybe(n);
    node_wake(n); /* driven in this iteration's check phase, with the others */
}

/* ---- the runtime's tick ---- */

/* Due times are multiples of the period, so all the nodes of a class tick
 * in the same timer firing (and their heartbeats share a batch). Joining
 * the tick (start, waking), a node's first interval is rounded to that
 * grid: down for a leader, whose lease counts its ticks (a shorter first
 * interval only shortens the lease), up for the others, whose refusal to
 * vote for an election timeout counts theirs (a longer one only delays an
 * election). Every later interval is exactly one period. */
static uint64_t first_due(const rk_node_t *n, uint64_t now, uint64_t period)
{
    core_status_t cs;
    core_get_status(n->core, &cs);
    uint64_t t = now + period;
    return cs.role == CORE_LEADER ? t / period * period : (t + period - 1) / period * period;
}

static size_t slot_of(uint64_t due, uint64_t period)
{
    return (size_t)(due / period) % NODE_TICK_SLOTS;
}

static void on_rt_tick(uv_timer_t *t);

/* Fires the timer at due unless it fires earlier already. */
static void tick_arm(node_rt_t *rt, uint64_t due)
{
    if (rt->tick_armed_due != 0 && rt->tick_armed_due <= due)
        return;
    uint64_t now = uv_now(&rt->loop);
    rt->tick_armed_due = due;
    uv_timer_start(&rt->tick_timer, on_rt_tick, due > now ? due - now : 0, 0);
}

/* n's class, created on first use; -1 when out of memory. */
static ssize_t tick_class_of(rk_node_t *n)
{
    node_rt_t *rt = n->rt;
    uint64_t period = (uint64_t)n->opts.election_timeout_ms / NODE_ELECTION_TICKS;
    if (period == 0)
        period = 1;
    for (size_t i = 0; i < rt->n_tick_classes; i++)
        if (rt->tick_classes[i].period_ms == period)
            return (ssize_t)i;
    node_tick_class_t *tc =
        realloc(rt->tick_classes, (rt->n_tick_classes + 1) * sizeof(*rt->tick_classes));
    if (tc == NULL)
        return -1;
    rt->tick_classes = tc;
    tc[rt->n_tick_classes] = (node_tick_class_t){.period_ms = period};
    return (ssize_t)rt->n_tick_classes++;
}

/* Puts n in the slot of due. Dues lie within two periods of now, so the
 * nodes of a slot all have the same due (after a loop stall of several
 * periods, a slot's older nodes wait for its new due: late ticks, as of any
 * late timer). */
static void tick_link(rk_node_t *n, uint64_t due)
{
    node_tick_class_t *tc = &n->rt->tick_classes[n->tick_class];
    size_t k = slot_of(due, tc->period_ms);
    n->tick_due = due;
    n->tick_prev = NULL;
    n->tick_next = tc->slot[k];
    if (tc->slot[k])
        tc->slot[k]->tick_prev = n;
    tc->slot[k] = n;
    tc->slot_due[k] = due;
    n->tick_linked = true;
    tick_arm(n->rt, due);
}

void node_tick_remove(rk_node_t *n)
{
    if (!n->tick_linked)
        return;
    node_tick_class_t *tc = &n->rt->tick_classes[n->tick_class];
    if (n->tick_prev)
        n->tick_prev->tick_next = n->tick_next;
    else
        tc->slot[slot_of(n->tick_due, tc->period_ms)] = n->tick_next;
    if (n->tick_next)
        n->tick_next->tick_prev = n->tick_prev;
    n->tick_prev = n->tick_next = NULL;
    n->tick_linked = false;
}

static bool needs_tick(rk_node_t *n)
{
    /* A quiesced group with reads waiting keeps ticking to time them out.
     * Timed snapshots of a quiesced group wait until it wakes: it appends
     * nothing meanwhile. */
    return n->core != NULL && !n->booting && !n->stopping && !n->fatal &&
           (!core_quiesced(n->core) || n->reads != NULL);
}

void node_tick_update(rk_node_t *n)
{
    bool need = needs_tick(n);
    if (need == n->tick_linked)
        return;
    if (!need) {
        node_tick_remove(n);
        return;
    }
    uint64_t period = n->rt->tick_classes[n->tick_class].period_ms;
    tick_link(n, first_due(n, node_now_ms(n), period));
}

static void on_rt_tick(uv_timer_t *t)
{
    node_rt_t *rt = t->data;
    uint64_t now = uv_now(&rt->loop), next = 0;
    rt->tick_armed_due = 0;
    for (size_t i = 0; i < rt->n_tick_classes; i++) {
        node_tick_class_t *tc = &rt->tick_classes[i];
        for (size_t k = 0; k < NODE_TICK_SLOTS; k++) {
            /* Each node ticked goes to the slot one period after the last
             * tick it was due; a loop late by whole periods gives it every
             * tick it missed at once (node_tick). */
            while (tc->slot[k] && tc->slot_due[k] <= now) {
                rk_node_t *n = tc->slot[k];
                uint64_t ticks = 1 + (now - n->tick_due) / tc->period_ms;
                uint64_t due = n->tick_due + ticks * tc->period_ms;
                node_tick_remove(n);
                if (!needs_tick(n)) /* halted since its last drive */
                    continue;
                node_tick(n, now, ticks);
                tick_link(n, due);
            }
        }
        for (size_t k = 0; k < NODE_TICK_SLOTS; k++)
            if (tc->slot[k] && (next == 0 || tc->slot_due[k] < next))
                next = tc->slot_due[k];
    }
    if (next != 0)
        tick_arm(rt, next);
}

int node_tick_start(rk_node_t *n)
{
    ssize_t c = tick_class_of(n);
    if (c < 0)
        return RK_ENOMEM;
    n->tick_class = (size_t)c;
    node_tick_update(n); /* the first tick is about a period from now */
    return 0;
}

void node_rt_tick_init(node_rt_t *rt)
{
    uv_timer_init(&rt->loop, &rt->tick_timer);
    rt->tick_timer.data = rt;
}

void node_rt_tick_close(node_rt_t *rt)
{
    uv_close((uv_handle_t *)&rt->tick_timer, NULL);
}
