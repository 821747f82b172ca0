/* The CLI service client of client.h: builds the rpc/cli.proto requests,
 * finds the leader, follows "leader=<id>" redirects and decodes answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftkit/client.h"
#include "rpc/cli.pb-c.h"
#include "rpc/rpc_method.h"
#include "src/client/client_internal.h"

/* Redirects followed per request before giving up: leadership moving twice
 * during one request is already unusual. */
#define CLI_MAX_REDIRECTS 3

struct rk_cli_client {
    rk_rpc_client_t *rpc;
    int timeout_ms;
};

rk_cli_client_t *rk_cli_client_new(int timeout_ms)
{
    return rk_cli_client_open(timeout_ms, NULL, NULL);
}

rk_cli_client_t *rk_cli_client_open(int timeout_ms, const rk_rpc_client_options_t *opts,
                                    rk_status_t *err)
{
    rk_cli_client_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        rk_status_set(err, RK_ENOMEM, "out of memory");
        return NULL;
    }
    rk_rpc_client_options_t o = opts != NULL ? *opts : (rk_rpc_client_options_t){0};
    if (o.name == NULL)
        o.name = "raftkit-cli";
    c->rpc = rk_rpc_client_open(&o, err);
    if (c->rpc == NULL) {
        free(c);
        return NULL;
    }
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    return c;
}

void rk_cli_client_free(rk_cli_client_t *c)
{
    if (c == NULL)
        return;
    rk_rpc_client_free(c->rpc);
    free(c);
}

rk_rpc_client_t *rk_cli_client_rpc(rk_cli_client_t *c)
{
    return c->rpc;
}

bool rk_cli_redirect_leader(const rk_status_t *st, rk_peer_id_t *leader)
{
    if (st == NULL || st->code != RK_ENOTLEADER || strncmp(st->msg, "leader=", 7) != 0 ||
        st->msg[7] == '\0')
        return false;
    return rk_peer_id_parse(leader, st->msg + 7, NULL) == 0;
}

/* The form a server routes by: the peer id without its priority. */
static void route_key(const rk_peer_id_t *p, char *buf, size_t len)
{
    rk_peer_id_t k = *p;
    k.priority = RK_PRIORITY_DISABLED;
    rk_peer_id_format(&k, buf, len);
}

/* One request to one peer. On success *resp holds the decoded response
 * (resp_desc) for the caller to free. */
static int call_peer(rk_cli_client_t *c, const rk_peer_id_t *peer, uint32_t method,
                     const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                     ProtobufCMessage **resp, rk_status_t *st)
{
    rk_rpc_reply_t r;
    int rc = client_call(c->rpc, &peer->endpoint, method, req, NULL, 0, resp_desc, c->timeout_ms,
                         resp, &r);
    if (st != NULL)
        *st = r.status;
    rk_rpc_reply_release(&r);
    return rc;
}

/* A request to one peer whose answer is an EmptyResponse. */
static int call_peer_empty(rk_cli_client_t *c, const rk_peer_id_t *peer, uint32_t method,
                           const ProtobufCMessage *req, rk_status_t *st)
{
    ProtobufCMessage *resp = NULL;
    int rc = call_peer(c, peer, method, req, &rk__empty_response__descriptor, &resp, st);
    if (resp != NULL)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

int rk_cli_get_leader(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                      rk_peer_id_t *leader, rk_status_t *st)
{
    if (c == NULL || group == NULL || conf == NULL || leader == NULL)
        return rk_status_set(st, RK_EINVAL, "client, group, conf or leader is NULL");
    if (rk_configuration_is_empty(conf))
        return rk_status_set(st, RK_EINVAL, "no peers to ask");
    rk_status_t last;
    rk_status_set(&last, RK_ENOLEADER, "no peer to ask");
    bool someone_answered = false;
    uint32_t total = conf->n_peers + conf->n_learners;
    for (uint32_t i = 0; i < total; i++) {
        const rk_peer_id_t *p =
            i < conf->n_peers ? &conf->peers[i] : &conf->learners[i - conf->n_peers];
        char pbuf[RK_PEER_ID_STRLEN];
        route_key(p, pbuf, sizeof pbuf);
        Rk__GetLeaderRequest req = RK__GET_LEADER_REQUEST__INIT;
        req.group_id = (char *)group;
        req.peer_id = pbuf;
        ProtobufCMessage *resp = NULL;
        rk_status_t one;
        if (call_peer(c, p, RPC_M_CLI_GET_LEADER, &req.base, &rk__get_leader_response__descriptor,
                      &resp, &one) == 0) {
            const Rk__GetLeaderResponse *r = (const Rk__GetLeaderResponse *)resp;
            int rc = rk_peer_id_parse(leader, r->leader_id, &one);
            protobuf_c_message_free_unpacked(resp, NULL);
            if (rc == 0) {
                rk_status_clear(st);
                return 0;
            }
        }
        /* Prefer reporting "nobody knows a leader" over a transport error
         * from another peer: it says the cluster is up but electing. */
        if (one.code == RK_ENOLEADER)
            someone_answered = true;
        if (!someone_answered || one.code == RK_ENOLEADER)
            rk_status_set(&last, one.code, "%s: %s", pbuf, one.msg);
    }
    if (st != NULL)
        *st = last;
    return last.code;
}

/* Sends a leader-only request: finds the leader, sets the request's
 * leader_id and peer_id fields (which point at strings the caller owns),
 * and follows redirects. */
static int call_leader(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                       uint32_t method, ProtobufCMessage *req, char **leader_field,
                       char **peer_field, const ProtobufCMessageDescriptor *resp_desc,
                       ProtobufCMessage **resp, rk_status_t *st)
{
    rk_peer_id_t leader;
    int rc = rk_cli_get_leader(c, group, conf, &leader, st);
    if (rc != 0)
        return rc;
    for (int i = 0; i <= CLI_MAX_REDIRECTS; i++) {
        char lbuf[RK_PEER_ID_STRLEN];
        route_key(&leader, lbuf, sizeof lbuf);
        if (leader_field != NULL)
            *leader_field = lbuf;
        *peer_field = lbuf;
        rk_status_t one;
        rc = call_peer(c, &leader, method, req, resp_desc, resp, &one);
        if (st != NULL)
            *st = one;
        if (rc != RK_ENOTLEADER || !rk_cli_redirect_leader(&one, &leader))
            break;
    }
    if (leader_field != NULL)
        *leader_field = NULL;
    *peer_field = NULL;
    return rc;
}

static int strs_to_conf(char **peers, size_t np, char **learners, size_t nl,
                        rk_configuration_t *out, rk_status_t *st)
{
    rk_configuration_init(out);
    for (size_t i = 0; i < np + nl; i++) {
        rk_peer_id_t p;
        const char *s = i < np ? peers[i] : learners[i - np];
        if (rk_peer_id_parse(&p, s, st) != 0)
            return RK_EPROTO;
        int rc =
            i < np ? rk_configuration_add_peer(out, &p) : rk_configuration_add_learner(out, &p);
        if (rc != 0)
            return rk_status_set(st, RK_EPROTO, "bad peer list from server at '%s'", s);
    }
    return 0;
}

int rk_cli_get_peers(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                     bool only_alive, rk_configuration_t *out, rk_status_t *st)
{
    Rk__GetPeersRequest req = RK__GET_PEERS_REQUEST__INIT;
    req.group_id = (char *)group;
    req.only_alive = only_alive;
    ProtobufCMessage *resp = NULL;
    int rc = call_leader(c, group, conf, RPC_M_CLI_GET_PEERS, &req.base, &req.leader_id,
                         &req.peer_id, &rk__get_peers_response__descriptor, &resp, st);
    if (rc != 0)
        return rc;
    const Rk__GetPeersResponse *r = (const Rk__GetPeersResponse *)resp;
    rc = strs_to_conf(r->peers, r->n_peers, r->learners, r->n_learners, out, st);
    protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

/* The responses of peer changes: old_peers/new_peers (AddPeer, RemovePeer
 * and ChangePeers responses share the layout). */
static int peers_result(ProtobufCMessage *resp, rk_configuration_t *new_conf, rk_status_t *st)
{
    const Rk__ChangePeersResponse *r = (const Rk__ChangePeersResponse *)resp;
    int rc = 0;
    if (new_conf != NULL)
        rc = strs_to_conf(r->new_peers, r->n_new_peers, NULL, 0, new_conf, st);
    protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

/* AddPeer and RemovePeer: the same request layout under two names (group,
 * leader, peer, then the peer to add or remove) and the same answer. */
static int one_peer_change(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                           uint32_t method, const rk_peer_id_t *peer, rk_configuration_t *new_conf,
                           rk_status_t *st)
{
    char pbuf[RK_PEER_ID_STRLEN];
    if (peer == NULL)
        return rk_status_set(st, RK_EINVAL, "peer is NULL");
    rk_peer_id_format(peer, pbuf, sizeof pbuf);
    Rk__AddPeerRequest req = RK__ADD_PEER_REQUEST__INIT;
    const ProtobufCMessageDescriptor *resp_desc = &rk__add_peer_response__descriptor;
    if (method == RPC_M_CLI_REMOVE_PEER) {
        req.base.descriptor = &rk__remove_peer_request__descriptor;
        resp_desc = &rk__remove_peer_response__descriptor;
    }
    req.group_id = (char *)group;
    req.new_peer = pbuf;
    ProtobufCMessage *resp = NULL;
    int rc = call_leader(c, group, conf, method, &req.base, &req.leader_id, &req.peer_id, resp_desc,
                         &resp, st);
    return rc ? rc : peers_result(resp, new_conf, st);
}

int rk_cli_add_peer(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                    const rk_peer_id_t *peer, rk_configuration_t *new_conf, rk_status_t *st)
{
    return one_peer_change(c, group, conf, RPC_M_CLI_ADD_PEER, peer, new_conf, st);
}

int rk_cli_remove_peer(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                       const rk_peer_id_t *peer, rk_configuration_t *new_conf, rk_status_t *st)
{
    return one_peer_change(c, group, conf, RPC_M_CLI_REMOVE_PEER, peer, new_conf, st);
}

/* Peer-id strings of a list, kept alive for one request. */
typedef struct strs {
    char *ptrs[RK_CONF_MAX_PEERS * 2];
    char bufs[RK_CONF_MAX_PEERS * 2][RK_PEER_ID_STRLEN + 8];
    size_t n;
} strs_t;

static void strs_add(strs_t *s, const rk_peer_id_t *p, bool learner)
{
    int w = rk_peer_id_format(p, s->bufs[s->n], RK_PEER_ID_STRLEN);
    if (learner && w > 0)
        strcat(s->bufs[s->n], "/learner");
    s->ptrs[s->n] = s->bufs[s->n];
    s->n++;
}

int rk_cli_change_peers(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                        const rk_configuration_t *target, rk_configuration_t *new_conf,
                        rk_status_t *st)
{
    if (target == NULL || target->n_peers == 0)
        return rk_status_set(st, RK_EINVAL, "the new configuration has no voter");
    strs_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return rk_status_set(st, RK_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < target->n_peers; i++)
        strs_add(s, &target->peers[i], false);
    for (uint32_t i = 0; i < target->n_learners; i++)
        strs_add(s, &target->learners[i], true);
    Rk__ChangePeersRequest req = RK__CHANGE_PEERS_REQUEST__INIT;
    req.group_id = (char *)group;
    req.n_new_peers = s->n;
    req.new_peers = s->ptrs;
    ProtobufCMessage *resp = NULL;
    int rc = call_leader(c, group, conf, RPC_M_CLI_CHANGE_PEERS, &req.base, &req.leader_id,
                         &req.peer_id, &rk__change_peers_response__descriptor, &resp, st);
    free(s);
    return rc ? rc : peers_result(resp, new_conf, st);
}

/* A server that predates LearnersOpResponse.new_peers answers with the
 * learners only: ask the leader for the voters. The change has already
 * succeeded, so a failure here leaves new_conf without voters instead of
 * reporting the change as failed (client.h). */
static void learners_op_voters(rk_cli_client_t *c, const char *group,
                               const rk_configuration_t *conf, rk_configuration_t *new_conf)
{
    rk_configuration_t cur;
    rk_status_t ignored;

    if (rk_cli_get_peers(c, group, conf, false, &cur, &ignored) != 0)
        return;
    for (uint32_t i = 0; i < cur.n_peers; i++)
        (void)rk_configuration_add_peer(new_conf, &cur.peers[i]);
}

static int learners_op(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                       uint32_t method, const rk_peer_id_t *learners, size_t n,
                       rk_configuration_t *new_conf, rk_status_t *st)
{
    if (n > RK_CONF_MAX_PEERS)
        return rk_status_set(st, RK_EINVAL, "%zu learners is over the limit of %d", n,
                             RK_CONF_MAX_PEERS);
    if (n > 0 && learners == NULL)
        return rk_status_set(st, RK_EINVAL, "learners is NULL with n %zu", n);
    strs_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return rk_status_set(st, RK_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        strs_add(s, &learners[i], false);
    /* The three learner requests share one layout. */
    Rk__AddLearnersRequest req = RK__ADD_LEARNERS_REQUEST__INIT;
    if (method == RPC_M_CLI_REMOVE_LEARNERS)
        req.base.descriptor = &rk__remove_learners_request__descriptor;
    else if (method == RPC_M_CLI_RESET_LEARNERS)
        req.base.descriptor = &rk__reset_learners_request__descriptor;
    req.group_id = (char *)group;
    req.n_learners = s->n;
    req.learners = s->ptrs;
    ProtobufCMessage *resp = NULL;
    int rc = call_leader(c, group, conf, method, &req.base, &req.leader_id, &req.peer_id,
                         &rk__learners_op_response__descriptor, &resp, st);
    free(s);
    if (rc != 0)
        return rc;
    if (new_conf != NULL) {
        const Rk__LearnersOpResponse *r = (const Rk__LearnersOpResponse *)resp;
        rc = strs_to_conf(r->new_peers, r->n_new_peers, r->new_learners, r->n_new_learners,
                          new_conf, st);
        if (rc == 0 && r->n_new_peers == 0)
            learners_op_voters(c, group, conf, new_conf);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

int rk_cli_add_learners(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                        const rk_peer_id_t *learners, size_t n, rk_configuration_t *new_conf,
                        rk_status_t *st)
{
    return learners_op(c, group, conf, RPC_M_CLI_ADD_LEARNERS, learners, n, new_conf, st);
}

int rk_cli_remove_learners(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                           const rk_peer_id_t *learners, size_t n, rk_configuration_t *new_conf,
                           rk_status_t *st)
{
    return learners_op(c, group, conf, RPC_M_CLI_REMOVE_LEARNERS, learners, n, new_conf, st);
}

int rk_cli_reset_learners(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                          const rk_peer_id_t *learners, size_t n, rk_configuration_t *new_conf,
                          rk_status_t *st)
{
    return learners_op(c, group, conf, RPC_M_CLI_RESET_LEARNERS, learners, n, new_conf, st);
}

int rk_cli_reset_peer(rk_cli_client_t *c, const char *group, const rk_peer_id_t *peer,
                      const rk_configuration_t *target, rk_status_t *st)
{
    if (peer == NULL || target == NULL || target->n_peers == 0)
        return rk_status_set(st, RK_EINVAL, "reset_peer needs a peer and a non-empty list");
    strs_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return rk_status_set(st, RK_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < target->n_peers; i++)
        strs_add(s, &target->peers[i], false);
    char pbuf[RK_PEER_ID_STRLEN];
    route_key(peer, pbuf, sizeof pbuf);
    Rk__ResetPeerRequest req = RK__RESET_PEER_REQUEST__INIT;
    req.group_id = (char *)group;
    req.peer_id = pbuf;
    req.n_new_peers = s->n;
    req.new_peers = s->ptrs;
    int rc = call_peer_empty(c, peer, RPC_M_CLI_RESET_PEER, &req.base, st);
    free(s);
    return rc;
}

int rk_cli_transfer_leader(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                           const rk_peer_id_t *peer, rk_status_t *st)
{
    char pbuf[RK_PEER_ID_STRLEN] = "";
    if (peer != NULL)
        rk_peer_id_format(peer, pbuf, sizeof pbuf);
    Rk__TransferLeaderRequest req = RK__TRANSFER_LEADER_REQUEST__INIT;
    req.group_id = (char *)group;
    req.target_id = pbuf;
    ProtobufCMessage *resp = NULL;
    int rc = call_leader(c, group, conf, RPC_M_CLI_TRANSFER_LEADER, &req.base, &req.leader_id,
                         &req.peer_id, &rk__empty_response__descriptor, &resp, st);
    if (resp != NULL)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

int rk_cli_snapshot(rk_cli_client_t *c, const char *group, const rk_peer_id_t *peer,
                    rk_status_t *st)
{
    if (peer == NULL)
        return rk_status_set(st, RK_EINVAL, "peer is NULL");
    char pbuf[RK_PEER_ID_STRLEN];
    route_key(peer, pbuf, sizeof pbuf);
    Rk__SnapshotRequest req = RK__SNAPSHOT_REQUEST__INIT;
    req.group_id = (char *)group;
    req.peer_id = pbuf;
    return call_peer_empty(c, peer, RPC_M_CLI_SNAPSHOT, &req.base, st);
}

/* ---- node status (GetNodeStatus: the admin endpoint's /status JSON) ---- */

int rk_cli_node_status(rk_cli_client_t *c, const char *group, const rk_peer_id_t *peer,
                       rk_node_status_t *out, rk_status_t *st)
{
    if (c == NULL || group == NULL || peer == NULL || out == NULL)
        return rk_status_set(st, RK_EINVAL, "client, group, peer or out is NULL");
    rk_node_status_init(out);
    char pbuf[RK_PEER_ID_STRLEN];
    route_key(peer, pbuf, sizeof pbuf);
    Rk__GetNodeStatusRequest req = RK__GET_NODE_STATUS_REQUEST__INIT;
    req.group_id = (char *)group;
    req.peer_id = pbuf;
    ProtobufCMessage *resp = NULL;
    int rc = call_peer(c, peer, RPC_M_CLI_GET_NODE_STATUS, &req.base,
                       &rk__get_node_status_response__descriptor, &resp, st);
    if (rc != 0)
        return rc;
    const Rk__GetNodeStatusResponse *r = (const Rk__GetNodeStatusResponse *)resp;
    rk_status_t perr;
    rc = rk_node_status_from_json(r->status_json, out, &perr);
    protobuf_c_message_free_unpacked(resp, NULL);
    if (rc != 0)
        return rk_status_set(st, RK_EPROTO, "%s: undecodable status: %s", pbuf, perr.msg);
    return 0;
}
