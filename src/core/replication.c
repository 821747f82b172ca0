/* Log replication (§5.3): the leader's appends with probing, pipelining
 * within an inflight window and fast backtracking; the follower's
 * consistency check and truncation; commitment by counting replicas of
 * current-term entries only (§5.4.2, Fig. 3.7). */
#include "src/core/core_internal.h"

/* Leader: assign term and index to ents and append them to the unstable log.
 * The leader's own match moves only when the host acks the write
 * (thesis 10.2.1), see repl_self_persisted. */
int repl_append_local(core_t *c, core_entry_t *ents, size_t n)
{
    uint64_t li = log_last_index(c);
    for (size_t i = 0; i < n; i++) {
        ents[i].term = c->term;
        ents[i].index = li + 1 + i;
    }
    int rv = log_append(c, ents, n);
    if (rv != 0) {
        core_set_fatal(c, rv);
        return rv;
    }
    return conf_apply_entries(c, ents, n);
}

int core_propose(core_t *c, const core_entry_t *entries, size_t n, uint64_t *first_index,
                 uint64_t *term)
{
    if (c->fatal)
        return RK_ESTATE;
    if (c->role != CORE_LEADER)
        return RK_ENOTLEADER;
    quiesce_wake(c);
    if (c->transferring)
        return RK_ETRANSFER;
    if (n == 0 || entries == NULL)
        return RK_EINVAL;
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (entries[i].type == CORE_ENTRY_CONF)
            return RK_EINVAL;
        bytes += buf_len(entries[i].data);
    }
    /* Uncommitted-size cap: empty proposals always pass; one large proposal
     * passes when we were under the cap before it (etcd semantics). */
    if (c->o.max_uncommitted_bytes > 0 && bytes > 0 && c->uncommitted_bytes > 0 &&
        c->uncommitted_bytes + bytes > c->o.max_uncommitted_bytes)
        return RK_EBUSY;
    core_entry_t stackbuf[16];
    core_entry_t *ents = n <= 16 ? stackbuf : malloc(n * sizeof *ents);
    if (ents == NULL)
        return RK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        ents[i].type = entries[i].type;
        ents[i].data = entries[i].data;
    }
    int rv = repl_append_local(c, ents, n);
    if (rv == 0) {
        if (first_index)
            *first_index = ents[0].index;
        if (term)
            *term = c->term;
        if (bytes > 0) {
            core_inflight_t *u = VEC_PUSH(c->uncommitted);
            if (u != NULL) {
                u->last = ents[n - 1].index;
                u->bytes = bytes;
                c->uncommitted_bytes += bytes;
            }
        }
        repl_bcast_append(c);
    }
    if (ents != stackbuf)
        free(ents);
    return rv;
}

/* Sends the next append to pr if its flow state allows; falls back to a
 * snapshot when the entries are compacted. Returns true if a message went. */
bool repl_send_append(core_t *c, core_progress_t *pr, bool send_if_empty)
{
    if (pr->is_self || c->fatal || progress_is_paused(c, pr))
        return false;
    if (pr->state == CORE_PR_REPLICATE && progress_infl_reserve(c, pr) != 0)
        return false; /* out of memory: like a full window, retried later */
    uint64_t prev = pr->next - 1, prev_term;
    if (log_term(c, prev, &prev_term) != 0)
        return snap_send(c, pr);
    core_entry_t *ents = NULL;
    size_t n = 0;
    int rv = log_entries(c, pr->next, log_last_index(c) + 1, c->o.max_bytes_per_msg,
                         c->o.max_entries_per_msg, &ents, &n);
    if (rv == RK_ENOTFOUND)
        return snap_send(c, pr);
    if (rv != 0)
        return false;
    if (n == 0 && !send_if_empty) {
        free(ents);
        return false;
    }
    core_msg_t *m = core_msg_new(c, CORE_MSG_APP, &pr->id, false);
    if (m == NULL) {
        core_entries_free(ents, n);
        return false;
    }
    m->term = c->term;
    m->index = prev;
    m->log_term = prev_term;
    m->commit = c->log.commit;
    m->entries = ents;
    m->n_entries = n;
    pr->sent_commit = c->log.commit;
    if (pr->state == CORE_PR_REPLICATE) {
        if (n > 0) {
            /* Pipelining: optimistically advance next (thesis 10.2.2). */
            uint64_t bytes = 0;
            for (size_t i = 0; i < n; i++)
                bytes += core_entry_size(&ents[i]);
            pr->next = ents[n - 1].index + 1;
            progress_infl_add(pr, ents[n - 1].index, bytes);
        }
    } else {
        pr->probe_sent = true; /* probe: one message, then wait for the answer */
    }
    return true;
}

void repl_bcast_append(core_t *c)
{
    for (size_t i = 0; i < c->n_prs; i++)
        repl_send_append(c, &c->prs[i], false);
}

/* The commit index moved: followers learn it from the next append. Rather
 * than one empty append per follower per advance (etcd's bcastAppend), the
 * news is sent once, when the update is built (repl_flush_commit), to the
 * followers that no append of this batch told: a leader handling a burst of
 * acks sends one message per follower, not one per ack. */
static void bcast_append_commit(core_t *c)
{
    c->commit_bcast_pending = true;
}

void repl_flush_commit(core_t *c)
{
    if (!c->commit_bcast_pending)
        return;
    c->commit_bcast_pending = false;
    if (c->role != CORE_LEADER)
        return;
    for (size_t i = 0; i < c->n_prs; i++) {
        core_progress_t *pr = &c->prs[i];
        if (!pr->is_self && pr->sent_commit < c->log.commit)
            repl_send_append(c, pr, true);
    }
}

void repl_bcast_heartbeat(core_t *c, uint64_t ctx)
{
    read_round_sent(c, ctx);
    for (size_t i = 0; i < c->n_prs; i++) {
        core_progress_t *pr = &c->prs[i];
        if (pr->is_self)
            continue;
        core_msg_t *m = core_msg_new(c, CORE_MSG_HEARTBEAT, &pr->id, false);
        if (m == NULL)
            return;
        m->term = c->term;
        /* Never tell a follower to commit past what it is known to hold:
         * its tail beyond match may still differ from ours. */
        m->commit = pr->match < c->log.commit ? pr->match : c->log.commit;
        m->ctx = ctx;
    }
}

static void send_app_resp(core_t *c, const rk_peer_id_t *to, uint64_t index)
{
    core_msg_t *r = core_msg_new(c, CORE_MSG_APP_RESP, to, true);
    if (r == NULL)
        return;
    r->term = c->term;
    r->index = index;
}

static void follower_commit_to(core_t *c, uint64_t index)
{
    uint64_t old = c->log.commit;
    log_commit_to(c, index);
    if (c->log.commit != old)
        repl_after_commit(c, old);
}

/* Follower side of AppendEntries (§5.3, Fig. 3.1 receiver rules). */
void repl_handle_append(core_t *c, const core_msg_t *m)
{
    if (m->index < c->log.commit) {
        /* Everything up to our commit is known to match; a leader sending a
         * different entry there breaks Leader Completeness: halt (never
         * overwrite committed data). */
        for (size_t k = 0; k < m->n_entries && m->entries[k].index <= c->log.commit; k++) {
            uint64_t t;
            if (log_term(c, m->entries[k].index, &t) == 0 && t != m->entries[k].term) {
                core_set_fatal(c, RK_ECORRUPT);
                return;
            }
        }
        send_app_resp(c, &m->from, c->log.commit);
        return;
    }
    if (!log_match_term(c, m->index, m->log_term)) {
        if (c->fatal)
            return;
        /* Reject with a hint so the leader can skip a whole term. */
        uint64_t hint = m->index < log_last_index(c) ? m->index : log_last_index(c);
        hint = log_find_conflict_by_term(c, hint, m->log_term);
        core_msg_t *r = core_msg_new(c, CORE_MSG_APP_RESP, &m->from, true);
        if (r == NULL)
            return;
        r->term = c->term;
        r->index = m->index;
        r->reject = true;
        r->reject_hint = hint;
        r->reject_hint_term = log_term_or0(c, hint);
        return;
    }
    uint64_t last_new = m->index + m->n_entries;
    size_t k = 0;
    /* An entry already present never truncates the tail; only a real
     * conflict (same index, different term) does (§5.3 step 3). */
    while (k < m->n_entries && log_match_term(c, m->entries[k].index, m->entries[k].term))
        k++;
    if (c->fatal)
        return;
    if (k < m->n_entries) {
        uint64_t conflict = m->entries[k].index;
        if (conflict <= c->log.commit) {
            core_set_fatal(c, RK_ECORRUPT); /* never silently overwrite committed data */
            return;
        }
        if (conflict <= log_last_index(c) && conf_rollback(c, conflict) != 0)
            return;
        if (log_append(c, m->entries + k, m->n_entries - k) != 0) {
            core_set_fatal(c, RK_ENOMEM);
            return;
        }
        if (conf_apply_entries(c, m->entries + k, m->n_entries - k) != 0)
            return;
    }
    /* §5.3: commit = min(leaderCommit, index of last new entry). */
    follower_commit_to(c, m->commit < last_new ? m->commit : last_new);
    send_app_resp(c, &m->from, last_new);
}

void repl_handle_heartbeat(core_t *c, const core_msg_t *m)
{
    follower_commit_to(c, m->commit);
    bool quiesced = quiesce_follower_notice(c, m);
    core_msg_t *r = core_msg_new(c, CORE_MSG_HEARTBEAT_RESP, &m->from, false);
    if (r == NULL)
        return;
    r->term = c->term;
    r->ctx = m->ctx;
    r->quiesce = quiesced;
}

/* §5.4.2: only entries of the current term are committed by counting
 * replicas; earlier ones are committed indirectly. */
bool repl_maybe_commit(core_t *c)
{
    uint64_t mci = quorum_committed(c, false);
    if (mci <= c->log.commit)
        return false;
    if (log_term_or0(c, mci) != c->term)
        return false;
    uint64_t old = c->log.commit;
    log_commit_to(c, mci);
    repl_after_commit(c, old);
    return true;
}

void repl_after_commit(core_t *c, uint64_t old_commit)
{
    (void)old_commit;
    if (c->role == CORE_LEADER) {
        size_t k = 0;
        while (k < c->uncommitted.n && c->uncommitted.v[k].last <= c->log.commit) {
            c->uncommitted_bytes -= c->uncommitted.v[k].bytes;
            k++;
        }
        if (k > 0) {
            memmove(c->uncommitted.v, c->uncommitted.v + k,
                    (c->uncommitted.n - k) * sizeof *c->uncommitted.v);
            c->uncommitted.n -= k;
        }
        if (!c->committed_in_term && log_term_or0(c, c->log.commit) == c->term) {
            c->committed_in_term = true;
            read_on_commit_in_term(c);
        }
    }
    conf_after_commit(c);
}

/* The host acked writes: the leader's own match follows its durable log. */
void repl_self_persisted(core_t *c)
{
    if (c->role != CORE_LEADER)
        return;
    core_progress_t *self = progress_self(c);
    if (self == NULL)
        return;
    uint64_t stable = log_stable_index(c);
    if (stable > self->match) {
        self->match = stable;
        self->next = stable + 1;
        if (repl_maybe_commit(c) && c->role == CORE_LEADER)
            bcast_append_commit(c);
    }
}

void repl_handle_append_resp(core_t *c, const core_msg_t *m)
{
    core_progress_t *pr = progress_find(c, &m->from);
    if (pr == NULL || pr->is_self)
        return; /* unknown or removed peer: no progress is created */
    pr->recent_active = true;
    pr->ticks_since_contact = 0;
    if (m->reject) {
        uint64_t next_probe = m->reject_hint;
        if (m->reject_hint_term > 0)
            next_probe = log_find_conflict_by_term(c, m->reject_hint, m->reject_hint_term);
        if (progress_maybe_decr_to(pr, m->index, next_probe)) {
            if (pr->state == CORE_PR_REPLICATE)
                progress_become_probe(c, pr);
            repl_send_append(c, pr, true);
        }
        return;
    }
    if (m->index > log_last_index(c))
        return; /* acks beyond our log: from a previous term, ignore */
    bool was_paused = progress_is_paused(c, pr);
    bool updated = progress_maybe_update(pr, m->index);
    if (!updated && !(pr->match == m->index && pr->state == CORE_PR_PROBE))
        return; /* stale or duplicate ack */
    switch (pr->state) {
    case CORE_PR_PROBE:
        progress_become_replicate(pr); /* the probe found the match: stream */
        break;
    case CORE_PR_SNAPSHOT:
        if (pr->match + 1 >= log_first_index(c)) {
            progress_become_probe(c, pr);
            progress_become_replicate(pr);
        }
        break;
    case CORE_PR_REPLICATE:
        progress_infl_free_le(pr, m->index);
        break;
    }
    bool committed = repl_maybe_commit(c);
    if (c->role != CORE_LEADER)
        return;
    pr = progress_find(c, &m->from);
    if (committed)
        bcast_append_commit(c);
    else if (was_paused && pr != NULL)
        repl_send_append(c, pr, true); /* tell a resumed follower the commit index */
    pr = progress_find(c, &m->from);
    if (pr == NULL)
        return;
    while (repl_send_append(c, pr, false))
        ;
    transfer_maybe_timeout_now(c, pr);
}

/* The window is full and the follower still answers heartbeats: the
 * appends may have been lost. An empty append at next-1 outside the window
 * settles it: the follower acks it (freeing the window) or rejects it (and
 * the leader falls back to probing from match+1, scenario 53). */
static void send_window_probe(core_t *c, core_progress_t *pr)
{
    uint64_t prev = pr->next - 1, prev_term;
    if (log_term(c, prev, &prev_term) != 0) {
        /* Compacted meanwhile: restart from match (a snapshot if needed). */
        progress_become_probe(c, pr);
        repl_send_append(c, pr, true);
        return;
    }
    core_msg_t *m = core_msg_new(c, CORE_MSG_APP, &pr->id, false);
    if (m == NULL)
        return;
    m->term = c->term;
    m->index = prev;
    m->log_term = prev_term;
    m->commit = c->log.commit;
}

void repl_handle_heartbeat_resp(core_t *c, const core_msg_t *m)
{
    core_progress_t *pr = progress_find(c, &m->from);
    if (pr == NULL || pr->is_self)
        return;
    pr->recent_active = true;
    pr->ticks_since_contact = 0;
    if (pr->state == CORE_PR_PROBE)
        pr->probe_sent = false;
    /* A heartbeat answer from a lagging or probing follower triggers a fresh
     * append (scenarios 52, 54). */
    if (pr->state == CORE_PR_REPLICATE && progress_is_paused(c, pr) &&
        pr->match < log_last_index(c))
        send_window_probe(c, pr);
    else if (pr->match < log_last_index(c) || pr->state == CORE_PR_PROBE)
        repl_send_append(c, pr, true);
    read_round_acked(c, pr, m->ctx);
    if (m->ctx != 0 && m->ctx > pr->read_ack) {
        pr->read_ack = m->ctx;
        read_on_heartbeat_resp(c);
    }
}
