/* Quiescence in the simulated hosts: leaders of idle groups call
 * core_quiesce, quiesced cores may go unticked (as in a multi-raft node whose
 * one tick visits only groups with work), and each follower's host runs a
 * process-level liveness stream towards the process of the leader it
 * quiesced under. The stream follows the simulated network and crashes with
 * a lag, as a real process heartbeat would: the leader's process counts as
 * down once, for liveness_lag time units, it has been crashed, restarted (a
 * new incarnation), or cut from the follower in either direction; the host
 * then calls core_leader_process_down. */
#include "tests/sim/sim.h"

/* The follower's view of its leader's process through the stream. */
static bool leader_reachable(const sim_t *s, const sim_node_t *nd)
{
    if (nd->q_leader < 0)
        return false;
    const sim_node_t *L = &s->nodes[nd->q_leader];
    return L->up && L->inc == nd->q_leader_inc && !s->blocked[L->id][nd->id] &&
           !s->blocked[nd->id][L->id];
}

static void liveness_check(sim_t *s, sim_node_t *nd)
{
    if (!nd->q_seen || nd->q_role == CORE_LEADER)
        return;
    if (leader_reachable(s, nd)) {
        nd->q_down_since = 0;
        return;
    }
    if (nd->q_down_since == 0) {
        nd->q_down_since = s->now;
        return;
    }
    if (s->now - nd->q_down_since < s->prof.liveness_lag)
        return;
    int rc = core_leader_process_down(nd->core);
    if (rc != 0)
        check_fail(s, "contract: core_leader_process_down at node %d: %s", nd->id, rk_err_name(rc));
    s->st_proc_down++;
    trace_add(s, TR_PROC_DOWN, nd->id, nd->q_leader, 0, 0, 0, 0);
}

void quiesce_tick(sim_t *s, sim_node_t *nd)
{
    if (!s->prof.quiesce) {
        core_tick(nd->core);
        host_drain(s, nd);
        return;
    }
    liveness_check(s, nd);
    host_drain(s, nd);
    if (!nd->up || s->violated)
        return;
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
    if (s->probe_node < 0 || nd->id == s->probe_node)
        return;
    sim_schedule(s, sim_between(&s->rng, 0, 2 * SIM_TICK), EV_NEMESIS, s->probe_node, 3, NULL);
    s->probe_node = -1;
}

/* Called after every drain: counts quiesce and wake transitions, and starts
 * a follower's liveness stream towards the leader it quiesced under. */
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
            if (s->p.faults && !s->quiet && sim_chance(&s->rng, s->prof.quiesce_nemesis)) {
                bool isolate = sim_chance(&s->rng, 750);
                uint64_t at = sim_between(&s->rng, 0, 5 * SIM_TICK);
                sim_schedule(s, at, EV_NEMESIS, nd->id, isolate ? 1 : 0, NULL);
                if (isolate) {
                    /* Clients come back, and once a write completes
                     * elsewhere (a new leader was elected without the old
                     * one), the old leader is asked for a read. */
                    s->idle_until = 0;
                    s->probe_node = nd->id;
                }
            }
        } else {
            s->st_quiesce_follower++;
            nd->q_leader = net_node_of(s, &st.leader);
            nd->q_leader_inc = nd->q_leader >= 0 ? s->nodes[nd->q_leader].inc : 0;
            nd->q_down_since = 0;
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
