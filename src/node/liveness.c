/* Process-level liveness: how a quiesced follower learns that its leader
 * is gone. A quiesced group sends nothing (src/core/quiesce.c), so its
 * followers cannot time the leader out; instead the runtime watches the
 * leader's process for all of them at once.
 *
 * THE RULE (the host's side of src/core/quiesce.c, "core_leader_process_down")
 *
 *   - Every runtime draws a random 64-bit incarnation when it starts.
 *   - A runtime watches every peer endpoint that leads at least one of its
 *     quiesced follower groups: it sends it a ProcessHeartbeat every tick
 *     (the shortest tick of those groups), which the peer answers with its
 *     own incarnation. Watching starts from "heard now" (the follower just
 *     accepted a quiesce notice from there) and an unknown incarnation.
 *   - The leader's process is DOWN for a group when
 *       * no answer came for one election timeout of that group (a crashed
 *         or SIGSTOPped process: TCP may stay up, nothing answers), or
 *       * an answer carries another incarnation (it restarted), or
 *       * the RPC channel to it became unreachable (reach.c).
 *     Then core_leader_process_down is called for every quiesced follower
 *     group led from that endpoint: it forgets the leader and campaigns
 *     within a randomized part of an election timeout.
 *   - The signal only ever hastens an election of a quiesced follower; it
 *     enables nothing else, so a wrong or late signal costs an election or
 *     delays one, never safety (see quiesce.c, WHY IT IS SAFE).
 *
 * A group whose leader stops while its process stays up wakes its followers
 * before it goes (stop.c), so they time it out by the ordinary rules.
 */
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "rpc/raft.pb-c.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_server.h"
#include "src/node/node_internal.h"

static uint64_t tick_ms(const rk_node_t *n)
{
    uint64_t t = (uint64_t)n->opts.election_timeout_ms / NODE_ELECTION_TICKS;
    return t ? t : 1;
}

static node_rt_peer_t *peer_get(node_rt_t *rt, const rk_endpoint_t *ep)
{
    for (size_t i = 0; i < rt->n_peers; i++)
        if (rk_endpoint_equal(&rt->peers[i]->endpoint, ep))
            return rt->peers[i];
    node_rt_peer_t **v = realloc(rt->peers, (rt->n_peers + 1) * sizeof(*v));
    if (v == NULL)
        return NULL;
    rt->peers = v;
    node_rt_peer_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->rt = rt;
    p->endpoint = *ep;
    rk_endpoint_format(ep, p->name, sizeof(p->name));
    rt->peers[rt->n_peers++] = p;
    return p;
}

static void live_arm(node_rt_t *rt);

static void watch(rk_node_t *n, node_rt_peer_t *p)
{
    uint64_t et = (uint64_t)n->opts.election_timeout_ms;
    if (p->n_quiesced++ == 0) {
        p->last_ok_ms = node_now_ms(n);
        p->incarnation = 0;
        p->tick_ms = tick_ms(n);
        p->timeout_ms = et;
    } else {
        if (tick_ms(n) < p->tick_ms)
            p->tick_ms = tick_ms(n);
        if (et < p->timeout_ms)
            p->timeout_ms = et;
    }
    n->watched = p;
    if (!n->rt->live_armed)
        live_arm(n->rt);
}

void liveness_forget(rk_node_t *n)
{
    if (n->watched == NULL)
        return;
    n->watched->n_quiesced--;
    n->watched = NULL;
}

void liveness_update(rk_node_t *n)
{
    node_rt_peer_t *want = NULL;
    if (n->core != NULL && !n->stopping && core_quiesced(n->core)) {
        core_status_t cs;
        core_get_status(n->core, &cs);
        if (cs.role == CORE_FOLLOWER && !core_peer_is_none(&cs.leader))
            want = peer_get(n->rt, &cs.leader.endpoint); /* NULL (no memory): not watched */
    }
    if (want == n->watched)
        return;
    liveness_forget(n);
    if (want)
        watch(n, want);
}

/* Tells every quiesced follower group led from p whose election timeout
 * passed in silent_ms (all of them when restarted) that the leader's
 * process is down. */
static void process_down(node_rt_t *rt, node_rt_peer_t *p, bool restarted, uint64_t silent_ms,
                         const char *why)
{
    unsigned woken = 0;
    for (rk_node_t *n = rt->nodes; n; n = n->rt_next) {
        if (n->watched != p || n->stopping || n->core == NULL)
            continue;
        if (!restarted && silent_ms < (uint64_t)n->opts.election_timeout_ms)
            continue;
        core_leader_process_down(n->core);
        node_wake(n); /* the drive takes it off the watch and back on the tick */
        woken++;
    }
    if (woken > 0)
        RK_INFO(NULL, NULL, "process at %s %s: %u quiesced group(s) look for a new leader", p->name,
                why, woken);
}

static void on_pong(void *arg, const rk_status_t *st, const rpc_resp_t *resp)
{
    node_rt_peer_t *p = arg;
    node_rt_t *rt = p->rt;
    if (st->code != 0 || resp == NULL || resp->msg == NULL || p->n_quiesced == 0)
        return; /* no answer: the silence is timed in on_live */
    const Rk__ProcessHeartbeatResponse *r = (const void *)resp->msg;
    if (p->incarnation != 0 && r->incarnation != p->incarnation) {
        p->incarnation = r->incarnation;
        process_down(rt, p, true, 0, "restarted");
        return;
    }
    p->incarnation = r->incarnation;
    p->last_ok_ms = uv_now(&rt->loop);
}

static void ping(node_rt_t *rt, node_rt_peer_t *p)
{
    rpc_channel_t *ch = rt->client ? rpc_client_channel(rt->client, p->name, NULL) : NULL;
    if (ch == NULL)
        return;
    Rk__ProcessHeartbeat m = RK__PROCESS_HEARTBEAT__INIT;
    m.incarnation = rt->incarnation;
    m.time_ms = uv_now(&rt->loop);
    rpc_req_t req = {
        .method = RPC_M_PROCESS_HEARTBEAT, .msg = &m.base, .timeout_ms = (uint32_t)p->timeout_ms};
    rpc_channel_call(ch, &req, on_pong, p); /* an error: no answer, timed in on_live */
}

static void on_live(uv_timer_t *t)
{
    node_rt_t *rt = t->data;
    rt->live_armed = false;
    uint64_t now = uv_now(&rt->loop);
    for (size_t i = 0; i < rt->n_peers; i++) {
        node_rt_peer_t *p = rt->peers[i];
        if (p->n_quiesced == 0)
            continue;
        uint64_t silent = now - p->last_ok_ms;
        if (silent >= p->timeout_ms)
            process_down(rt, p, false, silent, "silent");
        ping(rt, p);
    }
    live_arm(rt);
}

/* Runs on_live a tick from now while some peer is watched. */
static void live_arm(node_rt_t *rt)
{
    uint64_t period = 0;
    for (size_t i = 0; i < rt->n_peers; i++) {
        const node_rt_peer_t *p = rt->peers[i];
        if (p->n_quiesced > 0 && (period == 0 || p->tick_ms < period))
            period = p->tick_ms;
    }
    if (period == 0)
        return;
    rt->live_armed = true;
    uv_timer_start(&rt->live_timer, on_live, period, 0);
}

void liveness_unreachable(node_rt_t *rt, const rk_endpoint_t *ep)
{
    for (size_t i = 0; i < rt->n_peers; i++)
        if (rk_endpoint_equal(&rt->peers[i]->endpoint, ep) && rt->peers[i]->n_quiesced > 0)
            process_down(rt, rt->peers[i], true, 0, "unreachable");
}

static void h_process_heartbeat(rpc_call_t *call, void *arg)
{
    node_rt_t *rt = arg;
    if (rt->live_muted) {
        rpc_call_fail(call, RK_EBUSY, "process heartbeats muted (test)");
        return;
    }
    Rk__ProcessHeartbeatResponse r = RK__PROCESS_HEARTBEAT_RESPONSE__INIT;
    r.incarnation = rt->incarnation;
    r.time_ms = uv_now(&rt->loop);
    rpc_call_reply(call, &r.base, NULL, 0, NULL, NULL);
}

int liveness_register(node_rt_t *rt)
{
    return rpc_server_register(rt->server, RPC_M_PROCESS_HEARTBEAT, NULL, 0, h_process_heartbeat,
                               rt);
}

void node_rt_live_init(node_rt_t *rt)
{
    while (rt->incarnation == 0)
        if (uv_random(NULL, NULL, &rt->incarnation, sizeof(rt->incarnation), 0, NULL) != 0)
            rt->incarnation = uv_hrtime(); /* no entropy: distinct per start anyway */
    uv_timer_init(&rt->loop, &rt->live_timer);
    rt->live_timer.data = rt;
}

void node_rt_live_close(node_rt_t *rt)
{
    uv_close((uv_handle_t *)&rt->live_timer, NULL);
}

void node_rt_live_free(node_rt_t *rt)
{
    for (size_t i = 0; i < rt->n_peers; i++)
        free(rt->peers[i]);
    free(rt->peers);
}
