/* Multi-raft in the node: quiescence (src/core/quiesce.c) wired into real
 * nodes, the runtime's single tick, coalesced heartbeats and process-level
 * liveness (src/node/liveness.c). Real nodes on loopback TCP; every wait is
 * on an event or a counter, with a generous bound only as a hang guard. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raftkit/log.h"
#include "rpc/raft.pb-c.h"
#include "rpc/rpc_client.h"
#include "src/core/core_internal.h"
#include "src/node/node_internal.h"
#include "tests/node/cluster.h"

enum { ELECTION_TICKS = 10, HANG_MS = 20000 };

static void quiet_log(void *arg, rk_log_level_t level, const char *line)
{
    (void)arg;
    (void)level;
    (void)line;
}

/* ---- what a node's loop knows, read on that loop ---- */

typedef struct probe {
    rk_node_t *n;
    bool quiesced;
    uint64_t ticks;     /* the core's tick count */
    uint64_t hb_sent;   /* heartbeats sent to followers while leader */
    uint64_t rt_frames; /* heartbeat batches the runtime sent */
    uint64_t rt_items;  /* heartbeats and answers in them */
} probe_t;

static void probe_on_loop(void *p)
{
    probe_t *a = p;
    rk_node_t *n = a->n;
    a->quiesced = n->core != NULL && core_quiesced(n->core);
    a->ticks = n->core != NULL ? n->core->ticks : 0;
    a->hb_sent = 0;
    for (size_t i = 0; n->lead_obs != NULL && i < n->lead_obs->n_rep; i++)
        a->hb_sent += n->lead_obs->rep[i].heartbeat_times;
    a->rt_frames = n->rt->hb_frames_sent;
    a->rt_items = n->rt->hb_items_sent;
}

static probe_t probe(rk_node_t *n)
{
    probe_t a = {.n = n};
    assert_int_equal(node_rt_call(n->rt, probe_on_loop, &a), 0);
    return a;
}

static rk_node_options_t opts(bool quiesce)
{
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.election_timeout_ms = 300;
    o.raft_options.sync = false;
    o.raft_options.quiesce = quiesce;
    return o;
}

static bool all_quiesced(void *p)
{
    tc_cluster_t *c = p;
    for (int i = 0; i < c->n; i++)
        if (c->nodes[i].node && !probe(c->nodes[i].node).quiesced)
            return false;
    return true;
}

/* A clock that keeps running: a group without quiescence, whose leader
 * ticks every election_timeout / 10. */
typedef struct clock_wait {
    rk_node_t *n;
    uint64_t until;
} clock_wait_t;

static bool clock_reached(void *p)
{
    clock_wait_t *w = p;
    return probe(w->n).ticks >= w->until;
}

static void wait_ticks(rk_node_t *clock, uint64_t ticks)
{
    clock_wait_t w = {.n = clock, .until = probe(clock).ticks + ticks};
    assert_true(tc_wait(clock_reached, &w, HANG_MS));
}

/* An idle group's leader quiesces its followers and stops heartbeating: no
 * heartbeat and no tick for several election timeouts (measured on another
 * group's clock), and the status says so. A proposal wakes it: it
 * heartbeats again and the entry commits everywhere. */
static void test_idle_group_goes_quiet_and_wakes_on_a_proposal(void **state)
{
    (void)state;
    tc_cluster_t c, clk;
    rk_node_options_t q = opts(true), nq = opts(false);
    tc_cluster_init(&c, "quiet", 3, 3, &q);
    tc_cluster_init(&clk, "clock", 1, 1, &nq);
    assert_int_equal(tc_start(&clk, 0, false), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tc_start(&c, i, false), 0);
    int leader = tc_wait_leader(&c, HANG_MS);
    assert_true(leader >= 0);
    assert_true(tc_wait_leader(&clk, HANG_MS) == 0);
    assert_int_equal(tc_apply_many(&c, leader, 5), 5);
    assert_true(tc_wait(all_quiesced, &c, HANG_MS));

    rk_node_t *ln = c.nodes[leader].node;
    probe_t before[3];
    for (int i = 0; i < 3; i++)
        before[i] = probe(c.nodes[i].node);
    wait_ticks(clk.nodes[0].node, 3 * ELECTION_TICKS);
    for (int i = 0; i < 3; i++) {
        probe_t now = probe(c.nodes[i].node);
        assert_true(now.quiesced);
        assert_int_equal(now.ticks, before[i].ticks); /* not ticked at all */
    }
    assert_int_equal(probe(ln).hb_sent, before[leader].hb_sent);
    rk_metrics_t *m = rk_node_get_metrics(ln);
    assert_non_null(m);
    assert_true(m->status.quiesced);
    rk_metrics_free(m);

    int64_t last = rk_node_last_log_index(ln);
    assert_int_equal(tc_apply_many(&c, leader, 1), 1);
    assert_true(probe(ln).hb_sent > before[leader].hb_sent);
    assert_true(tc_wait_applied(&c, last + 1, HANG_MS));
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&c.nodes[i].fsm.sum), 6);
    tc_cluster_destroy(&c);
    tc_cluster_destroy(&clk);
}

/* ---- many groups on shared servers ---- */

enum { N_GROUPS = 32, N_SERVERS = 3 };

typedef struct multi {
    rk_server_t *servers[N_SERVERS];
    tc_cluster_t g[N_GROUPS];
    int n_groups;
} multi_t;

static void multi_start(multi_t *mt, int n_groups, const char *prefix, bool quiesce)
{
    rk_node_options_t o = opts(quiesce);
    mt->n_groups = n_groups;
    for (int k = 0; k < n_groups; k++) {
        char name[32];
        snprintf(name, sizeof name, "%s%d", prefix, k);
        tc_cluster_init(&mt->g[k], name, N_SERVERS, N_SERVERS, &o);
        if (k == 0)
            continue;
        for (int i = 0; i < N_SERVERS; i++)
            mt->g[k].nodes[i].id = mt->g[0].nodes[i].id; /* same endpoints */
        mt->g[k].conf = mt->g[0].conf;
    }
    for (int i = 0; i < N_SERVERS; i++) {
        rk_status_t st;
        mt->servers[i] = rk_server_new(&mt->g[0].nodes[i].id.endpoint, &st);
        assert_non_null(mt->servers[i]);
        for (int k = 0; k < n_groups; k++)
            mt->g[k].nodes[i].server = mt->servers[i];
    }
    for (int k = 0; k < n_groups; k++)
        for (int i = 0; i < N_SERVERS; i++)
            assert_int_equal(tc_start(&mt->g[k], i, false), 0);
    for (int k = 0; k < n_groups; k++)
        assert_true(tc_wait_leader(&mt->g[k], HANG_MS) >= 0);
}

static void multi_destroy(multi_t *mt)
{
    for (int k = 0; k < mt->n_groups; k++)
        tc_cluster_destroy(&mt->g[k]);
    for (int i = 0; i < N_SERVERS; i++)
        rk_server_free(mt->servers[i]);
}

typedef struct lead_wait {
    tc_cluster_t *c;
    int want;
} lead_wait_t;

static bool leads(void *p)
{
    lead_wait_t *w = p;
    return rk_node_is_leader(w->c->nodes[w->want].node);
}

/* 32 groups led from one server: it sends each follower server one
 * heartbeat batch per tick carrying all 32 groups' heartbeats, not 32
 * frames. */
static void test_heartbeats_are_batched_per_peer(void **state)
{
    (void)state;
    static multi_t mt;
    multi_start(&mt, N_GROUPS, "hb", false); /* heartbeats every tick */
    for (int k = 0; k < N_GROUPS; k++) {
        if (rk_node_is_leader(mt.g[k].nodes[0].node))
            continue;
        int l = tc_wait_leader(&mt.g[k], HANG_MS);
        assert_true(l > 0);
        assert_int_equal(
            rk_node_transfer_leadership_to(mt.g[k].nodes[l].node, &mt.g[k].nodes[0].id), 0);
        lead_wait_t w = {.c = &mt.g[k], .want = 0};
        assert_true(tc_wait(leads, &w, HANG_MS));
    }
    rk_node_t *n0 = mt.g[0].nodes[0].node;
    probe_t a = probe(n0);
    wait_ticks(n0, 2 * ELECTION_TICKS);
    probe_t b = probe(n0);
    uint64_t ticks = b.ticks - a.ticks, frames = b.rt_frames - a.rt_frames;
    uint64_t items = b.rt_items - a.rt_items;
    /* Every group heartbeats both followers every tick... */
    assert_true(items >= (uint64_t)N_GROUPS * 2 * (ticks - 1));
    /* ...in one frame per follower server per tick (one more tick may have
     * started around each probe). */
    assert_true(frames <= 2 * (ticks + 2));
    multi_destroy(&mt);
}

typedef struct moved_wait {
    multi_t *mt;
    int from; /* server the leaders must leave */
    int64_t term[N_GROUPS];
    bool was_led[N_GROUPS];
} moved_wait_t;

/* Every group that was led from `from` has a leader elsewhere now. */
static bool leaders_moved(void *p)
{
    moved_wait_t *w = p;
    for (int k = 0; k < w->mt->n_groups; k++) {
        if (!w->was_led[k])
            continue;
        bool found = false;
        for (int i = 0; i < N_SERVERS; i++) {
            rk_node_t *n = w->mt->g[k].nodes[i].node;
            if (i != w->from && n && rk_node_is_leader(n) && rk_node_term(n) > w->term[k])
                found = true;
        }
        if (!found)
            return false;
    }
    return true;
}

static bool all_groups_quiesced(void *p)
{
    multi_t *mt = p;
    for (int k = 0; k < mt->n_groups; k++)
        if (!all_quiesced(&mt->g[k]))
            return false;
    return true;
}

static void mute_on_loop(void *p)
{
    node_rt_t *rt = p;
    rt->live_muted = true;
}

/* Picks the server leading the most groups; notes which and their terms. */
static int note_leaders(multi_t *mt, moved_wait_t *w)
{
    int count[N_SERVERS] = {0}, best = 0;
    for (int k = 0; k < mt->n_groups; k++) {
        int l = tc_wait_leader(&mt->g[k], HANG_MS);
        assert_true(l >= 0);
        count[l]++;
    }
    for (int i = 1; i < N_SERVERS; i++)
        if (count[i] > count[best])
            best = i;
    w->mt = mt;
    w->from = best;
    for (int k = 0; k < mt->n_groups; k++) {
        w->was_led[k] = rk_node_is_leader(mt->g[k].nodes[best].node);
        w->term[k] = rk_node_term(mt->g[k].nodes[best].node);
    }
    return best;
}

/* A leader process that stops answering process heartbeats (as a
 * SIGSTOPped one would: its connections stay up) is taken for gone: the
 * followers of its quiesced groups elect new leaders. Nothing else tells
 * them: those groups send nothing while quiesced. */
static void test_quiesced_followers_elect_when_leader_process_is_mute(void **state)
{
    (void)state;
    rk_log_set_sink(quiet_log, NULL);
    static multi_t mt;
    multi_start(&mt, 4, "mute", true);
    assert_true(tc_wait(all_groups_quiesced, &mt, HANG_MS));
    static moved_wait_t w;
    int from = note_leaders(&mt, &w);
    assert_int_equal(node_rt_call(node_server_rt(mt.servers[from]), mute_on_loop,
                                  node_server_rt(mt.servers[from])),
                     0);
    assert_true(tc_wait(leaders_moved, &w, HANG_MS));
    multi_destroy(&mt);
    rk_log_set_sink(NULL, NULL);
}

/* The leader's whole runtime goes away (its groups stop and the server is
 * freed): the followers of its quiesced groups elect new leaders. */
static void test_quiesced_followers_elect_when_leader_runtime_stops(void **state)
{
    (void)state;
    rk_log_set_sink(quiet_log, NULL);
    static multi_t mt;
    multi_start(&mt, 4, "gone", true);
    assert_true(tc_wait(all_groups_quiesced, &mt, HANG_MS));
    static moved_wait_t w;
    int from = note_leaders(&mt, &w);
    for (int k = 0; k < mt.n_groups; k++)
        tc_stop(&mt.g[k], from);
    rk_server_free(mt.servers[from]);
    mt.servers[from] = NULL;
    assert_true(tc_wait(leaders_moved, &w, HANG_MS));
    multi_destroy(&mt);
    rk_log_set_sink(NULL, NULL);
}

/* ---- a batch with an item for a group not served here ---- */

static void send_batch_on_loop(void *p)
{
    void **a = p;
    node_rt_t *rt = a[0];
    const char *ep = a[1];
    rpc_req_t req = {.method = RPC_M_HEARTBEAT_BATCH, .msg = a[2]};
    *(int *)a[3] = rpc_channel_send(rpc_client_channel(rt->client, ep, NULL), &req);
}

/* The unknown item is dropped and the others are processed: a heartbeat of
 * a newer term from a (made-up) leader moves the follower to that term. */
static void test_batch_item_for_unknown_group_is_dropped(void **state)
{
    (void)state;
    tc_cluster_t c;
    rk_node_options_t o = opts(true);
    tc_cluster_init(&c, "batch", 2, 2, &o);
    for (int i = 0; i < 2; i++)
        assert_int_equal(tc_start(&c, i, false), 0);
    int leader = tc_wait_leader(&c, HANG_MS);
    assert_true(leader >= 0);
    int f = 1 - leader;
    int64_t term = rk_node_term(c.nodes[f].node);

    char to[RK_PEER_ID_STRLEN], ep[RK_PEER_ID_STRLEN];
    rk_peer_id_t target = c.nodes[f].id;
    target.priority = RK_PRIORITY_DISABLED;
    rk_peer_id_format(&target, to, sizeof to);
    rk_endpoint_format(&target.endpoint, ep, sizeof ep);
    uint8_t ctx[8] = {0};
    Rk__Heartbeat hb[2] = {RK__HEARTBEAT__INIT, RK__HEARTBEAT__INIT};
    Rk__Heartbeat *hbp[2] = {&hb[0], &hb[1]};
    hb[0].group_id = "no-such-group";
    hb[0].server_id = "127.0.0.1:1:0";
    hb[0].peer_id = to;
    hb[0].term = (uint64_t)term + 5;
    hb[1] = hb[0];
    hb[1].group_id = "batch";
    hb[1].read_context = (ProtobufCBinaryData){.len = 8, .data = ctx};
    Rk__HeartbeatBatch b = RK__HEARTBEAT_BATCH__INIT;
    b.n_heartbeats = 2;
    b.heartbeats = hbp;
    int rc = -1;
    void *a[4] = {c.nodes[leader].node->rt, ep, &b.base, &rc};
    assert_int_equal(node_rt_call(c.nodes[leader].node->rt, send_batch_on_loop, a), 0);
    assert_int_equal(rc, 0);
    for (int i = 0; i < HANG_MS / 5 && rk_node_term(c.nodes[f].node) < term + 5; i++)
        tc_msleep(5);
    assert_true(rk_node_term(c.nodes[f].node) >= term + 5);
    tc_cluster_destroy(&c);
}

/* A loop that stood still for ten tick periods (a stall, a stopped process)
 * gives the core every tick it missed at its next timer firing, not one:
 * the core's timers, the leader's read lease among them, count ticks. */
typedef struct stall {
    rk_node_t *n;
    uint64_t ticks_before;
} stall_t;

static void stall_on_loop(void *p)
{
    stall_t *a = p;
    a->ticks_before = a->n->core->ticks;
    uv_sleep(10 * 300 / ELECTION_TICKS); /* ten periods of opts()' 300 ms timeout */
}

static bool ticked_since(void *p)
{
    stall_t *a = p;
    return probe(a->n).ticks > a->ticks_before;
}

static void test_missed_ticks_are_caught_up_after_a_stall(void **state)
{
    (void)state;
    tc_cluster_t c;
    rk_node_options_t nq = opts(false);
    tc_cluster_init(&c, "stall", 1, 1, &nq);
    assert_int_equal(tc_start(&c, 0, false), 0);
    assert_true(tc_wait_leader(&c, HANG_MS) == 0);
    stall_t a = {.n = c.nodes[0].node};
    assert_int_equal(node_rt_call(a.n->rt, stall_on_loop, &a), 0);
    assert_true(tc_wait(ticked_since, &a, HANG_MS));
    /* one firing after the stall; a repeating timer would have given 1 */
    assert_true(probe(a.n).ticks >= a.ticks_before + 9);
    tc_cluster_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_group_goes_quiet_and_wakes_on_a_proposal),
        cmocka_unit_test(test_heartbeats_are_batched_per_peer),
        cmocka_unit_test(test_quiesced_followers_elect_when_leader_process_is_mute),
        cmocka_unit_test(test_quiesced_followers_elect_when_leader_runtime_stops),
        cmocka_unit_test(test_batch_item_for_unknown_group_is_dropped),
        cmocka_unit_test(test_missed_ticks_are_caught_up_after_a_stall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
