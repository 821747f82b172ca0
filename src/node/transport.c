/* The Raft transport: core messages to and from the protobuf messages of
 * rpc/raft.proto, sent one-way (etcd style) over the runtime's RPC client and
 * received by handlers on its RPC server, routed by (group_id, peer_id).
 *
 * Entry payloads travel in the frame attachment, written straight from the
 * refcounted entry buffers (no copy on send); the references are dropped when
 * the frame is written.
 */
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "rpc/raft.pb-c.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_server.h"
#include "src/node/node_internal.h"

/* Peer ids on the wire are identities: endpoint and idx, no priority, so the
 * sender's and the receiver's spelling of a peer always match. */
static void peer_key(const rk_peer_id_t *p, char *buf, size_t len)
{
    rk_peer_id_t k = *p;
    k.priority = RK_PRIORITY_DISABLED;
    rk_peer_id_format(&k, buf, len);
}

static rpc_channel_t *channel_to(rk_node_t *n, const rk_peer_id_t *to)
{
    char ep[RK_PEER_ID_STRLEN];
    rk_endpoint_format(&to->endpoint, ep, sizeof(ep));
    return rpc_client_channel(n->rt->client, ep, NULL);
}

static void put_ctx(uint8_t out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_ctx(ProtobufCBinaryData b)
{
    uint64_t v = 0;
    for (size_t i = 0; i < b.len && i < 8; i++)
        v |= (uint64_t)b.data[i] << (8 * i);
    return v;
}

typedef struct att_release {
    size_t n;
    buf_t *bufs[];
} att_release_t;

static void release_bufs(void *arg)
{
    att_release_t *r = arg;
    for (size_t i = 0; i < r->n; i++)
        buf_unref(r->bufs[i]);
    free(r);
}

static int send_req(rk_node_t *n, const rk_peer_id_t *to, uint32_t method,
                    const ProtobufCMessage *msg, const uv_buf_t *att, unsigned n_att,
                    att_release_t *rel)
{
    rpc_channel_t *ch = channel_to(n, to);
    if (ch == NULL) {
        if (rel)
            release_bufs(rel);
        return RK_EINVAL;
    }
    rpc_req_t req = {.method = method,
                     .msg = msg,
                     .attach = att,
                     .n_attach = n_att,
                     .release = rel ? release_bufs : NULL,
                     .release_arg = rel};
    int rc = rpc_channel_send(ch, &req);
    if (rc != 0 && rel)
        release_bufs(rel);
    return rc;
}

static int send_append(rk_node_t *n, const core_msg_t *m, const char *from, const char *to)
{
    Rk__AppendEntriesRequest req = RK__APPEND_ENTRIES_REQUEST__INIT;
    req.group_id = n->group;
    req.server_id = (char *)from;
    req.peer_id = (char *)to;
    req.term = m->term;
    req.prev_log_index = m->index;
    req.prev_log_term = m->log_term;
    req.committed_index = m->commit;
    size_t k = m->n_entries;
    Rk__Entry *ents = NULL;
    Rk__Entry **ptrs = NULL;
    uv_buf_t *bufs = NULL;
    att_release_t *rel = NULL;
    int rc = RK_ENOMEM;
    if (k > 0) {
        ents = calloc(k, sizeof(*ents));
        ptrs = calloc(k, sizeof(*ptrs));
        bufs = calloc(k, sizeof(*bufs));
        rel = malloc(sizeof(*rel) + k * sizeof(buf_t *));
        if (!ents || !ptrs || !bufs || !rel) {
            free(rel);
            goto out;
        }
        rel->n = 0;
        unsigned nb = 0;
        for (size_t i = 0; i < k; i++) {
            const core_entry_t *e = &m->entries[i];
            rk__entry__init(&ents[i]);
            ents[i].term = e->term;
            ents[i].type = e->type == CORE_ENTRY_NOOP   ? RK__ENTRY_TYPE__ENTRY_NOOP
                           : e->type == CORE_ENTRY_CONF ? RK__ENTRY_TYPE__ENTRY_CONF
                                                        : RK__ENTRY_TYPE__ENTRY_DATA;
            ents[i].in_attachment = true;
            ents[i].data_len = (uint32_t)buf_len(e->data);
            ptrs[i] = &ents[i];
            if (buf_len(e->data) > 0) {
                bufs[nb++] = uv_buf_init((char *)e->data->data, (unsigned)e->data->len);
                rel->bufs[rel->n++] = buf_ref(e->data);
            }
        }
        req.n_entries = k;
        req.entries = ptrs;
        rc = send_req(n, &m->to, RPC_M_APPEND_ENTRIES, &req.base, bufs, nb, rel);
    } else {
        rc = send_req(n, &m->to, RPC_M_APPEND_ENTRIES, &req.base, NULL, 0, NULL);
    }
out:
    free(ents);
    free(ptrs);
    free(bufs);
    return rc;
}

int transport_send(rk_node_t *n, const core_msg_t *m)
{
    if (n->stopping)
        return RK_ESHUTDOWN;
    char from[RK_PEER_ID_STRLEN], to[RK_PEER_ID_STRLEN];
    peer_key(&n->self, from, sizeof(from));
    peer_key(&m->to, to, sizeof(to));
    uint8_t ctxb[8];
    put_ctx(ctxb, m->ctx);
    ProtobufCBinaryData ctx = {.len = 8, .data = ctxb};
    int rc = 0;
    switch (m->type) {
    case CORE_MSG_PREVOTE:
    case CORE_MSG_VOTE: {
        Rk__RequestVoteRequest r = RK__REQUEST_VOTE_REQUEST__INIT;
        r.group_id = n->group, r.server_id = from, r.peer_id = to, r.term = m->term;
        r.last_log_index = m->index, r.last_log_term = m->log_term;
        r.pre_vote = m->type == CORE_MSG_PREVOTE;
        r.leadership_transfer = m->transfer;
        rc = send_req(n, &m->to, RPC_M_REQUEST_VOTE, &r.base, NULL, 0, NULL);
        break;
    }
    case CORE_MSG_PREVOTE_RESP:
    case CORE_MSG_VOTE_RESP: {
        Rk__RequestVoteResponse r = RK__REQUEST_VOTE_RESPONSE__INIT;
        r.group_id = n->group, r.server_id = from, r.peer_id = to, r.term = m->term;
        r.granted = !m->reject;
        r.pre_vote = m->type == CORE_MSG_PREVOTE_RESP;
        rc = send_req(n, &m->to, RPC_M_REQUEST_VOTE_RESP, &r.base, NULL, 0, NULL);
        break;
    }
    case CORE_MSG_APP:
        rc = send_append(n, m, from, to);
        break;
    case CORE_MSG_APP_RESP: {
        Rk__AppendEntriesResponse r = RK__APPEND_ENTRIES_RESPONSE__INIT;
        r.group_id = n->group, r.server_id = from, r.peer_id = to, r.term = m->term;
        r.success = !m->reject, r.index = m->index;
        r.reject_hint_index = m->reject_hint, r.reject_hint_term = m->reject_hint_term;
        rc = send_req(n, &m->to, RPC_M_APPEND_ENTRIES_RESP, &r.base, NULL, 0, NULL);
        break;
    }
    case CORE_MSG_HEARTBEAT: {
        Rk__Heartbeat r = RK__HEARTBEAT__INIT;
        r.group_id = n->group, r.server_id = from, r.peer_id = to, r.term = m->term;
        r.committed_index = m->commit, r.read_context = ctx;
        rc = send_req(n, &m->to, RPC_M_HEARTBEAT, &r.base, NULL, 0, NULL);
        break;
    }
    case CORE_MSG_HEARTBEAT_RESP: {
        Rk__HeartbeatResponse r = RK__HEARTBEAT_RESPONSE__INIT;
        r.group_id = n->group, r.server_id = from, r.peer_id = to, r.term = m->term;
        r.read_context = ctx;
        rc = send_req(n, &m->to, RPC_M_HEARTBEAT_RESP, &r.base, NULL, 0, NULL);
        break;
    }
    case CORE_MSG_TIMEOUT_NOW: {
        Rk__TimeoutNowRequest r = RK__TIMEOUT_NOW_REQUEST__INIT;
        r.group_id = n->group, r.server_id = from, r.peer_id = to, r.term = m->term;
        rc = send_req(n, &m->to, RPC_M_TIMEOUT_NOW, &r.base, NULL, 0, NULL);
        break;
    }
    case CORE_MSG_READ_INDEX: {
        Rk__ReadIndexRequest r = RK__READ_INDEX_REQUEST__INIT;
        r.group_id = n->group, r.server_id = from, r.peer_id = to, r.term = m->term;
        r.context = ctx;
        rc = send_req(n, &m->to, RPC_M_READ_INDEX, &r.base, NULL, 0, NULL);
        break;
    }
    case CORE_MSG_READ_INDEX_RESP: {
        Rk__ReadIndexResponse r = RK__READ_INDEX_RESPONSE__INIT;
        r.group_id = n->group, r.server_id = from, r.peer_id = to, r.term = m->term;
        r.index = m->index, r.success = !m->reject, r.context = ctx;
        rc = send_req(n, &m->to, RPC_M_READ_INDEX_RESP, &r.base, NULL, 0, NULL);
        break;
    }
    case CORE_MSG_SNAP:
        snap_src_send(n, m);
        node_obs_sent(n, m, 0);
        return 0;
    default:
        return RK_EINVAL;
    }
    if (rc != 0 && (m->type == CORE_MSG_APP || m->type == CORE_MSG_HEARTBEAT))
        core_report_unreachable(n->core, &m->to);
    node_obs_sent(n, m, rc);
    return rc;
}

void transport_send_snapshot_resp(rk_node_t *n, const rk_peer_id_t *to, uint64_t term, bool ok)
{
    char from[RK_PEER_ID_STRLEN], tos[RK_PEER_ID_STRLEN];
    peer_key(&n->self, from, sizeof(from));
    peer_key(to, tos, sizeof(tos));
    Rk__InstallSnapshotResponse r = RK__INSTALL_SNAPSHOT_RESPONSE__INIT;
    r.group_id = n->group, r.server_id = from, r.peer_id = tos, r.term = term, r.success = ok;
    send_req(n, to, RPC_M_INSTALL_SNAPSHOT_RESP, &r.base, NULL, 0, NULL);
}

/* ------------------------------------------------------------ receiving */

/* The node a routed call is for, after the identity checks: a message from
 * ourselves means two members share our id (a configuration error, reported
 * instead of asserted). */
static rk_node_t *call_node(rpc_call_t *call, const char *server_id, rk_peer_id_t *from)
{
    rk_node_t *n = rpc_call_route_ctx(call);
    if (n == NULL || n->stopping || n->core == NULL)
        return NULL;
    if (rk_peer_id_parse(from, server_id ? server_id : "", NULL) != 0) {
        RK_WARN(n->group, n->self_str, "dropping a message with a bad server_id '%s' from %s",
                server_id ? server_id : "", rpc_call_peer_name(call));
        return NULL;
    }
    if (core_peer_eq(from, &n->self)) {
        static _Atomic int warned;
        if (atomic_fetch_add(&warned, 1) < 5)
            RK_ERROR(n->group, n->self_str,
                     "configuration error: received a message from our own id %s (via %s); "
                     "two members share this id",
                     server_id, rpc_call_peer_name(call));
        return NULL;
    }
    return n;
}

static void step(rk_node_t *n, core_msg_t *m)
{
    m->to = n->self;
    node_obs_received(n, m);
    int rc = core_step(n->core, m);
    if (rc != 0 && rc != RK_ESTATE)
        RK_DEBUG(n->group, n->self_str, "core_step(%s): %s", core_msg_type_name(m->type),
                 rk_strerror(rc));
    node_wake(n);
}

static void h_vote(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__RequestVoteRequest *r = (const void *)rpc_call_request(call);
    core_msg_t m = {0};
    rk_node_t *n = call_node(call, r->server_id, &m.from);
    if (n) {
        m.type = r->pre_vote ? CORE_MSG_PREVOTE : CORE_MSG_VOTE;
        m.term = r->term, m.index = r->last_log_index, m.log_term = r->last_log_term;
        m.transfer = r->leadership_transfer;
        step(n, &m);
    }
    rpc_call_done(call);
}

static void h_vote_resp(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__RequestVoteResponse *r = (const void *)rpc_call_request(call);
    core_msg_t m = {0};
    rk_node_t *n = call_node(call, r->server_id, &m.from);
    if (n) {
        m.type = r->pre_vote ? CORE_MSG_PREVOTE_RESP : CORE_MSG_VOTE_RESP;
        m.term = r->term, m.reject = !r->granted;
        step(n, &m);
    }
    rpc_call_done(call);
}

static void h_append(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__AppendEntriesRequest *r = (const void *)rpc_call_request(call);
    core_msg_t m = {0};
    rk_node_t *n = call_node(call, r->server_id, &m.from);
    if (n == NULL) {
        rpc_call_done(call);
        return;
    }
    m.type = CORE_MSG_APP;
    m.term = r->term, m.index = r->prev_log_index, m.log_term = r->prev_log_term;
    m.commit = r->committed_index;
    size_t att_len = 0;
    const uint8_t *att = rpc_call_attachment(call, &att_len);
    size_t off = 0;
    bool bad = false;
    core_entry_t small[64];
    core_entry_t *ents = r->n_entries <= 64 ? small : calloc(r->n_entries, sizeof(*ents));
    if (ents == NULL) {
        rpc_call_done(call);
        return;
    }
    size_t k = 0;
    for (; k < r->n_entries; k++) {
        const Rk__Entry *e = r->entries[k];
        const uint8_t *p;
        size_t len;
        if (e->in_attachment) {
            len = e->data_len;
            if (len > att_len - off) {
                bad = true;
                break;
            }
            p = att + off;
            off += len;
        } else {
            p = e->data.data, len = e->data.len;
        }
        buf_t *b = NULL;
        if (len > 0 && (b = buf_new(p, len)) == NULL) {
            bad = true;
            break;
        }
        ents[k] = (core_entry_t){.term = e->term,
                                 .index = r->prev_log_index + 1 + k,
                                 .type = e->type == RK__ENTRY_TYPE__ENTRY_NOOP   ? CORE_ENTRY_NOOP
                                         : e->type == RK__ENTRY_TYPE__ENTRY_CONF ? CORE_ENTRY_CONF
                                                                                 : CORE_ENTRY_DATA,
                                 .data = b};
    }
    if (!bad && off != att_len)
        bad = true;
    if (bad) {
        RK_WARN(n->group, n->self_str, "dropping a malformed AppendEntries from %s",
                rpc_call_peer_name(call));
    } else {
        m.entries = ents, m.n_entries = k;
        step(n, &m);
    }
    for (size_t i = 0; i < k; i++)
        buf_unref(ents[i].data);
    if (ents != small)
        free(ents);
    rpc_call_done(call);
}

static void h_append_resp(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__AppendEntriesResponse *r = (const void *)rpc_call_request(call);
    core_msg_t m = {0};
    rk_node_t *n = call_node(call, r->server_id, &m.from);
    if (n) {
        m.type = CORE_MSG_APP_RESP;
        m.term = r->term, m.reject = !r->success, m.index = r->index;
        m.reject_hint = r->reject_hint_index, m.reject_hint_term = r->reject_hint_term;
        step(n, &m);
    }
    rpc_call_done(call);
}

static void h_heartbeat(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__Heartbeat *r = (const void *)rpc_call_request(call);
    core_msg_t m = {0};
    rk_node_t *n = call_node(call, r->server_id, &m.from);
    if (n) {
        m.type = CORE_MSG_HEARTBEAT;
        m.term = r->term, m.commit = r->committed_index, m.ctx = get_ctx(r->read_context);
        step(n, &m);
    }
    rpc_call_done(call);
}

static void h_heartbeat_resp(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__HeartbeatResponse *r = (const void *)rpc_call_request(call);
    core_msg_t m = {0};
    rk_node_t *n = call_node(call, r->server_id, &m.from);
    if (n) {
        m.type = CORE_MSG_HEARTBEAT_RESP;
        m.term = r->term, m.ctx = get_ctx(r->read_context);
        step(n, &m);
    }
    rpc_call_done(call);
}

static void h_timeout_now(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__TimeoutNowRequest *r = (const void *)rpc_call_request(call);
    core_msg_t m = {0};
    rk_node_t *n = call_node(call, r->server_id, &m.from);
    if (n) {
        m.type = CORE_MSG_TIMEOUT_NOW;
        m.term = r->term;
        step(n, &m);
    }
    rpc_call_done(call);
}

static void h_read_index(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__ReadIndexRequest *r = (const void *)rpc_call_request(call);
    core_msg_t m = {0};
    rk_node_t *n = call_node(call, r->server_id, &m.from);
    if (n) {
        m.type = CORE_MSG_READ_INDEX;
        m.term = r->term, m.ctx = get_ctx(r->context);
        step(n, &m);
    }
    rpc_call_done(call);
}

static void h_read_index_resp(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__ReadIndexResponse *r = (const void *)rpc_call_request(call);
    core_msg_t m = {0};
    rk_node_t *n = call_node(call, r->server_id, &m.from);
    if (n) {
        m.type = CORE_MSG_READ_INDEX_RESP;
        m.term = r->term, m.index = r->index, m.reject = !r->success;
        m.ctx = get_ctx(r->context);
        step(n, &m);
    }
    rpc_call_done(call);
}

static void h_install(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__InstallSnapshotRequest *r = (const void *)rpc_call_request(call);
    rk_peer_id_t from;
    rk_node_t *n = call_node(call, r->server_id, &from);
    if (n && r->meta) {
        core_snapshot_meta_t meta = {.index = r->meta->last_included_index,
                                     .term = r->meta->last_included_term};
        snap_on_install_request(n, &from, r->term, &meta, r->reader_id, NULL, 0);
    }
    rpc_call_done(call);
}

static void h_install_resp(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__InstallSnapshotResponse *r = (const void *)rpc_call_request(call);
    rk_peer_id_t from;
    rk_node_t *n = call_node(call, r->server_id, &from);
    if (n)
        snap_on_install_done(n, &from, r->success);
    rpc_call_done(call);
}

static void h_get_file(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__GetFileRequest *r = (const void *)rpc_call_request(call);
    rk_node_t *n = rpc_call_route_ctx(call);
    if (n == NULL || n->stopping) {
        rpc_call_fail(call, RK_ESHUTDOWN, "node stopping");
        return;
    }
    int rc = snap_serve_get_file(n, r->reader_id, r->filename, r->offset, r->count, call);
    if (rc != 0)
        rpc_call_fail(call, rc, "get_file %s: %s", r->filename, rk_strerror(rc));
}

int transport_register(node_rt_t *rt)
{
    static const struct {
        uint32_t id;
        rpc_handler_fn fn;
    } h[] = {
        {RPC_M_REQUEST_VOTE, h_vote},
        {RPC_M_REQUEST_VOTE_RESP, h_vote_resp},
        {RPC_M_APPEND_ENTRIES, h_append},
        {RPC_M_APPEND_ENTRIES_RESP, h_append_resp},
        {RPC_M_HEARTBEAT, h_heartbeat},
        {RPC_M_HEARTBEAT_RESP, h_heartbeat_resp},
        {RPC_M_TIMEOUT_NOW, h_timeout_now},
        {RPC_M_READ_INDEX, h_read_index},
        {RPC_M_READ_INDEX_RESP, h_read_index_resp},
        {RPC_M_INSTALL_SNAPSHOT, h_install},
        {RPC_M_INSTALL_SNAPSHOT_RESP, h_install_resp},
        {RPC_M_GET_FILE, h_get_file},
    };
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
        int rc = rpc_server_register(rt->server, h[i].id, NULL, 0, h[i].fn, rt);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int transport_add_node(rk_node_t *n)
{
    char key[RK_PEER_ID_STRLEN];
    peer_key(&n->self, key, sizeof(key));
    int rc = rpc_server_add_route(n->rt->server, n->group, key, n);
    if (rc == 0)
        reach_attach(n);
    return rc;
}

void transport_remove_node(rk_node_t *n)
{
    char key[RK_PEER_ID_STRLEN];
    peer_key(&n->self, key, sizeof(key));
    reach_detach(n);
    if (n->rt->server)
        rpc_server_remove_route(n->rt->server, n->group, key);
}
