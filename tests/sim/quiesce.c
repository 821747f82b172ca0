/* Quiescence in the simulated hosts: leaders of idle groups call
 * core_quiesce, quiesced cores may go unticked (as in a multi-raft node whose
 * one tick visits only groups with work), and each process runs a
 * process-level liveness stream towards every other process -- one per pair
 * of processes, whatever the number of groups -- as the node does: a
 * heartbeat each tick carrying the sender's incarnation, subject to the
 * partitions and loss of the simulated network (unless, in the blind
 * profiles, the stream crosses partitions and so never reports one). When
 * process P has not heard from process L for an election timeout (plus a
 * per-seed lag), or has heard a new incarnation of L, P's host calls
 * core_leader_process_down on each of its quiesced follower groups whose
 * leader is on L. The signal can be late (the lag; a paused P), missing
 * (blind profiles; an old incarnation's notice arriving after P learnt the
 * new one) or wrong (a paused P resuming: its timers run before it reads
 * what its peers sent), and the cores must stay safe and live anyway. */
#include "tests/sim/sim.h"

/* Did P hear L's heartbeat of this tick? */
static bool heard(sim_t *s, int p, int l)
{
    const sim_proc_t *L = &s->procs[l];
    if (!L->up || proc_paused(s, l) || (s->blocked[l][p] && !s->prof.liveness_blind))
        return false;
    return !(s->p.faults && !s->quiet && sim_chance(&s->rng, s->prof.drop));
}

/* P's host learnt that l restarted: its leaders wake the groups with a
 * member there, whose new core is not quiesced (wake_on_restart seeds). */
static void wake_leaders_of(sim_t *s, int p, int l)
{
    for (int k = 0; k < s->n_groups && !s->violated; k++) {
        s->g = &s->groups[k];
        sim_node_t *nd = &s->g->nodes[p];
        if (!nd->up || !core_quiesced(nd->core) || nd->role_seen != CORE_LEADER)
            continue;
        if (!core_conf_is_member(core_get_conf(nd->core, &(uint64_t){0}), &s->g->nodes[l].peer))
            continue;
        int rc = core_wake(nd->core);
        if (rc != 0)
            check_fail(s, "contract: core_wake at node %d: %s", nd->id, rk_err_name(rc));
        host_drain(s, nd);
    }
}

/* Process p's liveness stream, on each of its ticks: first what its timers
 * say (the peers it has not heard from, the incarnations it has learnt),
 * then this tick's heartbeats. */
void quiesce_liveness(sim_t *s, int p)
{
    sim_group_t *cur = s->g;
    sim_proc_t *pr = &s->procs[p];
    for (int l = 0; l < s->n && !s->violated; l++) {
        if (l == p)
            continue;
        bool silent = pr->ticks - pr->heard_at[l] >= s->election_ticks + s->prof.liveness_lag;
        for (int k = 0; k < s->n_groups && !s->violated; k++) {
            s->g = &s->groups[k];
            sim_node_t *nd = &s->g->nodes[p];
            if (!nd->up || !nd->q_seen || nd->q_role == CORE_LEADER || nd->q_leader != l)
                continue;
            bool reborn = nd->q_leader_inc != pr->inc_seen[l];
            if (!silent && !reborn)
                continue;
            int rc = core_leader_process_down(nd->core);
            if (rc != 0)
                check_fail(s, "contract: core_leader_process_down at node %d: %s", nd->id,
                           rk_err_name(rc));
            s->st_proc_down++;
            trace_add(s, TR_PROC_DOWN, nd->id, l, reborn, 0, 0, 0);
            host_drain(s, nd);
        }
    }
    for (int l = 0; l < s->n && !s->violated; l++) {
        if (l == p || !heard(s, p, l))
            continue;
        pr->heard_at[l] = pr->ticks;
        if (pr->inc_seen[l] == s->procs[l].inc)
            continue;
        bool known = pr->inc_seen[l] != SIM_INC_UNKNOWN;
        pr->inc_seen[l] = s->procs[l].inc;
        if (known && s->prof.wake_on_restart)
            wake_leaders_of(s, p, l);
    }
    s->g = cur;
}

void quiesce_tick(sim_t *s, sim_node_t *nd)
{
    if (!s->prof.quiesce) {
        core_tick(nd->core);
        host_drain(s, nd);
        return;
    }
    if (!(s->prof.skip_quiesced && core_quiesced(nd->core)))
        core_tick(nd->core);
    if (s->prof.quiesce && nd->role_seen == CORE_LEADER && !core_quiesced(nd->core) &&
        sim_chance(&s->rng, s->prof.quiesce_try)) {
        int rc = core_quiesce(nd->core);
        if (rc != 0 && rc != RK_EBUSY && rc != RK_ENOTLEADER)
            check_fail(s, "contract: core_quiesce at node %d: %s", nd->id, rk_err_name(rc));
    }
    host_drain(s, nd);
}

/* A write completed at nd: if a quiesced leader was cut off (the quiesce
 * nemesis), ask it for a read now -- it must not answer from a lease. */
void quiesce_write_completed(sim_t *s, sim_node_t *nd)
{
    if (s->g->probe_node < 0 || nd->id == s->g->probe_node)
        return;
    sim_schedule(s, sim_between(&s->rng, 0, 2 * SIM_TICK), EV_NEMESIS, s->g->probe_node, 3, NULL);
    s->g->probe_node = -1;
}

/* Called after every drain: counts quiesce and wake transitions, and notes
 * the process a follower quiesced under, with its incarnation as far as this
 * process knows it. */
void quiesce_observe(sim_t *s, sim_node_t *nd)
{
    bool q = core_quiesced(nd->core);
    if (q == nd->q_seen)
        return;
    core_status_t st;
    core_get_status(nd->core, &st);
    nd->q_seen = q;
    if (q) {
        nd->q_role = st.role;
        if (st.role == CORE_LEADER) {
            s->st_quiesce_leader++;
            /* The nemesis of quiescence: cut off or kill a leader that just
             * fell silent, so that its followers must notice through the
             * process-liveness stream alone, elect another leader and write
             * while the old one may still be asked for reads. */
            if (s->p.faults && !s->quiet &&
                sim_chance(&s->rng, s->prof.quiesce_nemesis / (uint32_t)s->n_groups)) {
                bool isolate = sim_chance(&s->rng, 750);
                uint64_t at = sim_between(&s->rng, 0, 5 * SIM_TICK);
                sim_schedule(s, at, EV_NEMESIS, nd->id, isolate ? 1 : 0, NULL);
                if (isolate) {
                    /* Clients come back, and once a write completes
                     * elsewhere (a new leader was elected without the old
                     * one), the old leader is asked for a read. */
                    s->g->idle_until = 0;
                    s->g->probe_node = nd->id;
                }
            }
        } else {
            s->st_quiesce_follower++;
            nd->q_leader = net_node_of(s, &st.leader);
            nd->q_leader_inc =
                nd->q_leader >= 0 ? s->procs[nd->id].inc_seen[nd->q_leader] : SIM_INC_UNKNOWN;
            if (nd->q_leader < 0)
                check_fail(s, "quiesce: node %d quiesced without a known leader", nd->id);
        }
        trace_add(s, TR_QUIESCE, nd->id, nd->q_role == CORE_LEADER ? -1 : nd->q_leader, st.term,
                  st.last_index, st.commit, 0);
    } else {
        if (nd->q_role == CORE_LEADER)
            s->st_wake_leader++;
        else
            s->st_wake_follower++;
        trace_add(s, TR_WAKE, nd->id, -1, st.term, st.role, 0, 0);
    }
}
