/* The simulated host of one group member: its disk (durable hard state,
 * snapshot and log, plus a queue of writes the process's disk has not
 * completed), the storage
 * callbacks the core reads the durable log through, the handling of every
 * core_update_t in the order core.h prescribes, the checked state machine,
 * crash (drop everything not durable) and restart (core_new from the durable
 * state, configuration recomputed from the durable log). */
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

/* ------------------------------------------------------ storage callbacks */

static sim_t *g_sim; /* the run the callbacks report contract violations to */

static int st_term(void *arg, uint64_t index, uint64_t *term)
{
    sim_node_t *nd = arg;
    if (index <= nd->dlog.compact_index || index > slog_last(&nd->dlog))
        return RK_ENOTFOUND;
    *term = slog_get(&nd->dlog, index)->e.term;
    return 0;
}

static int st_entries(void *arg, uint64_t lo, uint64_t hi, size_t max_bytes, core_entry_t *out,
                      size_t *n)
{
    sim_node_t *nd = arg;
    *n = 0;
    if (lo <= nd->dlog.compact_index)
        return RK_ENOTFOUND;
    if (hi <= lo || hi - 1 > slog_last(&nd->dlog)) {
        check_fail(g_sim,
                   "contract: node %d core read entries [%llu,%llu) beyond its durable log "
                   "(last %llu)",
                   nd->id, (unsigned long long)lo, (unsigned long long)hi,
                   (unsigned long long)slog_last(&nd->dlog));
        return RK_ENOTFOUND;
    }
    size_t bytes = 0;
    for (uint64_t i = lo; i < hi; i++) {
        const core_entry_t *e = &slog_get(&nd->dlog, i)->e;
        bytes += core_entry_size(e);
        if (*n > 0 && bytes > max_bytes)
            break;
        out[*n] = *e;
        out[*n].data = buf_ref(e->data);
        (*n)++;
    }
    return 0;
}

/* --------------------------------------------------------- configuration */

static bool conf_of_entry(const core_entry_t *e, core_conf_t *out)
{
    return core_conf_decode(e->data ? e->data->data : NULL, buf_len(e->data), out) == 0;
}

/* Last CONF entry of the durable log at an index <= at (and > compact). */
static uint64_t find_conf(const sim_node_t *nd, uint64_t at, core_conf_t *out)
{
    if (at > slog_last(&nd->dlog))
        at = slog_last(&nd->dlog);
    for (uint64_t i = at; i > nd->dlog.compact_index; i--) {
        const sim_ent_t *e = slog_get(&nd->dlog, i);
        if (e->e.type == CORE_ENTRY_CONF && conf_of_entry(&e->e, out))
            return i;
    }
    return 0;
}

/* The configuration in effect at index, from the durable log, else the
 * durable snapshot's, else the bootstrap configuration. */
bool host_conf_at(const sim_t *s, const sim_node_t *nd, uint64_t index, core_conf_t *out)
{
    if (find_conf(nd, index, out) != 0)
        return true;
    *out = nd->dsnap.meta.index > 0 ? nd->dsnap.meta.conf : s->g->boot;
    return true;
}

/* ----------------------------------------------------------- lifecycle */

static void host_start(sim_t *s, sim_node_t *nd)
{
    core_init_t init;
    memset(&init, 0, sizeof init);
    core_options_init(&init.opts);
    init.opts.self = nd->peer;
    init.opts.pre_vote = s->prof.pre_vote;
    init.opts.check_quorum = s->prof.check_quorum || s->p.lease;
    init.opts.read_only = s->p.lease ? CORE_READ_LEASE : CORE_READ_SAFE;
    /* The node's 90 %: with equal tick rates anything up to election_ticks - 1
     * is safe (read_only.c lease_len). */
    if (s->p.lease)
        init.opts.lease_ticks = init.opts.election_ticks * 9 / 10;
    init.opts.max_entries_per_msg = s->prof.max_entries_per_msg;
    init.opts.max_inflight_msgs = s->prof.max_inflight;
    init.opts.quiesce = s->prof.quiesce;
    uint64_t x = s->seed * 1000003ULL + (uint64_t)nd->id * 7919ULL + s->procs[nd->id].inc +
                 (uint64_t)s->g->id * 104729ULL;
    init.opts.seed = sim_splitmix(&x);
    init.hs = nd->hs;
    init.snapshot = nd->dsnap.meta;
    init.compact_index = nd->dlog.compact_index;
    init.compact_term = nd->dlog.compact_term;
    init.last_index = slog_last(&nd->dlog);
    slog_term(&nd->dlog, init.last_index, &init.last_term);

    core_conf_t c;
    uint64_t k = find_conf(nd, slog_last(&nd->dlog), &c);
    if (k != 0) {
        init.conf = c;
        init.conf_index = k;
        core_conf_t p;
        if (find_conf(nd, k - 1, &p) == 0)
            p = nd->dsnap.meta.index > 0 ? nd->dsnap.meta.conf : s->g->boot;
        init.prev_conf = k <= nd->hs.commit ? c : p;
    } else {
        init.conf = nd->dsnap.meta.index > 0 ? nd->dsnap.meta.conf : s->g->boot;
        init.conf_index = nd->dsnap.meta.index;
        init.prev_conf = init.conf;
    }
    if (nd->hs.commit > init.last_index && nd->hs.commit > nd->dsnap.meta.index)
        check_fail(s, "durability: node %d restarts with commit %llu beyond its durable log %llu",
                   nd->id, (unsigned long long)nd->hs.commit, (unsigned long long)init.last_index);

    nd->sm = nd->dsnap.sm;
    nd->sm.applied = nd->dsnap.meta.index;
    init.applied = nd->sm.applied;
    nd->apply_target = nd->sm.applied;
    nd->commit_seen = nd->dlog.compact_index;
    nd->term_seen = 0;
    nd->role_seen = CORE_FOLLOWER;
    nd->last_update_id = 0;
    nd->q_seen = false; /* a restarted core is never quiesced */
    nd->q_leader = -1;
    slog_copy(&nd->vlog, &nd->dlog);

    core_storage_t st = {.arg = nd, .term = st_term, .entries = st_entries};
    int err = 0;
    nd->core = core_new(&init, &st, &err);
    if (nd->core == NULL) {
        check_fail(s, "core_new failed at node %d: %s", nd->id, rk_err_name(err));
        return;
    }
    nd->up = true;
    host_drain(s, nd);
}

void host_boot(sim_t *s, sim_node_t *nd)
{
    g_sim = s;
    slog_init(&nd->dlog);
    slog_init(&nd->vlog);
    host_start(s, nd);
}

static void write_free(sim_write_t *w)
{
    for (size_t i = 0; i < w->n_ents; i++)
        buf_unref(w->ents[i].e.data);
    free(w->ents);
    for (size_t i = 0; i < w->n_after; i++)
        sim_msg_free(w->after[i]);
    free(w->after);
    free(w);
}

/* Everything volatile goes: the core, unfinished writes, the state machine,
 * in-flight client requests. (Scheduled events for the process's incarnation
 * die with it: proc.c.) */
static void host_down(sim_node_t *nd)
{
    core_free(nd->core);
    nd->core = NULL;
    nd->up = false;
    while (nd->wq_head != NULL) {
        sim_write_t *w = nd->wq_head;
        nd->wq_head = w->next;
        write_free(w);
    }
    nd->wq_tail = NULL;
    slog_free(&nd->vlog);
    nd->n_props = 0;
    nd->n_reads = 0;
    memset(nd->recv, 0, sizeof nd->recv);
}

void host_crash(sim_t *s, sim_node_t *nd)
{
    (void)s;
    host_down(nd);
}

void host_restart(sim_t *s, sim_node_t *nd)
{
    host_start(s, nd);
}

void host_free(sim_node_t *nd)
{
    if (nd->up)
        host_down(nd);
    slog_free(&nd->dlog);
    slog_free(&nd->vlog);
    free(nd->props);
    free(nd->reads);
    nd->props = NULL;
    nd->reads = NULL;
}

/* ------------------------------------------------------ state machine */

static void complete_props(sim_t *s, sim_node_t *nd, const sim_ent_t *e)
{
    for (size_t i = 0; i < nd->n_props;) {
        sim_prop_t *p = &nd->props[i];
        if (p->index > e->e.index) {
            i++;
            continue;
        }
        if (p->index == e->e.index && p->term == e->e.term && e->e.type == CORE_ENTRY_DATA) {
            sim_cmd_t cmd;
            memcpy(&cmd, e->e.data->data, sizeof cmd);
            if (cmd.wid != p->wid)
                check_fail(s,
                           "proposal: node %d proposed write %llu at %llu/%llu but applied "
                           "write %llu there",
                           nd->id, (unsigned long long)p->wid, (unsigned long long)p->index,
                           (unsigned long long)p->term, (unsigned long long)cmd.wid);
            else {
                check_write_completed(s, nd, p->wid, p->index);
                quiesce_write_completed(s, nd);
            }
        }
        nd->props[i] = nd->props[--nd->n_props];
    }
}

static void serve_reads(sim_t *s, sim_node_t *nd)
{
    for (size_t i = 0; i < nd->n_reads;) {
        sim_read_t *r = &nd->reads[i];
        if (r->ready && nd->sm.applied >= r->index) {
            check_read_served(s, nd, r);
            nd->reads[i] = nd->reads[--nd->n_reads];
        } else {
            i++;
        }
    }
}

static void sm_apply(sim_t *s, sim_node_t *nd, const sim_ent_t *e)
{
    check_applied(s, nd, e);
    if (e->e.type == CORE_ENTRY_DATA && buf_len(e->e.data) == sizeof(sim_cmd_t)) {
        sim_cmd_t cmd;
        memcpy(&cmd, e->e.data->data, sizeof cmd);
        nd->sm.reg[cmd.key % SIM_KEYS] = cmd.wid;
        nd->sm.hash = sim_mix(nd->sm.hash, cmd.wid);
        nd->sm.count++;
    }
    nd->sm.applied = e->e.index;
    check_sm_state(s, nd);
    complete_props(s, nd, e);
}

/* Applies committed entries from the DURABLE log up to apply_target (the
 * core only hands out durable indexes; a snapshot install is applied when
 * its write completes). */
static void host_apply(sim_t *s, sim_node_t *nd)
{
    uint64_t before = nd->sm.applied;
    while (nd->sm.applied < nd->apply_target && !s->violated) {
        const sim_ent_t *e = slog_get(&nd->dlog, nd->sm.applied + 1);
        if (e == NULL)
            break;
        sm_apply(s, nd, e);
    }
    if (nd->sm.applied > before && nd->up) {
        int rc = core_applied(nd->core, nd->sm.applied);
        if (rc != 0)
            check_fail(s, "contract: core_applied(%llu) at node %d: %s",
                       (unsigned long long)nd->sm.applied, nd->id, rk_err_name(rc));
    }
    serve_reads(s, nd);
}

/* ------------------------------------------------------ update handling */

static void write_add_after(sim_write_t *w, sim_msg_t *m)
{
    if (w->n_after == w->cap_after) {
        w->cap_after = w->cap_after ? 2 * w->cap_after : 4;
        w->after = realloc(w->after, w->cap_after * sizeof *w->after);
        if (w->after == NULL)
            abort();
    }
    w->after[w->n_after++] = m;
}

static const sim_snap_t *find_recv(const sim_node_t *nd, const core_snapshot_meta_t *m)
{
    for (int i = 0; i < SIM_RECV_SNAPS; i++)
        if (nd->recv[i].meta.index == m->index && nd->recv[i].meta.term == m->term && m->index > 0)
            return &nd->recv[i];
    return NULL;
}

/* The snapshot data the host holds for meta: its durable snapshot, one
 * being installed, or one received and not yet installed. NULL if none. */
const sim_snap_t *host_snapshot_data(const sim_node_t *nd, const core_snapshot_meta_t *m)
{
    if (m->index == 0)
        return NULL;
    if (nd->dsnap.meta.index == m->index && nd->dsnap.meta.term == m->term)
        return &nd->dsnap;
    for (const sim_write_t *w = nd->wq_head; w != NULL; w = w->next)
        if (w->has_snap && w->snap.meta.index == m->index && w->snap.meta.term == m->term)
            return &w->snap;
    return find_recv(nd, m);
}

/* Builds the disk write for an update and applies it to the volatile view. */
static sim_write_t *stage_write(sim_t *s, sim_node_t *nd, const core_update_t *u)
{
    sim_write_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        abort();
    w->id = u->id;
    w->has_hs = u->has_hard_state;
    w->hs = u->hs;
    if (u->has_snapshot) {
        const sim_snap_t *d = find_recv(nd, &u->snapshot);
        if (d == NULL) {
            check_fail(s, "contract: node %d asked to install snapshot %llu/%llu it never received",
                       nd->id, (unsigned long long)u->snapshot.index,
                       (unsigned long long)u->snapshot.term);
        } else {
            w->has_snap = true;
            w->snap = *d;
            w->snap.meta = u->snapshot;
            slog_reset(&nd->vlog, d->meta.index, d->meta.term, d->chain);
            trace_add(s, TR_INSTALL, nd->id, -1, d->meta.index, d->meta.term, 0, 0);
        }
    }
    if (u->n_entries > 0) {
        uint64_t first = u->entries[0].index;
        if (first <= nd->vlog.compact_index || first > slog_last(&nd->vlog) + 1) {
            check_fail(s, "contract: node %d writes entries from %llu, its log is (%llu, %llu]",
                       nd->id, (unsigned long long)first,
                       (unsigned long long)nd->vlog.compact_index,
                       (unsigned long long)slog_last(&nd->vlog));
            return w;
        }
        slog_truncate(&nd->vlog, first);
        w->ents = calloc(u->n_entries, sizeof *w->ents);
        if (w->ents == NULL)
            abort();
        for (size_t i = 0; i < u->n_entries; i++) {
            const core_entry_t *e = &u->entries[i];
            uint64_t prev_chain = 0, prev_term = 0;
            if (e->index != first + i) {
                check_fail(s, "contract: node %d writes non-contiguous entries", nd->id);
                break;
            }
            slog_chain(&nd->vlog, e->index - 1, &prev_chain);
            slog_term(&nd->vlog, e->index - 1, &prev_term);
            uint64_t chain = sim_chain_next(prev_chain, e);
            slog_push(&nd->vlog, e, chain);
            w->ents[i].e = *e;
            w->ents[i].e.data = buf_ref(e->data);
            w->ents[i].chain = chain;
            w->n_ents++;
            check_entry_written(s, nd, slog_get(&nd->vlog, e->index), prev_term, nd->commit_seen);
        }
    }
    return w;
}

static void handle_events(sim_t *s, sim_node_t *nd, const core_update_t *u)
{
    for (size_t i = 0; i < u->n_events; i++) {
        const core_event_t *ev = &u->events[i];
        if (ev->type != CORE_EV_ROLE)
            continue;
        trace_add(s, TR_ROLE, nd->id, -1, ev->role, ev->term, slog_last(&nd->vlog),
                  nd->commit_seen);
        if (ev->role == CORE_LEADER) {
            s->st_elections++;
            check_new_leader(s, nd, ev->term);
            work_new_leader(s, nd);
        }
    }
}

static void handle_reads(sim_t *s, sim_node_t *nd, const core_update_t *u)
{
    (void)s;
    for (size_t i = 0; i < u->n_reads; i++) {
        const core_read_state_t *rs = &u->reads[i];
        for (size_t j = 0; j < nd->n_reads; j++) {
            sim_read_t *r = &nd->reads[j];
            if (r->ctx != rs->ctx)
                continue;
            if (rs->status != 0) {
                nd->reads[j] = nd->reads[--nd->n_reads];
            } else {
                r->index = rs->index;
                r->ready = true;
            }
            break;
        }
    }
}

static void handle_update(sim_t *s, sim_node_t *nd, const core_update_t *u)
{
    if (u->fatal != 0) {
        check_fail(s, "core fatal at node %d: %s", nd->id, rk_err_name(u->fatal));
        return;
    }
    if (u->id != 0) {
        if (u->id <= nd->last_update_id)
            check_fail(s, "contract: node %d update id %llu after %llu", nd->id,
                       (unsigned long long)u->id, (unsigned long long)nd->last_update_id);
        nd->last_update_id = u->id;
        sim_write_t *w = stage_write(s, nd, u);
        for (size_t i = 0; i < u->n_msgs_after; i++) {
            int to = net_node_of(s, &u->msgs_after[i].to);
            if (to >= 0 && to != nd->id)
                write_add_after(w, sim_msg_copy(&u->msgs_after[i], nd->id, to));
            else
                check_fail(s, "contract: node %d queued a message to %s", nd->id,
                           to < 0 ? "an unknown peer" : "itself");
        }
        if (nd->wq_tail != NULL)
            nd->wq_tail->next = w;
        else
            nd->wq_head = w;
        nd->wq_tail = w;
        /* One disk per process: the groups' writes queue behind each other. */
        sim_proc_t *pr = &s->procs[nd->id];
        uint64_t lat = pr->slow_disk ? sim_between(&s->rng, 1, s->prof.slow_disk_max)
                                     : sim_between(&s->rng, 1, s->prof.disk_max);
        uint64_t at = s->now + lat;
        if (at < pr->disk_free_at)
            at = pr->disk_free_at;
        pr->disk_free_at = at;
        sim_schedule(s, at - s->now, EV_DISK, nd->id, 0, NULL);
    } else if (u->n_msgs_after > 0) {
        /* Nothing new to persist, but the promise may rest on earlier
         * writes: hold the messages behind the last pending one. */
        for (size_t i = 0; i < u->n_msgs_after; i++) {
            int to = net_node_of(s, &u->msgs_after[i].to);
            if (to < 0 || to == nd->id)
                continue;
            sim_msg_t *m = sim_msg_copy(&u->msgs_after[i], nd->id, to);
            if (nd->wq_tail != NULL)
                write_add_after(nd->wq_tail, m);
            else
                net_send_copy(s, m);
        }
    }
    for (size_t i = 0; i < u->n_msgs && !s->violated; i++)
        net_send(s, nd->id, &u->msgs[i]);
    work_after_update(s, nd, u);
    if (u->apply_lo <= u->apply_hi) {
        if (u->apply_hi > slog_last(&nd->dlog) && u->apply_hi > nd->dsnap.meta.index)
            check_fail(s, "contract: node %d told to apply up to %llu, durable log ends at %llu",
                       nd->id, (unsigned long long)u->apply_hi,
                       (unsigned long long)slog_last(&nd->dlog));
        if (u->apply_hi > nd->apply_target)
            nd->apply_target = u->apply_hi;
    }
    handle_reads(s, nd, u);
    handle_events(s, nd, u);
    host_apply(s, nd);
}

void host_drain(sim_t *s, sim_node_t *nd)
{
    while (nd->up && !s->violated && core_has_update(nd->core)) {
        core_update_t u;
        core_update_get(nd->core, &u);
        handle_update(s, nd, &u);
        core_update_release(&u);
    }
    if (nd->up && !s->violated) {
        check_status(s, nd);
        quiesce_observe(s, nd);
    }
}

/* The disk finished the oldest pending write: it becomes durable, the core
 * hears so, and the messages that waited for it leave. */
void host_disk_complete(sim_t *s, sim_node_t *nd)
{
    sim_write_t *w = nd->wq_head;
    if (w == NULL)
        return;
    nd->wq_head = w->next;
    if (nd->wq_head == NULL)
        nd->wq_tail = NULL;
    if (w->has_hs)
        nd->hs = w->hs;
    if (w->has_snap) {
        nd->dsnap = w->snap;
        slog_reset(&nd->dlog, w->snap.meta.index, w->snap.meta.term, w->snap.chain);
        s->st_snap_installs++;
        if (w->snap.meta.index > nd->sm.applied) {
            nd->sm = w->snap.sm;
            nd->sm.applied = w->snap.meta.index;
            check_sm_state(s, nd);
            /* Proposals covered by the snapshot: their outcome is unknown here. */
            for (size_t i = 0; i < nd->n_props;)
                if (nd->props[i].index <= nd->sm.applied)
                    nd->props[i] = nd->props[--nd->n_props];
                else
                    i++;
        }
    }
    if (w->n_ents > 0) {
        slog_truncate(&nd->dlog, w->ents[0].e.index);
        for (size_t i = 0; i < w->n_ents; i++)
            slog_push(&nd->dlog, &w->ents[i].e, w->ents[i].chain);
    }
    trace_add(s, TR_DISK, nd->id, -1, w->id, slog_last(&nd->dlog), nd->hs.term, w->n_after);
    int rc = core_persisted(nd->core, w->id);
    if (rc != 0)
        check_fail(s, "contract: core_persisted(%llu) at node %d: %s", (unsigned long long)w->id,
                   nd->id, rk_err_name(rc));
    for (size_t i = 0; i < w->n_after; i++) {
        net_send_copy(s, w->after[i]);
        w->after[i] = NULL;
    }
    w->n_after = 0;
    write_free(w);
    host_apply(s, nd);
    host_drain(s, nd);
}

/* --------------------------------------------------------------- snapshots */

/* Takes a local snapshot at the applied index (durable at once: the data is
 * the in-memory state machine) and maybe compacts the log behind it,
 * keeping a random tail. */
void host_take_snapshot(sim_t *s, sim_node_t *nd)
{
    uint64_t a = nd->sm.applied;
    if (a > nd->dsnap.meta.index) {
        uint64_t term, chain;
        if (!slog_term(&nd->dlog, a, &term) || !slog_chain(&nd->dlog, a, &chain)) {
            check_fail(s, "host: node %d applied %llu but its durable log lacks it", nd->id,
                       (unsigned long long)a);
            return;
        }
        sim_snap_t sn;
        memset(&sn, 0, sizeof sn);
        sn.meta.index = a;
        sn.meta.term = term;
        host_conf_at(s, nd, a, &sn.meta.conf);
        sn.sm = nd->sm;
        sn.chain = chain;
        int rc = core_snapshot_taken(nd->core, &sn.meta);
        if (rc != 0) {
            check_fail(s, "contract: core_snapshot_taken(%llu) at node %d: %s",
                       (unsigned long long)a, nd->id, rk_err_name(rc));
            return;
        }
        nd->dsnap = sn;
        trace_add(s, TR_SNAPSHOT, nd->id, -1, a, term, 0, 0);
    }
    uint64_t hi = nd->dsnap.meta.index;
    if (hi > slog_last(&nd->dlog))
        hi = slog_last(&nd->dlog);
    uint64_t keep = sim_below(&s->rng, 3) == 0 ? 0 : sim_below(&s->rng, 30);
    uint64_t ci = hi > keep ? hi - keep : 0;
    if (ci > nd->dlog.compact_index) {
        uint64_t term;
        slog_term(&nd->dlog, ci, &term);
        slog_compact(&nd->dlog, ci);
        slog_compact(&nd->vlog, ci);
        int rc = core_compacted(nd->core, ci, term);
        if (rc != 0)
            check_fail(s, "contract: core_compacted(%llu) at node %d: %s", (unsigned long long)ci,
                       nd->id, rk_err_name(rc));
        s->st_compactions++;
        trace_add(s, TR_COMPACT, nd->id, -1, ci, term, 0, 0);
    }
    host_drain(s, nd);
}
