/* What happens to the cluster: the per-seed fault profile, each group's
 * client actions (proposals, linearizable reads, membership changes,
 * leadership transfers, local snapshots and compaction, forced campaigns),
 * process and network faults (crashes, partitions, slow disks, pauses,
 * clock jumps), and the final phase that heals everything and requires each
 * group to commit and spread one more write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

#define U(x) ((unsigned long long)(x))

void work_profile(sim_t *s)
{
    sim_profile_t *p = &s->prof;
    sim_rng_t *r = &s->rng;
    bool f = s->p.faults;
    p->drop = f ? (uint32_t)sim_below(r, 80) : 0;
    p->dup = f ? (uint32_t)sim_below(r, 50) : 0;
    p->delay_max = (uint32_t)sim_between(r, 2, 20);
    p->tail = f ? (uint32_t)sim_below(r, 60) : 0;
    p->tail_max = (uint32_t)sim_between(r, 30, 150);
    p->disk_max = (uint32_t)sim_between(r, 1, 20);
    p->slow_disk_max = (uint32_t)sim_between(r, 30, 150);
    p->client_gap = (uint32_t)sim_between(r, 2, 12);
    p->fault_gap = (uint32_t)sim_between(r, 50, 300);
    p->crash_w = 30;
    p->partition_w = 25;
    p->disk_w = 10;
    p->nemesis = f ? (uint32_t)sim_below(r, 600) : 0;
    p->propose_w = 50;
    p->read_w = 25;
    p->snap_w = 6;
    p->conf_w = 6;
    p->transfer_w = 3;
    p->campaign_w = 2;
    p->pre_vote = sim_chance(r, 800);
    p->check_quorum = sim_chance(r, 600);
    /* Small windows half the time: replication then trickles one entry per
     * round trip, which widens every window between a leader's old-term
     * entries reaching a majority and its own entry doing so. */
    static const uint32_t ents[] = {1, 1, 4, 64}, infl[] = {1, 1, 4, 256};
    p->max_entries_per_msg = ents[sim_below(r, 4)];
    p->max_inflight = infl[sim_below(r, 4)];
    p->nemesis_isolate = 500;
    p->leader_crash = 400;
    /* A third of the seeds churn leaders hard: leaders are the usual crash
     * target, new leaders are mostly cut off at once (their fresh entries
     * stay on them alone), and replication trickles one entry at a time.
     * That is the soil Figure 8 (§5.4.2) grows in: a later leader pushing an
     * older term's entries to a majority while a node with a newer,
     * unreplicated term could still be elected. */
    p->storm = f && sim_chance(r, 333);
    if (p->storm) {
        p->nemesis = (uint32_t)sim_between(r, 600, 900);
        p->nemesis_isolate = 750;
        p->leader_crash = 800;
        p->fault_gap = (uint32_t)sim_between(r, 30, 150);
        p->max_entries_per_msg = 1;
        p->max_inflight = infl[sim_below(r, 3)];
    }
    /* Quiescence: most seeds by default. Idle periods (no client action
     * for up to 200 ticks, faults going on) let groups really quiesce, and
     * then wake them under whatever the faults did meanwhile. */
    p->quiesce = s->p.quiesce == 1 || (s->p.quiesce < 0 && sim_chance(r, 750));
    if (p->quiesce) {
        p->skip_quiesced = sim_chance(r, 500);
        p->quiesce_try = (uint32_t)sim_between(r, 50, 600);
        p->liveness_lag = (uint32_t)sim_between(r, SIM_TICK, 8 * SIM_TICK);
        p->idle = (uint32_t)sim_between(r, 2, 20);
        p->quiesce_nemesis = f ? (uint32_t)sim_below(r, 500) : 0;
        p->liveness_blind = f && sim_chance(r, 200);
        p->wake_on_restart = sim_chance(r, 500);
        /* A third of them are calm: rarer faults and long idle spells, so
         * that groups quiesce often and the quiesce nemesis (quiesce.c)
         * strikes quiesced leaders rather than busy ones. */
        if (sim_chance(r, 333)) {
            p->idle = (uint32_t)sim_between(r, 30, 80);
            p->fault_gap = (uint32_t)sim_between(r, 300, 800);
            p->quiesce_try = (uint32_t)sim_between(r, 500, 1000);
            p->quiesce_nemesis = f ? (uint32_t)sim_between(r, 300, 900) : 0;
            p->storm = false;
            p->nemesis = f ? (uint32_t)sim_below(r, 200) : 0;
            p->nemesis_isolate = 500;
            p->leader_crash = 400;
        }
    }
    /* Process pauses (SIGSTOP, then SIGCONT) and clock jumps (proc.c). */
    if (f && sim_chance(r, 500)) {
        p->pause_w = (uint32_t)sim_between(r, 5, 20);
        p->jump_w = (uint32_t)sim_between(r, 0, 10);
        p->pause_max = (uint32_t)sim_between(r, 2, 30) * SIM_TICK;
    }
}

/* Can a client reach this member of the current group? Never the leader
 * the quiesce nemesis cut off (quiesce.c) until it has been asked its read:
 * requests would wake it. Only reads are sent to a paused process (they
 * wait in its socket, the case a stalled lease clock would get wrong); other
 * requests would only block. */
static bool reachable(const sim_t *s, int i, bool paused_ok)
{
    return s->g->nodes[i].up && i != s->g->probe_node && (paused_ok || !proc_paused(s, i));
}

static sim_node_t *pick(sim_t *s, bool leader, bool paused_ok)
{
    int v[SIM_MAX_NODES], k = 0;
    for (int i = 0; i < s->n; i++)
        if (reachable(s, i, paused_ok) && (!leader || s->g->nodes[i].role_seen == CORE_LEADER))
            v[k++] = i;
    return k ? &s->g->nodes[v[sim_below(&s->rng, k)]] : NULL;
}

static sim_node_t *random_up(sim_t *s)
{
    return pick(s, false, false);
}

/* A member whose core says it leads (there may be a stale one too). */
static sim_node_t *random_leader(sim_t *s)
{
    return pick(s, true, false);
}

static void props_push(sim_node_t *nd, sim_prop_t p)
{
    if (nd->n_props == nd->cap_props) {
        nd->cap_props = nd->cap_props ? 2 * nd->cap_props : 16;
        nd->props = realloc(nd->props, nd->cap_props * sizeof *nd->props);
        if (nd->props == NULL)
            abort();
    }
    nd->props[nd->n_props++] = p;
}

static uint64_t propose(sim_t *s, sim_node_t *nd, size_t n)
{
    core_entry_t ents[4];
    sim_cmd_t cmds[4];
    memset(ents, 0, sizeof ents);
    for (size_t i = 0; i < n; i++) {
        cmds[i].wid = ++s->g->next_wid;
        cmds[i].key = (uint32_t)sim_below(&s->rng, SIM_KEYS);
        cmds[i].proposer = (uint32_t)nd->id;
        ents[i].type = CORE_ENTRY_DATA;
        ents[i].data = buf_new(&cmds[i], sizeof cmds[i]);
        if (ents[i].data == NULL)
            abort();
    }
    uint64_t first = 0, term = 0;
    int rc = core_propose(nd->core, ents, n, &first, &term);
    for (size_t i = 0; i < n; i++) {
        buf_unref(ents[i].data);
        if (rc != 0)
            continue;
        check_write_proposed(s, cmds[i].wid, cmds[i].key);
        props_push(nd, (sim_prop_t){cmds[i].wid, first + i, term, cmds[i].key});
        trace_add(s, TR_PROPOSE, nd->id, -1, cmds[i].wid, first + i, term, cmds[i].key);
    }
    host_drain(s, nd);
    return rc == 0 ? cmds[0].wid : 0;
}

static void do_propose(sim_t *s)
{
    sim_node_t *nd = sim_chance(&s->rng, 900) ? random_leader(s) : random_up(s);
    if (nd != NULL)
        propose(s, nd, (size_t)sim_between(&s->rng, 1, 3));
}

static void reads_push(sim_node_t *nd, sim_read_t r)
{
    if (nd->n_reads == nd->cap_reads) {
        nd->cap_reads = nd->cap_reads ? 2 * nd->cap_reads : 16;
        nd->reads = realloc(nd->reads, nd->cap_reads * sizeof *nd->reads);
        if (nd->reads == NULL)
            abort();
    }
    nd->reads[nd->n_reads++] = r;
}

/* The read's core_read_index call, now or, on a paused process, when it
 * resumes (EV_READ waits like everything else aimed at it). */
static void read_submit(sim_t *s, sim_node_t *nd, size_t i)
{
    uint64_t ctx = nd->reads[i].ctx;
    nd->reads[i].queued = false;
    int rc = core_read_index(nd->core, ctx);
    trace_add(s, TR_READ, nd->id, -1, ctx, nd->reads[i].key, (uint64_t)(int64_t)rc, 0);
    if (rc != 0)
        nd->reads[i] = nd->reads[--nd->n_reads];
    host_drain(s, nd);
}

static void read_at(sim_t *s, sim_node_t *nd)
{
    sim_read_t r;
    memset(&r, 0, sizeof r);
    r.ctx = ++s->g->next_ctx;
    r.key = (uint32_t)sim_below(&s->rng, SIM_KEYS);
    check_read_start(s, &r);
    r.queued = true;
    reads_push(nd, r);
    if (proc_paused(s, nd->id))
        sim_schedule(s, 0, EV_READ, nd->id, 0, NULL);
    else
        read_submit(s, nd, nd->n_reads - 1);
}

void work_read_arrives(sim_t *s, sim_node_t *nd)
{
    for (size_t i = 0; i < nd->n_reads; i++)
        if (nd->reads[i].queued) {
            read_submit(s, nd, i);
            return;
        }
}

static void do_read(sim_t *s)
{
    /* Half the reads go to a node that believes it leads: a deposed leader
     * that has not noticed yet is where stale reads come from. */
    sim_node_t *nd = sim_chance(&s->rng, 500) ? pick(s, true, true) : NULL;
    if (nd == NULL)
        nd = pick(s, false, true);
    if (nd != NULL)
        read_at(s, nd);
}

/* Pool members with (is_voter, is_learner) matching in conf. */
static int pick_peer(sim_t *s, const rk_configuration_t *c, int want)
{
    int cand[SIM_MAX_NODES], k = 0;
    for (int i = 0; i < s->n; i++) {
        bool v = rk_configuration_contains(c, &s->g->nodes[i].peer);
        bool l = rk_configuration_is_learner(c, &s->g->nodes[i].peer);
        if ((want == 0 && v) || (want == 1 && l) || (want == 2 && !v && !l) || (want == 3 && !v))
            cand[k++] = i;
    }
    return k ? cand[sim_below(&s->rng, k)] : -1;
}

static void do_conf(sim_t *s)
{
    sim_node_t *L = random_leader(s);
    if (L == NULL)
        return;
    uint64_t idx = 0;
    const core_conf_t *cc = core_get_conf(L->core, &idx);
    if (cc->joint && sim_chance(&s->rng, 800))
        return;
    rk_configuration_t t = cc->cur;
    int op = (int)sim_below(&s->rng, 6), who = -1;
    uint32_t nv = t.n_peers;
    switch (op) {
    case 0: /* add (or promote) a voter */
        if (nv < 7 && (who = pick_peer(s, &t, 3)) >= 0) {
            rk_configuration_remove_learner(&t, &s->g->nodes[who].peer);
            rk_configuration_add_peer(&t, &s->g->nodes[who].peer);
        }
        break;
    case 1: /* remove a voter, often the leader itself */
        who = sim_chance(&s->rng, 300) ? L->id : pick_peer(s, &t, 0);
        if (nv > 2 && who >= 0)
            rk_configuration_remove_peer(&t, &s->g->nodes[who].peer);
        break;
    case 2:
        if ((who = pick_peer(s, &t, 2)) >= 0)
            rk_configuration_add_learner(&t, &s->g->nodes[who].peer);
        break;
    case 3:
        if ((who = pick_peer(s, &t, 1)) >= 0)
            rk_configuration_remove_learner(&t, &s->g->nodes[who].peer);
        break;
    case 4: /* demote a voter to learner */
        if (nv > 2 && (who = pick_peer(s, &t, 0)) >= 0) {
            rk_configuration_remove_peer(&t, &s->g->nodes[who].peer);
            rk_configuration_add_learner(&t, &s->g->nodes[who].peer);
        }
        break;
    default: { /* replace a voter */
        int out = pick_peer(s, &t, 0), in = pick_peer(s, &t, 2);
        if (out >= 0 && in >= 0) {
            rk_configuration_remove_peer(&t, &s->g->nodes[out].peer);
            rk_configuration_add_peer(&t, &s->g->nodes[in].peer);
            who = in;
        }
    }
    }
    int rc = core_change_conf(L->core, &t, &idx);
    if (rc == 0)
        s->st_confs++;
    trace_add(s, TR_CONF, L->id, who, (uint64_t)op, (uint64_t)(int64_t)rc, rc == 0 ? idx : 0, 0);
    host_drain(s, L);
}

static void do_transfer(sim_t *s)
{
    sim_node_t *L = random_leader(s);
    if (L == NULL)
        return;
    uint64_t idx;
    const core_conf_t *cc = core_get_conf(L->core, &idx);
    int to = sim_chance(&s->rng, 100) ? L->id : pick_peer(s, &cc->cur, 0);
    if (to < 0)
        return;
    int rc = core_transfer_leader(L->core, &s->g->nodes[to].peer);
    if (rc == 0)
        s->st_transfers++;
    trace_add(s, TR_TRANSFER, L->id, to, (uint64_t)(int64_t)rc, 0, 0, 0);
    host_drain(s, L);
}

static void do_campaign(sim_t *s)
{
    sim_node_t *nd = random_up(s);
    if (nd == NULL)
        return;
    int rc = core_campaign(nd->core);
    trace_add(s, TR_CAMPAIGN, nd->id, -1, (uint64_t)(int64_t)rc, 0, 0, 0);
    host_drain(s, nd);
}

void work_client(sim_t *s)
{
    const sim_profile_t *p = &s->prof;
    uint32_t total =
        p->propose_w + p->read_w + p->snap_w + p->conf_w + p->transfer_w + p->campaign_w;
    if (s->now < s->g->idle_until)
        return;
    if (p->idle > 0 && s->g->probe_node < 0 && sim_chance(&s->rng, p->idle)) {
        s->g->idle_until = s->now + sim_between(&s->rng, 20 * SIM_TICK, 200 * SIM_TICK);
        return;
    }
    uint32_t x = (uint32_t)sim_below(&s->rng, total);
    if (x < p->propose_w)
        do_propose(s);
    else if ((x -= p->propose_w) < p->read_w)
        do_read(s);
    else if ((x -= p->read_w) < p->snap_w) {
        sim_node_t *nd = random_up(s);
        if (nd != NULL)
            host_take_snapshot(s, nd);
    } else if ((x -= p->snap_w) < p->conf_w)
        do_conf(s);
    else if ((x -= p->conf_w) < p->transfer_w)
        do_transfer(s);
    else
        do_campaign(s);
}

/* Under --lease a process's clock may jump only when no member there counts
 * ticks toward an election: a follower's early timeout is clock drift,
 * which a lease cannot survive (read_only.c lease_len), while a leader's
 * early expiry only shortens its lease. */
static bool may_jump(sim_t *s, int p)
{
    if (!s->p.lease)
        return true;
    for (int k = 0; k < s->n_groups; k++) {
        const sim_node_t *nd = &s->groups[k].nodes[p];
        if (nd->up && nd->role_seen != CORE_LEADER && !core_quiesced(nd->core))
            return false;
    }
    return true;
}

/* A process for a fault: often the process of some group's leader. */
static int fault_target(sim_t *s, uint32_t leader_permille)
{
    sim_node_t *nd = sim_chance(&s->rng, leader_permille) ? random_leader(s) : NULL;
    if (nd == NULL)
        nd = random_up(s);
    return nd != NULL ? nd->id : -1;
}

void work_fault(sim_t *s)
{
    const sim_profile_t *p = &s->prof;
    s->g = &s->groups[sim_below(&s->rng, (uint64_t)s->n_groups)];
    uint32_t x = (uint32_t)sim_below(&s->rng, p->crash_w + p->partition_w + p->disk_w + p->pause_w +
                                                  p->jump_w);
    if (x < p->crash_w) {
        int victim = fault_target(s, p->leader_crash);
        if (victim < 0)
            return;
        proc_crash(s, victim);
        sim_schedule(s, sim_between(&s->rng, 5, 400), EV_RESTART, victim, 0, NULL);
    } else if ((x -= p->crash_w) < p->partition_w) {
        bool any = false;
        for (int i = 0; i < s->n; i++)
            for (int j = 0; j < s->n; j++)
                any |= s->blocked[i][j];
        if (any && sim_chance(&s->rng, 600))
            net_heal(s);
        else
            net_partition_random(s);
    } else if ((x -= p->partition_w) < p->disk_w) {
        int i = (int)sim_below(&s->rng, s->n);
        s->procs[i].slow_disk = !s->procs[i].slow_disk;
        trace_add(s, TR_SLOW_DISK, i, -1, s->procs[i].slow_disk, 0, 0, 0);
    } else if ((x -= p->disk_w) < p->pause_w) {
        int i = fault_target(s, 500);
        if (i >= 0)
            proc_pause(s, i, sim_between(&s->rng, 1, p->pause_max));
    } else {
        int ok[SIM_MAX_NODES], k = 0;
        for (int i = 0; i < s->n; i++)
            if (s->procs[i].up && !proc_paused(s, i) && may_jump(s, i))
                ok[k++] = i;
        if (k > 0)
            proc_clock_jump(s, ok[sim_below(&s->rng, (uint64_t)k)],
                            sim_between(&s->rng, 1, 2 * s->election_ticks));
    }
}

/* A targeted nemesis: a leader cut off or killed right after its election
 * leaves its fresh entries on no one else, while the next leaders inherit
 * tails of older terms -- the Figure 8 (§5.4.2) pattern that random faults
 * rarely produce. */
void work_new_leader(sim_t *s, sim_node_t *nd)
{
    if (!s->p.faults || s->quiet || !sim_chance(&s->rng, s->prof.nemesis / (uint32_t)s->n_groups))
        return;
    if (s->prof.pause_w > 0 && sim_chance(&s->rng, 250)) {
        /* Once its lease runs (a heartbeat round later), stop and cut it. */
        sim_schedule(s, sim_between(&s->rng, SIM_TICK, s->election_ticks * SIM_TICK / 2),
                     EV_NEMESIS, nd->id, 4, NULL);
        return;
    }
    sim_schedule(s, sim_between(&s->rng, 0, 3 * s->prof.delay_max), EV_NEMESIS, nd->id,
                 sim_chance(&s->rng, s->prof.nemesis_isolate) ? 1 : 0, NULL);
}

/* 2: the update grants a vote; 1: it acknowledges an append; 0: neither. */
static int promise_kind(const core_msg_t *m, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (m[i].type == CORE_MSG_VOTE_RESP && !m[i].reject)
            return 2;
        if (m[i].type == CORE_MSG_APP_RESP && !m[i].reject)
            k = 1;
    }
    return k;
}

/* The same nemesis for nodes that just promised something (a vote, an append
 * ack): a crash while that promise's write may still be pending, followed by
 * a quick restart while the candidates' and leaders' messages are still in
 * flight (duplicates included). */
void work_after_update(sim_t *s, sim_node_t *nd, const core_update_t *u)
{
    if (!s->p.faults || s->quiet || u->id == 0)
        return;
    int k = promise_kind(u->msgs, u->n_msgs);
    int ka = promise_kind(u->msgs_after, u->n_msgs_after);
    k = k > ka ? k : ka;
    uint32_t permille = (k == 2 ? s->prof.nemesis : s->prof.nemesis / 16) / (uint32_t)s->n_groups;
    if (k == 0 || !sim_chance(&s->rng, permille))
        return;
    sim_schedule(s, sim_between(&s->rng, 0, s->prof.disk_max), EV_NEMESIS, nd->id, 2, NULL);
}

void work_nemesis(sim_t *s, sim_node_t *nd, int kind)
{
    if (kind == 3) {
        if (nd->role_seen == CORE_LEADER)
            read_at(s, nd);
        return;
    }
    if (kind == 0 || kind == 2) {
        proc_crash(s, nd->id);
        uint64_t down = kind == 0 ? sim_between(&s->rng, 5, 400) : sim_between(&s->rng, 1, 30);
        sim_schedule(s, down, EV_RESTART, nd->id, 0, NULL);
        return;
    }
    for (int i = 0; i < s->n; i++)
        s->blocked[nd->id][i] = s->blocked[i][nd->id] = (i != nd->id);
    trace_add(s, TR_PARTITION, nd->id, -1, 0, 0, 0, 0);
    if (kind == 4 && nd->role_seen == CORE_LEADER) {
        /* A leader stopped (and cut off) for longer than an election
         * timeout: the others elect a leader and write; a read queued at
         * the stopped one meanwhile is served when it resumes -- from its
         * lease, if its tick count did not catch up with the pause. */
        proc_pause(
            s, nd->id,
            sim_between(&s->rng, s->election_ticks * SIM_TICK, 4 * s->election_ticks * SIM_TICK));
        s->g->probe_node = nd->id;
        s->g->idle_until = 0;
    }
}

/* ------------------------------------------------------------ final phase */

/* The final write may still commit: its proposer still leads in the term
 * it proposed in (a deposed proposer's entry is likely overwritten, and its
 * commit index may never reach it to tell). */
static bool final_pending(const sim_t *s)
{
    const sim_node_t *nd = &s->g->nodes[s->g->final_node];
    for (size_t i = 0; i < nd->n_props; i++)
        if (nd->props[i].wid == s->g->final_wid)
            return nd->up && nd->role_seen == CORE_LEADER && nd->term_seen == nd->props[i].term;
    return false;
}

void work_final(sim_t *s)
{
    if (s->g->final_index != 0 || (s->g->final_wid != 0 && final_pending(s)))
        return;
    /* The leader of the highest term: a leader removed from the configuration
     * while cut off may believe it leads an old term forever when neither
     * pre-vote nor check-quorum is on (nobody tells it otherwise); it is not
     * the cluster's leader. */
    sim_node_t *L = NULL;
    for (int i = 0; i < s->n; i++) {
        sim_node_t *nd = &s->g->nodes[i];
        if (nd->up && nd->role_seen == CORE_LEADER && (L == NULL || nd->term_seen > L->term_seen))
            L = nd;
    }
    if (L == NULL)
        return;
    uint64_t wid = propose(s, L, 1);
    if (wid != 0) {
        s->g->final_wid = wid;
        s->g->final_node = L->id;
    }
}

bool work_final_done(sim_t *s)
{
    if (s->g->final_index == 0)
        return false;
    sim_node_t *L = &s->g->nodes[s->g->final_node];
    if (!L->up)
        return false;
    uint64_t idx;
    const core_conf_t *cc = core_get_conf(L->core, &idx);
    for (int i = 0; i < s->n; i++) {
        sim_node_t *nd = &s->g->nodes[i];
        bool member = core_conf_is_member(cc, &nd->peer);
        if (member && i != s->victim && nd->sm.applied < s->g->final_index)
            return false;
    }
    return true;
}

/* Does a voter set keep a majority without process p? */
static bool quorum_without(const sim_t *s, const rk_configuration_t *c, int p)
{
    return !rk_configuration_contains(c, &s->g->nodes[p].peer) || c->n_peers >= 3;
}

bool work_can_lose(sim_t *s, int p)
{
    sim_group_t *cur = s->g;
    bool ok = true;
    for (int k = 0; k < s->n_groups && ok; k++) {
        s->g = &s->groups[k];
        /* Every configuration any member may act on: the latest one in
         * each log (durable for a member that is down). */
        for (int i = 0; i < s->n && ok; i++) {
            const sim_node_t *nd = &s->g->nodes[i];
            core_conf_t conf;
            if (nd->up)
                conf = *core_get_conf(nd->core, &(uint64_t){0});
            else
                host_conf_at(s, nd, slog_last(&nd->dlog), &conf);
            ok =
                quorum_without(s, &conf.cur, p) && (!conf.joint || quorum_without(s, &conf.old, p));
        }
    }
    s->g = cur;
    return ok;
}
