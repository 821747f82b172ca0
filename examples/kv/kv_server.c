/* kv-server: one node of the replicated key-value store. Writes go through
 * rk_node_apply, linearizable reads through rk_node_read_index, and the
 * state is saved in snapshots (kv_sm.c). Clients talk to it with the KV
 * method on the same port the Raft peers use.
 *
 *   kv-server --conf conf/kv/n1.conf [--data DIR] [--peer HOST:PORT] [--listen HOST:PORT] ...
 *
 * With --shards N the key space is split over N groups kv-0 .. kv-(N-1),
 * each with its own state machine, all on the one port: a request names its
 * group (Request.group_id; kv-client picks it from the key's hash) and is
 * served by that group's node.
 *
 * Stops cleanly on SIGINT or SIGTERM.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/common/app_server.h"
#include "examples/kv/kv_sm.h"
#include "raftkit/log.h"
#include "raftkit/node.h"
#include "raftkit/rpc.h"

/* The groups of this server, one per shard (a single one without shards),
 * indexed as app_group_id numbers them. */
typedef struct server {
    const app_conf_t *conf;
    int shards;
    kv_sm_t *sm; /* the first n_sm initialised */
    int n_sm;
    rk_state_machine_t **fsm;
    rk_node_t *_Atomic *node; /* node[i] set once group i started */
    char (*id)[APP_GROUP_ID_MAX];
    int max_body_size; /* raft_options.max_body_size of the nodes: the largest entry */
} server_t;

/* One request in flight. */
typedef struct kv_req {
    kv_write_t w;                      /* writes */
    rk_read_index_closure_t read_done; /* reads */
    rk_rpc_call_t *call;
    server_t *srv;
    int shard;
    uint8_t *key;
    size_t klen;
} kv_req_t;

static void respond(rk_rpc_call_t *call, const Kv__Response *resp)
{
    size_t n = kv__response__get_packed_size(resp);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL) {
        rk_rpc_call_fail(call, RK_ENOMEM, "response");
        return;
    }
    kv__response__pack(resp, buf);
    rk_rpc_call_reply(call, buf, n);
    free(buf);
}

static void respond_error(rk_rpc_call_t *call, rk_node_t *node, int code, const char *msg,
                          bool maybe_applied)
{
    Kv__Response resp = KV__RESPONSE__INIT;
    char lbuf[RK_PEER_ID_STRLEN] = "";
    rk_peer_id_t leader;
    resp.code = code;
    resp.msg = (char *)(msg ? msg : rk_strerror(code));
    resp.maybe_applied = maybe_applied;
    if (code == RK_ENOTLEADER && node != NULL && rk_node_leader_id(node, &leader) == 0)
        rk_peer_id_format(&leader, lbuf, sizeof lbuf);
    resp.leader = lbuf;
    respond(call, &resp);
}

static void req_free(kv_req_t *r)
{
    free(r->w.value);
    free(r->key);
    free(r);
}

/* Whether an apply closure's error leaves the write possibly applied: the
 * entry may already be in the log of the next leader. Refusals before the
 * entry was proposed are certain. */
static bool error_maybe_applied(int code)
{
    switch (code) {
    case RK_ENOTLEADER:
    case RK_ETERM:
    case RK_EBUSY:
    case RK_ETRANSFER:
    case RK_EINVAL:
    case RK_ETOOBIG:
        return false;
    default: /* RK_ELEADERLOST, RK_ESHUTDOWN, errors of a failed state, ... */
        return true;
    }
}

static void write_done(rk_closure_t *self, const rk_status_t *st)
{
    kv_req_t *r = rk_container_of(self, kv_req_t, w.done);
    rk_node_t *node = r->srv->node[r->shard];
    if (st->code != 0) {
        respond_error(r->call, node, st->code, st->msg, error_maybe_applied(st->code));
    } else {
        Kv__Response resp = KV__RESPONSE__INIT;
        resp.result = r->w.result;
        if (r->w.has_value) {
            resp.value.data = r->w.value;
            resp.value.len = r->w.value_len;
        }
        respond(r->call, &resp);
    }
    req_free(r);
}

static void answer_get(kv_req_t *r)
{
    uint8_t *v;
    size_t len;
    int rc = kv_sm_get(&r->srv->sm[r->shard], r->key, r->klen, &v, &len);
    if (rc < 0) {
        respond_error(r->call, NULL, RK_ENOMEM, "reading the value", false);
        return;
    }
    Kv__Response resp = KV__RESPONSE__INIT;
    resp.result = (Kv__Result)rc;
    resp.value.data = v;
    resp.value.len = len;
    respond(r->call, &resp);
    free(v);
}

static void read_done(rk_read_index_closure_t *self, const rk_status_t *st, int64_t index,
                      const void *ctx, size_t ctx_len)
{
    (void)index;
    (void)ctx;
    (void)ctx_len;
    kv_req_t *r = rk_container_of(self, kv_req_t, read_done);
    if (st->code != 0)
        respond_error(r->call, r->srv->node[r->shard], st->code, st->msg, false);
    else
        answer_get(r);
    req_free(r);
}

/* The shard a request's group id names, or -1 when this server does not
 * host that group. "" names the group of a server without shards. */
static int shard_of(const server_t *srv, const char *g)
{
    const char *group = srv->conf->group;
    if (srv->shards == 1)
        return g[0] == '\0' || strcmp(g, group) == 0 ? 0 : -1;
    size_t n = strlen(group);
    if (strncmp(g, group, n) != 0 || g[n] != '-')
        return -1;
    /* The decimal number app_group_id writes: no sign, no leading zero. */
    const char *d = g + n + 1;
    if (!isdigit((unsigned char)d[0]) || (d[0] == '0' && d[1] != '\0') || strlen(d) > 9)
        return -1;
    char *end;
    long i = strtol(d, &end, 10);
    return *end == '\0' && i < srv->shards ? (int)i : -1;
}

static void respond_no_group(rk_rpc_call_t *call, const server_t *srv, const char *g)
{
    char why[256];
    const char *group = srv->conf->group;
    if (srv->shards == 1)
        snprintf(why, sizeof why, "this server hosts group %s, not '%s'", group, g);
    else
        snprintf(why, sizeof why,
                 "this server hosts groups %s-0 .. %s-%d, not '%s' (kv-client --shards %d)", group,
                 group, srv->shards - 1, g, srv->shards);
    respond_error(call, NULL, RK_ENOGROUP, why, false);
}

/* Loop thread: decode, then read, propose, or redirect. */
static void handle_kv(rk_rpc_call_t *call, const void *body, size_t len, void *arg)
{
    server_t *srv = arg;
    Kv__Request *req = kv__request__unpack(NULL, len, body);
    if (req == NULL || req->cmd == NULL) {
        if (req)
            kv__request__free_unpacked(req, NULL);
        rk_rpc_call_fail(call, RK_EPROTO, "undecodable kv request");
        return;
    }
    const Kv__Command *cmd = req->cmd;
    kv_req_t *r = NULL;
    /* The shard count first: routed with another count, the group named may
     * exist and still not be the key's. */
    if (req->shards != 0 && req->shards != (uint32_t)srv->shards) {
        char why[128];
        snprintf(why, sizeof why, "the client routes keys over %u shards, this server has %d",
                 req->shards, srv->shards);
        respond_error(call, NULL, RK_EINVAL, why, false);
        goto out;
    }
    int shard = shard_of(srv, req->group_id);
    if (shard < 0) {
        respond_no_group(call, srv, req->group_id);
        goto out;
    }
    rk_node_t *node = srv->node[shard];
    if (node == NULL) {
        respond_error(call, NULL, RK_EAGAIN, "node is starting", false);
        goto out;
    }
    if ((r = calloc(1, sizeof *r)) == NULL) {
        respond_error(call, NULL, RK_ENOMEM, "request", false);
        goto out;
    }
    r->call = call;
    r->srv = srv;
    r->shard = shard;
    if (cmd->op == KV__OP__OP_GET) {
        r->klen = cmd->key.len;
        if ((r->key = malloc(r->klen ? r->klen : 1)) == NULL) {
            respond_error(call, NULL, RK_ENOMEM, "request", false);
            req_free(r);
            goto out;
        }
        memcpy(r->key, cmd->key.data, r->klen);
        if (req->read == KV__READ_MODE__READ_STALE) {
            /* The local state as it is: may be behind the leader. */
            answer_get(r);
            req_free(r);
            goto out;
        }
        if (req->read == KV__READ_MODE__READ_LEADER && !rk_node_is_leader(node)) {
            respond_error(call, node, RK_ENOTLEADER, NULL, false);
            req_free(r);
            goto out;
        }
        r->read_done.run = read_done;
        int rc = rk_node_read_index(node, NULL, 0, &r->read_done);
        if (rc != 0) {
            respond_error(call, node, rc, NULL, false);
            req_free(r);
        }
        goto out;
    }
    if (cmd->op != KV__OP__OP_PUT && cmd->op != KV__OP__OP_CAS && cmd->op != KV__OP__OP_DEL) {
        respond_error(call, NULL, RK_EINVAL, "unknown operation", false);
        req_free(r);
        goto out;
    }
    if (!rk_node_is_leader(node)) {
        respond_error(call, node, RK_ENOTLEADER, NULL, false);
        req_free(r);
        goto out;
    }
    /* The entry is the command itself, client id and seq included, so that
     * every replica deduplicates retries the same way. */
    size_t n = kv__command__get_packed_size(cmd);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL) {
        respond_error(call, NULL, RK_ENOMEM, "entry", false);
        req_free(r);
        goto out;
    }
    kv__command__pack(cmd, buf);
    if (n > (size_t)srv->max_body_size) {
        /* rk_node_apply would refuse it with a bare RK_EINVAL: say what is
         * too large, and the limit. */
        char why[160];
        if (cmd->value.len > (size_t)srv->max_body_size)
            snprintf(why, sizeof why, "value of %zu bytes is over max_body_size %d", cmd->value.len,
                     srv->max_body_size);
        else
            snprintf(why, sizeof why,
                     "entry of %zu bytes (key %zu, value %zu) is over max_body_size %d", n,
                     cmd->key.len, cmd->value.len, srv->max_body_size);
        respond_error(call, NULL, RK_EINVAL, why, false);
        free(buf);
        req_free(r);
        goto out;
    }
    r->w.done.run = write_done;
    rk_task_t task = {.data = buf, .len = n, .done = &r->w.done, .expected_term = -1};
    int rc = rk_node_apply(node, &task);
    free(buf);
    if (rc != 0) {
        respond_error(call, node, rc, NULL, false);
        req_free(r);
    }
out:
    kv__request__free_unpacked(req, NULL);
}

static void server_free(server_t *srv)
{
    for (int i = 0; i < srv->n_sm; i++)
        kv_sm_destroy(&srv->sm[i]);
    free(srv->sm);
    free(srv->fsm);
    free(srv->node);
    free(srv->id);
}

int main(int argc, char **argv)
{
    app_conf_t conf;
    int rc = app_server_conf(&conf, argc, argv, "kv-server", "kv");
    if (rc >= 0)
        return rc;
    /* app_server_run keeps the default raft options. */
    rk_node_options_t defaults;
    rk_node_options_init(&defaults);
    size_t n = (size_t)conf.shards;
    server_t srv = {.conf = &conf,
                    .shards = conf.shards,
                    .fsm = calloc(n, sizeof *srv.fsm),
                    .node = calloc(n, sizeof *srv.node),
                    .id = calloc(n, sizeof *srv.id),
                    .max_body_size = defaults.raft_options.max_body_size};
    if (srv.fsm != NULL && srv.node != NULL && srv.id != NULL &&
        (srv.sm = calloc(n, sizeof *srv.sm)) != NULL) {
        for (; srv.n_sm < conf.shards; srv.n_sm++) {
            int i = srv.n_sm;
            app_group_id(conf.group, conf.shards, i, srv.id[i], sizeof srv.id[i]);
            if (kv_sm_init(&srv.sm[i], srv.id[i]) != 0)
                break;
            srv.fsm[i] = &srv.sm[i].base;
        }
    }
    if (srv.n_sm < conf.shards) {
        fprintf(stderr, "kv-server: out of memory\n");
        server_free(&srv);
        return 1;
    }
    app_server_spec_t spec = {.prog = "kv-server",
                              .fsm = srv.fsm,
                              .method = KV_METHOD,
                              .handler = handle_kv,
                              .handler_arg = &srv,
                              .node = srv.node};
    rc = app_server_run(&conf, &spec);
    server_free(&srv);
    return rc;
}
