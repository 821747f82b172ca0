/* Deterministic in-test harness for the Raft core (see core_harness.h). */
#include "tests/support/core_harness.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rk_peer_id_t h_peer(int i)
{
    rk_peer_id_t p;
    memset(&p, 0, sizeof p);
    snprintf(p.endpoint.host, sizeof p.endpoint.host, "10.0.0.%d", i + 1);
    p.endpoint.port = 8000;
    p.priority = RK_PRIORITY_DISABLED;
    return p;
}

void h_default_opts(core_options_t *o)
{
    core_options_init(o);
    o->election_ticks = 10;
    o->heartbeat_ticks = 1;
}

int h_index(h_cluster_t *cl, const rk_peer_id_t *id)
{
    for (int i = 0; i < cl->count; i++)
        if (core_peer_eq(&cl->n[i].id, id))
            return i;
    return -1;
}

/* ---------------------------------------------------------------- storage */

/* ------------------------------------------------------------- building */

static void build_core(h_cluster_t *cl, int i)
{
    h_node_t *n = &cl->n[i];
    core_init_t init;
    memset(&init, 0, sizeof init);
    init.opts = cl->opts;
    init.opts.self = n->id;
    init.opts.seed = cl->opts.seed * 131 + (uint64_t)i + 1;
    init.hs = n->hs;
    init.snapshot = n->snap;
    init.compact_index = n->log.compact_index;
    init.compact_term = n->log.compact_term;
    init.last_index = mem_log_last(&n->log);
    init.last_term = n->log.n ? n->log.v[n->log.n - 1].term : n->log.compact_term;
    /* Configuration: the last CONF entry of the log, else the snapshot's,
     * else the bootstrap one. */
    init.conf = n->snap.index ? n->snap.conf : cl->boot;
    init.conf_index = n->snap.index;
    init.prev_conf = init.conf;
    for (size_t k = 0; k < n->log.n; k++) {
        const core_entry_t *e = &n->log.v[k];
        if (e->type != CORE_ENTRY_CONF)
            continue;
        init.prev_conf = init.conf;
        core_conf_decode(e->data->data, e->data->len, &init.conf);
        init.conf_index = e->index;
    }
    init.applied = n->snap.index;
    n->applied = n->snap.index;
    core_storage_t st = {.arg = &n->log, .term = mem_log_term, .entries = mem_log_entries};
    int err;
    n->core = core_new(&init, &st, &err);
    assert(n->core != NULL);
}

void h_init(h_cluster_t *cl, int voters, int learners, const core_options_t *opts)
{
    memset(cl, 0, sizeof *cl);
    if (opts)
        cl->opts = *opts;
    else
        h_default_opts(&cl->opts);
    cl->count = voters + learners;
    cl->auto_persist = true;
    for (int i = 0; i < cl->count; i++) {
        cl->n[i].id = h_peer(i);
        if (i < voters)
            cl->boot.cur.peers[cl->boot.cur.n_peers++] = cl->n[i].id;
        else
            cl->boot.cur.learners[cl->boot.cur.n_learners++] = cl->n[i].id;
    }
    for (int i = 0; i < cl->count; i++)
        build_core(cl, i);
}

static void net_free(h_cluster_t *cl)
{
    for (size_t k = 0; k < cl->n_net; k++)
        core_msg_free_contents(&cl->net[k].m);
    cl->n_net = 0;
}

static void pending_free(h_node_t *n)
{
    for (size_t k = 0; k < n->n_pending; k++)
        core_update_release(&n->pending[k]);
    n->n_pending = 0;
}

void h_free(h_cluster_t *cl)
{
    net_free(cl);
    free(cl->net);
    for (int i = 0; i < cl->count; i++) {
        h_node_t *n = &cl->n[i];
        pending_free(n);
        core_free(n->core);
        mem_log_free(&n->log);
    }
    memset(cl, 0, sizeof *cl);
}

int h_conf_leaked(void)
{
    size_t n = core_conf_interned();
    if (n == 0)
        return 0;
    fprintf(stderr, "%zu interned configurations left after the suite\n", n);
    return 1;
}

/* ---------------------------------------------------------------- network */

static void net_push(h_cluster_t *cl, const core_msg_t *m)
{
    int from = h_index(cl, &m->from), to = h_index(cl, &m->to);
    if (from < 0 || to < 0)
        return; /* to a peer outside the harness */
    if (cl->n_net == cl->cap_net) {
        cl->cap_net = cl->cap_net ? 2 * cl->cap_net : 64;
        cl->net = realloc(cl->net, cl->cap_net * sizeof *cl->net);
        assert(cl->net != NULL);
    }
    h_net_msg_t *nm = &cl->net[cl->n_net++];
    nm->from = from;
    nm->to = to;
    nm->m = *m;
    if (m->n_entries) {
        nm->m.entries = malloc(m->n_entries * sizeof *m->entries);
        assert(nm->m.entries != NULL);
        for (size_t k = 0; k < m->n_entries; k++) {
            nm->m.entries[k] = m->entries[k];
            buf_ref(m->entries[k].data);
        }
    } else {
        nm->m.entries = NULL;
    }
    if (m->snap) {
        nm->m.snap = malloc(sizeof *m->snap);
        assert(nm->m.snap != NULL);
        *nm->m.snap = *m->snap;
    }
}

static void write_update(h_node_t *n, const core_update_t *u)
{
    if (u->has_hard_state)
        n->hs = u->hs;
    if (u->has_snapshot) {
        n->snap = u->snapshot;
        mem_log_reset(&n->log, u->snapshot.index, u->snapshot.term);
    }
    if (u->n_entries) {
        mem_log_truncate(&n->log, u->entries[0].index);
        assert(u->entries[0].index == mem_log_last(&n->log) + 1);
        mem_log_append(&n->log, u->entries, u->n_entries);
    }
}

static void persist_one(h_cluster_t *cl, int i, core_update_t *u)
{
    h_node_t *n = &cl->n[i];
    write_update(n, u);
    if (u->id)
        core_persisted(n->core, u->id);
    for (size_t k = 0; k < u->n_msgs_after; k++)
        net_push(cl, &u->msgs_after[k]);
    core_update_release(u);
}

void h_persist_n(h_cluster_t *cl, int i, size_t k)
{
    h_node_t *n = &cl->n[i];
    if (k > n->n_pending)
        k = n->n_pending;
    for (size_t j = 0; j < k; j++)
        persist_one(cl, i, &n->pending[j]);
    memmove(n->pending, n->pending + k, (n->n_pending - k) * sizeof n->pending[0]);
    n->n_pending -= k;
}

void h_persist(h_cluster_t *cl, int i)
{
    h_persist_n(cl, i, cl->n[i].n_pending);
}

void h_drain(h_cluster_t *cl, int i)
{
    h_node_t *n = &cl->n[i];
    for (int guard = 0; guard < 100 && core_has_update(n->core); guard++) {
        core_update_t u;
        core_update_get(n->core, &u);
        if (u.fatal)
            n->fatal = u.fatal;
        for (size_t k = 0; k < u.n_msgs; k++)
            net_push(cl, &u.msgs[k]);
        for (size_t k = 0; k < u.n_reads && n->n_reads < 256; k++)
            n->reads[n->n_reads++] = u.reads[k];
        for (size_t k = 0; k < u.n_events && n->n_events < 512; k++)
            n->events[n->n_events++] = u.events[k];
        if (u.apply_hi >= u.apply_lo) {
            n->applied = u.apply_hi;
            core_applied(n->core, n->applied);
        }
        if (u.has_snapshot)
            n->applied = u.snapshot.index;
        if (cl->auto_persist && n->n_pending == 0) {
            persist_one(cl, i, &u);
        } else {
            assert(n->n_pending < H_PENDING_MAX);
            n->pending[n->n_pending++] = u;
        }
    }
}

void h_drain_all(h_cluster_t *cl)
{
    for (int i = 0; i < cl->count; i++)
        if (!cl->n[i].down)
            h_drain(cl, i);
}

static bool matches(const h_net_msg_t *nm, int from, int to, int type)
{
    return (from < 0 || nm->from == from) && (to < 0 || nm->to == to) &&
           (type < 0 || (int)nm->m.type == type);
}

static bool blocked(h_cluster_t *cl, const h_net_msg_t *nm)
{
    return cl->cut[nm->from][nm->to] || cl->n[nm->to].down || cl->n[nm->from].down;
}

int h_step(h_cluster_t *cl, int i, const core_msg_t *m)
{
    return core_step(cl->n[i].core, m);
}

/* Removes and delivers/drops matching messages present now (not ones
 * generated while delivering). */
static size_t take(h_cluster_t *cl, int from, int to, int type, bool deliver)
{
    size_t n0 = cl->n_net, done = 0;
    h_net_msg_t *snap = malloc((n0 ? n0 : 1) * sizeof *snap);
    assert(snap != NULL);
    size_t keep = 0, ns = 0;
    for (size_t k = 0; k < n0; k++) {
        if (matches(&cl->net[k], from, to, type))
            snap[ns++] = cl->net[k];
        else
            cl->net[keep++] = cl->net[k];
    }
    cl->n_net = keep;
    for (size_t k = 0; k < ns; k++) {
        if (deliver && !blocked(cl, &snap[k])) {
            core_step(cl->n[snap[k].to].core, &snap[k].m);
            done++;
        } else if (!deliver) {
            done++;
        }
        core_msg_free_contents(&snap[k].m);
    }
    free(snap);
    return done;
}

size_t h_deliver(h_cluster_t *cl, int from, int to, int type)
{
    size_t d = take(cl, from, to, type, true);
    h_drain_all(cl);
    return d;
}

size_t h_drop(h_cluster_t *cl, int from, int to, int type)
{
    return take(cl, from, to, type, false);
}

size_t h_count(h_cluster_t *cl, int from, int to, int type)
{
    size_t c = 0;
    for (size_t k = 0; k < cl->n_net; k++)
        c += matches(&cl->net[k], from, to, type);
    return c;
}

h_net_msg_t *h_find(h_cluster_t *cl, int from, int to, int type)
{
    for (size_t k = 0; k < cl->n_net; k++)
        if (matches(&cl->net[k], from, to, type))
            return &cl->net[k];
    return NULL;
}

size_t h_stabilize(h_cluster_t *cl)
{
    size_t total = 0;
    h_drain_all(cl);
    for (int round = 0; round < 1000 && cl->n_net > 0; round++)
        total += h_deliver(cl, -1, -1, -1);
    return total;
}

void h_tick(h_cluster_t *cl, int i, int n)
{
    for (int k = 0; k < n; k++) {
        core_tick(cl->n[i].core);
        h_drain(cl, i);
    }
}

void h_run(h_cluster_t *cl, int n)
{
    for (int k = 0; k < n; k++) {
        for (int i = 0; i < cl->count; i++)
            if (!cl->n[i].down)
                h_tick(cl, i, 1);
        h_stabilize(cl);
    }
}

int h_leader(h_cluster_t *cl)
{
    int best = -1;
    uint64_t bt = 0;
    for (int i = 0; i < cl->count; i++) {
        if (cl->n[i].down || h_role(cl, i) != CORE_LEADER)
            continue;
        if (best < 0 || h_term(cl, i) > bt) {
            best = i;
            bt = h_term(cl, i);
        }
    }
    return best;
}

void h_cut(h_cluster_t *cl, int a, int b, bool on)
{
    cl->cut[a][b] = on;
    cl->cut[b][a] = on;
}

void h_isolate(h_cluster_t *cl, int i, bool on)
{
    for (int j = 0; j < cl->count; j++)
        if (j != i)
            h_cut(cl, i, j, on);
}

core_role_t h_elect(h_cluster_t *cl, int i)
{
    core_campaign(cl->n[i].core);
    h_stabilize(cl);
    return h_role(cl, i);
}

int h_propose(h_cluster_t *cl, int i, const char *s)
{
    core_entry_t e = {.type = CORE_ENTRY_DATA, .data = buf_new(s, strlen(s))};
    int rv = core_propose(cl->n[i].core, &e, 1, NULL, NULL);
    buf_unref(e.data);
    h_drain(cl, i);
    return rv;
}

static core_status_t status(h_cluster_t *cl, int i)
{
    core_status_t st;
    core_get_status(cl->n[i].core, &st);
    return st;
}

core_role_t h_role(h_cluster_t *cl, int i)
{
    return status(cl, i).role;
}
uint64_t h_term(h_cluster_t *cl, int i)
{
    return status(cl, i).term;
}
uint64_t h_commit(h_cluster_t *cl, int i)
{
    return status(cl, i).commit;
}
uint64_t h_last(h_cluster_t *cl, int i)
{
    return status(cl, i).last_index;
}

uint64_t h_log_term(h_cluster_t *cl, int i, uint64_t index)
{
    uint64_t t = 0;
    if (mem_log_term(&cl->n[i].log, index, &t) != 0)
        return 0;
    return t;
}

uint64_t h_log_last(h_cluster_t *cl, int i)
{
    return mem_log_last(&cl->n[i].log);
}

void h_restart(h_cluster_t *cl, int i)
{
    h_node_t *n = &cl->n[i];
    pending_free(n);
    size_t keep = 0;
    for (size_t k = 0; k < cl->n_net; k++) {
        if (cl->net[k].from == i || cl->net[k].to == i)
            core_msg_free_contents(&cl->net[k].m);
        else
            cl->net[keep++] = cl->net[k];
    }
    cl->n_net = keep;
    core_free(n->core);
    build_core(cl, i);
}

void h_set_log(h_cluster_t *cl, int i, const uint64_t *terms, size_t cnt, uint64_t term)
{
    h_node_t *n = &cl->n[i];
    pending_free(n);
    mem_log_truncate(&n->log, 0);
    for (size_t k = 0; k < cnt; k++) {
        core_entry_t e = {.term = terms[k], .index = k + 1, .type = CORE_ENTRY_DATA};
        mem_log_append(&n->log, &e, 1);
    }
    memset(&n->hs, 0, sizeof n->hs);
    n->hs.term = term;
    core_free(n->core);
    build_core(cl, i);
}

size_t h_events(h_cluster_t *cl, int i, core_event_type_t t)
{
    size_t c = 0;
    for (size_t k = 0; k < cl->n[i].n_events; k++)
        c += cl->n[i].events[k].type == t;
    return c;
}

void h_clear_events(h_cluster_t *cl, int i)
{
    cl->n[i].n_events = 0;
}
