/* Leadership transfer (thesis 3.10): catch the target up, then send it
 * TimeoutNow so it campaigns at once; refuse proposals meanwhile; give up
 * after an election timeout. */
#include "src/core/core_internal.h"

void transfer_abort(core_t *c, int status)
{
    if (!c->transferring)
        return;
    rk_peer_id_t to = c->transferee;
    c->transferring = false;
    c->transfer_sent = false;
    memset(&c->transferee, 0, sizeof c->transferee);
    c->transfer_elapsed = 0;
    core_event(c, CORE_EV_TRANSFER_DONE, 0, &to, status);
}

/* TimeoutNow revokes our read lease for the rest of the term (simulator
 * bug 6). The lease (thesis 6.4.1) rests on followers refusing votes for an
 * election timeout after hearing from us; a TimeoutNow election skips that
 * on purpose (thesis 3.10), so the transferee may win term+1 as soon as the
 * message arrives -- and a message may arrive arbitrarily late, long after
 * an aborted transfer, as long as the transferee is still in our term. So
 * neither the transfer deadline nor an election timeout bounds it: until we
 * step down, reads go through ReadIndex heartbeat rounds, which a follower
 * in the new term does not acknowledge. */
static void send_timeout_now(core_t *c, const rk_peer_id_t *to)
{
    c->lease_revoked = true;
    core_msg_t *m = core_msg_new(c, CORE_MSG_TIMEOUT_NOW, to, false);
    if (m != NULL)
        m->term = c->term;
}

/* Called when pr's match may have reached our last index. */
void transfer_maybe_timeout_now(core_t *c, core_progress_t *pr)
{
    if (!c->transferring || c->role != CORE_LEADER || !core_peer_eq(&pr->id, &c->transferee))
        return;
    if (pr->match == log_last_index(c)) {
        send_timeout_now(c, &pr->id);
        c->transfer_sent = true;
    }
}

int core_transfer_leader(core_t *c, const rk_peer_id_t *to)
{
    if (c->fatal)
        return RK_ESTATE;
    if (c->role != CORE_LEADER)
        return RK_ENOTLEADER;
    quiesce_wake(c);
    if (to == NULL)
        return RK_EINVAL;
    if (core_is_self(c, to)) {
        transfer_abort(c, RK_ECANCELED);
        return 0;
    }
    core_progress_t *pr = progress_find(c, to);
    if (pr == NULL || !(pr->voter_cur || pr->voter_old))
        return RK_EUNKNOWNPEER;
    if (c->transferring) {
        if (core_peer_eq(&c->transferee, to))
            return 0; /* asking again does not extend the deadline */
        transfer_abort(c, RK_ECANCELED);
    }
    c->transferring = true;
    c->transferee = *to;
    c->transfer_elapsed = 0;
    if (pr->match == log_last_index(c)) {
        send_timeout_now(c, to);
        c->transfer_sent = true;
    } else
        repl_send_append(c, pr, true);
    return 0;
}

void transfer_tick(core_t *c)
{
    if (!c->transferring)
        return;
    if (++c->transfer_elapsed >= c->o.election_ticks)
        transfer_abort(c, RK_ETIMEDOUT);
}

/* The transferee left the voters: abort (scenario 86). */
void transfer_on_conf_change(core_t *c)
{
    if (c->transferring && !core_conf_is_voter(c->conf, &c->transferee))
        transfer_abort(c, RK_ECANCELED);
}

/* Quick handoff (thesis 4.2.2 / 3.10): a leader about to stop leading for
 * good -- removed from the configuration, or halting on a disk failure --
 * sends TimeoutNow to the voter most likely to win (the highest match among
 * the voters of the configuration in effect) so the cluster does not sit
 * out an election timeout. Only a hint: the target still needs a real
 * majority, and at worst it loses and the usual timeout elects someone. */
void transfer_handoff(core_t *c)
{
    if (c->role != CORE_LEADER)
        return;
    core_progress_t *best = NULL;
    for (size_t i = 0; i < c->n_prs; i++) {
        core_progress_t *pr = &c->prs[i];
        if (pr->is_self || !(pr->voter_cur || pr->voter_old))
            continue;
        if (best == NULL || pr->match > best->match)
            best = pr;
    }
    if (best != NULL && best->match > 0)
        send_timeout_now(c, &best->id);
}
