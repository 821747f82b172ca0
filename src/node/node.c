/* The node: drives the Raft core on the loop thread. It feeds the core its
 * inputs (ticks, messages from the transport, batches of proposals, persist
 * acknowledgements, applied progress) and carries out each update in the
 * order core.h prescribes: persist through the log writer, send, hand
 * committed entries to the FSM caller, serve reads, react to events.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "raftkit/log.h"
#include "src/metrics/metrics.h"
#include "src/node/node_internal.h"

/* ------------------------------------------------------------- helpers */

static log_entry_type_t to_log_type(core_entry_type_t t)
{
    switch (t) {
    case CORE_ENTRY_NOOP:
        return LOG_ENTRY_NOOP;
    case CORE_ENTRY_CONF:
        return LOG_ENTRY_CONF;
    default:
        return LOG_ENTRY_DATA;
    }
}

static core_entry_type_t to_core_type(log_entry_type_t t)
{
    switch (t) {
    case LOG_ENTRY_NOOP:
        return CORE_ENTRY_NOOP;
    case LOG_ENTRY_CONF:
        return CORE_ENTRY_CONF;
    default:
        return CORE_ENTRY_DATA;
    }
}

/* The core ticks ten times per election timeout (the tick timer runs every
 * election_timeout_ms / 10). */
#define NODE_ELECTION_TICKS 10

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

static void set_state(rk_node_t *n, rk_node_state_t s)
{
    pthread_mutex_lock(&n->st_mu);
    n->state = s;
    pthread_mutex_unlock(&n->st_mu);
}

void node_enter_error(rk_node_t *n, int code, const char *fmt, ...)
{
    rk_status_t st;
    va_list ap;
    va_start(ap, fmt);
    rk_status_vset(&st, code, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&n->st_mu);
    bool first = n->state != RK_STATE_ERROR;
    if (n->state != RK_STATE_SHUTTING && n->state != RK_STATE_SHUTDOWN)
        n->state = RK_STATE_ERROR;
    pthread_mutex_unlock(&n->st_mu);
    if (!first)
        return;
    RK_ERROR(n->group, n->self_str, "entering the error state: %s", st.msg);
    fsm_post_simple(n, FSM_ERROR, 0, &st);
}

static bool in_error(rk_node_t *n)
{
    pthread_mutex_lock(&n->st_mu);
    bool e = n->state == RK_STATE_ERROR;
    pthread_mutex_unlock(&n->st_mu);
    return e;
}

void node_publish_status(rk_node_t *n)
{
    core_status_t cs;
    core_get_status(n->core, &cs);
    uint64_t ci;
    const core_conf_t *conf = core_get_conf(n->core, &ci);
    rk_configuration_t alive;
    rk_configuration_init(&alive);
    bool alive_valid = false;
    if (cs.role == CORE_LEADER) {
        core_progress_info_t pr[2 * RK_CONF_MAX_PEERS + 1];
        size_t k = core_get_progress(n->core, pr, sizeof(pr) / sizeof(pr[0]));
        if (k > sizeof(pr) / sizeof(pr[0]))
            k = sizeof(pr) / sizeof(pr[0]);
        /* Alive: heard from within the last election timeout. Not
         * recent_active: check-quorum clears that at every election
         * timeout, so right after each reset every follower looked dead
         * until its next answer (seen as a flapping `get_peers --alive`). */
        for (size_t i = 0; i < k; i++)
            if (pr[i].voter && (pr[i].is_self || pr[i].ticks_since_contact < NODE_ELECTION_TICKS))
                rk_configuration_add_peer(&alive, &pr[i].peer);
        alive_valid = true;
    }
    pthread_mutex_lock(&n->st_mu);
    n->cst = cs;
    n->conf = *conf;
    rk_node_state_t *state = &n->state;
    n->alive = alive;
    n->alive_valid = alive_valid;
    if (n->state != RK_STATE_ERROR && n->state != RK_STATE_SHUTTING &&
        n->state != RK_STATE_SHUTDOWN) {
        switch (cs.role) {
        case CORE_LEADER:
            n->state = cs.transferring ? RK_STATE_TRANSFERRING : RK_STATE_LEADER;
            break;
        case CORE_CANDIDATE:
        case CORE_PRE_CANDIDATE:
            n->state = RK_STATE_CANDIDATE;
            break;
        default:
            n->state = RK_STATE_FOLLOWER;
            break;
        }
    }
    rk_node_state_t now = *state;
    pthread_mutex_unlock(&n->st_mu);
    node_obs_publish(n, &cs, conf, ci, now);
}

/* --------------------------------------------------- core_storage_t */

static int st_term(void *arg, uint64_t index, uint64_t *term)
{
    rk_node_t *n = arg;
    int rc = log_store_term(n->store, index, term, NULL);
    return rc == RK_ENOTFOUND ? RK_ENOTFOUND : (rc ? RK_EIO : 0);
}

static int st_entries(void *arg, uint64_t lo, uint64_t hi, size_t max_bytes, core_entry_t *out,
                      size_t *n_out)
{
    rk_node_t *n = arg;
    log_entry_t *ents = NULL;
    size_t cnt = 0;
    int rc = log_store_fetch(n->store, lo, (size_t)(hi - lo), max_bytes, &ents, &cnt, NULL);
    if (rc != 0)
        return rc == RK_ENOTFOUND ? RK_ENOTFOUND : RK_EIO;
    size_t total = 0, k = 0;
    for (; k < cnt; k++) {
        size_t sz = ents[k].len + 24;
        if (k > 0 && total + sz > max_bytes)
            break;
        total += sz;
        buf_t *b = NULL;
        if (ents[k].len > 0 && (b = buf_new(ents[k].data, ents[k].len)) == NULL) {
            for (size_t j = 0; j < k; j++)
                buf_unref(out[j].data);
            log_entries_free(ents, cnt);
            return RK_EIO;
        }
        out[k] = (core_entry_t){.term = ents[k].term,
                                .index = ents[k].index,
                                .type = to_core_type(ents[k].type),
                                .data = b};
    }
    *n_out = k;
    log_entries_free(ents, cnt);
    return 0;
}

/* ------------------------------------------------------- persistence */

static void persist_free(node_persist_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        buf_unref(p->bufs[i]);
    free(p->bufs);
    free(p->entries);
    for (size_t i = 0; i < p->n_after; i++)
        core_msg_free_contents(&p->after[i]);
    free(p->after);
    free(p);
}

/* Sends what waited for p to be durable, once. */
static void send_after(rk_node_t *n, node_persist_t *p)
{
    if (p->after_sent)
        return;
    for (size_t i = 0; i < p->n_after; i++)
        transport_send(n, &p->after[i]);
    p->after_sent = true;
}

/* Acks finished updates in update order: the head of the list, then every
 * following one already done (commit-only updates that wrote nothing). */
static void persist_complete(rk_node_t *n)
{
    bool acked = false;
    while (n->persist_head != NULL && n->persist_head->done) {
        node_persist_t *p = n->persist_head;
        n->persist_head = p->next;
        if (n->persist_head == NULL)
            n->persist_tail = NULL;
        if (p->status != 0) {
            node_enter_error(n, p->status, "log write failed: %s", rk_strerror(p->status));
            n->fatal = true;
        } else if (!n->stopping && !n->fatal) {
            if (p->n > 0) {
                uint64_t bytes = 0;
                for (size_t i = 0; i < p->n; i++)
                    bytes += p->entries[i].len;
                metrics_record_since(n->metrics, METRIC_APPEND_LOGS, p->t0_ns);
                metrics_record(n->metrics, METRIC_APPEND_LOGS_COUNT, p->n);
                metrics_record(n->metrics, METRIC_APPEND_LOGS_BYTES, bytes);
            } else if (p->append_req.op.hard_state) {
                metrics_record_since(n->metrics, METRIC_SAVE_RAFT_META, p->t0_ns);
            }
            node_obs_persisted(n, p);
            core_persisted(n->core, p->id);
            n->persisted_id = p->id;
            send_after(n, p);
            acked = true;
        }
        persist_free(p);
    }
    if (acked)
        node_wake(n);
}

/* The log writer says a request is durable, its LMDB commit still to come
 * (log_write_req_t.durable_cb): what waited only for durability -- the
 * msgs_after, e.g. a follower's answer to AppendEntries -- goes out now, in
 * update order, and the core hears of it (core_persisted) at completion. */
static void persist_durable(log_write_req_t *req)
{
    node_persist_t *p = req->data;
    if (--p->durable_left > 0)
        return;
    p->durable = true;
    rk_node_t *n = p->node;
    if (n->stopping || n->fatal)
        return;
    /* stop at a failed update: nothing after it may claim durability */
    for (node_persist_t *q = n->persist_head; q && (q->done || q->durable) && q->status == 0;
         q = q->next)
        send_after(n, q);
}

static void persist_done(log_write_req_t *req, int status)
{
    node_persist_t *p = req->data;
    if (status != 0 && p->status == 0)
        p->status = status;
    if (--p->reqs_left > 0)
        return;
    /* completions come in submission order, so p is the first not done */
    p->done = true;
    persist_complete(p->node);
}

static int copy_msg(core_msg_t *dst, const core_msg_t *src)
{
    *dst = *src;
    dst->entries = NULL;
    dst->snap = NULL;
    if (src->n_entries > 0) {
        dst->entries = malloc(src->n_entries * sizeof(core_entry_t));
        if (dst->entries == NULL)
            return RK_ENOMEM;
        for (size_t i = 0; i < src->n_entries; i++) {
            dst->entries[i] = src->entries[i];
            buf_ref(dst->entries[i].data);
        }
    }
    if (src->snap) {
        dst->snap = malloc(sizeof(*dst->snap));
        if (dst->snap == NULL)
            return RK_ENOMEM;
        *dst->snap = *src->snap;
    }
    return 0;
}

/* Does this update need nothing written: no entries, no snapshot, and at
 * most a new commit index (same term and vote as the hard state last handed
 * to the writer)? Its msgs_after (e.g. the answer to an empty AppendEntries)
 * then promise only what earlier updates make durable. */
static bool nothing_to_write(rk_node_t *n, const core_update_t *u, const meta_hard_state_t *hs)
{
    if (u->has_snapshot || u->n_entries > 0)
        return false;
    return !u->has_hard_state || (n->hs_submitted_valid && n->hs_submitted.term == hs->term &&
                                  strcmp(n->hs_submitted.voted_for, hs->voted_for) == 0);
}

static void append_persist(rk_node_t *n, node_persist_t *p)
{
    p->next = NULL;
    if (n->persist_tail)
        n->persist_tail->next = p;
    else
        n->persist_head = p;
    n->persist_tail = p;
}

static int copy_after(node_persist_t *p, const core_update_t *u)
{
    if (u->n_msgs_after == 0)
        return 0;
    p->after = calloc(u->n_msgs_after, sizeof(*p->after));
    if (p->after == NULL)
        return RK_ENOMEM;
    for (size_t i = 0; i < u->n_msgs_after; i++) {
        p->n_after = i + 1;
        if (copy_msg(&p->after[i], &u->msgs_after[i]) != 0)
            return RK_ENOMEM;
    }
    return 0;
}

/* Hands the update's durable state to the log writer.
 *
 * An update that only moves the commit index is not written on its own: the
 * commit index is volatile state in Raft (Figure 3.1 lists it under "volatile
 * state on all servers"), stored only so a restart can re-apply sooner, and a
 * stale one on disk is safe (recovery caps it to the log and the leader
 * re-sends it). Syncing it would cost one fsync per commit on every node and,
 * worse, put that fsync in front of the next entries in the writer's queue.
 * It is kept as hs_lazy and written with the next real write; the update is
 * acked, and its msgs_after sent, as soon as every update before it is
 * durable (at once when none is in flight). */
static int persist_update(rk_node_t *n, const core_update_t *u)
{
    meta_hard_state_t hs;
    memset(&hs, 0, sizeof(hs));
    if (u->has_hard_state) {
        hs.term = u->hs.term;
        hs.commit = u->hs.commit;
        if (!core_peer_is_none(&u->hs.vote))
            rk_peer_id_format(&u->hs.vote, hs.voted_for, sizeof(hs.voted_for));
    }
    if (nothing_to_write(n, u, &hs)) {
        if (u->has_hard_state) {
            n->hs_lazy = hs;
            n->hs_lazy_pending = true;
        }
        if (n->persist_head == NULL) {
            for (size_t i = 0; i < u->n_msgs_after; i++)
                transport_send(n, &u->msgs_after[i]);
            n->ack_now = u->id; /* acked once the update is released */
            return 0;
        }
        node_persist_t *v = calloc(1, sizeof(*v));
        if (v == NULL)
            return RK_ENOMEM;
        v->node = n;
        v->id = u->id;
        v->done = true;
        if (copy_after(v, u) != 0) {
            persist_free(v);
            return RK_ENOMEM;
        }
        append_persist(n, v);
        return 0;
    }
    node_persist_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return RK_ENOMEM;
    p->node = n;
    p->id = u->id;
    p->t0_ns = metrics_now_ns();
    if (u->n_entries > 0) {
        p->entries = calloc(u->n_entries, sizeof(*p->entries));
        p->bufs = calloc(u->n_entries, sizeof(*p->bufs));
        if (p->entries == NULL || p->bufs == NULL)
            goto nomem;
        for (size_t i = 0; i < u->n_entries; i++) {
            const core_entry_t *e = &u->entries[i];
            p->bufs[i] = buf_ref(e->data);
            p->entries[i] = (log_entry_t){.index = e->index,
                                          .term = e->term,
                                          .type = to_log_type(e->type),
                                          .data = e->data ? e->data->data : NULL,
                                          .len = buf_len(e->data)};
        }
        p->n = u->n_entries;
    }
    if (copy_after(p, u) != 0)
        goto nomem;
    bool has_hs = u->has_hard_state;
    if (has_hs) {
        p->hs = hs;
        n->hs_lazy_pending = false;
    } else if (n->hs_lazy_pending && (p->n > 0 || u->has_snapshot)) {
        p->hs = n->hs_lazy; /* rides along with this write */
        has_hs = true;
        n->hs_lazy_pending = false;
    }
    if (has_hs) {
        n->hs_submitted = p->hs;
        n->hs_submitted_valid = true;
    }
    append_persist(n, p);
    if (u->has_snapshot) {
        p->reqs_left++;
        p->reset_req.op = (log_op_t){.store = n->store,
                                     .kind = LOG_OP_RESET,
                                     .index = u->snapshot.index,
                                     .term = u->snapshot.term};
        p->reset_req.data = p;
    }
    p->reqs_left++;
    p->append_req.op = (log_op_t){.store = n->store,
                                  .kind = LOG_OP_APPEND,
                                  .truncate_from = p->n ? p->entries[0].index : 0,
                                  .entries = p->entries,
                                  .n_entries = p->n,
                                  .hard_state = has_hs ? &p->hs : NULL};
    p->append_req.data = p;
    p->append_req.durable_cb = persist_durable;
    p->reset_req.durable_cb = persist_durable;
    p->durable_left = p->reqs_left;
    int total = p->reqs_left;
    /* held: node_drive flushes them once every update of this round is
     * handled (log_writer_flush) */
    if (u->has_snapshot && log_writer_submit_held(n->writer, &p->reset_req, persist_done) != 0)
        total--, p->reqs_left--, p->status = RK_ESHUTDOWN;
    if (log_writer_submit_held(n->writer, &p->append_req, persist_done) != 0) {
        p->reqs_left--, p->status = RK_ESHUTDOWN;
        if (p->reqs_left == 0) {
            /* nothing was accepted: unlink and fail */
            node_persist_t **pp = &n->persist_head;
            node_persist_t *prev = NULL;
            while (*pp != p)
                prev = *pp, pp = &(*pp)->next;
            *pp = NULL;
            n->persist_tail = prev;
            persist_free(p);
            return RK_ESHUTDOWN;
        }
    }
    (void)total;
    return 0;
nomem:
    persist_free(p);
    return RK_ENOMEM;
}

/* ------------------------------------------------------------- events */

static void fail_cmd(rk_node_t *n, node_cmd_t *c, int code, const char *msg)
{
    if (c->type == CMD_READ) {
        node_post_read_result(n, c, code, 0, msg);
        return;
    }
    fsm_post_closure(n, c->done, code, msg);
    free(c->ctx);
    free(c);
}

static void on_role(rk_node_t *n, const core_event_t *ev)
{
    if (ev->old_role == CORE_LEADER && ev->role != CORE_LEADER) {
        core_status_t cs;
        core_get_status(n->core, &cs);
        RK_INFO(n->group, n->self_str, "stepped down at term %llu", (unsigned long long)ev->term);
        pend_fail_above(n, cs.commit, RK_ELEADERLOST, "leadership lost before commit");
        rk_status_t st;
        rk_status_set(&st, RK_ELEADERLOST, "stepped down at term %llu",
                      (unsigned long long)ev->term);
        fsm_post_simple(n, FSM_LEADER_STOP, ev->term, &st);
        if (n->conf_cmd) {
            fail_cmd(n, n->conf_cmd, RK_ELEADERLOST, "leadership lost during the change");
            n->conf_cmd = NULL;
        }
        catchup_abort(n, RK_ELEADERLOST, "leadership lost while new peers caught up");
        n->was_leader = false;
    }
    if (ev->role == CORE_LEADER && ev->old_role != CORE_LEADER) {
        RK_INFO(n->group, n->self_str, "became leader at term %llu", (unsigned long long)ev->term);
        n->was_leader = true;
        n->leader_term = ev->term;
        fsm_post_simple(n, FSM_LEADER_START, ev->term, NULL);
        if (n->reset_pending_conf) {
            uint64_t ci, idx;
            const core_conf_t *c = core_get_conf(n->core, &ci);
            rk_configuration_t target = c->cur;
            if (core_change_conf(n->core, &target, &idx) == 0)
                n->reset_pending_conf = false;
        }
    }
}

static void on_leader(rk_node_t *n, const core_event_t *ev)
{
    if (!core_peer_is_none(&n->following) && !core_peer_eq(&n->following, &ev->peer)) {
        fsm_item_t *it = calloc(1, sizeof(*it));
        if (it) {
            it->type = FSM_STOP_FOLLOWING;
            it->lc.leader = n->following;
            it->lc.term = (int64_t)n->following_term;
            rk_status_set(&it->lc.status, RK_ELEADERLOST, "leader changed at term %llu",
                          (unsigned long long)ev->term);
            fsm_post(n, it);
        }
        rk_peer_id_clear(&n->following);
    }
    if (!core_peer_is_none(&ev->peer) && !core_peer_eq(&ev->peer, &n->self) &&
        !core_peer_eq(&ev->peer, &n->following)) {
        n->following = ev->peer;
        n->following_term = ev->term;
        fsm_item_t *it = calloc(1, sizeof(*it));
        if (it) {
            it->type = FSM_START_FOLLOWING;
            it->lc.leader = ev->peer;
            it->lc.term = (int64_t)ev->term;
            fsm_post(n, it);
        }
    }
}

static void on_conf_event(rk_node_t *n, const core_event_t *ev)
{
    if (n->conf_cmd == NULL)
        return;
    uint64_t ci;
    const core_conf_t *c = core_get_conf(n->core, &ci);
    if (ev->type == CORE_EV_CONF_CHANGED && ci < n->conf_cmd_index) {
        fail_cmd(n, n->conf_cmd, RK_ELEADERLOST, "configuration change rolled back");
        n->conf_cmd = NULL;
        return;
    }
    if (ev->type == CORE_EV_CONF_COMMITTED && ev->index >= n->conf_cmd_index && !c->joint &&
        ev->index >= ci) {
        fsm_post_closure(n, n->conf_cmd->done, 0, NULL);
        free(n->conf_cmd);
        n->conf_cmd = NULL;
    }
}

static void handle_update(rk_node_t *n, core_update_t *u)
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
    if (!u->has_snapshot && u->apply_hi >= u->apply_lo && u->apply_hi > 0) {
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
        int rc = persist_update(n, u);
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
    if (!applied && u->apply_hi >= u->apply_lo && u->apply_hi > 0)
        fsm_post_committed(n, u->apply_hi);
    /* 4. reads and events */
    if (n->was_leader && u->n_reads > 0)
        metrics_record(n->metrics, METRIC_HANDLE_READ_INDEX_ENTRIES, u->n_reads);
    for (size_t i = 0; i < u->n_reads; i++) {
        const core_read_state_t *r = &u->reads[i];
        node_cmd_t **pp = &n->reads;
        while (*pp && (*pp)->id != r->ctx)
            pp = &(*pp)->next;
        if (*pp == NULL)
            continue;
        node_cmd_t *c = *pp;
        *pp = c->next;
        if (n->was_leader && r->status == 0)
            metrics_record_since(n->metrics, METRIC_HANDLE_READ_INDEX, c->t0_ns);
        node_post_read_result(n, c, r->status, r->index,
                              r->status ? "the leader could not confirm the read" : NULL);
    }
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

/* ---------------------------------------------------------- commands */

void node_post_read_result(rk_node_t *n, node_cmd_t *c, int code, uint64_t index, const char *msg)
{
    fsm_item_t *it = calloc(1, sizeof(*it));
    if (it == NULL) {
        free(c->ctx);
        free(c);
        return;
    }
    it->read_done = c->read_done;
    it->ctx = c->ctx;
    it->ctx_len = c->ctx_len;
    it->t0_ns = c->t0_ns;
    if (code == 0) {
        it->type = FSM_READ;
        it->a = index;
    } else {
        it->type = FSM_READ; /* a failed read: st carries the error */
        it->a = 0;
        rk_status_set(&it->st, code, "%s", msg ? msg : "");
    }
    free(c);
    fsm_post(n, it);
}

static void run_change_conf(rk_node_t *n, node_cmd_t *c)
{
    core_status_t cs;
    core_get_status(n->core, &cs);
    if (cs.role != CORE_LEADER) {
        fail_cmd(n, c, RK_ENOTLEADER, "not the leader");
        return;
    }
    if (n->conf_cmd != NULL || catchup_busy(n)) {
        fail_cmd(n, c, RK_ECONFCHANGE, "a configuration change is in progress");
        return;
    }
    uint64_t ci;
    const core_conf_t *cur = core_get_conf(n->core, &ci);
    if (cur->joint) {
        fail_cmd(n, c, RK_ECONFCHANGE, "a joint configuration is in progress");
        return;
    }
    rk_configuration_t t = cur->cur;
    int rc = 0;
    switch (c->conf_op) {
    case 0:
        t = c->conf;
        break; /* change_peers */
    case 1:
        rc = rk_configuration_add_peer(&t, &c->peers[0]);
        break;
    case 2:
        rc = rk_configuration_remove_peer(&t, &c->peers[0]);
        break;
    case 3:
        for (size_t i = 0; i < c->n_peers && rc == 0; i++)
            rc = rk_configuration_add_learner(&t, &c->peers[i]);
        break;
    case 4:
        for (size_t i = 0; i < c->n_peers && rc == 0; i++)
            rc = rk_configuration_remove_learner(&t, &c->peers[i]);
        break;
    case 5:
        t.n_learners = 0;
        for (size_t i = 0; i < c->n_peers && rc == 0; i++)
            rc = rk_configuration_add_learner(&t, &c->peers[i]);
        break;
    }
    if (rc != 0) {
        fail_cmd(n, c, rc,
                 rc == RK_EEXIST ? "peer already in the configuration"
                                 : "peer not in the configuration");
        return;
    }
    if (rk_configuration_equal(&t, &cur->cur)) {
        fsm_post_closure(n, c->done, 0, NULL);
        free(c);
        return;
    }
    /* New voters catch up as learners first (thesis 4.2.1). */
    rc = catchup_begin(n, c, cur, &t);
    if (rc <= 0) {
        if (rc < 0)
            fail_cmd(n, c, rc, "change refused");
        return;
    }
    uint64_t idx = 0;
    rc = core_change_conf(n->core, &t, &idx);
    if (rc != 0) {
        fail_cmd(n, c, rc, "change refused");
        return;
    }
    n->conf_cmd = c;
    n->conf_cmd_index = idx;
}

static void run_cmd(rk_node_t *n, node_cmd_t *c)
{
    if (n->stopping) {
        fail_cmd(n, c, RK_ESHUTDOWN, "node is shutting down");
        return;
    }
    switch (c->type) {
    case CMD_CHANGE_CONF:
        run_change_conf(n, c);
        break;
    case CMD_SNAPSHOT:
        snap_exec_maybe_start(n, c->done, true);
        free(c);
        break;
    case CMD_READ: {
        c->id = ++n->next_read_id;
        int rc = core_read_index(n->core, c->id);
        if (rc != 0) {
            fail_cmd(n, c, rc, rc == RK_ENOLEADER ? "no leader known" : "read refused");
            return;
        }
        c->deadline = node_now_ms(n) + 3 * (uint64_t)n->opts.election_timeout_ms;
        c->next = n->reads;
        n->reads = c;
        break;
    }
    case CMD_SNAPSHOT_DONE:
        n->snapshot_running = false;
        if (c->status == 0 && c->id > 0) {
            snap_after_save(n, c->id, c->n_peers, &c->snap_conf);
        }
        free(c);
        break;
    case CMD_TRANSFER:
        free(c);
        break;
    }
}

void node_on_snapshot_saved(rk_node_t *n, uint64_t index, uint64_t term, const core_conf_t *conf,
                            int status)
{
    node_cmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->type = CMD_SNAPSHOT_DONE;
    c->id = index;
    c->n_peers = term;
    if (conf)
        c->snap_conf = *conf;
    c->status = status;
    if (node_post_cmd(n, c) != 0)
        free(c); /* the node stopped: nothing is left to do with it */
}

/* ------------------------------------------------------- the drive */

static void drain_tasks(rk_node_t *n)
{
    enum { MAX = 1024 };
    node_task_t batch[MAX];
    for (;;) {
        size_t k = 0;
        pthread_mutex_lock(&n->mu);
        while (k < MAX && n->task_count > 0) {
            batch[k++] = n->tasks[n->task_head];
            n->task_head = (n->task_head + 1) % n->task_cap;
            n->task_count--;
        }
        pthread_mutex_unlock(&n->mu);
        if (k == 0)
            return;
        core_status_t cs;
        core_get_status(n->core, &cs);
        core_entry_t ents[MAX];
        size_t m = 0;
        for (size_t i = 0; i < k; i++) {
            node_task_t *t = &batch[i];
            int code = 0;
            const char *why = NULL;
            if (n->stopping)
                code = RK_ESHUTDOWN, why = "node is shutting down";
            else if (n->fatal || in_error(n))
                code = RK_ESTATE, why = "node is in the error state";
            else if (cs.role != CORE_LEADER)
                code = RK_ENOTLEADER, why = "not the leader";
            else if (t->expected_term != -1 && (uint64_t)t->expected_term != cs.term)
                code = RK_ETERM, why = "expected_term differs from the leader's term";
            if (code != 0) {
                fsm_post_closure(n, t->done, code, why);
                buf_unref(t->data);
                t->data = NULL;
                continue;
            }
            ents[m] = (core_entry_t){.type = CORE_ENTRY_DATA, .data = t->data};
            batch[m] = *t;
            m++;
        }
        if (m > 0) {
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
        if (k < MAX)
            return;
    }
}

static void drain_cmds(rk_node_t *n)
{
    pthread_mutex_lock(&n->mu);
    node_cmd_t *c = n->cmds;
    n->cmds = n->cmds_tail = NULL;
    pthread_mutex_unlock(&n->mu);
    while (c) {
        node_cmd_t *next = c->next;
        run_cmd(n, c);
        c = next;
    }
}

void node_drive(rk_node_t *n)
{
    if (n->core == NULL)
        return;
    drain_cmds(n);
    if (!n->fatal)
        drain_tasks(n);
    if (n->fatal)
        return;
    uint64_t applied = atomic_load(&n->applied);
    if (applied > n->applied_seen) {
        core_applied(n->core, applied);
        n->applied_seen = applied;
        if (n->opts.snapshot_log_count > 0 && !n->snapshot_running &&
            applied - n->last_snapshot_index >= (uint64_t)n->opts.snapshot_log_count)
            snap_exec_maybe_start(n, NULL, false);
    }
    do {
        while (!n->fatal && core_has_update(n->core)) {
            core_update_t u;
            core_update_get(n->core, &u);
            handle_update(n, &u);
            core_update_release(&u);
            if (n->ack_now != 0 && !n->fatal) {
                core_persisted(n->core, n->ack_now);
                n->persisted_id = n->ack_now;
            }
            n->ack_now = 0;
        }
        /* The round's log writes: when they ran right here (small, writer
         * idle), their completions acked the core already; go again for
         * what that produced (a follower's answer, a leader's commit). */
    } while (log_writer_flush(n->writer) && !n->fatal);
    node_publish_status(n);
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

static void on_tick(uv_timer_t *t)
{
    rk_node_t *n = t->data;
    if (n->stopping || n->fatal)
        return;
    core_tick(n->core);
    catchup_tick(n);
    uint64_t now = node_now_ms(n);
    /* reads the core never answered (lost messages) time out */
    node_cmd_t **pp = &n->reads;
    while (*pp) {
        node_cmd_t *c = *pp;
        if (c->deadline <= now) {
            *pp = c->next;
            node_post_read_result(n, c, RK_ETIMEDOUT, 0, "read index timed out");
        } else {
            pp = &c->next;
        }
    }
    if (n->opts.snapshot_interval_secs > 0 && now >= n->snapshot_due_ms) {
        n->snapshot_due_ms = now + (uint64_t)n->opts.snapshot_interval_secs * 1000;
        if (!n->snapshot_running && atomic_load(&n->applied) > n->last_snapshot_index)
            snap_exec_maybe_start(n, NULL, false);
    }
    node_drive(n);
}

/* ------------------------------------------------------------ startup */

/* The core's options from the node's (one tick = election_timeout_ms / 10). */
static void core_opts_from_node(rk_node_t *n, core_options_t *o)
{
    core_options_init(o);
    o->self = n->self;
    o->self.priority = n->opts.election_priority;
    o->election_ticks = NODE_ELECTION_TICKS;
    o->heartbeat_ticks = 1;
    o->pre_vote = n->opts.raft_options.pre_vote;
    o->check_quorum = n->opts.raft_options.check_quorum;
    o->read_only = n->opts.raft_options.read_only_option == RK_READ_ONLY_LEASE_BASED
                       ? CORE_READ_LEASE
                       : CORE_READ_SAFE;
    /* JRaft: lease = election timeout * leader_lease_time_ratio / 100, in
     * whole ticks (at least one). */
    o->lease_ticks = o->election_ticks * (uint32_t)n->opts.leader_lease_time_ratio / 100;
    if (o->lease_ticks == 0)
        o->lease_ticks = 1;
    o->max_inflight_msgs = n->opts.raft_options.replicator_pipeline
                               ? (uint32_t)n->opts.raft_options.max_replicator_inflight_msgs
                               : 1;
    o->max_entries_per_msg = (uint32_t)n->opts.raft_options.max_entries_size;
    o->max_bytes_per_msg = (uint64_t)n->opts.raft_options.max_body_size;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Finds the configuration in effect: the last CONF entry after the snapshot,
 * else the snapshot's, else the bootstrap configuration. Reads only entries
 * after the snapshot (those startup replays anyway). */
static int recover_conf(rk_node_t *n, core_init_t *in, bool have_snap, rk_status_t *err)
{
    core_conf_t base;
    if (have_snap) {
        base = in->snapshot.conf;
        in->conf_index = in->snapshot.index;
    } else {
        node_conf_to_core(&n->opts.initial_conf, &base);
        in->conf_index = 0;
    }
    in->conf = base;
    in->prev_conf = base;
    uint64_t lo = (have_snap ? in->snapshot.index : 0) + 1;
    if (lo < log_store_first_index(n->store))
        lo = log_store_first_index(n->store);
    uint64_t last = log_store_last_index(n->store);
    while (lo <= last) {
        log_entry_t *ents = NULL;
        size_t cnt = 0;
        int rc = log_store_fetch(n->store, lo, 4096, 64u << 20, &ents, &cnt, err);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < cnt; i++) {
            if (ents[i].type != LOG_ENTRY_CONF)
                continue;
            core_conf_t c;
            if (core_conf_decode(ents[i].data, ents[i].len, &c) != 0) {
                log_entries_free(ents, cnt);
                return rk_status_set(err, RK_ECORRUPT, "bad configuration entry %llu",
                                     (unsigned long long)ents[i].index);
            }
            in->prev_conf = in->conf;
            in->conf = c;
            in->conf_index = ents[i].index;
        }
        lo += cnt;
        log_entries_free(ents, cnt);
    }
    if (in->conf_index <= in->hs.commit)
        in->prev_conf = in->conf;
    return 0;
}

/* A configuration forced by reset_peers that the log does not carry yet
 * wins over the log's (forced_conf.c); this node re-proposes it as leader. */
static int recover_forced_conf(rk_node_t *n, core_init_t *in, rk_status_t *err)
{
    core_conf_t fc;
    uint64_t index = 0;
    int rc = forced_conf_load(n, &fc, &index);
    if (rc == RK_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rk_status_set(err, rc, "forced configuration (reset_peers): %s", rk_strerror(rc));
    if (index < in->conf_index) { /* the log has a newer configuration */
        forced_conf_remove(n);
        return 0;
    }
    in->conf = fc;
    in->prev_conf = fc;
    in->conf_index = index < in->last_index ? index : in->last_index;
    n->reset_pending_conf = true;
    RK_WARN(n->group, n->self_str, "using the configuration forced by reset_peers at index %llu",
            (unsigned long long)index);
    return 0;
}

static int open_storage(rk_node_t *n, core_init_t *in, rk_status_t *err)
{
    if (mkdir_p(n->log_dir) != 0 || mkdir_p(n->snap_dir) != 0)
        return rk_status_set(err, RK_EIO, "cannot create %s: %s", n->opts.data_path,
                             strerror(errno));
    log_env_options_t eo;
    log_env_options_init(&eo);
    eo.sync = n->opts.raft_options.sync;
    int rc = log_env_open(n->log_dir, &eo, &n->env, err);
    if (rc != 0)
        return rc;
    if ((rc = log_store_open(n->env, n->group, NULL, &n->store, err)) != 0)
        return rc;
    if ((rc = snap_store_open(n->snap_dir, &n->snaps, err)) != 0)
        return rc;
    meta_hard_state_t hs;
    if ((rc = meta_store_load(n->store, &hs, err)) != 0)
        return rc;
    in->hs.term = hs.term;
    in->hs.commit = hs.commit;
    if (hs.voted_for[0] != '\0' && rk_peer_id_parse(&in->hs.vote, hs.voted_for, NULL) != 0)
        return rk_status_set(err, RK_ECORRUPT, "bad voted_for '%s'", hs.voted_for);
    /* what is durable now, spelled as persist_update spells it */
    memset(&n->hs_submitted, 0, sizeof(n->hs_submitted));
    n->hs_submitted.term = hs.term;
    n->hs_submitted.commit = hs.commit;
    if (!core_peer_is_none(&in->hs.vote))
        rk_peer_id_format(&in->hs.vote, n->hs_submitted.voted_for,
                          sizeof(n->hs_submitted.voted_for));
    n->hs_submitted_valid = true;

    bool have_snap = false;
    snap_reader_t *r = NULL;
    rc = snap_reader_open(n->snaps, &r, err);
    if (rc == 0) {
        const snap_meta_t *m = snap_reader_meta(r);
        in->snapshot.index = m->last_index;
        in->snapshot.term = m->last_term;
        in->snapshot.conf.cur = m->conf;
        in->snapshot.conf.joint = m->has_old_conf;
        if (m->has_old_conf)
            in->snapshot.conf.old = m->old_conf;
        have_snap = true;
        snap_reader_close(r);
    } else if (rc != RK_ENOTFOUND) {
        return rc;
    }
    uint64_t first = log_store_first_index(n->store);
    uint64_t last = log_store_last_index(n->store);
    if (!have_snap && last == 0 && in->hs.term == 0 && n->opts.initial_conf.n_peers > 0) {
        /* Bootstrap: every initial member writes the same configuration entry
         * at index 1, term 1 (as etcd does), so the membership is in the log
         * and a restart needs no initial_conf. Identical entries on every
         * member keep the Log Matching property (section 5.3). */
        core_conf_t cc;
        node_conf_to_core(&n->opts.initial_conf, &cc);
        buf_t *b = core_conf_encode(&cc);
        if (b == NULL)
            return rk_status_set(err, RK_ENOMEM, "bootstrap configuration");
        log_entry_t e = {
            .index = 1, .term = 1, .type = LOG_ENTRY_CONF, .data = b->data, .len = b->len};
        meta_hard_state_t bhs = {.term = 1, .commit = 1};
        log_op_t op = {.store = n->store,
                       .kind = LOG_OP_APPEND,
                       .truncate_from = 1,
                       .entries = &e,
                       .n_entries = 1,
                       .hard_state = &bhs};
        rc = log_store_write(n->env, &op, 1, err);
        buf_unref(b);
        if (rc == 0)
            rc = op.status;
        if (rc != 0)
            return rc;
        in->hs.term = 1;
        in->hs.commit = 1;
        last = 1;
    }
    if (have_snap && (in->snapshot.index > last || in->snapshot.index + 1 < first)) {
        /* crashed between installing a snapshot and resetting the log */
        if ((rc = log_store_reset(n->store, in->snapshot.index, in->snapshot.term, err)) != 0)
            return rc;
        first = log_store_first_index(n->store);
        last = log_store_last_index(n->store);
    }
    in->compact_index = first - 1;
    in->compact_term = 0;
    if (in->compact_index > 0 &&
        (rc = log_store_term(n->store, in->compact_index, &in->compact_term, err)) != 0)
        return rc;
    in->last_index = last;
    in->last_term = in->compact_term;
    if (last > in->compact_index && (rc = log_store_term(n->store, last, &in->last_term, err)) != 0)
        return rc;
    if (have_snap && in->hs.commit < in->snapshot.index)
        in->hs.commit = in->snapshot.index;
    if (in->hs.commit > last)
        in->hs.commit = last;
    in->applied = have_snap ? in->snapshot.index : 0;
    n->last_snapshot_index = in->snapshot.index;
    n->last_snapshot_term = in->snapshot.term;
    if ((rc = recover_conf(n, in, have_snap, err)) != 0)
        return rc;
    if ((rc = recover_forced_conf(n, in, err)) != 0)
        return rc;
    rk_status_t cst;
    if (rk_configuration_validate(&in->conf.cur, &cst) != 0)
        return rk_status_set(err, RK_ECONF, "configuration: %s", cst.msg);
    n->fsm_conf = in->conf; /* replay re-applies later CONF entries anyway */
    if (have_snap)
        n->fsm_conf = in->snapshot.conf;
    else
        node_conf_to_core(&n->opts.initial_conf, &n->fsm_conf);
    RK_INFO(n->group, n->self_str,
            "recovered: term %llu commit %llu log [%llu, %llu] snapshot %llu conf@%llu",
            (unsigned long long)in->hs.term, (unsigned long long)in->hs.commit,
            (unsigned long long)first, (unsigned long long)last,
            (unsigned long long)in->snapshot.index, (unsigned long long)in->conf_index);
    return 0;
}

typedef struct start_arg {
    rk_node_t *n;
    core_init_t *in;
    int rc;
    rk_status_t *err;
} start_arg_t;

static void start_on_loop(void *p)
{
    start_arg_t *a = p;
    rk_node_t *n = a->n;
    rk_status_t st;
    log_writer_options_t wo = {.max_batch_bytes =
                                   (size_t)n->opts.raft_options.max_append_buffer_size};
    int rc = log_writer_start(n->env, &n->rt->loop, &wo, &n->writer, &st);
    if (rc != 0) {
        a->rc = rk_status_set(a->err, rc, "log writer: %s", st.msg);
        return;
    }
    core_storage_t cst = {.arg = n, .term = st_term, .entries = st_entries};
    int err = 0;
    n->core = core_new(a->in, &cst, &err);
    if (n->core == NULL) {
        a->rc = rk_status_set(a->err, err ? err : RK_ENOMEM, "raft core: %s", rk_strerror(err));
        return;
    }
    if ((rc = transport_add_node(n)) != 0) {
        a->rc = rk_status_set(a->err, rc, "registering %s/%s with the RPC server", n->group,
                              n->self_str);
        return;
    }
    uv_timer_init(&n->rt->loop, &n->tick_timer);
    n->tick_timer.data = n;
    uv_async_init(&n->rt->loop, &n->wake, on_wake);
    n->wake.data = n;
    uv_idle_init(&n->rt->loop, &n->kick_idle);
    n->kick_idle.data = n;
    uv_check_init(&n->rt->loop, &n->kick_check);
    n->kick_check.data = n;
    uv_check_start(&n->kick_check, on_kick);
    pthread_mutex_lock(&n->mu);
    n->handles_open = true;
    pthread_mutex_unlock(&n->mu);
    uint64_t tick = (uint64_t)n->opts.election_timeout_ms / NODE_ELECTION_TICKS;
    uv_timer_start(&n->tick_timer, on_tick, tick, tick);
    n->snapshot_due_ms = node_now_ms(n) + (uint64_t)n->opts.snapshot_interval_secs * 1000;
    node_publish_status(n);
    node_drive(n);
    a->rc = 0;
}

int node_start(rk_node_t *n, rk_status_t *err)
{
    core_init_t in;
    memset(&in, 0, sizeof(in));
    int rc = open_storage(n, &in, err);
    if (rc != 0)
        return rc;
    if ((rc = node_obs_init(n, err)) != 0)
        return rc;
    core_opts_from_node(n, &in.opts);
    uint64_t seed = (uint64_t)uv_hrtime();
    for (const char *p = n->self_str; *p; p++)
        seed = seed * 1099511628211ull ^ (uint8_t)*p;
    in.opts.seed = seed;
    atomic_store(&n->applied, 0);
    if ((rc = fsm_start(n)) != 0)
        return rk_status_set(err, rc, "FSM thread");
    if (in.snapshot.index > 0)
        fsm_post_simple(n, FSM_SNAPSHOT_LOAD, in.snapshot.index, NULL);
    start_arg_t a = {.n = n, .in = &in, .err = err};
    if (node_rt_call(n->rt, start_on_loop, &a) != 0)
        return rk_status_set(err, RK_ESHUTDOWN, "runtime stopped");
    return a.rc;
}

/* --------------------------------------------------------- shutdown */

static void handle_closed(uv_handle_t *h)
{
    rk_node_t *n = h->data;
    n->close_pending--;
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
    set_state(n, RK_STATE_SHUTTING);
    if (n->core) {
        node_publish_status(n); /* listeners hear of the shutdown */
        transport_remove_node(n);
        drain_cmds(n);
        drain_tasks(n);
        while (n->reads) {
            node_cmd_t *c = n->reads;
            n->reads = c->next;
            node_post_read_result(n, c, RK_ESHUTDOWN, 0, "node shut down");
        }
        if (n->conf_cmd) {
            fail_cmd(n, n->conf_cmd, RK_ESHUTDOWN, "node shut down");
            n->conf_cmd = NULL;
        }
        catchup_abort(n, RK_ESHUTDOWN, "node shut down");
        snap_stop(n);
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
        uv_close((uv_handle_t *)&n->wake, handle_closed);
        uv_close((uv_handle_t *)&n->kick_idle, handle_closed);
        uv_close((uv_handle_t *)&n->kick_check, handle_closed);
    }
    if (n->fsm_started)
        fsm_post_simple(n, FSM_SHUTDOWN, 0, NULL);
}

/* -------------------------------------------------------- public API */

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
        rc = RK_EBUSY;
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
        uv_async_send(&n->wake);
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
        free(c->ctx);
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
    c->read_done = done;
    c->t0_ns = metrics_now_ns();
    if (len > 0) {
        if ((c->ctx = malloc(len)) == NULL) {
            free(c);
            return RK_ENOMEM;
        }
        memcpy(c->ctx, ctx, len);
        c->ctx_len = len;
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
    c->done = done;
    return post_new_cmd(n, c);
}

static int conf_cmd(rk_node_t *n, int op, const rk_configuration_t *conf, const rk_peer_id_t *peers,
                    size_t count, rk_closure_t *done)
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
    c->conf_op = op;
    if (conf)
        c->conf = *conf;
    for (size_t i = 0; i < count; i++)
        c->peers[i] = peers[i];
    c->n_peers = count;
    c->done = done;
    return post_new_cmd(n, c);
}

int rk_node_add_peer(rk_node_t *n, const rk_peer_id_t *peer, rk_closure_t *done)
{
    return peer ? conf_cmd(n, 1, NULL, peer, 1, done) : RK_EINVAL;
}
int rk_node_remove_peer(rk_node_t *n, const rk_peer_id_t *peer, rk_closure_t *done)
{
    return peer ? conf_cmd(n, 2, NULL, peer, 1, done) : RK_EINVAL;
}
int rk_node_change_peers(rk_node_t *n, const rk_configuration_t *conf, rk_closure_t *done)
{
    return conf ? conf_cmd(n, 0, conf, NULL, 0, done) : RK_EINVAL;
}
int rk_node_add_learners(rk_node_t *n, const rk_peer_id_t *l, size_t count, rk_closure_t *done)
{
    return count ? conf_cmd(n, 3, NULL, l, count, done) : RK_EINVAL;
}
int rk_node_remove_learners(rk_node_t *n, const rk_peer_id_t *l, size_t count, rk_closure_t *done)
{
    return count ? conf_cmd(n, 4, NULL, l, count, done) : RK_EINVAL;
}
int rk_node_reset_learners(rk_node_t *n, const rk_peer_id_t *l, size_t count, rk_closure_t *done)
{
    return conf_cmd(n, 5, NULL, l, count, done);
}

typedef struct sync_arg {
    rk_node_t *n;
    const void *in;
    void *out;
    int rc;
} sync_arg_t;

static void do_transfer(void *p)
{
    sync_arg_t *a = p;
    rk_node_t *n = a->n;
    if (n->stopping || n->core == NULL) {
        a->rc = RK_ESHUTDOWN;
        return;
    }
    a->rc = core_transfer_leader(n->core, a->in);
    node_drive(n);
}

int rk_node_transfer_leadership_to(rk_node_t *n, const rk_peer_id_t *peer)
{
    if (n == NULL || peer == NULL)
        return RK_EINVAL;
    sync_arg_t a = {.n = n, .in = peer};
    if (node_rt_call(n->rt, do_transfer, &a) != 0)
        return RK_ESHUTDOWN;
    return a.rc;
}

/* reset_peers: rebuild the core from durable state with conf forced. Only
 * when no write is in flight, so the durable state is the whole state. */
static void do_reset_peers(void *p)
{
    sync_arg_t *a = p;
    rk_node_t *n = a->n;
    if (n->stopping || n->core == NULL) {
        a->rc = RK_ESHUTDOWN;
        return;
    }
    if (n->persist_head != NULL) {
        a->rc = RK_EAGAIN;
        return;
    }
    core_status_t cs;
    core_get_status(n->core, &cs);
    core_init_t in;
    memset(&in, 0, sizeof(in));
    core_opts_from_node(n, &in.opts);
    in.opts.seed = uv_hrtime();
    in.hs.term = cs.term;
    in.hs.vote = cs.vote;
    in.hs.commit = cs.commit;
    in.snapshot.index = n->last_snapshot_index;
    in.snapshot.term = n->last_snapshot_term;
    in.compact_index = cs.first_index - 1;
    if (in.compact_index > 0 && log_store_term(n->store, in.compact_index, &in.compact_term, NULL))
        in.compact_term = 0;
    in.last_index = cs.last_index;
    in.last_term = cs.last_term;
    node_conf_to_core(a->in, &in.conf);
    in.prev_conf = in.conf;
    in.conf_index = cs.last_index;
    in.snapshot.conf = in.conf;
    in.applied = cs.applied;
    core_storage_t cst = {.arg = n, .term = st_term, .entries = st_entries};
    int err = 0;
    core_t *c = core_new(&in, &cst, &err);
    if (c == NULL) {
        a->rc = err ? err : RK_ENOMEM;
        return;
    }
    /* Durable before we answer: a restart keeps the forced configuration. */
    if ((a->rc = forced_conf_save(n, &in.conf, in.conf_index)) != 0) {
        core_free(c);
        return;
    }
    catchup_abort(n, RK_ELEADERLOST, "peers reset");
    if (cs.role == CORE_LEADER) {
        pend_fail_above(n, cs.commit, RK_ELEADERLOST, "peers reset");
        rk_status_t st;
        rk_status_set(&st, RK_ELEADERLOST, "peers reset");
        fsm_post_simple(n, FSM_LEADER_STOP, cs.term, &st);
    }
    core_free(n->core);
    n->core = c;
    n->reset_pending_conf = true;
    RK_WARN(n->group, n->self_str, "peers reset by the operator; committed data may be lost");
    a->rc = 0;
    node_drive(n);
}

int rk_node_reset_peers(rk_node_t *n, const rk_configuration_t *conf)
{
    if (n == NULL || conf == NULL || conf->n_peers == 0)
        return RK_EINVAL;
    rk_status_t st;
    if (rk_configuration_validate(conf, &st) != 0)
        return RK_EINVAL;
    for (int tries = 0; tries < 1000; tries++) {
        sync_arg_t a = {.n = n, .in = conf};
        if (node_rt_call(n->rt, do_reset_peers, &a) != 0)
            return RK_ESHUTDOWN;
        if (a.rc != RK_EAGAIN)
            return a.rc;
        uv_sleep(2);
    }
    return RK_EBUSY;
}

/* ---- getters ---- */

rk_node_state_t rk_node_state(rk_node_t *n)
{
    pthread_mutex_lock(&n->st_mu);
    rk_node_state_t s = n->state;
    pthread_mutex_unlock(&n->st_mu);
    return s;
}

bool rk_node_is_leader(rk_node_t *n)
{
    rk_node_state_t s = rk_node_state(n);
    return s == RK_STATE_LEADER || s == RK_STATE_TRANSFERRING;
}

int rk_node_leader_id(rk_node_t *n, rk_peer_id_t *out)
{
    pthread_mutex_lock(&n->st_mu);
    *out = n->cst.leader;
    pthread_mutex_unlock(&n->st_mu);
    return core_peer_is_none(out) ? RK_ENOLEADER : 0;
}

#define GETTER(name, field)                \
    int64_t name(rk_node_t *n)             \
    {                                      \
        pthread_mutex_lock(&n->st_mu);     \
        int64_t v = (int64_t)n->cst.field; \
        pthread_mutex_unlock(&n->st_mu);   \
        return v;                          \
    }
GETTER(rk_node_term, term)
GETTER(rk_node_last_log_index, last_index)
GETTER(rk_node_committed_index, commit)

int64_t rk_node_applied_index(rk_node_t *n)
{
    return (int64_t)atomic_load(&n->applied);
}
const char *rk_node_group_id(rk_node_t *n)
{
    return n->group;
}
void rk_node_self(rk_node_t *n, rk_peer_id_t *out)
{
    *out = n->self;
}

void rk_node_list_peers(rk_node_t *n, rk_configuration_t *out)
{
    pthread_mutex_lock(&n->st_mu);
    *out = n->conf.cur;
    pthread_mutex_unlock(&n->st_mu);
}

int rk_node_list_alive_peers(rk_node_t *n, rk_configuration_t *out)
{
    pthread_mutex_lock(&n->st_mu);
    bool ok = n->alive_valid;
    *out = n->alive;
    pthread_mutex_unlock(&n->st_mu);
    if (!ok)
        rk_configuration_init(out);
    return ok ? 0 : RK_ENOTLEADER;
}

void rk_node_list_learners(rk_node_t *n, rk_peer_id_t *out, size_t *count)
{
    pthread_mutex_lock(&n->st_mu);
    size_t k = n->conf.cur.n_learners < *count ? n->conf.cur.n_learners : *count;
    for (size_t i = 0; i < k; i++)
        out[i] = n->conf.cur.learners[i];
    *count = n->conf.cur.n_learners;
    pthread_mutex_unlock(&n->st_mu);
}
