/* The cluster driver: builds the pool of nodes, runs the event loop (a binary
 * heap ordered by (time, sequence), so equal times keep scheduling order and
 * a seed replays exactly), the final heal-and-converge phase, the report of
 * a violation, and the teardown that frees every allocation of the run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

#define U(x)           ((unsigned long long)(x))
#define SIM_FINAL_TIME 30000 /* time units the healed cluster gets to converge */

/* ------------------------------------------------------------------ heap */

static bool ev_before(const sim_event_t *a, const sim_event_t *b)
{
    return a->at != b->at ? a->at < b->at : a->seq < b->seq;
}

void sim_schedule(sim_t *s, uint64_t delay, sim_ev_type_t type, int node, int aux, sim_msg_t *m)
{
    sim_heap_t *h = &s->heap;
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 256;
        h->v = realloc(h->v, h->cap * sizeof *h->v);
        if (h->v == NULL)
            abort();
    }
    sim_event_t ev = {s->now + delay, s->ev_seq++, type, node, s->nodes[node].inc, aux, m};
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ev_before(&ev, &h->v[parent]))
            break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = ev;
}

static sim_event_t heap_pop(sim_heap_t *h)
{
    sim_event_t top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && ev_before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!ev_before(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0)
        h->v[i] = last;
    return top;
}

/* ------------------------------------------------------------- dispatch */

static void dispatch(sim_t *s, sim_event_t *ev)
{
    sim_node_t *nd = &s->nodes[ev->node];
    bool live = nd->up && nd->inc == ev->inc;
    switch (ev->type) {
    case EV_TICK:
        if (!live)
            break;
        quiesce_tick(s, nd);
        sim_schedule(s, SIM_TICK, EV_TICK, nd->id, 0, NULL);
        break;
    case EV_DELIVER:
        net_deliver(s, ev->msg);
        ev->msg = NULL;
        break;
    case EV_DISK:
        if (live)
            host_disk_complete(s, nd);
        break;
    case EV_CLIENT:
        if (s->quiet)
            work_final(s);
        else
            work_client(s);
        sim_schedule(s, sim_between(&s->rng, 1, 2 * s->prof.client_gap), EV_CLIENT, 0, 0, NULL);
        break;
    case EV_FAULT:
        if (s->quiet)
            break;
        work_fault(s);
        sim_schedule(s, sim_between(&s->rng, 1, 2 * s->prof.fault_gap), EV_FAULT, 0, 0, NULL);
        break;
    case EV_RESTART:
        if (!nd->up && nd->inc == ev->inc)
            host_restart(s, nd);
        break;
    case EV_SNAP_REPORT:
        if (live) {
            core_report_snapshot(nd->core, &s->nodes[ev->aux / 2].peer, ev->aux & 1);
            host_drain(s, nd);
        }
        break;
    case EV_NEMESIS:
        if (live && !s->quiet)
            work_nemesis(s, nd, ev->aux);
        break;
    case EV_UNREACH:
        if (live) {
            core_report_unreachable(nd->core, &s->nodes[ev->aux].peer);
            host_drain(s, nd);
        }
        break;
    }
}

static bool run_one(sim_t *s)
{
    if (s->heap.n == 0)
        return false;
    sim_event_t ev = heap_pop(&s->heap);
    s->now = ev.at;
    s->step++;
    dispatch(s, &ev);
    return true;
}

/* Heal the network, restart everyone, stop faults; then one new write must
 * commit and reach every member of the leader's configuration. */
static void final_phase(sim_t *s)
{
    s->quiet = true;
    net_heal(s);
    for (int i = 0; i < s->n && !s->violated; i++) {
        s->nodes[i].slow_disk = false;
        if (!s->nodes[i].up)
            host_restart(s, &s->nodes[i]);
    }
    uint64_t deadline = s->now + SIM_FINAL_TIME;
    while (!s->violated && s->now < deadline && !work_final_done(s))
        if (!run_one(s))
            break;
    if (s->violated || work_final_done(s))
        return;
    char buf[400];
    size_t o = 0;
    for (int i = 0; i < s->n && o < sizeof buf - 80; i++) {
        const sim_node_t *nd = &s->nodes[i];
        o += (size_t)snprintf(buf + o, sizeof buf - o, " n%d:%s/t%llu/c%llu/a%llu", i,
                              core_role_name(nd->role_seen), U(nd->term_seen), U(nd->commit_seen),
                              U(nd->sm.applied));
    }
    check_fail(s,
               "liveness: healed cluster did not commit and spread a write within %d time "
               "units (final write %llu at index %llu);%s",
               SIM_FINAL_TIME, U(s->final_wid), U(s->final_index), buf);
}

/* ------------------------------------------------------------------ run */

static void conf_ids(const sim_t *s, const rk_configuration_t *c, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < c->n_peers && o + 8 < len; i++)
        o +=
            (size_t)snprintf(buf + o, len - o, "%sn%d", i ? "," : "", net_node_of(s, &c->peers[i]));
    for (uint32_t i = 0; i < c->n_learners && o + 10 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, ",n%d/l", net_node_of(s, &c->learners[i]));
}

/* Each node at the time of the violation: role, term, log, configuration. */
static void dump_nodes(const sim_t *s)
{
    printf("nodes:\n");
    for (int i = 0; i < s->n; i++) {
        const sim_node_t *nd = &s->nodes[i];
        if (!nd->up) {
            printf("  n%d down (durable: term %llu, log last %llu, snapshot %llu)\n", i,
                   U(nd->hs.term), U(slog_last(&nd->dlog)), U(nd->dsnap.meta.index));
            continue;
        }
        core_status_t st;
        core_get_status(nd->core, &st);
        uint64_t ci;
        const core_conf_t *cc = core_get_conf(nd->core, &ci);
        char cur[160], old[160] = "";
        conf_ids(s, &cc->cur, cur, sizeof cur);
        if (cc->joint)
            conf_ids(s, &cc->old, old, sizeof old);
        printf("  n%d %s term %llu commit %llu applied %llu log (%llu..%llu]/%llu stable %llu, "
               "conf@%llu {%s}%s%s%s, %zu writes pending\n",
               i, core_role_name(st.role), U(st.term), U(st.commit), U(st.applied),
               U(st.first_index ? st.first_index - 1 : 0), U(st.last_index), U(st.last_term),
               U(st.stable_index), U(ci), cur, cc->joint ? " joint old {" : "", old,
               cc->joint ? "}" : "", (size_t)(nd->wq_head != NULL));
    }
}

static void report(const sim_t *s)
{
    printf("VIOLATION seed=%llu step=%llu time=%llu: %s\n", U(s->seed), U(s->violation_step),
           U(s->now), s->violation);
    trace_dump(s);
    dump_nodes(s);
    printf("replay: raft_sim --seed %llu --nodes %d --spares %d --steps %llu%s%s%s%s%s\n",
           U(s->seed), s->p.nodes, s->p.spares, U(s->p.steps), s->p.faults ? "" : " --no-faults",
           s->p.liveness ? "" : " --no-liveness", s->p.rules ? "" : " --no-rule-checks",
           s->p.lease ? " --lease" : "",
           s->p.quiesce == 0   ? " --no-quiesce"
           : s->p.quiesce == 1 ? " --quiesce"
                               : "");
}

static void teardown(sim_t *s)
{
    for (int i = 0; i < s->n; i++)
        host_free(&s->nodes[i]);
    for (size_t i = 0; i < s->heap.n; i++)
        sim_msg_free(s->heap.v[i].msg);
    free(s->heap.v);
    check_free(s);
}

int sim_run(const sim_params_t *p, uint64_t seed, sim_totals_t *t)
{
    sim_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        abort();
    s->p = *p;
    s->seed = seed;
    sim_rng_seed(&s->rng, seed);
    s->n = p->nodes + p->spares;
    s->probe_node = -1;
    check_init(s);
    work_profile(s);
    if (p->verbose) {
        const sim_profile_t *f = &s->prof;
        printf("seed %llu profile: drop %u‰ dup %u‰ delay<=%u (tail %u‰ <=%u) disk<=%u "
               "(slow <=%u) pre-vote %d check-quorum %d entries/msg %u inflight %u nemesis %u‰ "
               "storm %d quiesce %d (unticked %d, try %u‰, liveness lag %u, idle %u‰)\n",
               U(seed), f->drop, f->dup, f->delay_max, f->tail, f->tail_max, f->disk_max,
               f->slow_disk_max, f->pre_vote, f->check_quorum, f->max_entries_per_msg,
               f->max_inflight, f->nemesis, f->storm, f->quiesce, f->skip_quiesced, f->quiesce_try,
               f->liveness_lag, f->idle);
    }
    memset(&s->boot, 0, sizeof s->boot);
    for (int i = 0; i < s->n; i++) {
        sim_node_t *nd = &s->nodes[i];
        nd->id = i;
        snprintf(nd->peer.endpoint.host, RK_HOST_MAX, "n%d", i);
        nd->peer.endpoint.port = (uint16_t)(1000 + i);
        nd->peer.idx = 0;
        nd->peer.priority = RK_PRIORITY_DISABLED;
        if (i < p->nodes)
            s->boot.cur.peers[s->boot.cur.n_peers++] = nd->peer;
    }
    for (int i = 0; i < s->n && !s->violated; i++)
        host_boot(s, &s->nodes[i]);
    sim_schedule(s, sim_between(&s->rng, 1, 2 * s->prof.client_gap), EV_CLIENT, 0, 0, NULL);
    if (p->faults)
        sim_schedule(s, sim_between(&s->rng, 1, 2 * s->prof.fault_gap), EV_FAULT, 0, 0, NULL);
    while (!s->violated && s->step < p->steps && run_one(s))
        ;
    if (!s->violated && p->liveness)
        final_phase(s);
    int bad = s->violated;
    if (bad)
        report(s);
    else if (p->verbose)
        printf("seed %llu ok: %llu steps, time %llu, %llu elections, %llu writes, %llu reads, "
               "%llu crashes, %llu conf changes, %llu transfers, %llu compactions, %llu snapshot "
               "installs, max commit %llu\n",
               U(seed), U(s->step), U(s->now), U(s->st_elections), U(s->st_writes_done),
               U(s->st_reads_done), U(s->st_crashes), U(s->st_confs), U(s->st_transfers),
               U(s->st_compactions), U(s->st_snap_installs), U(s->max_committed));
    t->steps += s->step;
    t->elections += s->st_elections;
    t->writes += s->st_writes_done;
    t->reads += s->st_reads_done;
    t->crashes += s->st_crashes;
    t->confs += s->st_confs;
    t->transfers += s->st_transfers;
    t->compactions += s->st_compactions;
    t->snap_installs += s->st_snap_installs;
    t->quiesce_leader += s->st_quiesce_leader;
    t->quiesce_follower += s->st_quiesce_follower;
    t->wake_leader += s->st_wake_leader;
    t->wake_follower += s->st_wake_follower;
    t->proc_down += s->st_proc_down;
    teardown(s);
    free(s);
    return bad;
}
