/* Invariants, checked incrementally as the hosts see updates, and the event
 * trace printed when one breaks.
 *
 *  - election safety (§5.2, Fig. 3.2): at most one leader per term;
 *  - log matching (§5.3): same (index, term) => same entry and same prefix,
 *    over every log as written (durable + unstable), via chain hashes; terms
 *    never decrease along a log;
 *  - leader completeness (§5.4): a newly elected leader holds every entry any
 *    node has reported committed;
 *  - state-machine safety (§5.4.3): one entry per committed index, whoever
 *    commits or applies it; every state machine has the same state after
 *    applying a given index (snapshot installs included); a node never
 *    overwrites an entry it had committed;
 *  - committed entries survive crashes: enforced by the two above across
 *    restarts (a lost entry lets a leader without it be elected);
 *  - read linearizability (thesis 6.4): a read returns a state that includes
 *    every write completed before the read started;
 *  - protocol rules a host can observe (unless --no-rule-checks): vote
 *    grants and append acks leave a node only once durable; a leader's
 *    commit index only ever moves onto an entry of its own term (§5.4.2);
 *  - host/core contract breaches (reading non-durable entries, ids going
 *    backwards, ...) are reported the same way. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

#define U(x) ((unsigned long long)(x))

static void *grow(void *v, size_t *cap, size_t need, size_t elem)
{
    if (need < *cap)
        return v;
    size_t nc = *cap ? *cap : 256;
    while (nc <= need)
        nc *= 2;
    v = realloc(v, nc * elem);
    if (v == NULL)
        abort();
    memset((char *)v + *cap * elem, 0, (nc - *cap) * elem);
    *cap = nc;
    return v;
}

/* ------------------------------------------------------ (index, term) map */

static size_t itmap_slot(const sim_itmap_t *m, uint64_t idx, uint64_t term)
{
    uint64_t x = idx * 0x9e3779b97f4a7c15ULL ^ term;
    size_t i = (size_t)(sim_splitmix(&x) & (m->cap - 1));
    while (m->idx[i] != 0 && (m->idx[i] != idx || m->term[i] != term))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static void itmap_grow(sim_itmap_t *m)
{
    sim_itmap_t o = *m;
    m->cap = o.cap ? 2 * o.cap : 1024;
    m->n = 0;
    m->idx = calloc(m->cap, sizeof *m->idx);
    m->term = calloc(m->cap, sizeof *m->term);
    m->chain = calloc(m->cap, sizeof *m->chain);
    if (!m->idx || !m->term || !m->chain)
        abort();
    for (size_t i = 0; i < o.cap; i++) {
        if (o.idx[i] == 0)
            continue;
        size_t j = itmap_slot(m, o.idx[i], o.term[i]);
        m->idx[j] = o.idx[i];
        m->term[j] = o.term[i];
        m->chain[j] = o.chain[i];
        m->n++;
    }
    free(o.idx);
    free(o.term);
    free(o.chain);
}

/* Returns the chain recorded for (idx, term), recording `chain` if none. */
static uint64_t itmap_put(sim_itmap_t *m, uint64_t idx, uint64_t term, uint64_t chain)
{
    if (2 * (m->n + 1) > m->cap)
        itmap_grow(m);
    size_t i = itmap_slot(m, idx, term);
    if (m->idx[i] == 0) {
        m->idx[i] = idx;
        m->term[i] = term;
        m->chain[i] = chain;
        m->n++;
    }
    return m->chain[i];
}

/* ------------------------------------------------------------ lifecycle */

void check_init(sim_group_t *g)
{
    g->leader_of_term = NULL;
    g->n_lot = 0;
    g->committed = NULL;
    g->cap_committed = 0;
    g->max_committed = 0;
    g->sm_hash = NULL;
    g->cap_sm_hash = 0;
    memset(&g->itmap, 0, sizeof g->itmap);
    g->writes = NULL;
    g->cap_writes = 0;
    memset(g->done_key, 0, sizeof g->done_key);
    g->done_all = 0;
}

void check_free(sim_group_t *g)
{
    free(g->leader_of_term);
    free(g->committed);
    free(g->sm_hash);
    free(g->itmap.idx);
    free(g->itmap.term);
    free(g->itmap.chain);
    free(g->writes);
    g->leader_of_term = NULL;
    g->committed = NULL;
    g->sm_hash = NULL;
    g->writes = NULL;
    memset(&g->itmap, 0, sizeof g->itmap);
}

/* Records the first violation; with several groups it names the group the
 * current event concerns, whose invariant broke. */
void check_fail(sim_t *s, const char *fmt, ...)
{
    if (s->violated)
        return;
    s->violated = true;
    s->violation_step = s->step;
    s->violation_group = s->g->id;
    int o =
        s->n_groups > 1 ? snprintf(s->violation, sizeof s->violation, "group %d: ", s->g->id) : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->violation + o, sizeof s->violation - (size_t)o, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ log checks */

void check_entry_written(sim_t *s, sim_node_t *nd, const sim_ent_t *e, uint64_t prev_term,
                         uint64_t commit_before)
{
    uint64_t i = e->e.index, t = e->e.term;
    if (t < prev_term)
        check_fail(s, "log: node %d writes %llu/%llu after an entry of term %llu", nd->id, U(i),
                   U(t), U(prev_term));
    if (itmap_put(&s->g->itmap, i, t, e->chain) != e->chain)
        check_fail(s,
                   "log matching: node %d writes entry %llu/%llu whose entry or prefix "
                   "differs from another log's %llu/%llu",
                   nd->id, U(i), U(t), U(i), U(t));
    if (i <= commit_before && i < s->g->cap_committed && s->g->committed[i].set &&
        s->g->committed[i].chain != e->chain)
        check_fail(s,
                   "state machine safety: node %d overwrites its committed index %llu "
                   "(commit %llu) with %llu/%llu",
                   nd->id, U(i), U(commit_before), U(i), U(t));
}

void check_committed(sim_t *s, sim_node_t *nd, uint64_t index, uint64_t term, uint64_t chain)
{
    s->g->committed = grow(s->g->committed, &s->g->cap_committed, index, sizeof *s->g->committed);
    sim_committed_t *c = &s->g->committed[index];
    /* The core's term, not term_seen: a restarted node applies before its
     * first status check. */
    core_status_t st;
    core_get_status(nd->core, &st);
    if (!c->set || st.term < c->commit_term)
        c->commit_term = st.term;
    if (!c->set) {
        c->set = true;
        c->term = term;
        c->chain = chain;
    } else if (c->chain != chain) {
        check_fail(s,
                   "state machine safety: node %d commits %llu/%llu but %llu/%llu was "
                   "committed there (or the prefixes differ)",
                   nd->id, U(index), U(term), U(index), U(c->term));
    }
    if (index > s->g->max_committed)
        s->g->max_committed = index;
}

void check_status(sim_t *s, sim_node_t *nd)
{
    core_status_t st;
    core_get_status(nd->core, &st);
    if (st.fatal != 0) {
        check_fail(s, "core fatal at node %d: %s", nd->id, rk_err_name(st.fatal));
        return;
    }
    if (st.term < nd->term_seen)
        check_fail(s, "term: node %d went from term %llu back to %llu", nd->id, U(nd->term_seen),
                   U(st.term));
    nd->term_seen = st.term;
    nd->role_seen = st.role;
    if (st.role == CORE_LEADER) {
        s->g->leader_of_term =
            grow(s->g->leader_of_term, &s->g->n_lot, st.term, sizeof *s->g->leader_of_term);
        uint64_t *l = &s->g->leader_of_term[st.term];
        if (*l == 0)
            *l = (uint64_t)nd->id + 1;
        else if (*l != (uint64_t)nd->id + 1)
            check_fail(s, "election safety: nodes %d and %d both leaders in term %llu", (int)*l - 1,
                       nd->id, U(st.term));
    }
    if (st.commit < nd->commit_seen) {
        check_fail(s, "commit: node %d commit went from %llu back to %llu", nd->id,
                   U(nd->commit_seen), U(st.commit));
        return;
    }
    if (st.commit == nd->commit_seen)
        return;
    uint64_t ct;
    if (s->p.rules && st.role == CORE_LEADER && slog_term(&nd->vlog, st.commit, &ct) &&
        ct != st.term) {
        check_fail(s,
                   "commit rule (§5.4.2): leader %d in term %llu moves commit to %llu, an "
                   "entry of term %llu",
                   nd->id, U(st.term), U(st.commit), U(ct));
        return;
    }
    uint64_t from = nd->commit_seen + 1;
    if (from <= nd->vlog.compact_index)
        from = nd->vlog.compact_index;
    for (uint64_t i = from; i <= st.commit && !s->violated; i++) {
        uint64_t chain, term;
        if (i == 0)
            continue;
        if (!slog_chain(&nd->vlog, i, &chain) || !slog_term(&nd->vlog, i, &term)) {
            check_fail(s, "commit: node %d commits %llu beyond its log (%llu, %llu]", nd->id, U(i),
                       U(nd->vlog.compact_index), U(slog_last(&nd->vlog)));
            return;
        }
        check_committed(s, nd, i, term, chain);
    }
    trace_add(s, TR_COMMIT, nd->id, -1, nd->commit_seen, st.commit, st.term, 0);
    nd->commit_seen = st.commit;
    if (st.commit == s->g->max_committed)
        check_commit_safe(s);
}

/* Leader completeness (§5.4) binds the leaders of terms after the one an
 * entry was committed in: a candidate of an older term can still win once
 * a newer leader has committed more (a vote granted before the voter moved
 * on, delivered late), and is deposed without committing anything. The
 * commit term of an index is the lowest current term of any node that
 * reported it committed (no later than the term it was committed in, and
 * non-decreasing along the log, since committing an index commits its
 * prefix): the leader of `term` must hold the highest index committed in a
 * lower term. */
void check_new_leader(sim_t *s, sim_node_t *nd, uint64_t term)
{
    uint64_t mc = s->g->max_committed, chain;
    while (mc > 0 && !(s->g->committed[mc].set && s->g->committed[mc].commit_term < term))
        mc--;
    if (mc == 0 || mc < nd->vlog.compact_index)
        return;
    if (!slog_chain(&nd->vlog, mc, &chain)) {
        check_fail(s,
                   "leader completeness: node %d elected in term %llu lacks committed index "
                   "%llu (its log ends at %llu)",
                   nd->id, U(term), U(mc), U(slog_last(&nd->vlog)));
        return;
    }
    if (chain != s->g->committed[mc].chain)
        check_fail(s,
                   "leader completeness: node %d elected in term %llu holds a different "
                   "entry (or prefix) at committed index %llu",
                   nd->id, U(term), U(mc));
}

/* Durable promises (§5.2, Fig. 3.1 "persistent state ... updated on stable
 * storage before responding to RPCs"; core.h msgs_after): when a vote grant
 * or an append ack leaves a node, what it promises must already be on that
 * node's disk -- else a crash can make the node vote twice in a term, or
 * forget entries a leader counted toward commit. */
void check_promise(sim_t *s, const sim_msg_t *sm)
{
    const sim_node_t *nd = &s->g->nodes[sm->from];
    const core_msg_t *m = &sm->m;
    if (m->reject || !s->p.rules)
        return;
    if (m->type == CORE_MSG_VOTE_RESP) {
        bool durable =
            nd->hs.term > m->term || (nd->hs.term == m->term && core_peer_eq(&nd->hs.vote, &m->to));
        if (!durable)
            check_fail(s,
                       "durability: node %d grants its term-%llu vote to node %d, but its "
                       "disk holds term %llu, vote %s",
                       sm->from, U(m->term), sm->to, U(nd->hs.term),
                       core_peer_is_none(&nd->hs.vote) ? "none" : "another");
    } else if (m->type == CORE_MSG_APP_RESP) {
        if (m->index > slog_last(&nd->dlog) && m->index > nd->dsnap.meta.index)
            check_fail(s,
                       "durability: node %d acks index %llu to node %d, but its disk holds "
                       "the log up to %llu",
                       sm->from, U(m->index), sm->to, U(slog_last(&nd->dlog)));
    }
}

/* Log comparison of §5.4.1: is (t1, i1) at least as up-to-date as (t2, i2)? */
static bool up_to_date(uint64_t t1, uint64_t i1, uint64_t t2, uint64_t i2)
{
    return t1 > t2 || (t1 == t2 && i1 >= i2);
}

static void last_of(const sim_log_t *l, uint64_t *term, uint64_t *index)
{
    *index = slog_last(l);
    slog_term(l, *index, term);
}

/* Would a majority of `voters` grant x's vote on log grounds alone? Voters
 * are judged by their durable logs (what they would vote with after a
 * crash; unstable entries only make them stricter). */
static bool could_win(const sim_t *s, const rk_configuration_t *voters, uint64_t xt, uint64_t xi)
{
    uint32_t grants = 0;
    for (uint32_t k = 0; k < voters->n_peers; k++) {
        int v = net_node_of(s, &voters->peers[k]);
        uint64_t vt, vi;
        if (v < 0)
            continue;
        last_of(&s->g->nodes[v].dlog, &vt, &vi);
        if (up_to_date(xt, xi, vt, vi))
            grants++;
    }
    return 2 * grants > voters->n_peers;
}

/* Leader completeness, checked ahead of time: once an entry is committed,
 * no node lacking it may be able to collect a quorum of votes (§5.4.3: a
 * committed entry is durable on a majority, and each of those refuses to
 * vote for a log that is less up-to-date). This catches an unsafe commit at
 * the moment it is claimed -- e.g. a leader committing an entry of an older
 * term by counting replicas (Fig. 3.7 / §5.4.2) -- instead of waiting for an
 * election to go the wrong way. */
void check_commit_safe(sim_t *s)
{
    uint64_t mc = s->g->max_committed;
    if (mc == 0)
        return;
    uint64_t want = s->g->committed[mc].chain;
    for (int x = 0; x < s->n && !s->violated; x++) {
        const sim_node_t *nd = &s->g->nodes[x];
        const sim_log_t *l = nd->up ? &nd->vlog : &nd->dlog;
        uint64_t chain;
        if (l->compact_index > mc || (slog_chain(l, mc, &chain) && chain == want))
            continue;
        core_conf_t conf;
        if (nd->up)
            conf = *core_get_conf(nd->core, &(uint64_t){0});
        else
            host_conf_at(s, nd, slog_last(&nd->dlog), &conf);
        if (!core_conf_is_voter(&conf, &nd->peer))
            continue;
        uint64_t xt, xi;
        last_of(l, &xt, &xi);
        if (could_win(s, &conf.cur, xt, xi) && (!conf.joint || could_win(s, &conf.old, xt, xi)))
            check_fail(s,
                       "leader completeness: index %llu is committed, but node %d, whose log "
                       "lacks it (last %llu/%llu), could still win an election",
                       U(mc), x, U(xi), U(xt));
    }
}

/* -------------------------------------------------------- state machine */

void check_applied(sim_t *s, sim_node_t *nd, const sim_ent_t *e)
{
    check_committed(s, nd, e->e.index, e->e.term, e->chain);
    if (e->e.type != CORE_ENTRY_DATA || buf_len(e->e.data) != sizeof(sim_cmd_t))
        return;
    sim_cmd_t cmd;
    memcpy(&cmd, e->e.data->data, sizeof cmd);
    s->g->writes = grow(s->g->writes, &s->g->cap_writes, cmd.wid, sizeof *s->g->writes);
    sim_write_rec_t *w = &s->g->writes[cmd.wid];
    if (w->index == 0)
        w->index = e->e.index;
    else if (w->index != e->e.index)
        check_fail(s, "state machine safety: write %llu applied at %llu and at %llu", U(cmd.wid),
                   U(w->index), U(e->e.index));
}

void check_sm_state(sim_t *s, sim_node_t *nd)
{
    uint64_t i = nd->sm.applied;
    if (i == 0)
        return;
    s->g->sm_hash = grow(s->g->sm_hash, &s->g->cap_sm_hash, i, sizeof *s->g->sm_hash);
    uint64_t h = sim_mix(nd->sm.hash, nd->sm.count);
    for (int k = 0; k < SIM_KEYS; k++)
        h = sim_mix(h, nd->sm.reg[k]);
    h |= 1;
    if (s->g->sm_hash[i] == 0)
        s->g->sm_hash[i] = h;
    else if (s->g->sm_hash[i] != h)
        check_fail(s,
                   "state machine safety: node %d state after applying %llu differs from "
                   "another node's",
                   nd->id, U(i));
}

void check_write_proposed(sim_t *s, uint64_t wid, uint32_t key)
{
    s->g->writes = grow(s->g->writes, &s->g->cap_writes, wid, sizeof *s->g->writes);
    s->g->writes[wid].key = key;
}

void check_write_completed(sim_t *s, sim_node_t *nd, uint64_t wid, uint64_t index)
{
    sim_write_rec_t *w = &s->g->writes[wid];
    w->completed = true;
    if (index > s->g->done_key[w->key])
        s->g->done_key[w->key] = index;
    if (index > s->g->done_all)
        s->g->done_all = index;
    s->st_writes_done++;
    trace_add(s, TR_WRITE_DONE, nd->id, -1, wid, index, w->key, 0);
    if (wid == s->g->final_wid)
        s->g->final_index = index;
}

void check_read_start(sim_t *s, sim_read_t *r)
{
    r->need_key = s->g->done_key[r->key];
    r->need_all = s->g->done_all;
}

void check_read_served(sim_t *s, sim_node_t *nd, const sim_read_t *r)
{
    uint64_t v = nd->sm.reg[r->key];
    uint64_t vi = v == 0 ? 0 : (v < s->g->cap_writes ? s->g->writes[v].index : 0);
    s->st_reads_done++;
    trace_add(s, TR_READ_DONE, nd->id, -1, r->ctx, r->index, v, nd->sm.applied);
    if (vi < r->need_key)
        check_fail(s,
                   "linearizability: read %llu at node %d (read index %llu) returned write "
                   "%llu (index %llu) for key %u, but a write at index %llu had completed "
                   "before the read started",
                   U(r->ctx), nd->id, U(r->index), U(v), U(vi), r->key, U(r->need_key));
    else if (nd->sm.applied < r->need_all)
        check_fail(s,
                   "linearizability: read %llu at node %d served at applied %llu (read index "
                   "%llu), but a write at index %llu had completed before it started",
                   U(r->ctx), nd->id, U(nd->sm.applied), U(r->index), U(r->need_all));
}

/* ------------------------------------------------------------------ trace */

void trace_add(sim_t *s, int kind, int node, int peer, uint64_t a, uint64_t b, uint64_t c,
               uint64_t d)
{
    bool beat = (kind == TR_DELIVER || kind == TR_DROP) &&
                (a == CORE_MSG_HEARTBEAT || a == CORE_MSG_HEARTBEAT_RESP);
    if (beat && !s->p.verbose)
        return; /* keep the failure trace for what moves state */
    sim_trace_rec_t *t = &s->trace[s->n_trace++ % SIM_TRACE];
    *t = (sim_trace_rec_t){s->step, s->now, kind, s->g->id, node, peer, a, b, c, d};
    if (s->p.verbose)
        trace_print(s, t);
}

static const char *role_name(uint64_t r)
{
    return core_role_name((core_role_t)r);
}

static const char *rc_name(uint64_t rc)
{
    return rc == 0 ? "ok" : rk_err_name((int)(int64_t)rc);
}

/* Events of a whole process (or of the network) concern no one group. */
static bool process_level(int kind)
{
    return kind == TR_CRASH || kind == TR_RESTART || kind == TR_PARTITION || kind == TR_HEAL ||
           kind == TR_SLOW_DISK || kind == TR_PAUSE || kind == TR_RESUME || kind == TR_JUMP;
}

void trace_print(const sim_t *s, const sim_trace_rec_t *t)
{
    printf("  [step %6llu t=%6llu] ", U(t->step), U(t->now));
    if (s->n_groups > 1 && !process_level(t->kind))
        printf("g%d ", t->group);
    switch (t->kind) {
    case TR_DELIVER:
        printf("n%d -> n%d %s term=%llu index=%llu entries=%llu\n", t->node, t->peer,
               core_msg_type_name((core_msg_type_t)t->a), U(t->b), U(t->c), U(t->d));
        break;
    case TR_DROP:
        printf("n%d -> n%d %s term=%llu index=%llu DROPPED\n", t->node, t->peer,
               core_msg_type_name((core_msg_type_t)t->a), U(t->b), U(t->c));
        break;
    case TR_DISK:
        printf("n%d disk done: update %llu, log last %llu, term %llu, %llu msgs released\n",
               t->node, U(t->a), U(t->b), U(t->c), U(t->d));
        break;
    case TR_ROLE:
        printf("n%d becomes %s in term %llu (log last %llu, commit %llu)\n", t->node,
               role_name(t->a), U(t->b), U(t->c), U(t->d));
        break;
    case TR_PROPOSE:
        printf("n%d propose write %llu key %llu -> index %llu term %llu\n", t->node, U(t->a),
               U(t->d), U(t->b), U(t->c));
        break;
    case TR_READ:
        printf("n%d read %llu key %llu starts (rc %lld)\n", t->node, U(t->a), U(t->b),
               (long long)t->c);
        break;
    case TR_READ_DONE:
        printf("n%d read %llu served: read index %llu, value w%llu, applied %llu\n", t->node,
               U(t->a), U(t->b), U(t->c), U(t->d));
        break;
    case TR_CONF:
        printf("n%d change conf (op %llu, peer n%d) -> %s index %llu\n", t->node, U(t->a), t->peer,
               rc_name(t->b), U(t->c));
        break;
    case TR_TRANSFER:
        printf("n%d transfer to n%d -> %s\n", t->node, t->peer, rc_name(t->a));
        break;
    case TR_SNAPSHOT:
        printf("n%d snapshot at %llu/%llu\n", t->node, U(t->a), U(t->b));
        break;
    case TR_COMPACT:
        printf("n%d compact to %llu/%llu\n", t->node, U(t->a), U(t->b));
        break;
    case TR_INSTALL:
        printf("n%d installs snapshot %llu/%llu\n", t->node, U(t->a), U(t->b));
        break;
    case TR_CRASH:
        printf("process n%d CRASH (%s)\n", t->node, t->a ? "writes pending" : "disk idle");
        break;
    case TR_RESTART:
        if (s->n_groups > 1)
            printf("process n%d restarts\n", t->node);
        else
            printf("n%d restart: term %llu, log last %llu, snapshot %llu, commit %llu\n", t->node,
                   U(t->a), U(t->b), U(t->c), U(t->d));
        break;
    case TR_PARTITION:
        if (t->a == 0)
            printf("partition: n%d isolated\n", t->node);
        else if (t->a == 1)
            printf("partition: split, mask %#llx\n", U(t->b));
        else
            printf("partition: link n%d -> n%d cut\n", t->node, t->peer);
        break;
    case TR_HEAL:
        printf("network healed\n");
        break;
    case TR_CAMPAIGN:
        printf("n%d campaign -> %s\n", t->node, rc_name(t->a));
        break;
    case TR_COMMIT:
        printf("n%d commit %llu -> %llu (term %llu)\n", t->node, U(t->a), U(t->b), U(t->c));
        break;
    case TR_WRITE_DONE:
        printf("n%d write %llu completed at index %llu (key %llu)\n", t->node, U(t->a), U(t->b),
               U(t->c));
        break;
    case TR_SLOW_DISK:
        printf("process n%d disk now %s\n", t->node, t->a ? "slow" : "fast");
        break;
    case TR_QUIESCE:
        if (t->peer < 0)
            printf("n%d QUIESCES as leader: term %llu, last %llu, commit %llu\n", t->node, U(t->a),
                   U(t->b), U(t->c));
        else
            printf("n%d quiesces under n%d: term %llu, last %llu, commit %llu\n", t->node, t->peer,
                   U(t->a), U(t->b), U(t->c));
        break;
    case TR_WAKE:
        printf("n%d wakes (%s, term %llu)\n", t->node, role_name(t->b), U(t->a));
        break;
    case TR_PROC_DOWN:
        printf("n%d host: process of leader n%d is down (%s)\n", t->node, t->peer,
               t->a ? "new incarnation" : "silent");
        break;
    case TR_PAUSE:
        printf("process n%d PAUSED for %llu\n", t->node, U(t->a));
        break;
    case TR_RESUME:
        printf("process n%d resumes: %llu missed ticks run now\n", t->node, U(t->a));
        break;
    case TR_JUMP:
        printf("process n%d clock jumps %llu ticks\n", t->node, U(t->a));
        break;
    default:
        printf("?\n");
    }
}

void trace_dump(const sim_t *s)
{
    uint64_t n = s->n_trace < 50 ? s->n_trace : 50;
    printf("last %llu events:\n", U(n));
    for (uint64_t i = s->n_trace - n; i < s->n_trace; i++)
        trace_print(s, &s->trace[i % SIM_TRACE]);
}
