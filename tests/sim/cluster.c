/* The cluster driver: builds the processes and their groups, runs the event
 * loop (a binary heap ordered by (time, sequence), so equal times keep
 * scheduling order and a seed replays exactly), the final heal-and-converge
 * phase, the report of a violation, and the teardown that frees every
 * allocation of the run. */
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

static void heap_push(sim_heap_t *h, sim_event_t ev)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 256;
        h->v = realloc(h->v, h->cap * sizeof *h->v);
        if (h->v == NULL)
            abort();
    }
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

void sim_schedule(sim_t *s, uint64_t delay, sim_ev_type_t type, int node, int aux, sim_msg_t *m)
{
    heap_push(&s->heap, (sim_event_t){s->now + delay, s->ev_seq++, type, s->g->id, node,
                                      s->procs[node].inc, aux, m});
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
    s->g = &s->groups[ev->group];
    sim_node_t *nd = &s->g->nodes[ev->node];
    sim_proc_t *pr = &s->procs[ev->node];
    bool live = nd->up && pr->inc == ev->inc;
    bool to_process = ev->type != EV_CLIENT && ev->type != EV_FAULT;
    if (to_process && proc_paused(s, ev->node)) {
        /* A stopped process does nothing; what reaches it waits, like
         * bytes in its sockets. Its ticks are lost (proc_resume). */
        if (ev->type == EV_TICK) {
            pr->tick_lost = true;
        } else if (ev->type != EV_RESUME) {
            ev->at = pr->paused_until;
            ev->seq = s->ev_seq++;
            heap_push(&s->heap, *ev);
            ev->msg = NULL;
            return;
        }
    }
    switch (ev->type) {
    case EV_TICK:
        if (live && !pr->tick_lost)
            proc_tick_event(s, ev->node);
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
        if (!pr->up && pr->inc == ev->inc && ev->node != s->victim)
            proc_restart(s, ev->node);
        break;
    case EV_SNAP_REPORT:
        if (live) {
            core_report_snapshot(nd->core, &s->g->nodes[ev->aux / 2].peer, ev->aux & 1);
            host_drain(s, nd);
        }
        break;
    case EV_NEMESIS:
        if (live && !s->quiet)
            work_nemesis(s, nd, ev->aux);
        break;
    case EV_UNREACH:
        if (live) {
            core_report_unreachable(nd->core, &s->g->nodes[ev->aux].peer);
            host_drain(s, nd);
        }
        break;
    case EV_RESUME:
        if (live)
            proc_resume(s, ev->node);
        break;
    case EV_READ:
        if (live)
            work_read_arrives(s, nd);
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

static bool all_final_done(sim_t *s)
{
    for (int k = 0; k < s->n_groups; k++) {
        s->g = &s->groups[k];
        if (!work_final_done(s))
            return false;
    }
    return true;
}

/* The process to kill for good when the faults stop (-1: none): half the
 * time, the one leading the most quiesced groups (else the most groups),
 * if every group keeps a quorum without it. Its quiesced followers elsewhere
 * hear nothing more from it, so only the process-liveness stream can wake
 * them: the liveness bug this phase exists to catch. */
static int pick_victim(sim_t *s)
{
    if (!s->p.faults || !sim_chance(&s->rng, 500))
        return -1;
    int best = -1, best_score = 0;
    for (int p = 0; p < s->n; p++) {
        int score = 0;
        for (int k = 0; k < s->n_groups; k++) {
            const sim_node_t *nd = &s->groups[k].nodes[p];
            if (nd->up && nd->role_seen == CORE_LEADER)
                score += core_quiesced(nd->core) ? 1000 : 1;
        }
        if (score > best_score && work_can_lose(s, p)) {
            best = p;
            best_score = score;
        }
    }
    return best;
}

/* Heal the network, restart every process but the victim (killed now if it
 * runs), stop faults; then in every group one new write must commit and
 * reach every live member of the leader's configuration. */
static void final_phase(sim_t *s)
{
    s->quiet = true;
    s->g = &s->groups[0];
    net_heal(s);
    s->victim = pick_victim(s);
    for (int p = 0; p < s->n && !s->violated; p++) {
        s->procs[p].slow_disk = false;
        if (s->procs[p].paused_until != 0)
            proc_resume(s, p);
        if (p == s->victim && s->procs[p].up)
            proc_crash(s, p);
        else if (p != s->victim && !s->procs[p].up)
            proc_restart(s, p);
    }
    uint64_t deadline = s->now + SIM_FINAL_TIME;
    while (!s->violated && s->now < deadline && !all_final_done(s))
        if (!run_one(s))
            break;
    if (s->violated || all_final_done(s))
        return;
    /* all_final_done left s->g at the first group that did not converge. */
    char buf[400];
    size_t o = 0;
    for (int i = 0; i < s->n && o < sizeof buf - 80; i++) {
        const sim_node_t *nd = &s->g->nodes[i];
        o += (size_t)snprintf(buf + o, sizeof buf - o, " n%d:%s%s/t%llu/c%llu/a%llu", i,
                              nd->up ? core_role_name(nd->role_seen) : "down",
                              nd->up && core_quiesced(nd->core) ? "(quiesced)" : "",
                              U(nd->term_seen), U(nd->commit_seen), U(nd->sm.applied));
    }
    char victim[40] = "no process killed";
    if (s->victim >= 0)
        snprintf(victim, sizeof victim, "process n%d killed for good", s->victim);
    check_fail(s,
               "liveness: healed cluster did not commit and spread a write within %d time "
               "units (final write %llu at index %llu; %s);%s",
               SIM_FINAL_TIME, U(s->g->final_wid), U(s->g->final_index), victim, buf);
}

/* ------------------------------------------------------------------ run */

static void conf_ids(sim_t *s, const rk_configuration_t *c, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < c->n_peers && o + 8 < len; i++)
        o +=
            (size_t)snprintf(buf + o, len - o, "%sn%d", i ? "," : "", net_node_of(s, &c->peers[i]));
    for (uint32_t i = 0; i < c->n_learners && o + 10 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, ",n%d/l", net_node_of(s, &c->learners[i]));
}

/* Each member of the violating group at the time of the violation: role,
 * term, log, configuration. */
static void dump_nodes(sim_t *s)
{
    s->g = &s->groups[s->violation_group];
    if (s->n_groups > 1)
        printf("group %d ", s->g->id);
    printf("nodes:\n");
    for (int i = 0; i < s->n; i++) {
        const sim_node_t *nd = &s->g->nodes[i];
        if (s->procs[i].paused_until != 0)
            printf("  (process n%d paused until %llu)\n", i, U(s->procs[i].paused_until));
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

static void report(sim_t *s)
{
    printf("VIOLATION seed=%llu step=%llu time=%llu: %s\n", U(s->seed), U(s->violation_step),
           U(s->now), s->violation);
    trace_dump(s);
    dump_nodes(s);
    printf("replay: raft_sim --seed %llu --nodes %d --spares %d --groups %d --steps "
           "%llu%s%s%s%s%s%s\n",
           U(s->seed), s->p.nodes, s->p.spares, s->n_groups, U(s->p.steps),
           s->p.faults ? "" : " --no-faults", s->p.liveness ? "" : " --no-liveness",
           s->p.rules ? "" : " --no-rule-checks", s->p.lease ? " --lease" : "",
           s->p.quiesce == 0   ? " --no-quiesce"
           : s->p.quiesce == 1 ? " --quiesce"
                               : "",
           s->p.lossy_ticks ? " --pause-loses-ticks" : "");
}

static void teardown(sim_t *s)
{
    for (int k = 0; k < s->n_groups; k++) {
        for (int i = 0; i < s->n; i++)
            host_free(&s->groups[k].nodes[i]);
        check_free(&s->groups[k]);
    }
    free(s->groups);
    for (size_t i = 0; i < s->heap.n; i++)
        sim_msg_free(s->heap.v[i].msg);
    free(s->heap.v);
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
    s->victim = -1;
    s->n_groups = p->groups;
    s->groups = calloc((size_t)p->groups, sizeof *s->groups);
    if (s->groups == NULL)
        abort();
    core_options_t defaults;
    core_options_init(&defaults);
    s->election_ticks = defaults.election_ticks;
    work_profile(s);
    if (p->verbose) {
        const sim_profile_t *f = &s->prof;
        printf("seed %llu profile: drop %u‰ dup %u‰ delay<=%u (tail %u‰ <=%u) disk<=%u "
               "(slow <=%u) pre-vote %d check-quorum %d entries/msg %u inflight %u nemesis %u‰ "
               "storm %d quiesce %d (unticked %d, try %u‰, liveness lag %u, blind %d, wake on "
               "restart %d, idle %u‰) pauses %u (<=%u) jumps %u\n",
               U(seed), f->drop, f->dup, f->delay_max, f->tail, f->tail_max, f->disk_max,
               f->slow_disk_max, f->pre_vote, f->check_quorum, f->max_entries_per_msg,
               f->max_inflight, f->nemesis, f->storm, f->quiesce, f->skip_quiesced, f->quiesce_try,
               f->liveness_lag, f->liveness_blind, f->wake_on_restart, f->idle, f->pause_w,
               f->pause_max, f->jump_w);
    }
    for (int k = 0; k < s->n_groups; k++) {
        sim_group_t *g = &s->groups[k];
        g->id = k;
        g->probe_node = -1;
        check_init(g);
        for (int i = 0; i < s->n; i++) {
            sim_node_t *nd = &g->nodes[i];
            nd->id = i;
            snprintf(nd->peer.endpoint.host, RK_HOST_MAX, "n%d", i);
            nd->peer.endpoint.port = (uint16_t)(1000 + i);
            nd->peer.idx = 0;
            nd->peer.priority = RK_PRIORITY_DISABLED;
            if (i < p->nodes)
                g->boot.cur.peers[g->boot.cur.n_peers++] = nd->peer;
        }
    }
    for (int i = 0; i < s->n && !s->violated; i++)
        proc_boot(s, i);
    for (int k = 0; k < s->n_groups; k++) {
        s->g = &s->groups[k];
        sim_schedule(s, sim_between(&s->rng, 1, 2 * s->prof.client_gap), EV_CLIENT, 0, 0, NULL);
    }
    s->g = &s->groups[0];
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
               U(s->st_compactions), U(s->st_snap_installs), U(s->groups[0].max_committed));
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
    t->pauses += s->st_pauses;
    t->jumps += s->st_jumps;
    teardown(s);
    free(s);
    return bad;
}
