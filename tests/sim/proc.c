/* A simulated process: one member of every group, one disk, one tick that
 * visits every group (a multi-raft server's), one clock. Crashes, restarts,
 * pauses and clock jumps hit the process, so every group it hosts at once.
 *
 * A pause is a SIGSTOP: nothing the process should do happens (events aimed
 * at it wait until it resumes, like bytes in its sockets) and its ticks are
 * lost; on resuming it runs the ticks it missed at once before anything
 * else, as a host that counts ticks on a monotonic clock does (the lease
 * needs that: a leader's ticks must not fall behind real time; with
 * --pause-loses-ticks it runs one tick only, like a plain repeating timer,
 * which the lease does not survive). A clock jump is the same burst of
 * ticks without the pause. */
#include <string.h>

#include "tests/sim/sim.h"

bool proc_paused(const sim_t *s, int p)
{
    const sim_proc_t *pr = &s->procs[p];
    return pr->up && pr->paused_until != 0 && s->now < pr->paused_until;
}

static void schedule_tick(sim_t *s, int p)
{
    sim_proc_t *pr = &s->procs[p];
    sim_schedule(s, pr->tick_at - s->now, EV_TICK, p, 0, NULL);
}

/* One tick of the process: its liveness stream, then every group. */
static void proc_tick(sim_t *s, int p)
{
    sim_group_t *cur = s->g;
    s->procs[p].ticks++;
    quiesce_liveness(s, p);
    for (int k = 0; k < s->n_groups && !s->violated; k++) {
        s->g = &s->groups[k];
        if (s->g->nodes[p].up)
            quiesce_tick(s, &s->g->nodes[p]);
    }
    s->g = cur;
}

void proc_boot(sim_t *s, int p)
{
    sim_group_t *cur = s->g;
    sim_proc_t *pr = &s->procs[p];
    memset(pr, 0, sizeof *pr);
    pr->up = true;
    for (int k = 0; k < s->n_groups && !s->violated; k++) {
        s->g = &s->groups[k];
        host_boot(s, &s->g->nodes[p]);
    }
    s->g = &s->groups[0];
    pr->tick_at = s->now + sim_between(&s->rng, 1, SIM_TICK);
    schedule_tick(s, p);
    s->g = cur;
}

void proc_crash(sim_t *s, int p)
{
    sim_group_t *cur = s->g;
    sim_proc_t *pr = &s->procs[p];
    bool pending = false;
    for (int k = 0; k < s->n_groups; k++)
        pending |= s->groups[k].nodes[p].wq_head != NULL;
    trace_add(s, TR_CRASH, p, -1, pending, 0, 0, 0);
    s->st_crashes++;
    for (int k = 0; k < s->n_groups; k++) {
        s->g = &s->groups[k];
        if (s->g->nodes[p].up)
            host_crash(s, &s->g->nodes[p]);
    }
    s->g = cur;
    /* A new incarnation: every event scheduled for the old one dies. */
    pr->up = false;
    pr->inc++;
    pr->paused_until = 0;
    pr->tick_lost = false;
}

void proc_restart(sim_t *s, int p)
{
    sim_group_t *cur = s->g;
    sim_proc_t *pr = &s->procs[p];
    const sim_node_t *nd = &s->groups[0].nodes[p];
    trace_add(s, TR_RESTART, p, -1, nd->hs.term, slog_last(&nd->dlog), nd->dsnap.meta.index,
              nd->hs.commit);
    pr->up = true;
    /* The new process knows nothing of its peers yet: a grace period of an
     * election timeout from now, and unknown incarnations. */
    for (int i = 0; i < s->n; i++) {
        pr->heard_at[i] = pr->ticks;
        pr->inc_seen[i] = SIM_INC_UNKNOWN;
    }
    for (int k = 0; k < s->n_groups && !s->violated; k++) {
        s->g = &s->groups[k];
        host_restart(s, &s->g->nodes[p]);
    }
    s->g = &s->groups[0];
    pr->tick_at = s->now + sim_between(&s->rng, 1, SIM_TICK);
    schedule_tick(s, p);
    s->g = cur;
}

void proc_tick_event(sim_t *s, int p)
{
    sim_proc_t *pr = &s->procs[p];
    proc_tick(s, p);
    pr->tick_at = s->now + SIM_TICK;
    if (pr->up)
        schedule_tick(s, p);
}

void proc_pause(sim_t *s, int p, uint64_t len)
{
    sim_proc_t *pr = &s->procs[p];
    pr->paused_until = s->now + len;
    trace_add(s, TR_PAUSE, p, -1, len, 0, 0, 0);
    s->st_pauses++;
    /* Scheduled now, it runs before everything deferred to the same time. */
    sim_schedule(s, len, EV_RESUME, p, 0, NULL);
}

void proc_resume(sim_t *s, int p)
{
    sim_proc_t *pr = &s->procs[p];
    if (pr->paused_until == 0)
        return;
    pr->paused_until = 0;
    uint64_t missed = 0;
    if (pr->tick_lost) {
        pr->tick_lost = false;
        missed = (s->now - pr->tick_at) / SIM_TICK + 1;
        if (s->p.lossy_ticks) {
            pr->tick_at = s->now;
            missed = 1;
        }
    }
    trace_add(s, TR_RESUME, p, -1, missed, 0, 0, 0);
    for (uint64_t i = 0; i < missed && pr->up && !s->violated; i++)
        proc_tick(s, p);
    if (missed > 0 && pr->up) {
        pr->tick_at += missed * SIM_TICK;
        schedule_tick(s, p);
    }
}

void proc_clock_jump(sim_t *s, int p, uint64_t ticks)
{
    trace_add(s, TR_JUMP, p, -1, ticks, 0, 0, 0);
    s->st_jumps++;
    for (uint64_t i = 0; i < ticks && s->procs[p].up && !s->violated; i++)
        proc_tick(s, p);
}
