/* The node's state and the status other threads read: the loop publishes a
 * copy of the core's status under st_mu after every drive
 * (node_publish_status), and the public getters read that copy, so they
 * never touch the core from a foreign thread.
 */
#include <stdarg.h>

#include "raftkit/log.h"
#include "src/node/node_internal.h"

void node_set_state(rk_node_t *n, rk_node_state_t s)
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

bool node_in_error(rk_node_t *n)
{
    pthread_mutex_lock(&n->st_mu);
    bool e = n->state == RK_STATE_ERROR;
    pthread_mutex_unlock(&n->st_mu);
    return e;
}

/* The voters heard from within the last election timeout (leader only).
 * Not recent_active: check-quorum clears that at every election timeout, so
 * right after each reset every follower looked dead until its next answer
 * (seen as a flapping `get_peers --alive`). */
static void alive_peers(rk_node_t *n, rk_configuration_t *alive)
{
    core_progress_info_t pr[2 * RK_CONF_MAX_PEERS + 1];
    size_t k = core_get_progress(n->core, pr, sizeof(pr) / sizeof(pr[0]));
    if (k > sizeof(pr) / sizeof(pr[0]))
        k = sizeof(pr) / sizeof(pr[0]);
    for (size_t i = 0; i < k; i++)
        if (pr[i].voter && (pr[i].is_self || pr[i].ticks_since_contact < NODE_ELECTION_TICKS))
            rk_configuration_add_peer(alive, &pr[i].peer);
}

static rk_node_state_t state_of_role(const core_status_t *cs)
{
    switch (cs->role) {
    case CORE_LEADER:
        return cs->transferring ? RK_STATE_TRANSFERRING : RK_STATE_LEADER;
    case CORE_CANDIDATE:
    case CORE_PRE_CANDIDATE:
        return RK_STATE_CANDIDATE;
    default:
        return RK_STATE_FOLLOWER;
    }
}

/* The interned copy of the voters alive now: n->alive itself while they
 * did not change (the leader publishes after every drive), else a new
 * reference; n->alive kept when out of memory; NULL when not leading. */
static const core_conf_t *alive_conf(rk_node_t *n, const core_status_t *cs)
{
    if (cs->role != CORE_LEADER)
        return NULL;
    /* counted lists: nothing past the counts is read, so only they are set */
    core_conf_t alive;
    alive.cur.n_peers = alive.cur.n_learners = 0;
    alive.old.n_peers = alive.old.n_learners = 0;
    alive.joint = alive.manual_leave = false;
    alive_peers(n, &alive.cur);
    if (n->alive != NULL && core_conf_same(n->alive, &alive))
        return n->alive;
    const core_conf_t *in = core_conf_intern(&alive);
    return in != NULL ? in : n->alive;
}

void node_publish_status(rk_node_t *n)
{
    core_status_t cs;
    core_get_status(n->core, &cs);
    uint64_t ci;
    const core_conf_t *conf = core_get_conf(n->core, &ci);
    /* Both copies are interned references that only the loop thread
     * writes (so it reads them without st_mu): publishing swaps a pointer
     * when the configuration or the alive set changed, and touches no
     * reference count (nor the table's lock) otherwise. */
    const core_conf_t *alive = alive_conf(n, &cs);
    const core_conf_t *old_conf = n->conf, *old_alive = n->alive;
    bool conf_changed = conf != old_conf, alive_changed = alive != old_alive;
    if (conf_changed)
        core_conf_ref(conf);
    pthread_mutex_lock(&n->st_mu);
    n->cst = cs;
    n->conf = conf;
    n->alive = alive;
    if (n->state != RK_STATE_ERROR && n->state != RK_STATE_SHUTTING &&
        n->state != RK_STATE_SHUTDOWN)
        n->state = state_of_role(&cs);
    rk_node_state_t now = n->state;
    pthread_mutex_unlock(&n->st_mu);
    if (conf_changed)
        core_conf_release(old_conf);
    if (alive_changed)
        core_conf_release(old_alive);
    node_obs_publish(n, &cs, conf, ci, now);
}

/* ---- public getters (any thread) ---- */

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

int64_t rk_node_term(rk_node_t *n)
{
    pthread_mutex_lock(&n->st_mu);
    int64_t v = (int64_t)n->cst.term;
    pthread_mutex_unlock(&n->st_mu);
    return v;
}

int64_t rk_node_last_log_index(rk_node_t *n)
{
    pthread_mutex_lock(&n->st_mu);
    int64_t v = (int64_t)n->cst.last_index;
    pthread_mutex_unlock(&n->st_mu);
    return v;
}

int64_t rk_node_committed_index(rk_node_t *n)
{
    pthread_mutex_lock(&n->st_mu);
    int64_t v = (int64_t)n->cst.commit;
    pthread_mutex_unlock(&n->st_mu);
    return v;
}

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

/* n->conf is NULL until the first publication: no members known yet. */
void rk_node_list_peers(rk_node_t *n, rk_configuration_t *out)
{
    rk_configuration_init(out);
    pthread_mutex_lock(&n->st_mu);
    if (n->conf != NULL)
        *out = n->conf->cur;
    pthread_mutex_unlock(&n->st_mu);
}

int rk_node_list_alive_peers(rk_node_t *n, rk_configuration_t *out)
{
    rk_configuration_init(out);
    pthread_mutex_lock(&n->st_mu);
    bool ok = n->alive != NULL;
    if (ok)
        *out = n->alive->cur;
    pthread_mutex_unlock(&n->st_mu);
    return ok ? 0 : RK_ENOTLEADER;
}

void rk_node_list_learners(rk_node_t *n, rk_peer_id_t *out, size_t *count)
{
    pthread_mutex_lock(&n->st_mu);
    uint32_t nl = n->conf != NULL ? n->conf->cur.n_learners : 0;
    size_t k = nl < *count ? nl : *count;
    for (size_t i = 0; i < k; i++)
        out[i] = n->conf->cur.learners[i];
    *count = nl;
    pthread_mutex_unlock(&n->st_mu);
}
