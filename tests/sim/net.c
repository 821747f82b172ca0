/* The virtual network: messages are deep-copied out of core updates and
 * delivered after a random delay (so they reorder), or dropped, duplicated,
 * or cut by a partition. A SNAP message carries the state-machine data the
 * sending host attaches, and its fate is reported back to the sender's core
 * (core_report_snapshot); a send into a partition may be reported as
 * unreachable (core_report_unreachable). */
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

sim_msg_t *sim_msg_copy(const core_msg_t *m, int from, int to)
{
    sim_msg_t *sm = calloc(1, sizeof *sm);
    if (sm == NULL)
        abort();
    sm->m = *m;
    sm->from = from;
    sm->to = to;
    sm->m.entries = NULL;
    sm->m.snap = NULL;
    if (m->n_entries > 0) {
        sm->m.entries = malloc(m->n_entries * sizeof *m->entries);
        if (sm->m.entries == NULL)
            abort();
        for (size_t i = 0; i < m->n_entries; i++) {
            sm->m.entries[i] = m->entries[i];
            buf_ref(m->entries[i].data);
        }
    }
    if (m->snap != NULL) {
        sm->m.snap = malloc(sizeof *m->snap);
        if (sm->m.snap == NULL)
            abort();
        *sm->m.snap = *m->snap;
    }
    return sm;
}

sim_msg_t *sim_msg_dup(const sim_msg_t *src)
{
    sim_msg_t *sm = sim_msg_copy(&src->m, src->from, src->to);
    sm->has_data = src->has_data;
    sm->data = src->data;
    return sm;
}

void sim_msg_free(sim_msg_t *sm)
{
    if (sm == NULL)
        return;
    for (size_t i = 0; i < sm->m.n_entries; i++)
        buf_unref(sm->m.entries[i].data);
    free(sm->m.entries);
    free(sm->m.snap);
    free(sm);
}

int net_node_of(const sim_t *s, const rk_peer_id_t *p)
{
    for (int i = 0; i < s->n; i++)
        if (core_peer_eq(&s->g->nodes[i].peer, p))
            return i;
    return -1;
}

static uint64_t net_delay(sim_t *s)
{
    if (sim_chance(&s->rng, s->prof.tail))
        return sim_between(&s->rng, s->prof.delay_max, s->prof.tail_max);
    return sim_between(&s->rng, 1, s->prof.delay_max);
}

/* The message is lost: tell the sender's transport layer what a real one
 * would notice (a failed snapshot transfer, sometimes a broken connection). */
static void net_lost(sim_t *s, sim_msg_t *sm)
{
    trace_add(s, TR_DROP, sm->from, sm->to, sm->m.type, sm->m.term, sm->m.index, 0);
    if (sm->m.type == CORE_MSG_SNAP)
        sim_schedule(s, sim_between(&s->rng, 1, 20), EV_SNAP_REPORT, sm->from, sm->to * 2, NULL);
    else if (sm->m.type == CORE_MSG_APP && sim_chance(&s->rng, 300))
        sim_schedule(s, sim_between(&s->rng, 1, 20), EV_UNREACH, sm->from, sm->to, NULL);
    sim_msg_free(sm);
}

void net_send_copy(sim_t *s, sim_msg_t *sm)
{
    bool faults = s->p.faults && !s->quiet;
    check_promise(s, sm);
    if (faults && sim_chance(&s->rng, s->prof.dup))
        sim_schedule(s, net_delay(s), EV_DELIVER, sm->to, 0, sim_msg_dup(sm));
    if (faults && sim_chance(&s->rng, s->prof.drop)) {
        net_lost(s, sm);
        return;
    }
    sim_schedule(s, net_delay(s), EV_DELIVER, sm->to, 0, sm);
}

void net_send(sim_t *s, int from, const core_msg_t *m)
{
    int to = net_node_of(s, &m->to);
    if (to < 0 || to == from) {
        check_fail(s, "contract: node %d sent %s to %s", from, core_msg_type_name(m->type),
                   to < 0 ? "an unknown peer" : "itself");
        return;
    }
    sim_msg_t *sm = sim_msg_copy(m, from, to);
    if (m->type == CORE_MSG_SNAP) {
        /* The leader host attaches the state-machine data for snap->index. */
        const sim_snap_t *d = m->snap ? host_snapshot_data(&s->g->nodes[from], m->snap) : NULL;
        if (d == NULL) {
            const sim_snap_t *ds = &s->g->nodes[from].dsnap;
            check_fail(s, "contract: node %d sends snapshot %llu/%llu but its host holds %llu/%llu",
                       from, m->snap ? (unsigned long long)m->snap->index : 0ULL,
                       m->snap ? (unsigned long long)m->snap->term : 0ULL,
                       (unsigned long long)ds->meta.index, (unsigned long long)ds->meta.term);
            sim_msg_free(sm);
            return;
        }
        sm->has_data = true;
        sm->data = *d;
    }
    net_send_copy(s, sm);
}

void net_deliver(sim_t *s, sim_msg_t *sm)
{
    sim_node_t *dst = &s->g->nodes[sm->to];
    if (!dst->up || s->blocked[sm->from][sm->to]) {
        net_lost(s, sm);
        return;
    }
    trace_add(s, TR_DELIVER, sm->from, sm->to, sm->m.type, sm->m.term, sm->m.index,
              sm->m.n_entries);
    if (sm->m.type == CORE_MSG_SNAP && sm->has_data) {
        /* Keep the data by index until the core asks to install it. */
        dst->recv[dst->recv_next++ % SIM_RECV_SNAPS] = sm->data;
        sim_schedule(s, sim_between(&s->rng, 1, 10), EV_SNAP_REPORT, sm->from, sm->to * 2 + 1,
                     NULL);
    }
    int rc = core_step(dst->core, &sm->m);
    if (rc != 0 && rc != RK_ESTATE && rc != RK_EUNKNOWNPEER)
        check_fail(s, "contract: core_step(%s) at node %d returned %s",
                   core_msg_type_name(sm->m.type), sm->to, rk_err_name(rc));
    sim_msg_free(sm);
    host_drain(s, dst);
}

void net_heal(sim_t *s)
{
    memset(s->blocked, 0, sizeof s->blocked);
    trace_add(s, TR_HEAL, -1, -1, 0, 0, 0, 0);
}

/* One of: isolate a node, split the pool in two, cut one direction of a link. */
void net_partition_random(sim_t *s)
{
    int kind = (int)sim_below(&s->rng, 3);
    if (kind == 0) {
        int x = (int)sim_below(&s->rng, s->n);
        for (int i = 0; i < s->n; i++)
            s->blocked[x][i] = s->blocked[i][x] = (i != x);
        trace_add(s, TR_PARTITION, x, -1, 0, 0, 0, 0);
    } else if (kind == 1) {
        bool side[SIM_MAX_NODES];
        uint64_t mask = 0;
        for (int i = 0; i < s->n; i++) {
            side[i] = sim_chance(&s->rng, 500);
            mask |= (uint64_t)side[i] << i;
        }
        for (int i = 0; i < s->n; i++)
            for (int j = 0; j < s->n; j++)
                s->blocked[i][j] = side[i] != side[j];
        trace_add(s, TR_PARTITION, -1, -1, 1, mask, 0, 0);
    } else {
        int a = (int)sim_below(&s->rng, s->n), b = (int)sim_below(&s->rng, s->n);
        if (a != b)
            s->blocked[a][b] = true;
        trace_add(s, TR_PARTITION, a, b, 2, 0, 0, 0);
    }
}
