/* Quiescence: an idle group stops heartbeating, so that a process hosting
 * thousands of groups spends nothing on the idle ones (CockroachDB's
 * quiescence, TiKV's hibernate regions). Only with core_options_t.quiesce.
 *
 * THE RULE
 *
 * Leader (core_quiesce). It may quiesce only when the group is idle: it has
 * committed an entry of its term; commit == last index; every member's
 * match (voters and learners) == last index, each replicating with nothing
 * in flight, and our own last entry durable; every follower answered within
 * the election timeout; no pending ReadIndex or lease read; no transfer; no
 * joint configuration and no uncommitted configuration entry. Then, in this
 * order, it
 *   1. voids its read lease: every follower's lease_sent and the ring of
 *      round send ticks are cleared, so no acknowledgement of a heartbeat
 *      sent before (however late it arrives) renews the lease;
 *   2. takes a fresh round id Q = ++read_seq and sends every follower a
 *      quiesce notice: a HEARTBEAT with quiesce set, ctx = Q, index/log_term
 *      = its last entry, commit = its commit (== last);
 *   3. stops heartbeats, check-quorum and its election counter.
 * It wakes on any proposal, read, configuration change, transfer, forced
 * campaign, core_wake, vote request, message of another term, refusal of the
 * notice (an answer to round Q without quiesce) or any other message except
 * stale answers. Waking takes round id Q+1 (read_seq++), so every heartbeat
 * sent after waking carries a ctx > Q; it heartbeats at once, and restarts
 * check-quorum from a clean window (every follower counted active, the
 * election counter at zero). Its lease exists again only once a quorum acks
 * a heartbeat sent after waking (read_only.c).
 *
 * Follower. On a quiesce notice from the leader of its term it quiesces iff
 * its log ends exactly at the notice's (index, log_term), its commit reaches
 * that index, no write of its own is pending, and the notice is at least as
 * new as every heartbeat it received from that leader in this term
 * (ctx >= hb_ctx_floor), and at least election_ticks ticks have passed
 * since core_new (a restart): hb_ctx_floor does not
 * survive a crash, so a notice delayed past the crash could be older than a
 * heartbeat it acked before; after an election timeout no lease such an ack
 * backed is still running (the same bound as the restart lease of
 * read_only.c). It answers with quiesce set (accepted) or not
 * (refused: the leader wakes). While quiesced it does not count ticks toward
 * an election, nor do ticks end a restart lease. It wakes:
 *   - on any message from its leader other than a notice it still accepts
 *     or a heartbeat older than the notice (ctx < hb_ctx_floor, reordered
 *     by the network): the message is then handled by the normal rules
 *     (resetting the election counter as any leader message does);
 *   - on a (pre-)vote request or a message of another term: it wakes with
 *     its election counter at zero, then handles the message by the normal
 *     rules, so the lease stickiness of thesis 4.2.3 still applies for one
 *     election timeout after waking (it refuses a disruptive candidate as an
 *     awake follower that just heard from its leader would; if no leader
 *     shows up within that timeout it campaigns itself);
 *   - on core_leader_process_down (the host's process-level liveness says
 *     the leader's process is gone or restarted): it forgets the leader and
 *     its election counter jumps to election_ticks, as if the timer had
 *     run: no lease stickiness, votes granted at once, and its own campaign
 *     within [0, election_ticks) ticks (the randomized part of the timeout,
 *     so many groups waking at once do not all campaign on the same tick);
 *   - on core_wake or core_forget_leader (counter at zero). A restarted
 *     core is never quiesced.
 *
 * WHAT A QUIESCED FOLLOWER MAY ASSUME: nothing about the leader being
 * leader. It assumes only that while the host says the leader's process is
 * up, the leader will send it something (a heartbeat at once) before it
 * accepts a write or serves a read, because each of those wakes the leader.
 * The host's signal only ever delays elections; it never enables anything.
 *
 * WHY IT IS SAFE
 *
 * Election safety, log matching and leader completeness (§5.2-5.4) do not
 * depend on timers at all: a quiesced node votes, appends and commits by
 * the unchanged rules (a notice is a heartbeat: it commits at most the
 * follower's known match, and quiescing changes neither term, vote nor log).
 * Quiescence only changes WHEN elections start, i.e. liveness -- except
 * where a timer backs a promise, which is the read lease (thesis 6.4.1) and
 * the vote stickiness it rests on:
 *
 *   - SAFE reads (ReadIndex) are confirmed by a quorum acking a heartbeat
 *     round issued after the read. Round ids only grow within a term, and
 *     Q < every post-wake round, so a read after waking is never confirmed
 *     by acks of the notice or of anything sent before it.
 *   - LEASE reads: a leader serves from its lease only while a quorum acked
 *     a heartbeat whose send is less than lease_ticks ago. Across
 *     quiescence the leader's tick count means nothing (a multi-raft host
 *     does not tick quiesced groups, so the ticks stop while real time
 *     runs), which is why step 1 voids the lease: after waking, only acks of
 *     heartbeats sent after the wake count, and those are acked by followers
 *     that were woken by them (any leader message wakes a follower) and
 *     whose election counter restarted from zero at that heartbeat: exactly
 *     the followers of the ordinary lease argument (read_only.c lease_len).
 *     Conversely a quiesced follower may grant votes at once (process-down
 *     wake): every heartbeat it acked before quiescing was sent before the
 *     lease was voided, and it acked none sent after the wake -- the
 *     ctx >= hb_ctx_floor condition is what makes this hold against a
 *     delayed notice: a notice from an earlier quiescence (ctx Q) reaching a
 *     follower that already acked a post-wake heartbeat (ctx > Q) is
 *     refused, so that follower keeps protecting the new lease.
 *   - Check-quorum is not a safety mechanism here (the lease counts acked
 *     sends, not check-quorum): a quiesced leader skips it and restarts it
 *     from a clean window on waking; a leader cut off while quiesced serves
 *     no read without a fresh quorum round, and steps down one election
 *     timeout after waking.
 *   - Partitions and crashes: a follower cut off from the leader's process
 *     is told so by its host and campaigns as if its timer had run out; a
 *     follower that is not told (the signal is wrong or late) only delays
 *     an election. A crashed follower restarts unquiesced (and with its
 *     restart lease under CORE_READ_LEASE). A crashed leader restarts as a
 *     follower; its followers' hosts see the restart as "down" (a process
 *     incarnation change) and wake them.
 *   - Membership: quiescing needs every member (learners included) caught
 *     up and no configuration change in progress; a change wakes the
 *     leader, and its append wakes every follower it reaches. A new member
 *     starts with match 0, so the group cannot quiesce until it caught up.
 *   - Pre-vote: a pre-vote request wakes like a vote request; pre-votes
 *     change no state, and the grant rules are the ordinary ones.
 */
#include "src/core/core_internal.h"

/* Leader: may the group quiesce now? */
static bool leader_idle(core_t *c)
{
    uint64_t last = log_last_index(c);
    if (!c->committed_in_term || c->log.commit != last || c->log.n > 0 || c->log.has_snap ||
        c->transferring || c->conf->joint || c->pending_conf_index > c->log.commit ||
        c->conf_index > c->log.commit || c->reads.n > 0 || c->read_round_pending ||
        c->uncommitted.n > 0)
        return false;
    for (size_t i = 0; i < c->n_prs; i++) {
        const core_progress_t *pr = &c->prs[i];
        if (pr->match != last)
            return false;
        if (pr->is_self)
            continue;
        if (pr->state != CORE_PR_REPLICATE || pr->infl_count > 0 ||
            pr->ticks_since_contact >= c->o.election_ticks || !pr->recent_active)
            return false;
    }
    return true;
}

int core_quiesce(core_t *c)
{
    if (c->fatal || !c->o.quiesce)
        return RK_ESTATE;
    if (c->role != CORE_LEADER)
        return RK_ENOTLEADER;
    if (c->quiesced)
        return 0;
    if (!leader_idle(c))
        return RK_EBUSY;
    /* 1. Void the lease: no ack of an earlier send renews it. */
    for (size_t i = 0; i < c->n_prs; i++)
        c->prs[i].lease_sent = 0;
    read_rounds_forget(c);
    /* 2. The notice, in a round of its own (not recorded as a lease send). */
    c->quiesce_round = ++c->read_seq;
    uint64_t last = log_last_index(c), last_term = log_last_term(c);
    for (size_t i = 0; i < c->n_prs; i++) {
        core_progress_t *pr = &c->prs[i];
        if (pr->is_self)
            continue;
        core_msg_t *m = core_msg_new(c, CORE_MSG_HEARTBEAT, &pr->id, false);
        if (m == NULL)
            return RK_ENOMEM;
        m->term = c->term;
        m->index = last;
        m->log_term = last_term;
        m->commit = c->log.commit;
        m->ctx = c->quiesce_round;
        m->quiesce = true;
    }
    /* 3. Silence. */
    c->quiesced = true;
    return 0;
}

static void leader_wake(core_t *c)
{
    c->quiesced = false;
    /* Check-quorum from a clean window. */
    c->election_elapsed = 0;
    c->heartbeat_elapsed = 0;
    for (size_t i = 0; i < c->n_prs; i++) {
        c->prs[i].recent_active = true;
        c->prs[i].ticks_since_contact = 0;
    }
    /* Every heartbeat from now on carries a ctx > quiesce_round, which is
     * what lets a follower tell a delayed notice from a current one. */
    c->read_seq++;
    repl_bcast_heartbeat(c, c->read_seq);
}

void quiesce_wake(core_t *c)
{
    if (!c->quiesced)
        return;
    if (c->role == CORE_LEADER) {
        leader_wake(c);
        return;
    }
    c->quiesced = false;
    c->election_elapsed = 0;
}

int core_wake(core_t *c)
{
    if (c->fatal)
        return RK_ESTATE;
    quiesce_wake(c);
    return 0;
}

int core_leader_process_down(core_t *c)
{
    if (c->fatal)
        return RK_ESTATE;
    if (!c->quiesced || c->role == CORE_LEADER)
        return 0;
    c->quiesced = false;
    c->restart_lease = false;
    election_set_lead(c, NULL);
    /* As if the election timer had run: see the rule above. */
    c->election_elapsed = c->o.election_ticks;
    return 0;
}

bool core_quiesced(const core_t *c)
{
    return c->quiesced;
}

/* Called by core_step before anything else. */
void quiesce_before_step(core_t *c, const core_msg_t *m)
{
    if (!c->quiesced)
        return;
    bool vote_req = m->type == CORE_MSG_VOTE || m->type == CORE_MSG_PREVOTE;
    if (vote_req || m->term != c->term) {
        quiesce_wake(c);
        return;
    }
    if (c->role == CORE_LEADER) {
        /* Stale answers and answers to the notice are sorted out in
         * quiesce_leader_resp; anything else is work. */
        if (m->type != CORE_MSG_HEARTBEAT_RESP && m->type != CORE_MSG_APP_RESP)
            quiesce_wake(c);
        return;
    }
    /* Follower: a repeated notice from our leader is re-evaluated by the
     * heartbeat handler, and a heartbeat older than the notice we accepted
     * (reordered by the network: every heartbeat sent after the leader
     * wakes carries a larger ctx) changes nothing; anything else wakes us. */
    if (m->type == CORE_MSG_HEARTBEAT && core_peer_eq(&m->from, &c->lead) &&
        (m->quiesce || m->ctx < c->hb_ctx_floor))
        return;
    quiesce_wake(c);
}

/* Leader, quiesced: an answer arrived. An answer to the notice that refuses
 * it, or a rejection or new ack of an append, is work to do: wake. Acks of
 * older heartbeats and appends are stale and change nothing. */
void quiesce_leader_resp(core_t *c, const core_msg_t *m)
{
    if (!c->quiesced)
        return;
    core_progress_t *pr = progress_find(c, &m->from);
    if (pr == NULL)
        return;
    if (m->type == CORE_MSG_HEARTBEAT_RESP) {
        if (m->ctx >= c->quiesce_round && !m->quiesce)
            quiesce_wake(c);
        return;
    }
    if (m->reject && m->index >= pr->match)
        quiesce_wake(c);
}

/* Follower: a heartbeat from the leader of our term; quiesces on a notice
 * that passes the rule. Returns whether it accepted a notice. Other
 * heartbeats leave the state as quiesce_before_step set it. */
bool quiesce_follower_notice(core_t *c, const core_msg_t *m)
{
    uint64_t floor = c->hb_ctx_floor;
    if (m->ctx > c->hb_ctx_floor)
        c->hb_ctx_floor = m->ctx;
    if (!m->quiesce)
        return false;
    bool ok = c->o.quiesce && m->quiesce && c->role == CORE_FOLLOWER && m->ctx >= floor &&
              c->restart_guard == 0 && !election_busy(c) && c->deferred_transfer_term == 0 &&
              log_last_index(c) == m->index && log_match_term(c, m->index, m->log_term) &&
              c->log.commit == m->index;
    c->quiesced = ok;
    return ok;
}
