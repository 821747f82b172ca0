/* The core's entry points: construction, message dispatch by term and role
 * (§5.1: any message with a higher term demotes; lower terms are stale),
 * ticks, host acknowledgements, and building the update the host drains. */
#include "src/core/core_internal.h"

/* ------------------------------------------------------------- helpers */

void *core_vec_push(void *vec_v, void *vec_n, void *vec_cap, size_t elem)
{
    void **v = vec_v;
    size_t *n = vec_n, *cap = vec_cap;
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 8;
        void *p = realloc(*v, nc * elem);
        if (p == NULL)
            return NULL;
        *v = p;
        *cap = nc;
    }
    void *slot = (char *)*v + (*n)++ * elem;
    memset(slot, 0, elem);
    return slot;
}

void core_set_fatal(core_t *c, int code)
{
    if (c->fatal == 0)
        c->fatal = code;
}

/* splitmix64: small, seedable, good enough for timeouts. */
uint64_t core_rand(core_t *c)
{
    uint64_t z = (c->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

core_msg_t *core_msg_new(core_t *c, core_msg_type_t type, const rk_peer_id_t *to, bool after)
{
    core_msg_t *m = after ? VEC_PUSH(c->msgs_after) : VEC_PUSH(c->msgs);
    if (m == NULL) {
        core_set_fatal(c, RK_ENOMEM);
        return NULL;
    }
    m->type = type;
    m->from = c->o.self;
    m->to = *to;
    return m;
}

void core_event(core_t *c, core_event_type_t type, uint64_t index, const rk_peer_id_t *peer,
                int status)
{
    core_event_t *e = VEC_PUSH(c->events);
    if (e == NULL)
        return;
    e->type = type;
    e->role = c->role;
    e->old_role = c->role;
    e->term = c->term;
    e->index = index;
    if (peer != NULL)
        e->peer = *peer;
    e->status = status;
}

void core_msg_free_contents(core_msg_t *m)
{
    core_entries_free(m->entries, m->n_entries);
    m->entries = NULL;
    m->n_entries = 0;
    free(m->snap);
    m->snap = NULL;
}

const char *core_msg_type_name(core_msg_type_t t)
{
    static const char *names[] = {"PreVote", "PreVoteResp", "Vote",      "VoteResp",
                                  "App",     "AppResp",     "Heartbeat", "HeartbeatResp",
                                  "Snap",    "TimeoutNow",  "ReadIndex", "ReadIndexResp"};
    return (unsigned)t < CORE_MSG__COUNT ? names[t] : "?";
}

const char *core_role_name(core_role_t r)
{
    static const char *names[] = {"follower", "pre-candidate", "candidate", "leader"};
    return (unsigned)r <= CORE_LEADER ? names[r] : "?";
}

/* ----------------------------------------------------------- lifecycle */

void core_options_init(core_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->self.priority = RK_PRIORITY_DISABLED;
    o->election_ticks = 10;
    o->heartbeat_ticks = 1;
    o->pre_vote = true;
    o->check_quorum = true;
    o->read_only = CORE_READ_SAFE;
    o->max_inflight_msgs = 256;
    o->max_entries_per_msg = 64;
    o->max_bytes_per_msg = 1u << 20;
}

core_t *core_new(const core_init_t *init, const core_storage_t *storage, int *err)
{
    int dummy;
    if (err == NULL)
        err = &dummy;
    *err = RK_EINVAL;
    if (init == NULL || storage == NULL || storage->term == NULL || storage->entries == NULL)
        return NULL;
    const core_options_t *o = &init->opts;
    if (core_peer_is_none(&o->self) || o->election_ticks == 0 || o->heartbeat_ticks == 0 ||
        o->heartbeat_ticks >= o->election_ticks || o->max_inflight_msgs == 0 ||
        o->max_entries_per_msg == 0 || init->last_index < init->compact_index)
        return NULL;
    core_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        *err = RK_ENOMEM;
        return NULL;
    }
    c->o = *o;
    if (c->o.max_bytes_per_msg == 0)
        c->o.max_bytes_per_msg = UINT64_MAX;
    c->st = *storage;
    c->rng = o->seed;
    c->next_id = 1;
    core_init_t fixed = *init;
    if (fixed.hs.commit > fixed.last_index)
        fixed.hs.commit = fixed.last_index; /* commit is a hint; never past our log */
    if (log_init(c, &fixed) != 0)
        goto fail;
    c->term = init->hs.term;
    c->vote = init->hs.vote;
    c->last_hs.term = c->term;
    c->last_hs.vote = c->vote;
    c->last_hs.commit = c->log.commit;
    c->latest_snap.index = init->snapshot.index;
    c->latest_snap.term = init->snapshot.term;
    c->latest_snap.conf = core_conf_intern(&init->snapshot.conf);
    c->conf = core_conf_intern(&init->conf);
    c->conf_index = init->conf_index;
    c->prev_conf = core_conf_intern(&init->prev_conf);
    if (c->latest_snap.conf == NULL || c->conf == NULL || c->prev_conf == NULL) {
        *err = RK_ENOMEM;
        goto fail;
    }
    c->prev_conf_index =
        init->conf_index > init->hs.commit ? init->snapshot.index : init->conf_index;
    c->conf_committed_reported = init->conf_index <= c->log.commit ? init->conf_index : 0;
    c->target_priority = -1;
    c->role = CORE_FOLLOWER;
    c->ticks = 1; /* 0 means "no lease" in progress.lease_sent */
    /* Simulator bug 7: before the crash we may have acked a leader whose
     * lease still runs, and we no longer know it as leader; honour the lease
     * for a full election timeout from now (as etcd's followers do). */
    c->restart_lease = o->read_only == CORE_READ_LEASE && c->term > 0;
    /* What hb_ctx_floor was before the crash is lost (quiesce.c). Even at
     * term 0: heartbeat answers do not wait for the term to be durable. */
    c->restart_guard = o->election_ticks;
    if (progress_rebuild(c) != 0) {
        *err = RK_ENOMEM;
        goto fail;
    }
    election_reset_timeout(c);
    *err = 0;
    return c;
fail:
    core_free(c);
    return NULL;
}

static void msgs_free(core_msg_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        core_msg_free_contents(&v[i]);
    free(v);
}

void core_free(core_t *c)
{
    if (c == NULL)
        return;
    log_destroy(&c->log);
    progress_free_all(c);
    msgs_free(c->msgs.v, c->msgs.n);
    msgs_free(c->msgs_after.v, c->msgs_after.n);
    free(c->events.v);
    free(c->rstates.v);
    free(c->reads.v);
    free(c->uncommitted.v);
    free(c->round_ticks);
    core_conf_release(c->conf);
    core_conf_release(c->prev_conf);
    core_conf_release(c->latest_snap.conf);
    free(c);
}

/* ---------------------------------------------------------------- step */

static void send_reject_read(core_t *c, const core_msg_t *m)
{
    core_msg_t *r = core_msg_new(c, CORE_MSG_READ_INDEX_RESP, &m->from, false);
    if (r == NULL)
        return;
    r->term = c->term;
    r->ctx = m->ctx;
    r->reject = true;
}

static void step_follower(core_t *c, const core_msg_t *m)
{
    switch (m->type) {
    case CORE_MSG_APP:
    case CORE_MSG_HEARTBEAT:
    case CORE_MSG_SNAP:
        c->election_elapsed = 0;
        election_set_lead(c, &m->from);
        if (m->type == CORE_MSG_APP)
            repl_handle_append(c, m);
        else if (m->type == CORE_MSG_HEARTBEAT)
            repl_handle_heartbeat(c, m);
        else
            snap_handle(c, m);
        break;
    case CORE_MSG_TIMEOUT_NOW:
        /* Thesis 3.10: start an election at once, skipping pre-vote and the
         * followers' lease. Learners and non-members ignore it. */
        election_timeout_now(c);
        break;
    case CORE_MSG_READ_INDEX_RESP:
        read_handle_resp(c, m);
        break;
    case CORE_MSG_READ_INDEX:
        send_reject_read(c, m);
        break;
    default:
        break;
    }
}

static void step_leader(core_t *c, const core_msg_t *m)
{
    switch (m->type) {
    case CORE_MSG_APP_RESP:
        quiesce_leader_resp(c, m);
        repl_handle_append_resp(c, m);
        break;
    case CORE_MSG_HEARTBEAT_RESP:
        quiesce_leader_resp(c, m);
        repl_handle_heartbeat_resp(c, m);
        break;
    case CORE_MSG_READ_INDEX:
        if (progress_find(c, &m->from) == NULL)
            send_reject_read(c, m);
        else
            read_leader_request(c, m->ctx, &m->from);
        break;
    default:
        break;
    }
}

int core_step(core_t *c, const core_msg_t *m)
{
    if (c->fatal)
        return RK_ESTATE;
    if (m == NULL || (unsigned)m->type >= CORE_MSG__COUNT)
        return RK_EPROTO;
    bool vote_req = m->type == CORE_MSG_VOTE || m->type == CORE_MSG_PREVOTE;
    quiesce_before_step(c, m);
    if (m->term > c->term) {
        if (vote_req && !m->transfer && election_in_lease(c)) {
            /* Thesis 4.2.3: we heard from a leader within the minimum
             * election timeout (or restarted since, under lease reads), so
             * ignore the disruption (no term bump). Lease reads (6.4.1)
             * rest on this, with or without check-quorum. */
            return 0;
        }
        if (m->type == CORE_MSG_PREVOTE || (m->type == CORE_MSG_PREVOTE_RESP && !m->reject)) {
            /* Pre-votes never change our term (thesis 9.6). */
        } else if (m->type == CORE_MSG_APP || m->type == CORE_MSG_HEARTBEAT ||
                   m->type == CORE_MSG_SNAP) {
            election_become_follower(c, m->term, &m->from);
        } else {
            election_become_follower(c, m->term, NULL);
        }
    } else if (m->term < c->term) {
        if (m->type == CORE_MSG_APP || m->type == CORE_MSG_HEARTBEAT) {
            /* A stale leader (or one cut off while we pushed our term up):
             * tell it our term so it steps down and we are not stuck
             * (scenarios 23, 112; Fig. 3.1 "reply false if term <
             * currentTerm"). etcd only answers under pre-vote or
             * check-quorum, relying otherwise on vote requests to raise
             * terms -- which a leader removed while cut off never gets, so
             * it would lead its old term forever (simulator bug 4). Any
             * leader of a lower term is stale, so the answer disrupts
             * nothing. */
            core_msg_t *r = core_msg_new(c, CORE_MSG_APP_RESP, &m->from, false);
            if (r != NULL)
                r->term = c->term;
        } else if (m->type == CORE_MSG_PREVOTE) {
            core_msg_t *r = core_msg_new(c, CORE_MSG_PREVOTE_RESP, &m->from, false);
            if (r != NULL) {
                r->term = c->term;
                r->reject = true;
            }
        }
        return 0; /* §5.1: stale term, ignore */
    }
    if (vote_req)
        return election_step_vote_req(c, m);
    if (m->type == CORE_MSG_VOTE_RESP || m->type == CORE_MSG_PREVOTE_RESP) {
        election_step_vote_resp(c, m);
        return 0;
    }
    switch (c->role) {
    case CORE_LEADER:
        step_leader(c, m);
        break;
    case CORE_CANDIDATE:
    case CORE_PRE_CANDIDATE:
        if (m->type == CORE_MSG_APP || m->type == CORE_MSG_HEARTBEAT || m->type == CORE_MSG_SNAP) {
            /* §5.2: a candidate hearing from the leader of its term yields. */
            election_become_follower(c, m->term, &m->from);
            step_follower(c, m);
        } else if (m->type == CORE_MSG_READ_INDEX) {
            send_reject_read(c, m);
        }
        break;
    case CORE_FOLLOWER:
        step_follower(c, m);
        break;
    }
    return 0;
}

/* ---------------------------------------------------------------- tick */

static void leader_tick(core_t *c)
{
    c->heartbeat_elapsed++;
    c->election_elapsed++;
    for (size_t i = 0; i < c->n_prs; i++)
        if (!c->prs[i].is_self)
            c->prs[i].ticks_since_contact++;
    if (c->election_elapsed >= c->o.election_ticks) {
        c->election_elapsed = 0;
        if (c->o.check_quorum) {
            /* Thesis 6.2: without a quorum heard within an election timeout
             * we may have been deposed; step down. */
            if (!quorum_active(c)) {
                election_become_follower(c, c->term, NULL);
                return;
            }
            for (size_t i = 0; i < c->n_prs; i++)
                if (!c->prs[i].is_self)
                    c->prs[i].recent_active = false;
        }
    }
    transfer_tick(c);
    if (c->heartbeat_elapsed >= c->o.heartbeat_ticks) {
        c->heartbeat_elapsed = 0;
        /* Lease reads: each heartbeat is a new round, so an ack tells which
         * send (and tick) it answers: the lease runs from there (bug 7). */
        if (c->o.read_only == CORE_READ_LEASE)
            c->read_seq++;
        repl_bcast_heartbeat(c, c->read_seq);
    }
}

int core_tick(core_t *c)
{
    if (c->fatal)
        return RK_ESTATE;
    c->ticks++;
    if (c->restart_guard > 0)
        c->restart_guard--;
    if (c->quiesced)
        return 0; /* no heartbeats, no election counting (quiesce.c) */
    if (c->role == CORE_LEADER)
        leader_tick(c);
    else
        election_tick(c);
    return 0;
}

int core_campaign(core_t *c)
{
    if (c->fatal)
        return RK_ESTATE;
    quiesce_wake(c);
    if (c->role == CORE_LEADER || !election_promotable(c) || election_busy(c))
        return RK_ESTATE;
    /* Our own vote would break the lease we gave the leader (bug 7). */
    if (c->o.read_only == CORE_READ_LEASE && election_in_lease(c))
        return RK_ESTATE;
    election_campaign(c, false);
    return 0;
}

/* ------------------------------------------------------ host feedback */

int core_persisted(core_t *c, uint64_t update_id)
{
    if (c->fatal)
        return RK_ESTATE;
    if (update_id == 0 || update_id >= c->next_id)
        return RK_EINVAL;
    log_writes_ack(c, update_id);
    election_self_vote_persisted(c, update_id);
    repl_self_persisted(c);
    election_maybe_deferred_campaign(c);
    return 0;
}

/* Scenario 103. What the failed write (and every later one, which the host
 * must not write either) would have made durable is unknown, and the core's
 * memory already assumes it: the term or vote it promised, the entries it
 * counts. Carrying on would need the core to guess the disk's state, so it
 * halts, as braft and JRaft put a node into its error state. A leader first
 * steps down (the ROLE event lets the host fail pending proposals, with the
 * update's `fatal` code as the reason) and hands leadership to its most
 * up-to-date follower (transfer_handoff) so the cluster need not wait out an
 * election timeout; a follower that holds the entry can win and re-send it.
 * Vote grants and acks waiting for this update are dropped. */
int core_persist_failed(core_t *c, uint64_t update_id, int err)
{
    if (c->fatal)
        return RK_ESTATE;
    if (err >= 0)
        return RK_EINVAL;
    bool pending = false;
    for (size_t i = 0; i < c->log.n_writes && !pending; i++)
        pending = c->log.writes[i].id == update_id;
    if (!pending)
        return RK_EINVAL;
    if (c->role == CORE_LEADER) {
        transfer_handoff(c);
        election_become_follower(c, c->term, NULL);
    }
    msgs_free(c->msgs_after.v, c->msgs_after.n);
    memset(&c->msgs_after, 0, sizeof c->msgs_after);
    core_set_fatal(c, err);
    return 0;
}

int core_applied(core_t *c, uint64_t index)
{
    if (index > c->log.applied_handed)
        return RK_EINVAL;
    if (index > c->log.applied)
        c->log.applied = index;
    return 0;
}

int core_snapshot_taken(core_t *c, const core_snapshot_meta_t *meta)
{
    if (meta == NULL || meta->index > c->log.commit)
        return RK_EINVAL;
    if (meta->index > c->latest_snap.index) {
        const core_conf_t *conf = core_conf_intern(&meta->conf);
        if (conf == NULL)
            return RK_ENOMEM;
        core_conf_release(c->latest_snap.conf);
        c->latest_snap = (core_snap_ref_t){.index = meta->index, .term = meta->term, .conf = conf};
    }
    return 0;
}

int core_compacted(core_t *c, uint64_t index, uint64_t term)
{
    if (index <= c->log.compact_index)
        return 0;
    if (index > log_stable_index(c) || index > c->latest_snap.index)
        return RK_EINVAL;
    c->log.compact_index = index;
    c->log.compact_term = term;
    return 0;
}

int core_report_unreachable(core_t *c, const rk_peer_id_t *peer)
{
    if (c->role != CORE_LEADER)
        return 0;
    core_progress_t *pr = progress_find(c, peer);
    if (pr == NULL)
        return RK_EUNKNOWNPEER;
    if (pr->state == CORE_PR_REPLICATE)
        progress_become_probe(c, pr);
    return 0;
}

int core_report_snapshot(core_t *c, const rk_peer_id_t *peer, bool ok)
{
    if (c->role != CORE_LEADER)
        return 0;
    core_progress_t *pr = progress_find(c, peer);
    if (pr == NULL)
        return RK_EUNKNOWNPEER;
    if (pr->state != CORE_PR_SNAPSHOT)
        return 0;
    if (!ok)
        pr->pending_snapshot = 0; /* retry from match+1 */
    progress_become_probe(c, pr);
    /* Wait for the next heartbeat answer before probing again. */
    pr->probe_sent = true;
    return 0;
}

/* --------------------------------------------------------------- output */

static bool hs_changed(const core_t *c)
{
    return c->last_hs.term != c->term || c->last_hs.commit != c->log.commit ||
           !core_peer_eq(&c->last_hs.vote, &c->vote);
}

static uint64_t apply_hi(const core_t *c)
{
    uint64_t hi = c->log.commit, st = log_stable_index(c);
    return hi < st ? hi : st;
}

bool core_has_update(const core_t *c)
{
    if (c->fatal) /* halted: nothing more to persist or apply */
        return c->msgs.n || c->events.n || c->rstates.n || !c->fatal_reported;
    return c->msgs.n || c->msgs_after.n || c->events.n || c->rstates.n || hs_changed(c) ||
           c->log.handed < log_last_index(c) || (c->log.has_snap && !c->log.snap_handed) ||
           apply_hi(c) > c->log.applied_handed || c->read_round_pending ||
           c->commit_bcast_pending || (c->fatal && !c->fatal_reported);
}

/* Zeroes an update except `snapshot`, whose ~10 KB configuration would make
 * clearing cost more than everything else an update of a few entries does;
 * it is only valid (and only written) when has_snapshot is set. */
static void update_clear(core_update_t *u)
{
    u->id = 0;
    u->has_hard_state = false;
    memset(&u->hs, 0, sizeof u->hs);
    u->has_snapshot = false;
    u->snapshot.index = 0;
    u->snapshot.term = 0;
    u->entries = NULL;
    u->n_entries = 0;
    u->msgs = NULL;
    u->n_msgs = 0;
    u->msgs_after = NULL;
    u->n_msgs_after = 0;
    u->apply_lo = 1;
    u->apply_hi = 0;
    u->reads = NULL;
    u->n_reads = 0;
    u->events = NULL;
    u->n_events = 0;
    u->fatal = 0;
}

void core_update_get(core_t *c, core_update_t *u)
{
    update_clear(u);
    if (!c->fatal) {
        repl_flush_commit(c);
        read_flush_round(c);
    }
    core_log_t *l = &c->log;
    bool snap = l->has_snap && !l->snap_handed;
    bool ents = l->handed < log_last_index(c);
    bool hs = hs_changed(c);
    if (!c->fatal && (snap || ents || hs || c->msgs_after.n > 0)) {
        u->id = c->next_id++;
        if (hs) {
            u->has_hard_state = true;
            u->hs.term = c->term;
            u->hs.vote = c->vote;
            u->hs.commit = l->commit;
            c->last_hs = u->hs;
        }
        if (snap) {
            u->has_snapshot = true;
            u->snapshot.index = l->snap.index;
            u->snapshot.term = l->snap.term;
            u->snapshot.conf = *l->snap.conf;
            l->snap_handed = true;
        }
        uint64_t last_written = 0;
        if (ents) {
            uint64_t lo = l->handed + 1, hi = log_last_index(c);
            u->n_entries = hi - lo + 1;
            u->entries = malloc(u->n_entries * sizeof *u->entries);
            if (u->entries == NULL) {
                u->n_entries = 0;
                core_set_fatal(c, RK_ENOMEM);
            } else {
                for (size_t i = 0; i < u->n_entries; i++) {
                    u->entries[i] = l->ents[lo - l->offset + i];
                    buf_ref(u->entries[i].data);
                }
                l->handed = hi;
                last_written = hi;
            }
        }
        if (log_writes_push(c, u->id, last_written, snap ? l->snap.index : 0) != 0)
            core_set_fatal(c, RK_ENOMEM);
    }
    uint64_t hi = apply_hi(c);
    if (!c->fatal && hi > l->applied_handed) {
        u->apply_lo = l->applied_handed + 1;
        u->apply_hi = hi;
        l->applied_handed = hi;
    } else {
        u->apply_lo = 1;
        u->apply_hi = 0;
    }
    if (c->fatal) {
        /* They promise durable state that will never be written. */
        msgs_free(c->msgs_after.v, c->msgs_after.n);
        memset(&c->msgs_after, 0, sizeof c->msgs_after);
    }
    u->msgs = c->msgs.v;
    u->n_msgs = c->msgs.n;
    u->msgs_after = c->msgs_after.v;
    u->n_msgs_after = c->msgs_after.n;
    u->events = c->events.v;
    u->n_events = c->events.n;
    u->reads = c->rstates.v;
    u->n_reads = c->rstates.n;
    memset(&c->msgs, 0, sizeof c->msgs);
    memset(&c->msgs_after, 0, sizeof c->msgs_after);
    memset(&c->events, 0, sizeof c->events);
    memset(&c->rstates, 0, sizeof c->rstates);
    u->fatal = c->fatal;
    if (c->fatal)
        c->fatal_reported = true;
}

void core_update_release(core_update_t *u)
{
    if (u == NULL)
        return;
    core_entries_free(u->entries, u->n_entries);
    msgs_free(u->msgs, u->n_msgs);
    msgs_free(u->msgs_after, u->n_msgs_after);
    free(u->events);
    free(u->reads);
    update_clear(u);
}

/* ------------------------------------------------------- observability */

void core_get_status(const core_t *c, core_status_t *st)
{
    memset(st, 0, sizeof *st);
    st->role = c->role;
    st->term = c->term;
    st->leader = c->lead;
    st->vote = c->vote;
    st->commit = c->log.commit;
    st->applied = c->log.applied;
    st->first_index = log_first_index(c);
    st->last_index = log_last_index(c);
    st->last_term = log_term_or0((core_t *)c, st->last_index);
    st->stable_index = log_stable_index(c);
    st->conf_index = c->conf_index;
    st->transferring = c->transferring;
    st->transferee = c->transferee;
    st->quiesced = c->quiesced;
    st->fatal = c->fatal;
}

const core_conf_t *core_get_conf(const core_t *c, uint64_t *index)
{
    if (index)
        *index = c->conf_index;
    return c->conf;
}

size_t core_get_progress(const core_t *c, core_progress_info_t *out, size_t cap)
{
    if (c->role != CORE_LEADER)
        return 0;
    for (size_t i = 0; i < c->n_prs && i < cap; i++) {
        const core_progress_t *pr = &c->prs[i];
        core_progress_info_t *o = &out[i];
        memset(o, 0, sizeof *o);
        o->peer = pr->id;
        o->is_self = pr->is_self;
        o->voter = pr->voter_cur || pr->voter_old;
        o->state = pr->state;
        o->match = pr->match;
        o->next = pr->next;
        o->pending_snapshot = pr->pending_snapshot;
        o->inflight_msgs = pr->infl_count;
        o->inflight_bytes = pr->infl_bytes;
        o->ticks_since_contact = pr->ticks_since_contact;
        o->recent_active = pr->recent_active;
    }
    return c->n_prs;
}
