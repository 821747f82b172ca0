/* Membership changes: joint consensus (thesis 4.3) for voter changes,
 * simple entries for learner-only changes, the configuration taking effect
 * when appended (thesis 4.1), rollback when an uncommitted CONF entry is
 * truncated, the automatic leave of a committed joint configuration, and the
 * removed leader stepping down. Also the CONF payload codec. */
#include "src/core/core_internal.h"

/* ----------------------------------------------------------------- codec */

static size_t peer_size(const rk_peer_id_t *p)
{
    return 1 + strnlen(p->endpoint.host, RK_HOST_MAX - 1) + 2 + 4 + 4;
}

static uint8_t *put_u32(uint8_t *o, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *o++ = (uint8_t)(v >> (8 * i));
    return o;
}

static uint8_t *put_peer(uint8_t *o, const rk_peer_id_t *p)
{
    size_t hl = strnlen(p->endpoint.host, RK_HOST_MAX - 1);
    *o++ = (uint8_t)hl;
    memcpy(o, p->endpoint.host, hl);
    o += hl;
    *o++ = (uint8_t)p->endpoint.port;
    *o++ = (uint8_t)(p->endpoint.port >> 8);
    o = put_u32(o, (uint32_t)p->idx);
    return put_u32(o, (uint32_t)p->priority);
}

buf_t *core_conf_encode(const core_conf_t *c)
{
    const rk_configuration_t *lists[2] = {&c->cur, &c->old};
    int nl = c->joint ? 2 : 1;
    size_t len = 6;
    for (int l = 0; l < nl; l++) {
        for (uint32_t i = 0; i < lists[l]->n_peers; i++)
            len += peer_size(&lists[l]->peers[i]);
        for (uint32_t i = 0; i < lists[l]->n_learners; i++)
            len += peer_size(&lists[l]->learners[i]);
    }
    buf_t *b = buf_alloc(len);
    if (b == NULL)
        return NULL;
    uint8_t *o = b->data;
    *o++ = 1;
    *o++ = (uint8_t)((c->joint ? 1 : 0) | (c->joint && c->manual_leave ? 2 : 0));
    *o++ = (uint8_t)c->cur.n_peers;
    *o++ = (uint8_t)c->cur.n_learners;
    *o++ = c->joint ? (uint8_t)c->old.n_peers : 0;
    *o++ = c->joint ? (uint8_t)c->old.n_learners : 0;
    for (int l = 0; l < nl; l++) {
        for (uint32_t i = 0; i < lists[l]->n_peers; i++)
            o = put_peer(o, &lists[l]->peers[i]);
        for (uint32_t i = 0; i < lists[l]->n_learners; i++)
            o = put_peer(o, &lists[l]->learners[i]);
    }
    assert((size_t)(o - b->data) == len);
    return b;
}

static int get_peer(const uint8_t **p, const uint8_t *end, rk_peer_id_t *out)
{
    const uint8_t *q = *p;
    if (q >= end)
        return RK_ECORRUPT;
    size_t hl = *q++;
    if (hl >= RK_HOST_MAX || (size_t)(end - q) < hl + 10)
        return RK_ECORRUPT;
    memset(out, 0, sizeof *out);
    memcpy(out->endpoint.host, q, hl);
    q += hl;
    out->endpoint.port = (uint16_t)(q[0] | (q[1] << 8));
    q += 2;
    uint32_t v = 0, w = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)q[i] << (8 * i);
    for (int i = 0; i < 4; i++)
        w |= (uint32_t)q[4 + i] << (8 * i);
    out->idx = (int32_t)v;
    out->priority = (int32_t)w;
    *p = q + 8;
    return 0;
}

int core_conf_decode(const void *data, size_t len, core_conf_t *out)
{
    const uint8_t *p = data, *end = p + len;
    if (data == NULL || len < 6 || p[0] != 1 || (p[1] & ~3u) != 0)
        return RK_ECORRUPT;
    memset(out, 0, sizeof *out);
    out->joint = p[1] & 1;
    out->manual_leave = (p[1] & 2) != 0;
    if (out->manual_leave && !out->joint)
        return RK_ECORRUPT;
    uint32_t counts[4] = {p[2], p[3], p[4], p[5]};
    for (int i = 0; i < 4; i++)
        if (counts[i] > RK_CONF_MAX_PEERS)
            return RK_ECORRUPT;
    if (!out->joint && (counts[2] || counts[3]))
        return RK_ECORRUPT;
    p += 6;
    rk_peer_id_t *dst[4] = {out->cur.peers, out->cur.learners, out->old.peers, out->old.learners};
    for (int l = 0; l < 4; l++)
        for (uint32_t i = 0; i < counts[l]; i++)
            if (get_peer(&p, end, &dst[l][i]) != 0)
                return RK_ECORRUPT;
    if (p != end)
        return RK_ECORRUPT;
    out->cur.n_peers = counts[0];
    out->cur.n_learners = counts[1];
    out->old.n_peers = counts[2];
    out->old.n_learners = counts[3];
    return 0;
}

/* ------------------------------------------------------------ in effect */

/* Puts conf into effect at index (thesis 4.1: a server uses the latest
 * configuration in its log, committed or not). */
void conf_assign(const core_conf_t **slot, const core_conf_t *conf)
{
    if (conf != NULL)
        core_conf_ref(conf);
    core_conf_release(*slot);
    *slot = conf;
}

int conf_set(core_t *c, const core_conf_t *conf, uint64_t index)
{
    conf_assign(&c->prev_conf, c->conf);
    c->prev_conf_index = c->conf_index;
    conf_assign(&c->conf, conf);
    c->conf_index = index;
    c->target_priority = -1;
    int rv = progress_rebuild(c);
    if (rv != 0) {
        core_set_fatal(c, rv);
        return rv;
    }
    core_event(c, CORE_EV_CONF_CHANGED, index, NULL, 0);
    transfer_on_conf_change(c);
    return 0;
}

int conf_apply_entries(core_t *c, const core_entry_t *ents, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ents[i].type != CORE_ENTRY_CONF)
            continue;
        core_conf_t cf;
        if (core_conf_decode(ents[i].data ? ents[i].data->data : NULL, buf_len(ents[i].data),
                             &cf) != 0) {
            core_set_fatal(c, RK_ECORRUPT);
            return RK_ECORRUPT;
        }
        const core_conf_t *in = core_conf_intern(&cf);
        if (in == NULL) {
            core_set_fatal(c, RK_ENOMEM);
            return RK_ENOMEM;
        }
        int rv = conf_set(c, in, ents[i].index);
        core_conf_release(in);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* Entries from `from` on are about to be overwritten: if the configuration
 * in effect came from one of them, go back to the previous one (scenario 33).
 * Every CONF entry but the last of any log is committed, so one level of
 * history is enough. */
int conf_rollback(core_t *c, uint64_t from)
{
    if (c->conf_index < from)
        return 0;
    if (c->prev_conf_index >= from) {
        core_set_fatal(c, RK_EINTERNAL);
        return RK_EINTERNAL;
    }
    const core_conf_t *prev = core_conf_ref(c->prev_conf);
    uint64_t pi = c->prev_conf_index;
    int rv = conf_set(c, prev, pi);
    conf_assign(&c->prev_conf, prev);
    core_conf_release(prev);
    c->prev_conf_index = pi;
    return rv;
}

bool conf_valid(const rk_configuration_t *cfg)
{
    if (cfg->n_peers == 0 || cfg->n_peers > RK_CONF_MAX_PEERS ||
        cfg->n_learners > RK_CONF_MAX_PEERS)
        return false;
    uint32_t n = cfg->n_peers + cfg->n_learners;
    for (uint32_t i = 0; i < n; i++) {
        const rk_peer_id_t *a =
            i < cfg->n_peers ? &cfg->peers[i] : &cfg->learners[i - cfg->n_peers];
        if (core_peer_is_none(a))
            return false;
        for (uint32_t j = i + 1; j < n; j++) {
            const rk_peer_id_t *b =
                j < cfg->n_peers ? &cfg->peers[j] : &cfg->learners[j - cfg->n_peers];
            if (core_peer_eq(a, b))
                return false;
        }
    }
    return true;
}

static bool same_voters(const rk_configuration_t *a, const rk_configuration_t *b)
{
    if (a->n_peers != b->n_peers)
        return false;
    for (uint32_t i = 0; i < a->n_peers; i++) {
        bool found = false;
        for (uint32_t j = 0; j < b->n_peers && !found; j++)
            found = core_peer_eq(&a->peers[i], &b->peers[j]);
        if (!found)
            return false;
    }
    return true;
}

static int propose_conf(core_t *c, const core_conf_t *cf, uint64_t *index)
{
    core_entry_t e = {.type = CORE_ENTRY_CONF, .data = core_conf_encode(cf)};
    if (e.data == NULL)
        return RK_ENOMEM;
    int rv = repl_append_local(c, &e, 1);
    buf_unref(e.data);
    if (rv != 0)
        return rv;
    c->pending_conf_index = e.index;
    if (index)
        *index = e.index;
    repl_bcast_append(c);
    return 0;
}

int core_change_conf(core_t *c, const rk_configuration_t *target, uint64_t *index)
{
    return core_change_conf_ex(c, target, 0, index);
}

int core_change_conf_ex(core_t *c, const rk_configuration_t *target, unsigned flags,
                        uint64_t *index)
{
    if (c->fatal)
        return RK_ESTATE;
    if (flags & ~CORE_CONF_MANUAL_LEAVE)
        return RK_EINVAL;
    if (c->role != CORE_LEADER)
        return RK_ENOTLEADER;
    quiesce_wake(c);
    if (target == NULL)
        return RK_EINVAL;
    if (c->transferring)
        return RK_ETRANSFER;
    /* One change at a time (thesis 4.1/4.3): the previous entry must be
     * committed and any joint configuration left. */
    if (c->pending_conf_index > c->log.commit || c->conf->joint)
        return RK_ECONFCHANGE;
    if (!conf_valid(target))
        return RK_ECONF;
    core_conf_t cf;
    memset(&cf, 0, sizeof cf);
    cf.cur = *target;
    if (!same_voters(&c->conf->cur, target)) {
        cf.joint = true;
        cf.manual_leave = (flags & CORE_CONF_MANUAL_LEAVE) != 0;
        cf.old = c->conf->cur;
    }
    return propose_conf(c, &cf, index);
}

/* Thesis 4.3: once C_old,new is committed the leader may replicate C_new. */
static int leave_joint(core_t *c, uint64_t *index)
{
    core_conf_t leave;
    memset(&leave, 0, sizeof leave);
    leave.cur = c->conf->cur;
    return propose_conf(c, &leave, index);
}

int core_leave_joint(core_t *c, uint64_t *index)
{
    if (c->fatal)
        return RK_ESTATE;
    if (c->role != CORE_LEADER)
        return RK_ENOTLEADER;
    quiesce_wake(c);
    if (c->transferring)
        return RK_ETRANSFER;
    if (!c->conf->joint) {
        if (index)
            *index = c->conf_index; /* already left: nothing to do */
        return 0;
    }
    if (c->pending_conf_index > c->log.commit)
        return RK_ECONFCHANGE;
    return leave_joint(c, index);
}

/* After commit moved: report committed configurations; as leader, leave a
 * committed joint configuration automatically (thesis 4.3) and step down
 * once a configuration without us is committed (thesis 4.2.2). */
void conf_after_commit(core_t *c)
{
    if (c->conf_index > c->log.commit)
        return;
    if (c->conf_committed_reported < c->conf_index) {
        c->conf_committed_reported = c->conf_index;
        core_event(c, CORE_EV_CONF_COMMITTED, c->conf_index, NULL, 0);
    }
    if (c->role != CORE_LEADER)
        return;
    if (c->conf->joint) {
        if (!c->conf->manual_leave && c->pending_conf_index <= c->log.commit)
            leave_joint(c, NULL);
        return;
    }
    if (!c->conf->joint && !core_conf_is_voter(c->conf, &c->o.self)) {
        /* Removed or demoted: hand over at once rather than let the
         * followers wait out an election timeout (thesis 4.2.2). */
        transfer_handoff(c);
        election_become_follower(c, c->term, NULL);
    }
}
