/* Peer reachability: the RPC client reports when the connection to an
 * endpoint goes down or comes back (once per change, not per retry). A
 * leader hearing that a member became unreachable tells its core
 * (core_report_unreachable), so replication to that peer falls back from
 * pipelining to probing instead of filling a window nobody acknowledges; the
 * probe's heartbeats bring it back to replicating once the peer answers.
 * A quiesced leader wakes for it (it then sees the member stay silent and
 * does not quiesce again until it answers), and quiesced followers led from
 * that endpoint learn that their leader's process is down (liveness.c).
 * Runs on the runtime's loop thread; the runtime keeps the list of nodes it
 * hosts (rt->nodes) for this.
 */
#include "raftkit/log.h"
#include "rpc/rpc_client.h"
#include "src/node/node_internal.h"

void reach_attach(rk_node_t *n)
{
    n->rt_next = n->rt->nodes;
    n->rt->nodes = n;
}

void reach_detach(rk_node_t *n)
{
    for (rk_node_t **pp = &n->rt->nodes; *pp; pp = &(*pp)->rt_next) {
        if (*pp == n) {
            *pp = n->rt_next;
            n->rt_next = NULL;
            return;
        }
    }
}

static void report(rk_node_t *n, const rk_peer_id_t *p, bool reachable, const rk_status_t *why)
{
    char buf[RK_PEER_ID_STRLEN];
    rk_peer_id_format(p, buf, sizeof(buf));
    if (reachable) {
        RK_INFO(n->group, n->self_str, "peer %s reachable again", buf);
        return;
    }
    RK_WARN(n->group, n->self_str, "peer %s unreachable: %s", buf,
            why && why->msg[0] ? why->msg : "connection lost");
    core_report_unreachable(n->core, p); /* a no-op unless we lead */
    core_status_t cs;
    core_get_status(n->core, &cs);
    if (cs.role == CORE_LEADER)
        core_wake(n->core);
}

static void report_list(rk_node_t *n, const rk_peer_id_t *list, size_t count,
                        const rk_endpoint_t *ep, bool reachable, const rk_status_t *why,
                        rk_peer_id_t *seen, size_t *n_seen)
{
    for (size_t i = 0; i < count; i++) {
        if (!rk_endpoint_equal(&list[i].endpoint, ep))
            continue;
        bool dup = false;
        for (size_t j = 0; j < *n_seen; j++)
            dup = dup || core_peer_eq(&seen[j], &list[i]);
        if (dup || core_peer_eq(&list[i], &n->self))
            continue;
        seen[(*n_seen)++] = list[i];
        report(n, &list[i], reachable, why);
    }
}

void node_rt_on_reach(void *arg, rpc_channel_t *ch, bool reachable, const rk_status_t *why)
{
    node_rt_t *rt = arg;
    rk_endpoint_t ep;
    if (rk_endpoint_parse(&ep, rpc_channel_endpoint(ch), NULL) != 0)
        return;
    if (!reachable)
        liveness_unreachable(rt, &ep);
    for (rk_node_t *n = rt->nodes; n; n = n->rt_next) {
        if (n->stopping || n->fatal || n->core == NULL)
            continue;
        uint64_t ci;
        const core_conf_t *c = core_get_conf(n->core, &ci);
        rk_peer_id_t seen[4 * RK_CONF_MAX_PEERS];
        size_t n_seen = 0;
        report_list(n, c->cur.peers, c->cur.n_peers, &ep, reachable, why, seen, &n_seen);
        report_list(n, c->cur.learners, c->cur.n_learners, &ep, reachable, why, seen, &n_seen);
        if (c->joint) {
            report_list(n, c->old.peers, c->old.n_peers, &ep, reachable, why, seen, &n_seen);
            report_list(n, c->old.learners, c->old.n_learners, &ep, reachable, why, seen, &n_seen);
        }
        if (n_seen > 0)
            node_wake(n);
    }
}
