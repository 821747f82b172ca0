/* The persistence pipeline: each core update's durable state (hard state,
 * snapshot reset, entries) goes to the log writer thread as held requests;
 * completions come back on the loop in submission order and acknowledge the
 * updates to the core in update order (core_persisted), after which the
 * messages that waited for durability (msgs_after) are sent.
 */
#include <stdlib.h>
#include <string.h>

#include "src/metrics/metrics.h"
#include "src/node/node_internal.h"

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

static void record_write_metrics(rk_node_t *n, const node_persist_t *p)
{
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
            node_storage_failed(n);
        } else if (!n->stopping && !n->fatal) {
            record_write_metrics(n, p);
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
    p->node->log_reqs--;
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

/* The log records of u's entries; p holds a reference on each payload. */
static int copy_entries(node_persist_t *p, const core_update_t *u)
{
    if (u->n_entries == 0)
        return 0;
    p->entries = calloc(u->n_entries, sizeof(*p->entries));
    p->bufs = calloc(u->n_entries, sizeof(*p->bufs));
    if (p->entries == NULL || p->bufs == NULL)
        return RK_ENOMEM;
    for (size_t i = 0; i < u->n_entries; i++) {
        const core_entry_t *e = &u->entries[i];
        p->bufs[i] = buf_ref(e->data);
        p->entries[i] = (log_entry_t){.index = e->index,
                                      .term = e->term,
                                      .type = node_log_entry_type(e->type),
                                      .data = e->data ? e->data->data : NULL,
                                      .len = buf_len(e->data)};
    }
    p->n = u->n_entries;
    return 0;
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

/* Takes p, the list's tail, off the list again. */
static void unlink_tail(rk_node_t *n, node_persist_t *p)
{
    node_persist_t **pp = &n->persist_head;
    node_persist_t *prev = NULL;
    while (*pp != p)
        prev = *pp, pp = &(*pp)->next;
    *pp = NULL;
    n->persist_tail = prev;
}

/* The hard state of u as the meta store spells it (zero when u has none). */
static void hard_state_of(const core_update_t *u, meta_hard_state_t *hs)
{
    memset(hs, 0, sizeof(*hs));
    if (!u->has_hard_state)
        return;
    hs->term = u->hs.term;
    hs->commit = u->hs.commit;
    if (!core_peer_is_none(&u->hs.vote))
        rk_peer_id_format(&u->hs.vote, hs->voted_for, sizeof(hs->voted_for));
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

/* An update with nothing to write: its commit index waits in hs_lazy; it is
 * acked (and its msgs_after sent) at once when no write is in flight, else
 * once every update before it is. */
static int persist_commit_only(rk_node_t *n, const core_update_t *u, const meta_hard_state_t *hs)
{
    if (u->has_hard_state) {
        n->hs_lazy = *hs;
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

/* The hard state p writes: u's own, or else a lazy commit-only one riding
 * along with entries or a snapshot. Returns whether p writes one. */
static bool take_hard_state(rk_node_t *n, node_persist_t *p, const core_update_t *u,
                            const meta_hard_state_t *hs)
{
    bool has_hs = u->has_hard_state;
    if (has_hs) {
        p->hs = *hs;
        n->hs_lazy_pending = false;
    } else if (n->hs_lazy_pending && (p->n > 0 || u->has_snapshot)) {
        p->hs = n->hs_lazy;
        has_hs = true;
        n->hs_lazy_pending = false;
    }
    if (has_hs) {
        n->hs_submitted = p->hs;
        n->hs_submitted_valid = true;
    }
    return has_hs;
}

/* p's log writer requests: a log reset to the snapshot, then the append. */
static void prepare_requests(rk_node_t *n, node_persist_t *p, const core_update_t *u, bool has_hs)
{
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
}

/* Submits p's requests, held: the runtime flushes them at the end of the
 * loop iteration (node_rt_storage_flush). Returns RK_ESHUTDOWN, p freed,
 * when the writer took none of them. */
static int submit_requests(rk_node_t *n, node_persist_t *p, bool has_snapshot)
{
    if (has_snapshot && node_storage_submit_held(n, &p->reset_req, persist_done) != 0)
        p->reqs_left--, p->status = RK_ESHUTDOWN;
    else if (has_snapshot)
        n->log_reqs++;
    if (node_storage_submit_held(n, &p->append_req, persist_done) != 0) {
        p->reqs_left--, p->status = RK_ESHUTDOWN;
        if (p->reqs_left == 0) {
            unlink_tail(n, p);
            persist_free(p);
            return RK_ESHUTDOWN;
        }
    } else {
        n->log_reqs++;
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
int node_persist_update(rk_node_t *n, const core_update_t *u)
{
    meta_hard_state_t hs;
    hard_state_of(u, &hs);
    if (nothing_to_write(n, u, &hs))
        return persist_commit_only(n, u, &hs);
    node_persist_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return RK_ENOMEM;
    p->node = n;
    p->id = u->id;
    p->t0_ns = metrics_now_ns();
    p->has_snapshot = u->has_snapshot;
    p->snapshot_index = u->snapshot.index;
    if (copy_entries(p, u) != 0 || copy_after(p, u) != 0) {
        persist_free(p);
        return RK_ENOMEM;
    }
    bool has_hs = take_hard_state(n, p, u, &hs);
    append_persist(n, p);
    prepare_requests(n, p, u, has_hs);
    return submit_requests(n, p, u->has_snapshot);
}
