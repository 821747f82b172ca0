/* Core updates and events: carries out each core_update_t in the order
 * core.h prescribes (send, persist, apply, reads, events) and turns the
 * core's events into state-machine callbacks (leader start/stop, start/stop
 * following) and the completion of membership changes.
 */
#include <stdlib.h>

#include "raftkit/log.h"
#include "src/metrics/metrics.h"
#include "src/node/node_internal.h"

static void on_step_down(rk_node_t *n, const core_event_t *ev)
{
    core_status_t cs;
    core_get_status(n->core, &cs);
    RK_INFO(n->group, n->self_str, "stepped down at term %llu", (unsigned long long)ev->term);
    pend_fail_above(n, cs.commit, RK_ELEADERLOST, "leadership lost before commit");
    rk_status_t st;
    rk_status_set(&st, RK_ELEADERLOST, "stepped down at term %llu", (unsigned long long)ev->term);
    fsm_post_simple(n, FSM_LEADER_STOP, ev->term, &st);
    if (n->conf_cmd) {
        node_fail_cmd(n, n->conf_cmd, RK_ELEADERLOST, "leadership lost during the change");
        n->conf_cmd = NULL;
    }
    catchup_abort(n, RK_ELEADERLOST, "leadership lost while new peers caught up");
    n->was_leader = false;
}

static void on_became_leader(rk_node_t *n, const core_event_t *ev)
{
    RK_INFO(n->group, n->self_str, "became leader at term %llu", (unsigned long long)ev->term);
    n->was_leader = true;
    n->leader_term = ev->term;
    fsm_post_simple(n, FSM_LEADER_START, ev->term, NULL);
    if (n->reset_pending_conf) {
        /* the configuration forced by reset_peers goes into the log */
        uint64_t ci, idx;
        const core_conf_t *c = core_get_conf(n->core, &ci);
        rk_configuration_t target = c->cur;
        if (core_change_conf(n->core, &target, &idx) == 0)
            n->reset_pending_conf = false;
    }
}

static void on_role(rk_node_t *n, const core_event_t *ev)
{
    if (ev->old_role == CORE_LEADER && ev->role != CORE_LEADER)
        on_step_down(n, ev);
    if (ev->role == CORE_LEADER && ev->old_role != CORE_LEADER)
        on_became_leader(n, ev);
}

static void post_following(rk_node_t *n, fsm_item_type_t type, const rk_peer_id_t *leader,
                           uint64_t term, const rk_status_t *st)
{
    fsm_item_t *it = calloc(1, sizeof(*it));
    if (it == NULL)
        return;
    it->type = type;
    it->lc.leader = *leader;
    it->lc.term = (int64_t)term;
    if (st)
        it->lc.status = *st;
    fsm_post(n, it);
}

static void on_leader(rk_node_t *n, const core_event_t *ev)
{
    if (!core_peer_is_none(&n->following) && !core_peer_eq(&n->following, &ev->peer)) {
        rk_status_t st;
        rk_status_set(&st, RK_ELEADERLOST, "leader changed at term %llu",
                      (unsigned long long)ev->term);
        post_following(n, FSM_STOP_FOLLOWING, &n->following, n->following_term, &st);
        rk_peer_id_clear(&n->following);
    }
    if (!core_peer_is_none(&ev->peer) && !core_peer_eq(&ev->peer, &n->self) &&
        !core_peer_eq(&ev->peer, &n->following)) {
        n->following = ev->peer;
        n->following_term = ev->term;
        post_following(n, FSM_START_FOLLOWING, &ev->peer, ev->term, NULL);
    }
}

static void on_conf_event(rk_node_t *n, const core_event_t *ev)
{
    if (n->conf_cmd == NULL)
        return;
    uint64_t ci;
    const core_conf_t *c = core_get_conf(n->core, &ci);
    if (ev->type == CORE_EV_CONF_CHANGED && ci < n->conf_cmd_index) {
        node_fail_cmd(n, n->conf_cmd, RK_ELEADERLOST, "configuration change rolled back");
        n->conf_cmd = NULL;
        return;
    }
    if (ev->type == CORE_EV_CONF_COMMITTED && ev->index >= n->conf_cmd_index && !c->joint &&
        ev->index >= ci) {
        fsm_post_closure(n, n->conf_cmd->u.change.done, 0, NULL);
        free(n->conf_cmd);
        n->conf_cmd = NULL;
    }
}

static void handle_events(rk_node_t *n, const core_update_t *u)
{
    for (size_t i = 0; i < u->n_events; i++) {
        const core_event_t *ev = &u->events[i];
        node_obs_event(n, ev);
        switch (ev->type) {
        case CORE_EV_ROLE:
            on_role(n, ev);
            break;
        case CORE_EV_LEADER:
            on_leader(n, ev);
            break;
        case CORE_EV_CONF_CHANGED:
        case CORE_EV_CONF_COMMITTED:
            on_conf_event(n, ev);
            break;
        case CORE_EV_TRANSFER_DONE:
            RK_INFO(n->group, n->self_str, "leadership transfer ended: %s",
                    ev->status ? rk_strerror(ev->status) : "TimeoutNow sent");
            break;
        }
    }
}

/* Answers the reads the core resolved (they wait in n->reads). */
static void handle_reads(rk_node_t *n, const core_update_t *u)
{
    if (n->was_leader && u->n_reads > 0)
        metrics_record(n->metrics, METRIC_HANDLE_READ_INDEX_ENTRIES, u->n_reads);
    for (size_t i = 0; i < u->n_reads; i++) {
        const core_read_state_t *r = &u->reads[i];
        node_cmd_t **pp = &n->reads;
        while (*pp && (*pp)->u.read.id != r->ctx)
            pp = &(*pp)->next;
        if (*pp == NULL)
            continue;
        node_cmd_t *c = *pp;
        *pp = c->next;
        if (n->was_leader && r->status == 0)
            metrics_record_since(n->metrics, METRIC_HANDLE_READ_INDEX, c->u.read.t0_ns);
        node_post_read_result(n, c, r->status, r->index,
                              r->status ? "the leader could not confirm the read" : NULL);
    }
}

static bool has_committed(const core_update_t *u)
{
    return u->apply_hi >= u->apply_lo && u->apply_hi > 0;
}

void node_handle_update(rk_node_t *n, core_update_t *u)
{
    if (u->fatal) {
        node_enter_error(n, u->fatal, "raft core halted: %s", rk_strerror(u->fatal));
        n->fatal = true;
        return;
    }
    /* 3a. committed entries that are durable here already, first of all:
     * the state machine's thread starts on them while the loop writes the
     * messages below (each send is a syscall that may wake a peer process and
     * cost this thread its CPU; when a commit is news to the followers, two
     * such sends used to stand between the quorum's ack and the closure).
     * With a snapshot in this update they wait until it is queued (below). */
    bool applied = false;
    if (!u->has_snapshot && has_committed(u)) {
        fsm_post_committed(n, u->apply_hi);
        applied = true;
    }
    /* 2. messages that need no durability: the leader's AppendEntries are on
     * the wire before its own log write is queued (thesis 10.2.1), so the
     * followers' writes start as early as possible; waking the writer thread
     * first could delay the send by a context switch on a busy machine. */
    for (size_t i = 0; i < u->n_msgs; i++)
        transport_send(n, &u->msgs[i]);
    /* 1. persist (hard state, snapshot, entries), in update order */
    if (u->id != 0) {
        int rc = node_persist_update(n, u);
        if (rc != 0) {
            node_enter_error(n, rc, "cannot queue a log write: %s", rk_strerror(rc));
            n->fatal = true;
            return;
        }
    }
    /* 3. committed entries, after the snapshot they follow */
    if (u->has_snapshot) {
        n->last_snapshot_index = u->snapshot.index;
        n->last_snapshot_term = u->snapshot.term;
        fsm_post_simple(n, FSM_SNAPSHOT_LOAD, u->snapshot.index, NULL);
    }
    if (!applied && has_committed(u))
        fsm_post_committed(n, u->apply_hi);
    /* 4. reads and events */
    handle_reads(n, u);
    handle_events(n, u);
}
