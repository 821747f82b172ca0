/* Linearizable reads (thesis 6.4): ReadIndex confirmed by a heartbeat round,
 * lease-based reads (6.4.1), and follower reads forwarded to the leader.
 *
 * Rounds: requests that arrive in one input batch share round read_seq+1;
 * the round is broadcast once, when the update is built. Every heartbeat
 * carries the latest round id issued, and a round is confirmed when a quorum
 * acked an id >= it. Any heartbeat sent after a request was registered proves
 * leadership at a time after the request, which is what 6.4 step 3 needs. */
#include "src/core/core_internal.h"

static void emit(core_t *c, const core_read_req_t *r, uint64_t index, int status)
{
    if (core_peer_is_none(&r->from)) {
        core_read_state_t *s = VEC_PUSH(c->rstates);
        if (s == NULL)
            return;
        s->ctx = r->ctx;
        s->index = index;
        s->status = status;
        return;
    }
    core_msg_t *m = core_msg_new(c, CORE_MSG_READ_INDEX_RESP, &r->from, false);
    if (m == NULL)
        return;
    m->term = c->term;
    m->ctx = r->ctx;
    m->index = index;
    m->reject = status != 0;
}

static bool single_voter(core_t *c)
{
    core_progress_t *self = progress_self(c);
    return quorum_voter_count(c) == 1 && self != NULL && (self->voter_cur || self->voter_old);
}

/* The lease in leader ticks: lease_ticks, capped (and defaulted, when 0) to
 * election_ticks - 1. Why that bound (thesis 6.4.1, simulator bug 7): a
 * follower that receives a heartbeat at time r refuses votes (core_step,
 * thesis 4.2.3) until its election_ticks-th tick after r, i.e. for more than
 * (election_ticks - 1) tick periods after r. Our lease counts from S, the
 * tick at which we SENT the newest round a quorum acked (S <= r), and we
 * serve while fewer than L ticks passed since, i.e. for at most L tick
 * periods after the send. With L <= election_ticks - 1 and every node's tick
 * period equal, some voter of any new leader's quorum (it meets the quorum
 * that acked S) refused votes for at least as long as we serve. Clock drift
 * eats that margin: with tick periods differing by a factor 1+d, choose
 * L <= (election_ticks - 1) / (1 + d) (the node's leader_lease_time_ratio). */
static uint64_t lease_len(const core_t *c)
{
    uint32_t max = c->o.election_ticks - 1;
    return c->o.lease_ticks == 0 || c->o.lease_ticks > max ? max : c->o.lease_ticks;
}

static bool half_in_lease(const core_t *c, bool old)
{
    size_t n = 0, live = 0;
    uint64_t len = lease_len(c);
    for (size_t i = 0; i < c->n_prs; i++) {
        const core_progress_t *pr = &c->prs[i];
        if (!(old ? pr->voter_old : pr->voter_cur))
            continue;
        n++;
        if (pr->is_self || (pr->lease_sent != 0 && c->ticks - pr->lease_sent < len))
            live++;
    }
    return n == 0 || live >= n / 2 + 1;
}

/* Thesis 6.4.1: "the leader's lease starts when it sends the heartbeat" a
 * quorum acknowledged (in each half when joint), not when the acks arrive. */
static bool lease_valid(const core_t *c)
{
    return half_in_lease(c, false) && (!c->conf->joint || half_in_lease(c, true));
}

/* A heartbeat carrying round id `round` is being sent: remember the first
 * tick it went out at (the earliest is the conservative lease start). */
void read_round_sent(core_t *c, uint64_t round)
{
    if (round == 0)
        return;
    if (c->round_ticks == NULL) {
        /* Out of memory: no send is recorded, so no ack renews the lease
         * and reads fall back to heartbeat rounds (safe, only slower). */
        c->round_ticks = calloc(CORE_LEASE_RING, sizeof *c->round_ticks);
        if (c->round_ticks == NULL)
            return;
    }
    core_round_tick_t *t = &c->round_ticks[round % CORE_LEASE_RING];
    if (t->round == round)
        return;
    t->round = round;
    t->tick = c->ticks;
}

/* pr acked a heartbeat of round `round`: its lease runs from that send. A
 * round that fell out of the ring renews nothing (it is old anyway). */
void read_round_acked(core_t *c, core_progress_t *pr, uint64_t round)
{
    if (round == 0 || c->round_ticks == NULL)
        return;
    const core_round_tick_t *t = &c->round_ticks[round % CORE_LEASE_RING];
    if (t->round != round)
        return;
    if (t->tick > pr->lease_sent)
        pr->lease_sent = t->tick;
}

/* No recorded send renews a lease any more (round ids restart, or the
 * lease is voided). */
void read_rounds_forget(core_t *c)
{
    if (c->round_ticks != NULL)
        memset(c->round_ticks, 0, CORE_LEASE_RING * sizeof *c->round_ticks);
}

/* Registers a request whose leader has committed in its term. */
static void admit(core_t *c, core_read_req_t *r)
{
    r->index = c->log.commit;
    bool lease = c->o.read_only == CORE_READ_LEASE && !c->lease_revoked && lease_valid(c);
    if (lease || single_voter(c)) {
        /* Lease: valid only under bounded clock drift (see lease_len and
         * core.h), and not once we sent TimeoutNow this
         * term (transfer.c); one voter: we are trivially the leader. An
         * expired or revoked lease falls back to a heartbeat round. */
        emit(c, r, r->index, 0);
        r->round = UINT64_MAX; /* done */
        return;
    }
    r->round = c->read_seq + 1;
    c->read_round_pending = true;
}

void read_leader_request(core_t *c, uint64_t ctx, const rk_peer_id_t *from)
{
    core_read_req_t req = {.ctx = ctx};
    if (from != NULL)
        req.from = *from;
    if (c->committed_in_term) {
        admit(c, &req);
        if (req.round == UINT64_MAX)
            return;
    }
    /* Deferred (round 0) until the no-op of our term commits (scenario 90). */
    core_read_req_t *r = VEC_PUSH(c->reads);
    if (r == NULL) {
        emit(c, &req, 0, RK_ENOMEM);
        return;
    }
    *r = req;
}

static void compact(core_t *c)
{
    size_t k = 0;
    for (size_t i = 0; i < c->reads.n; i++)
        if (c->reads.v[i].round != UINT64_MAX)
            c->reads.v[k++] = c->reads.v[i];
    c->reads.n = k;
}

void read_on_commit_in_term(core_t *c)
{
    for (size_t i = 0; i < c->reads.n; i++)
        if (c->reads.v[i].round == 0)
            admit(c, &c->reads.v[i]);
    compact(c);
}

void read_on_heartbeat_resp(core_t *c)
{
    uint64_t confirmed = quorum_committed(c, true);
    for (size_t i = 0; i < c->reads.n; i++) {
        core_read_req_t *r = &c->reads.v[i];
        if (r->round != 0 && r->round <= confirmed) {
            emit(c, r, r->index, 0);
            r->round = UINT64_MAX;
        }
    }
    compact(c);
}

/* Called when the update is built: one heartbeat round for all new reads. */
void read_flush_round(core_t *c)
{
    if (!c->read_round_pending || c->role != CORE_LEADER)
        return;
    c->read_round_pending = false;
    c->read_seq++;
    repl_bcast_heartbeat(c, c->read_seq);
}

void read_fail_all(core_t *c, int status)
{
    for (size_t i = 0; i < c->reads.n; i++)
        emit(c, &c->reads.v[i], 0, status);
    c->reads.n = 0;
    c->read_round_pending = false;
}

/* Follower: the leader's answer to a forwarded request. */
void read_handle_resp(core_t *c, const core_msg_t *m)
{
    core_read_state_t *s = VEC_PUSH(c->rstates);
    if (s == NULL)
        return;
    s->ctx = m->ctx;
    s->index = m->index;
    s->status = m->reject ? RK_ENOTLEADER : 0;
}

int core_read_index(core_t *c, uint64_t ctx)
{
    if (c->fatal)
        return RK_ESTATE;
    if (c->role == CORE_LEADER) {
        quiesce_wake(c);
        read_leader_request(c, ctx, NULL);
        return 0;
    }
    if (c->role != CORE_FOLLOWER || core_peer_is_none(&c->lead))
        return RK_ENOLEADER;
    core_msg_t *m = core_msg_new(c, CORE_MSG_READ_INDEX, &c->lead, false);
    if (m == NULL)
        return RK_ENOMEM;
    m->term = c->term;
    m->ctx = ctx;
    return 0;
}
