/* Leader election: role transitions, randomized timeouts, pre-vote (thesis
 * 9.6), vote granting with the follower lease (thesis 4.2.3), check-quorum
 * (thesis 6.2) and JRaft-style election priority. */
#include "src/core/core_internal.h"

/* §5.2: election timeouts are chosen randomly from [et, 2et). */
void election_reset_timeout(core_t *c)
{
    c->randomized_timeout = c->o.election_ticks + (uint32_t)(core_rand(c) % c->o.election_ticks);
}

static void set_role(core_t *c, core_role_t r)
{
    if (c->role == r)
        return;
    core_role_t old = c->role;
    c->role = r;
    core_event_t *e = VEC_PUSH(c->events);
    if (e != NULL) {
        e->type = CORE_EV_ROLE;
        e->role = r;
        e->old_role = old;
        e->term = c->term;
    }
}

void election_set_lead(core_t *c, const rk_peer_id_t *lead)
{
    rk_peer_id_t none;
    memset(&none, 0, sizeof none);
    if (lead == NULL)
        lead = &none;
    if (core_peer_eq(&c->lead, lead))
        return;
    c->lead = *lead;
    core_event(c, CORE_EV_LEADER, 0, lead, 0);
    if (!core_peer_is_none(lead)) {
        /* A live leader resets the decayed target priority (JRaft). */
        c->priority_timeouts = 0;
        c->target_priority = -1;
    }
}

static void reset(core_t *c, uint64_t term)
{
    if (c->term != term) {
        c->term = term;
        memset(&c->vote, 0, sizeof c->vote);
        c->hb_ctx_floor = 0; /* heartbeat ctx ids restart with each leader */
    }
    c->quiesced = false; /* any role or term change wakes (quiesce.c) */
    election_set_lead(c, NULL);
    c->election_elapsed = 0;
    c->restart_lease = false; /* a new term or role: the old lease is moot */
    c->heartbeat_elapsed = 0;
    election_reset_timeout(c);
    if (c->transferring) /* done if TimeoutNow went out, else someone else ran */
        transfer_abort(c, c->transfer_sent ? 0 : RK_ECANCELED);
    for (size_t i = 0; i < c->n_prs; i++)
        c->prs[i].vote = 0;
    c->self_vote_id = 0;
    c->campaign_transfer = false;
    c->deferred_transfer_term = 0;
}

static void leave_leader(core_t *c)
{
    if (c->role != CORE_LEADER)
        return;
    read_fail_all(c, RK_ENOTLEADER);
    c->uncommitted.n = 0;
    c->uncommitted_bytes = 0;
    c->committed_in_term = false;
}

void election_become_follower(core_t *c, uint64_t term, const rk_peer_id_t *lead)
{
    leave_leader(c);
    reset(c, term);
    election_set_lead(c, lead);
    set_role(c, CORE_FOLLOWER);
}

void election_become_leader(core_t *c)
{
    assert(c->role == CORE_CANDIDATE);
    reset(c, c->term);
    election_set_lead(c, &c->o.self);
    set_role(c, CORE_LEADER);
    progress_reset_all(c);
    c->committed_in_term = false;
    c->lease_revoked = false; /* a TimeoutNow we sent in an older term is stale */
    c->read_seq = 0;
    c->read_round_pending = false;
    read_rounds_forget(c); /* round ids restart */
    /* The new leader may hold an uncommitted config entry in its tail: no new
     * change until everything it has is committed (scenario 72). */
    c->pending_conf_index = log_last_index(c);
    /* Thesis 6.4 / §5.4.2: commit an entry of our own term right away; this
     * also commits everything before it. */
    core_entry_t noop = {.type = CORE_ENTRY_NOOP};
    if (repl_append_local(c, &noop, 1) != 0)
        return;
    repl_bcast_append(c);
}

/* May this node campaign? A voter of the configuration in effect may. So
 * may a node whose configuration in effect is an UNCOMMITTED one that drops
 * it, if it was a voter in the one before (simulator bug 5): configurations
 * take effect when appended (thesis 4.1), so a leader that appended its own
 * removal and then lost leadership stops counting itself a voter, while the
 * others -- still in the previous configuration, where it votes -- may need
 * its vote, which it only gives to logs as up-to-date as its own. If it holds
 * the only such log, nobody can ever win. Campaigning is safe: votes are
 * tallied under our latest configuration, where our own vote does not count
 * (we have no progress entry), so winning takes a majority of C_new (and of
 * C_old when joint) exactly as for any other candidate holding this log; the
 * winner leads a configuration it is not part of, as thesis 4.2.2 allows,
 * commits it with its no-op and steps down (conf_after_commit). Once the
 * removal is known committed the node never campaigns again. */
bool election_promotable(const core_t *c)
{
    if (c->o.self.priority == RK_PRIORITY_NOT_ELECTED)
        return false;
    if (core_conf_is_voter(c->conf, &c->o.self))
        return true;
    return c->conf_index > c->log.commit && core_conf_is_voter(c->prev_conf, &c->o.self);
}

/* Scenario 100: no campaign while our own log write or snapshot install is
 * pending. A candidate advertises its last log index/term (§5.4.1) and, once
 * leader, replicates its log as the truth: both must be durable, or a crash
 * after winning could lose entries the voters were told we hold. etcd only
 * blocks on a pending snapshot (promotable()); we also wait for entries,
 * which costs nothing in practice: a follower only writes entries a live
 * leader sent, and that leader resets the election timer meanwhile. The
 * election timer keeps running, so the node campaigns at the first tick
 * after the write completes. */
bool election_busy(const core_t *c)
{
    return c->log.has_snap || c->log.n > 0;
}

static void send_vote_requests(core_t *c, bool pre)
{
    uint64_t li = log_last_index(c), lt = log_last_term(c);
    for (size_t i = 0; i < c->n_prs; i++) {
        core_progress_t *pr = &c->prs[i];
        if (pr->is_self || !(pr->voter_cur || pr->voter_old))
            continue;
        core_msg_t *m = core_msg_new(c, pre ? CORE_MSG_PREVOTE : CORE_MSG_VOTE, &pr->id, false);
        if (m == NULL)
            return;
        m->term = pre ? c->term + 1 : c->term;
        m->index = li;
        m->log_term = lt;
        m->transfer = c->campaign_transfer;
    }
}

static void become_candidate(core_t *c, bool transfer)
{
    leave_leader(c);
    reset(c, c->term + 1);
    c->vote = c->o.self;
    c->campaign_transfer = transfer;
    set_role(c, CORE_CANDIDATE);
    /* Our own vote counts only once the hard state holding it is durable
     * (scenario 96): the next persisting update carries it. */
    c->self_vote_id = c->next_id;
    send_vote_requests(c, false);
}

void election_campaign(core_t *c, bool transfer)
{
    if (!election_promotable(c) || election_busy(c))
        return;
    if (c->o.pre_vote && !transfer) {
        /* Thesis 9.6: ask first whether we could win, without touching the
         * term, so a partitioned node cannot disrupt the cluster. */
        leave_leader(c);
        reset(c, c->term);
        set_role(c, CORE_PRE_CANDIDATE);
        core_progress_t *self = progress_self(c);
        if (self != NULL)
            self->vote = 1;
        if (quorum_vote_result(c) > 0) {
            become_candidate(c, false);
            return;
        }
        send_vote_requests(c, true);
        return;
    }
    become_candidate(c, transfer);
}

/* Thesis 3.10: TimeoutNow asks for an election at once. Arriving while a
 * write is pending (scenario 100), it is remembered and honoured when the
 * write is acked, provided nothing happened in between (same term, still a
 * follower): the leader is waiting for us and refuses proposals meanwhile. */
void election_timeout_now(core_t *c)
{
    if (!election_promotable(c))
        return; /* learners and non-members ignore it (scenario 88) */
    if (election_busy(c)) {
        c->deferred_transfer_term = c->term;
        return;
    }
    election_campaign(c, true);
}

void election_maybe_deferred_campaign(core_t *c)
{
    if (c->deferred_transfer_term == 0 || election_busy(c))
        return;
    bool ok = c->deferred_transfer_term == c->term && c->role == CORE_FOLLOWER;
    c->deferred_transfer_term = 0;
    if (ok)
        election_campaign(c, true);
}

void election_self_vote_persisted(core_t *c, uint64_t id)
{
    if (c->role != CORE_CANDIDATE || c->self_vote_id == 0 || id < c->self_vote_id)
        return;
    core_progress_t *self = progress_self(c);
    c->self_vote_id = 0;
    /* A candidate outside its latest configuration (see
     * election_promotable) has no vote of its own to count, but may already
     * hold a majority of the others' grants, held back until now. */
    if (self != NULL)
        self->vote = 1;
    if (quorum_vote_result(c) > 0)
        election_become_leader(c);
}

/* JRaft electionPriority: a node whose priority is below the highest among
 * the voters waits; when no leader shows up the target decays so that a
 * lower-priority node eventually runs. */
static bool priority_allows(core_t *c)
{
    int32_t me = c->o.self.priority;
    if (me == RK_PRIORITY_DISABLED)
        return true;
    if (c->target_priority < 0) {
        int32_t max = -1;
        for (size_t i = 0; i < c->n_prs; i++) {
            const core_progress_t *pr = &c->prs[i];
            int32_t p = pr->is_self ? me : pr->id.priority;
            if ((pr->voter_cur || pr->voter_old) && p > max)
                max = p;
        }
        c->target_priority = max;
    }
    if (me >= c->target_priority)
        return true;
    if (++c->priority_timeouts > 1) {
        int32_t gap = c->target_priority / 5;
        if (gap < 10)
            gap = 10;
        c->target_priority -= gap;
        if (c->target_priority < me)
            c->target_priority = me;
        c->priority_timeouts = 0;
    }
    return false;
}

/* Thesis 4.2.3: a node that heard from a leader within the minimum
 * election timeout ignores (pre-)vote requests, so the leader is not
 * disrupted. Lease reads (6.4.1) rest on this, with or without check-quorum;
 * a node restarted under CORE_READ_LEASE counts as having heard (bug 7). */
bool election_in_lease(const core_t *c)
{
    if (!c->o.check_quorum && c->o.read_only != CORE_READ_LEASE)
        return false;
    if (core_peer_is_none(&c->lead) && !c->restart_lease)
        return false;
    return c->election_elapsed < c->o.election_ticks;
}

void election_tick(core_t *c)
{
    c->election_elapsed++;
    if (c->election_elapsed >= c->o.election_ticks)
        c->restart_lease = false;
    if (!election_promotable(c) || election_busy(c) || c->election_elapsed < c->randomized_timeout)
        return;
    c->election_elapsed = 0;
    election_reset_timeout(c);
    if (!priority_allows(c))
        return;
    election_campaign(c, false);
}

static core_msg_type_t resp_type(core_msg_type_t t)
{
    return t == CORE_MSG_PREVOTE ? CORE_MSG_PREVOTE_RESP : CORE_MSG_VOTE_RESP;
}

/* Vote and pre-vote requests at or above our term (lower terms were handled
 * by the caller). */
int election_step_vote_req(core_t *c, const core_msg_t *m)
{
    bool pre = m->type == CORE_MSG_PREVOTE;
    /* §5.2: one vote per term; repeating a grant is safe. A pre-vote for a
     * later term is stateless and may be granted whatever we voted. */
    bool can_vote = core_peer_eq(&c->vote, &m->from) ||
                    (core_peer_is_none(&c->vote) && core_peer_is_none(&c->lead)) ||
                    (pre && m->term > c->term);
    bool grant = can_vote && log_up_to_date(c, m->index, m->log_term);
    /* Vote grants promise durable state: sent after persistence. */
    core_msg_t *r = core_msg_new(c, resp_type(m->type), &m->from, true);
    if (r == NULL)
        return RK_ENOMEM;
    if (grant) {
        r->term = m->term; /* a pre-vote grant carries the future term */
        if (!pre) {
            c->election_elapsed = 0;
            c->vote = m->from;
        }
    } else {
        r->term = c->term;
        r->reject = true;
    }
    return 0;
}

void election_step_vote_resp(core_t *c, const core_msg_t *m)
{
    bool pre = m->type == CORE_MSG_PREVOTE_RESP;
    if ((pre && c->role != CORE_PRE_CANDIDATE) || (!pre && c->role != CORE_CANDIDATE))
        return; /* a late pre-vote grant is not a real vote (scenario 26) */
    core_progress_t *pr = progress_find(c, &m->from);
    if (pr == NULL || pr->is_self || pr->vote != 0)
        return;
    pr->vote = m->reject ? -1 : 1;
    int res = quorum_vote_result(c);
    if (res > 0) {
        if (pre)
            become_candidate(c, false);
        else if (c->self_vote_id == 0)
            election_become_leader(c);
        /* else: a majority granted without our own vote, but our term and
         * self-vote are not durable yet. Leading now could make us lead
         * this term twice: crash, restart at the old term, campaign for the
         * same term again, and the same voters grant again (§5.2 one vote
         * per term is about voters; §5.4's Log Matching needs one leader per
         * term). election_self_vote_persisted re-checks the tally. */
    } else if (res < 0) {
        /* pre-vote lost: stay at the same term (scenario 13). */
        election_become_follower(c, c->term, NULL);
    }
}

int core_forget_leader(core_t *c)
{
    if (c->fatal)
        return RK_ESTATE;
    if (c->o.read_only == CORE_READ_LEASE)
        return RK_ESTATE; /* scenario 93: a lease read may rely on us */
    if (c->role != CORE_FOLLOWER)
        return 0;
    quiesce_wake(c); /* nobody to wait for: count toward an election again */
    election_set_lead(c, NULL);
    return 0;
}
