/* Catch-up before promotion (thesis 4.2.1, JRaft's catchup_margin): a
 * membership change that adds voters first makes every new voter a learner,
 * waits until it holds the log up to catchup_margin entries behind the
 * leader's last index, and only then starts the joint-consensus change. A new
 * server with an empty log would otherwise count toward the quorum of C_new
 * while it copies the whole log, and the cluster could not commit in the
 * meantime ("adding servers ... could leave the cluster unavailable", 4.2.1).
 *
 * A peer that makes no progress for CATCHUP_STALL_TIMEOUTS election
 * timeouts (no new match index and, while it installs a snapshot, no answer)
 * fails the change with RK_ECATCHUP; the learners this stage added are removed
 * again, so the configuration is as it was. Everything here runs on the loop.
 */
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "src/node/node_internal.h"

/* No progress for this many election timeouts fails the catch-up. JRaft
 * fails after one election timeout without an RPC answer; a few timeouts
 * leave room for a probe round trip and a leader's snapshot to be opened. */
#define CATCHUP_STALL_TIMEOUTS 3

struct node_catchup {
    node_cmd_t *cmd;            /* the user's change, completed by commands.c later */
    rk_configuration_t target;  /* where the change goes once caught up */
    rk_configuration_t initial; /* the configuration before: restored on failure */
    rk_peer_id_t peers[RK_CONF_MAX_PEERS];
    uint64_t match[RK_CONF_MAX_PEERS];
    size_t n_peers;
    bool added; /* a learner entry was proposed by this stage */
    uint64_t stall_deadline_ms;
};

bool catchup_busy(const rk_node_t *n)
{
    return n->catchup != NULL;
}

static uint64_t stall_ms(const rk_node_t *n)
{
    return (uint64_t)CATCHUP_STALL_TIMEOUTS * (uint64_t)n->opts.election_timeout_ms;
}

int catchup_begin(rk_node_t *n, node_cmd_t *c, const core_conf_t *cur,
                  const rk_configuration_t *target)
{
    node_catchup_t cu;
    memset(&cu, 0, sizeof(cu));
    cu.initial = cur->cur; /* cur is the core's: it changes with the learner entry */
    for (size_t i = 0; i < target->n_peers; i++)
        if (!rk_configuration_contains(&cur->cur, &target->peers[i]))
            cu.peers[cu.n_peers++] = target->peers[i];
    if (cu.n_peers == 0)
        return 1; /* no new voter: nothing to catch up */
    /* Stage 1: every new voter that is not a learner yet becomes one. */
    rk_configuration_t staged = cur->cur;
    for (size_t i = 0; i < cu.n_peers; i++)
        if (!rk_configuration_is_learner(&staged, &cu.peers[i]))
            rk_configuration_add_learner(&staged, &cu.peers[i]);
    if (!rk_configuration_equal(&staged, &cur->cur)) {
        uint64_t idx = 0;
        int rc = core_change_conf(n->core, &staged, &idx);
        if (rc != 0)
            return rc;
        cu.added = true;
    }
    node_catchup_t *p = malloc(sizeof(*p));
    if (p == NULL)
        return RK_ENOMEM;
    *p = cu;
    p->cmd = c;
    p->target = *target;
    p->stall_deadline_ms = node_now_ms(n) + stall_ms(n);
    n->catchup = p;
    char buf[64];
    rk_peer_id_format(&p->peers[0], buf, sizeof(buf));
    RK_INFO(n->group, n->self_str, "catching up %zu new voter(s) (%s%s) before the change",
            p->n_peers, buf, p->n_peers > 1 ? ", ..." : "");
    return 0;
}

static void finish(rk_node_t *n, node_catchup_t *cu)
{
    n->catchup = NULL;
    free(cu);
}

void catchup_abort(rk_node_t *n, int code, const char *msg)
{
    node_catchup_t *cu = n->catchup;
    if (cu == NULL)
        return;
    node_fail_cmd(n, cu->cmd, code, msg);
    finish(n, cu);
}

/* Undoes stage 1 (best effort: when the learner entry cannot be withdrawn now
 * it stays; a learner never affects quorums) and fails the change. */
static void fail_catchup(rk_node_t *n, node_catchup_t *cu, const rk_peer_id_t *who)
{
    char buf[64];
    rk_peer_id_format(who, buf, sizeof(buf));
    RK_WARN(n->group, n->self_str,
            "new peer %s did not catch up within %d election timeouts; change aborted", buf,
            CATCHUP_STALL_TIMEOUTS);
    if (cu->added) {
        uint64_t ci, idx;
        const core_conf_t *cur = core_get_conf(n->core, &ci);
        rk_configuration_t back = cur->cur;
        for (size_t i = 0; i < cu->n_peers; i++)
            if (!rk_configuration_is_learner(&cu->initial, &cu->peers[i]))
                rk_configuration_remove_learner(&back, &cu->peers[i]);
        int rc =
            rk_configuration_equal(&back, &cur->cur) ? 0 : core_change_conf(n->core, &back, &idx);
        if (rc != 0)
            RK_WARN(n->group, n->self_str, "cannot remove the temporary learner(s): %s",
                    rk_strerror(rc));
    }
    rk_status_t st;
    rk_status_set(&st, RK_ECATCHUP, "peer %s did not catch up", buf);
    node_fail_cmd(n, cu->cmd, RK_ECATCHUP, st.msg);
    finish(n, cu);
}

/* Looks at each new voter's progress: returns whether all caught up; sets
 * *progress when one moved (or answered a snapshot copy) and *laggard to
 * one that is behind. */
static bool peers_caught_up(rk_node_t *n, node_catchup_t *cu, uint64_t last_index, bool *progress,
                            const rk_peer_id_t **laggard)
{
    core_progress_info_t pr[2 * RK_CONF_MAX_PEERS + 1];
    size_t k = core_get_progress(n->core, pr, sizeof(pr) / sizeof(pr[0]));
    if (k > sizeof(pr) / sizeof(pr[0]))
        k = sizeof(pr) / sizeof(pr[0]);
    uint64_t margin = (uint64_t)n->opts.catchup_margin;
    bool all = true;
    *laggard = &cu->peers[0];
    for (size_t i = 0; i < cu->n_peers; i++) {
        const core_progress_info_t *p = NULL;
        for (size_t j = 0; j < k; j++)
            if (core_peer_eq(&pr[j].peer, &cu->peers[i]))
                p = &pr[j];
        if (p == NULL) { /* learner entry not appended yet (or rolled back) */
            all = false;
            continue;
        }
        if (p->match > cu->match[i]) {
            cu->match[i] = p->match;
            *progress = true;
        }
        /* A snapshot copy moves no match index; an answer proves it is alive. */
        if (p->state == CORE_PR_SNAPSHOT && p->ticks_since_contact < 10)
            *progress = true;
        /* Caught up: the peer acknowledged appends (REPLICATE, so a dead
         * peer never qualifies through a large margin) and is close enough. */
        bool ok = p->state == CORE_PR_REPLICATE && p->match + margin >= last_index;
        if (!ok) {
            all = false;
            *laggard = &cu->peers[i];
        }
    }
    return all;
}

/* Stage 2: the user's change starts (it becomes n->conf_cmd), unless the
 * learner entry is not committed yet (then the next tick tries again). */
static void start_change(rk_node_t *n, node_catchup_t *cu)
{
    uint64_t idx = 0;
    int rc = core_change_conf(n->core, &cu->target, &idx);
    if (rc == RK_ECONFCHANGE)
        return;
    node_cmd_t *c = cu->cmd;
    finish(n, cu);
    if (rc != 0) {
        node_fail_cmd(n, c, rc, "change refused");
        return;
    }
    RK_INFO(n->group, n->self_str, "new voters caught up; joint change at index %llu",
            (unsigned long long)idx);
    n->conf_cmd = c;
    n->conf_cmd_index = idx;
}

void catchup_tick(rk_node_t *n)
{
    node_catchup_t *cu = n->catchup;
    if (cu == NULL)
        return;
    core_status_t cs;
    core_get_status(n->core, &cs);
    if (cs.role != CORE_LEADER) {
        catchup_abort(n, RK_ELEADERLOST, "leadership lost while new peers caught up");
        return;
    }
    uint64_t now = node_now_ms(n);
    bool progress = false;
    const rk_peer_id_t *laggard = NULL;
    if (peers_caught_up(n, cu, cs.last_index, &progress, &laggard))
        start_change(n, cu);
    else if (progress)
        cu->stall_deadline_ms = now + stall_ms(n);
    else if (now >= cu->stall_deadline_ms)
        fail_catchup(n, cu, laggard);
}
