/* The server side of the CLI service (JRaft's CliService processors): one
 * handler per CLI request of rpc/cli.proto, built on the public rk_node_*
 * functions. Every loop runtime serves it (cli_rt_open, called when the
 * runtime starts); a group started with disable_cli refuses each request.
 *
 * A request that changes the cluster runs its node call on the loop thread
 * and answers when the closure reports the outcome (on the FSM thread), by
 * posting the answer back to the loop. Requests that only a leader can serve
 * fail on a follower with RK_ENOTLEADER and the message "leader=<peer id>"
 * (empty when no leader is known), which clients follow as a redirect.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftkit/metrics.h"
#include "rpc/cli.pb-c.h"
#include "src/node/rpc_services.h"
#include "src/client/client_internal.h"
#include "src/metrics/metrics.h"

/* ---- helpers ---- */

static void fail_not_leader(rpc_call_t *call, rk_node_t *n)
{
    rk_peer_id_t leader;
    char buf[RK_PEER_ID_STRLEN] = "";
    if (rk_node_leader_id(n, &leader) == 0)
        rk_peer_id_format(&leader, buf, sizeof buf);
    rpc_call_fail(call, RK_ENOTLEADER, "leader=%s", buf);
}

/* Fails call with the error rc of a node function (a redirect for
 * RK_ENOTLEADER). */
static void fail_rc(rpc_call_t *call, rk_node_t *n, int rc)
{
    if (rc == RK_ENOTLEADER)
        fail_not_leader(call, n);
    else
        rpc_call_fail(call, rc, "%s", rk_strerror(rc));
}

/* Completes call after a node function returned rc: an EmptyResponse when
 * it is 0, else the error. */
static void answer_empty(rpc_call_t *call, rk_node_t *n, int rc)
{
    if (rc != 0) {
        fail_rc(call, n, rc);
        return;
    }
    Rk__EmptyResponse resp = RK__EMPTY_RESPONSE__INIT;
    rpc_call_reply(call, &resp.base, NULL, 0, NULL, NULL);
}

/* Peer-id strings of a list, for the repeated fields of the responses. */
typedef struct strlist {
    char *ptrs[RK_CONF_MAX_PEERS];
    char bufs[RK_CONF_MAX_PEERS][RK_PEER_ID_STRLEN];
    size_t n;
} strlist_t;

static void strlist_fill(strlist_t *l, const rk_peer_id_t *p, size_t n)
{
    l->n = n;
    for (size_t i = 0; i < n; i++) {
        rk_peer_id_format(&p[i], l->bufs[i], sizeof l->bufs[i]);
        l->ptrs[i] = l->bufs[i];
    }
}

/* Parses a list of peer-id strings into out[0..*count). Returns 0 or
 * RK_EINVAL with the reason in err. */
static int parse_list(char **items, size_t n, rk_peer_id_t *out, size_t *count, rk_status_t *err)
{
    if (n > RK_CONF_MAX_PEERS)
        return rk_status_set(err, RK_EINVAL, "more than %d peers", RK_CONF_MAX_PEERS);
    for (size_t i = 0; i < n; i++)
        if (rk_peer_id_parse(&out[i], items[i], err) != 0)
            return RK_EINVAL;
    *count = n;
    return 0;
}

/* Parses a list of peer-id strings, learners marked "/learner", into a
 * configuration. The list is joined for rk_configuration_parse, which
 * refuses duplicates and too many peers; a fixed buffer would silently cut a
 * long list into a different configuration. Returns 0, RK_EINVAL or
 * RK_ENOMEM with the reason in err. */
static int parse_conf(char **items, size_t n, rk_configuration_t *out, rk_status_t *err)
{
    size_t len = 1;
    if (n > 2 * RK_CONF_MAX_PEERS)
        return rk_status_set(err, RK_EINVAL, "more than %d peers and learners",
                             2 * RK_CONF_MAX_PEERS);
    for (size_t i = 0; i < n; i++)
        len += strlen(items[i]) + 1; /* bounded by the frame size */
    char *joined = malloc(len);
    if (joined == NULL)
        return rk_status_set(err, RK_ENOMEM, "out of memory");
    char *w = joined;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(items[i]);
        if (i > 0)
            *w++ = ',';
        memcpy(w, items[i], k);
        w += k;
    }
    *w = '\0';
    int rc = rk_configuration_parse(out, joined, err);
    free(joined);
    return rc != 0 ? RK_EINVAL : 0;
}

/* Resolves the node a routed request is for; answers the call and returns
 * NULL when there is none or it refuses CLI requests. */
static rk_node_t *target(rk_rpc_server_t *s, rpc_call_t *call)
{
    const char *group = NULL, *peer = NULL;
    (void)s; /* the route context is the node */
    rpc_msg_route_fields(rpc_call_request(call), &group, &peer);
    /* The server routed the request by (group_id, peer_id) to the node's
     * route, whose context is the node (node/transport.c). */
    rk_node_t *n = rpc_call_route_ctx(call);
    if (n == NULL) {
        rpc_call_fail(call, RK_ENOGROUP, "no node of group '%s' (peer '%s') here",
                      group ? group : "", peer ? peer : "");
        return NULL;
    }
    if (n->opts.disable_cli) {
        rpc_call_fail(call, RK_ESTATE,
                      "CLI requests are disabled for group '%s' on this node (disable_cli)",
                      group ? group : "");
        return NULL;
    }
    return n;
}

/* ---- asynchronous operations ---- */

typedef struct cli_op {
    cli_post_t post;   /* first: the post is the op */
    rk_closure_t done; /* handed to the node */
    rpc_call_t *call;
    rk_node_t *node;
    uint32_t method;
    rk_configuration_t old_conf;
    rk_configuration_t new_conf;
    rk_status_t st;
    rk_rpc_server_t *srv;
} cli_op_t;

static void op_answer(cli_post_t *p)
{
    cli_op_t *op = (cli_op_t *)p;
    if (op->st.code == RK_ENOTLEADER) {
        fail_not_leader(op->call, op->node);
    } else if (op->st.code != 0) {
        rpc_call_fail(op->call, op->st.code, "%s", op->st.msg);
    } else if (op->method == RPC_M_CLI_SNAPSHOT) {
        answer_empty(op->call, op->node, 0);
    } else if (op->method == RPC_M_CLI_ADD_LEARNERS || op->method == RPC_M_CLI_REMOVE_LEARNERS ||
               op->method == RPC_M_CLI_RESET_LEARNERS) {
        Rk__LearnersOpResponse r = RK__LEARNERS_OP_RESPONSE__INIT;
        strlist_t a, b, v;
        strlist_fill(&a, op->old_conf.learners, op->old_conf.n_learners);
        strlist_fill(&b, op->new_conf.learners, op->new_conf.n_learners);
        strlist_fill(&v, op->new_conf.peers, op->new_conf.n_peers);
        r.n_old_learners = a.n;
        r.old_learners = a.ptrs;
        r.n_new_learners = b.n;
        r.new_learners = b.ptrs;
        r.n_new_peers = v.n;
        r.new_peers = v.ptrs;
        rpc_call_reply(op->call, &r.base, NULL, 0, NULL, NULL);
    } else {
        /* AddPeer, RemovePeer and ChangePeers responses share one layout. */
        Rk__ChangePeersResponse r = RK__CHANGE_PEERS_RESPONSE__INIT;
        strlist_t a, b;
        strlist_fill(&a, op->old_conf.peers, op->old_conf.n_peers);
        strlist_fill(&b, op->new_conf.peers, op->new_conf.n_peers);
        r.n_old_peers = a.n;
        r.old_peers = a.ptrs;
        r.n_new_peers = b.n;
        r.new_peers = b.ptrs;
        rpc_call_reply(op->call, &r.base, NULL, 0, NULL, NULL);
    }
    free(op);
}

/* FSM thread (or wherever the node runs closures): record, hop to the loop. */
static void op_done(rk_closure_t *self, const rk_status_t *st)
{
    cli_op_t *op = rk_container_of(self, cli_op_t, done);
    op->st = *st;
    rk_node_list_peers(op->node, &op->new_conf);
    op->post.fn = op_answer;
    /* The runtime takes posts until its server has no outstanding call, and
     * op->call is one, so this cannot fail; if it ever did the call would
     * stay outstanding and the server would never be freed. */
    int rc = cli_post(op->srv->rt, &op->post);
    assert(rc == 0);
    (void)rc;
}

static cli_op_t *op_new(rk_rpc_server_t *s, rpc_call_t *call, rk_node_t *n)
{
    cli_op_t *op = calloc(1, sizeof *op);
    if (op == NULL) {
        rpc_call_fail(call, RK_ENOMEM, "out of memory");
        return NULL;
    }
    op->srv = s;
    op->call = call;
    op->node = n;
    op->method = rpc_call_method(call);
    op->done.run = op_done;
    rk_node_list_peers(n, &op->old_conf);
    return op;
}

/* The node refused the request outright (closure not taken). */
static void op_refused(cli_op_t *op, int rc)
{
    fail_rc(op->call, op->node, rc);
    free(op);
}

static void h_membership(rpc_call_t *call, void *arg)
{
    rk_rpc_server_t *s = arg;
    rk_node_t *n = target(s, call);
    if (n == NULL)
        return;
    if (!rk_node_is_leader(n)) {
        fail_not_leader(call, n);
        return;
    }
    const ProtobufCMessage *m = rpc_call_request(call);
    rk_peer_id_t peers[RK_CONF_MAX_PEERS];
    size_t np = 0;
    rk_status_t err;
    rk_status_clear(&err);
    cli_op_t *op = op_new(s, call, n);
    if (op == NULL)
        return;
    int rc;
    switch (op->method) {
    case RPC_M_CLI_ADD_PEER: {
        const Rk__AddPeerRequest *r = (const Rk__AddPeerRequest *)m;
        if ((rc = rk_peer_id_parse(&peers[0], r->new_peer, &err)) == 0)
            rc = rk_node_add_peer(n, &peers[0], &op->done);
        break;
    }
    case RPC_M_CLI_REMOVE_PEER: {
        const Rk__RemovePeerRequest *r = (const Rk__RemovePeerRequest *)m;
        if ((rc = rk_peer_id_parse(&peers[0], r->removed_peer, &err)) == 0)
            rc = rk_node_remove_peer(n, &peers[0], &op->done);
        break;
    }
    case RPC_M_CLI_CHANGE_PEERS: {
        const Rk__ChangePeersRequest *r = (const Rk__ChangePeersRequest *)m;
        rk_configuration_t conf;
        if ((rc = parse_conf(r->new_peers, r->n_new_peers, &conf, &err)) == 0)
            rc = rk_node_change_peers(n, &conf, &op->done);
        break;
    }
    case RPC_M_CLI_ADD_LEARNERS:
    case RPC_M_CLI_REMOVE_LEARNERS:
    case RPC_M_CLI_RESET_LEARNERS: {
        const Rk__AddLearnersRequest *r = (const Rk__AddLearnersRequest *)m; /* same layout */
        if ((rc = parse_list(r->learners, r->n_learners, peers, &np, &err)) != 0)
            break;
        if (op->method == RPC_M_CLI_ADD_LEARNERS)
            rc = rk_node_add_learners(n, peers, np, &op->done);
        else if (op->method == RPC_M_CLI_REMOVE_LEARNERS)
            rc = rk_node_remove_learners(n, peers, np, &op->done);
        else
            rc = rk_node_reset_learners(n, peers, np, &op->done);
        break;
    }
    default:
        rc = RK_EINVAL;
    }
    if (rc != 0 && err.code != 0) {
        rpc_call_fail(call, rc, "%s", err.msg);
        free(op);
    } else if (rc != 0) {
        op_refused(op, rc);
    }
}

static void h_snapshot(rpc_call_t *call, void *arg)
{
    rk_rpc_server_t *s = arg;
    rk_node_t *n = target(s, call);
    if (n == NULL)
        return;
    cli_op_t *op = op_new(s, call, n);
    if (op == NULL)
        return;
    int rc = rk_node_snapshot(n, &op->done);
    if (rc != 0)
        op_refused(op, rc);
}

static void h_reset_peer(rpc_call_t *call, void *arg)
{
    rk_node_t *n = target(arg, call);
    if (n == NULL)
        return;
    const Rk__ResetPeerRequest *r = (const Rk__ResetPeerRequest *)rpc_call_request(call);
    rk_configuration_t conf;
    rk_configuration_init(&conf);
    rk_status_t err;
    for (size_t i = 0; i < r->n_new_peers; i++) {
        rk_peer_id_t p;
        if (rk_peer_id_parse(&p, r->new_peers[i], &err) != 0) {
            rpc_call_fail(call, RK_EINVAL, "%s", err.msg);
            return;
        }
        if (rk_configuration_add_peer(&conf, &p) != 0) {
            rpc_call_fail(call, RK_EINVAL, "duplicate or too many peers");
            return;
        }
    }
    answer_empty(call, n, rk_node_reset_peers(n, &conf));
}

static void h_transfer_leader(rpc_call_t *call, void *arg)
{
    rk_node_t *n = target(arg, call);
    if (n == NULL)
        return;
    if (!rk_node_is_leader(n)) {
        fail_not_leader(call, n);
        return;
    }
    const Rk__TransferLeaderRequest *r = (const Rk__TransferLeaderRequest *)rpc_call_request(call);
    rk_peer_id_t to;
    rk_status_t err;
    if (r->target_id != NULL && r->target_id[0] != '\0') {
        if (rk_peer_id_parse(&to, r->target_id, &err) != 0) {
            rpc_call_fail(call, RK_EINVAL, "%s", err.msg);
            return;
        }
    } else {
        /* "Let the leader pick": the first other voter that is alive. */
        rk_configuration_t alive;
        rk_peer_id_t self;
        rk_node_self(n, &self);
        rk_peer_id_clear(&to);
        if (rk_node_list_alive_peers(n, &alive) == 0)
            for (uint32_t i = 0; i < alive.n_peers; i++)
                if (!rk_peer_id_equal(&alive.peers[i], &self)) {
                    to = alive.peers[i];
                    break;
                }
        if (rk_peer_id_is_empty(&to)) {
            rpc_call_fail(call, RK_EUNREACHABLE, "no other live voter to transfer to");
            return;
        }
    }
    answer_empty(call, n, rk_node_transfer_leadership_to(n, &to));
}

static void h_get_leader(rpc_call_t *call, void *arg)
{
    rk_node_t *n = target(arg, call);
    if (n == NULL)
        return;
    rk_peer_id_t leader;
    char buf[RK_PEER_ID_STRLEN];
    if (rk_node_leader_id(n, &leader) != 0) {
        rpc_call_fail(call, RK_ENOLEADER, "no leader known to this node");
        return;
    }
    rk_peer_id_format(&leader, buf, sizeof buf);
    Rk__GetLeaderResponse resp = RK__GET_LEADER_RESPONSE__INIT;
    resp.leader_id = buf;
    rpc_call_reply(call, &resp.base, NULL, 0, NULL, NULL);
}

static void h_get_peers(rpc_call_t *call, void *arg)
{
    rk_node_t *n = target(arg, call);
    if (n == NULL)
        return;
    const Rk__GetPeersRequest *r = (const Rk__GetPeersRequest *)rpc_call_request(call);
    rk_configuration_t conf;
    if (r->only_alive) {
        int rc = rk_node_list_alive_peers(n, &conf);
        if (rc != 0) {
            fail_rc(call, n, rc);
            return;
        }
    } else {
        rk_node_list_peers(n, &conf);
    }
    Rk__GetPeersResponse resp = RK__GET_PEERS_RESPONSE__INIT;
    strlist_t a, b;
    strlist_fill(&a, conf.peers, conf.n_peers);
    strlist_fill(&b, conf.learners, conf.n_learners);
    resp.n_peers = a.n;
    resp.peers = a.ptrs;
    resp.n_learners = b.n;
    resp.learners = b.ptrs;
    rpc_call_reply(call, &resp.base, NULL, 0, NULL, NULL);
}

/* GetNodeStatus: the status the node's loop last published (what the admin
 * endpoint's /status serves), as the same JSON. Never waits on the node. */
static void h_status(rpc_call_t *call, void *arg)
{
    rk_node_t *n = target(arg, call);
    if (n == NULL)
        return;
    if (n->metrics == NULL) {
        /* The status is published through the metrics, which exist from
         * node start to node free: a node without them is not running. */
        rpc_call_fail(call, RK_ESTATE, "node %s of group '%s' publishes no status (not running)",
                      n->self_str, n->group);
        return;
    }
    rk_node_status_t *st = malloc(sizeof *st); /* 15 KiB: not on the loop's stack */
    char *json = NULL;
    if (st != NULL) {
        metrics_read_status(n->metrics, st);
        json = rk_node_status_to_json(st, false);
    }
    free(st);
    if (json == NULL) {
        rpc_call_fail(call, RK_ENOMEM, "out of memory");
        return;
    }
    Rk__GetNodeStatusResponse resp = RK__GET_NODE_STATUS_RESPONSE__INIT;
    resp.status_json = json;
    rpc_call_reply(call, &resp.base, NULL, 0, NULL, NULL);
    free(json);
}

static const struct {
    uint32_t method;
    rpc_handler_fn fn;
} cli_methods[] = {
    {RPC_M_CLI_ADD_PEER, h_membership},       {RPC_M_CLI_REMOVE_PEER, h_membership},
    {RPC_M_CLI_CHANGE_PEERS, h_membership},   {RPC_M_CLI_RESET_PEER, h_reset_peer},
    {RPC_M_CLI_ADD_LEARNERS, h_membership},   {RPC_M_CLI_REMOVE_LEARNERS, h_membership},
    {RPC_M_CLI_RESET_LEARNERS, h_membership}, {RPC_M_CLI_TRANSFER_LEADER, h_transfer_leader},
    {RPC_M_CLI_SNAPSHOT, h_snapshot},         {RPC_M_CLI_GET_LEADER, h_get_leader},
    {RPC_M_CLI_GET_PEERS, h_get_peers},       {RPC_M_CLI_GET_NODE_STATUS, h_status},
};
#define N_CLI_METHODS (sizeof cli_methods / sizeof cli_methods[0])

int cli_rt_open(node_rt_t *rt, rk_status_t *err)
{
    rk_rpc_server_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return rk_status_set(err, RK_ENOMEM, "CLI service");
    s->rt = rt;
    for (size_t i = 0; i < N_CLI_METHODS; i++) {
        int rc =
            rpc_server_register(rt->server, cli_methods[i].method, NULL, 0, cli_methods[i].fn, s);
        if (rc != 0) {
            for (size_t k = 0; k < i; k++)
                rpc_server_unregister(rt->server, cli_methods[k].method);
            free(s);
            return rk_status_set(err, rc, "registering the CLI service: %s", rk_strerror(rc));
        }
    }
    rt->cli = s;
    return 0;
}

void cli_rt_close(node_rt_t *rt)
{
    if (rt->cli == NULL || rt->server == NULL)
        return;
    for (size_t i = 0; i < N_CLI_METHODS; i++)
        rpc_server_unregister(rt->server, cli_methods[i].method);
}

void cli_rt_free(rk_rpc_server_t *cli)
{
    free(cli);
}
