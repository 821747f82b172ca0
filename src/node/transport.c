/* The Raft transport: core messages to and from the protobuf messages of
 * rpc/raft.proto, sent one-way (etcd style) over the runtime's RPC client and
 * received by handlers on its RPC server, routed by (group_id, peer_id).
 *
 * Heartbeats and their answers (read-index rounds and quiesce notices
 * included) are coalesced: every one the runtime's groups send to the same
 * endpoint during a loop iteration goes in one HeartbeatBatch frame, sent
 * from the runtime's check phase once every ready node was driven; the
 * receiver routes each item to its group, and those groups' answers go back
 * batched the same way. With many groups between the same processes this is
 * one frame per peer process per tick instead of one per group. Items hold
 * copies, not nodes: a node may stop before its batch is sent.
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

/* ------------------------------------------------ heartbeat batching */

typedef struct hb_item {
    char group[LOG_GROUP_ID_MAX];
    char from[RK_PEER_ID_STRLEN], to[RK_PEER_ID_STRLEN];
    uint64_t term, commit, index, log_term;
    uint8_t ctx[8];
    bool resp, quiesce;
} hb_item_t;

struct node_hb_batch {
    struct node_hb_batch *next;
    char endpoint[RK_HOST_MAX + 8];
    hb_item_t *items;
    size_t n, cap;
};

static node_hb_batch_t *batch_for(node_rt_t *rt, const rk_endpoint_t *to)
{
    char ep[RK_HOST_MAX + 8];
    rk_endpoint_format(to, ep, sizeof(ep));
    for (node_hb_batch_t *b = rt->hb_batches; b; b = b->next)
        if (strcmp(b->endpoint, ep) == 0)
            return b;
    node_hb_batch_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    snprintf(b->endpoint, sizeof(b->endpoint), "%s", ep);
    b->next = rt->hb_batches;
    rt->hb_batches = b;
    return b;
}

static int queue_heartbeat(rk_node_t *n, const core_msg_t *m, const char *from, const char *to)
{
    node_rt_t *rt = n->rt;
    node_hb_batch_t *b = batch_for(rt, &m->to.endpoint);
    if (b == NULL)
        return RK_ENOMEM;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 16;
        hb_item_t *items = realloc(b->items, cap * sizeof(*items));
        if (items == NULL)
            return RK_ENOMEM;
        b->items = items;
        b->cap = cap;
    }
    hb_item_t *it = &b->items[b->n++];
    snprintf(it->group, sizeof(it->group), "%s", n->group);
    snprintf(it->from, sizeof(it->from), "%s", from);
    snprintf(it->to, sizeof(it->to), "%s", to);
    it->resp = m->type == CORE_MSG_HEARTBEAT_RESP;
    it->term = m->term, it->commit = m->commit, it->index = m->index;
    it->log_term = m->log_term, it->quiesce = m->quiesce;
    put_ctx(it->ctx, m->ctx);
    rt->hb_pending = true;
    node_rt_kick(rt); /* flushed in this iteration's check phase */
    return 0;
}

/* Sends b's items in one frame. A failed send loses them like any one-way
 * message: a channel that is down was reported by node_rt_on_reach, and
 * heartbeats are repeated every tick. */
static void send_batch(node_rt_t *rt, node_hb_batch_t *b)
{
    size_t n_hb = 0, n_resp = 0;
    for (size_t i = 0; i < b->n; i++)
        b->items[i].resp ? n_resp++ : n_hb++;
    Rk__Heartbeat *hbs = calloc(n_hb ? n_hb : 1, sizeof(*hbs));
    Rk__Heartbeat **hbp = calloc(n_hb ? n_hb : 1, sizeof(*hbp));
    Rk__HeartbeatResponse *rs = calloc(n_resp ? n_resp : 1, sizeof(*rs));
    Rk__HeartbeatResponse **rsp = calloc(n_resp ? n_resp : 1, sizeof(*rsp));
    rpc_channel_t *ch = rt->client ? rpc_client_channel(rt->client, b->endpoint, NULL) : NULL;
    if (hbs && hbp && rs && rsp && ch) {
        size_t h = 0, r = 0;
        for (size_t i = 0; i < b->n; i++) {
            hb_item_t *it = &b->items[i];
            ProtobufCBinaryData ctx = {.len = 8, .data = it->ctx};
            if (it->resp) {
                Rk__HeartbeatResponse *x = &rs[r];
                rk__heartbeat_response__init(x);
                x->group_id = it->group, x->server_id = it->from, x->peer_id = it->to;
                x->term = it->term, x->read_context = ctx, x->quiesce = it->quiesce;
                rsp[r++] = x;
            } else {
                Rk__Heartbeat *x = &hbs[h];
                rk__heartbeat__init(x);
                x->group_id = it->group, x->server_id = it->from, x->peer_id = it->to;
                x->term = it->term, x->committed_index = it->commit, x->read_context = ctx;
                x->index = it->index, x->log_term = it->log_term, x->quiesce = it->quiesce;
                hbp[h++] = x;
            }
        }
        Rk__HeartbeatBatch msg = RK__HEARTBEAT_BATCH__INIT;
        msg.n_heartbeats = h, msg.heartbeats = hbp;
        msg.n_responses = r, msg.responses = rsp;
        rpc_req_t req = {.method = RPC_M_HEARTBEAT_BATCH, .msg = &msg.base};
        int rc = rpc_channel_send(ch, &req);
        if (rc == 0) {
            rt->hb_frames_sent++;
            rt->hb_items_sent += b->n;
        } else {
            RK_DEBUG(NULL, NULL, "heartbeat batch to %s (%zu items): %s", b->endpoint, b->n,
                     rk_strerror(rc));
        }
    }
    free(hbs);
    free(hbp);
    free(rs);
    free(rsp);
    b->n = 0;
}

void transport_flush_heartbeats(node_rt_t *rt)
{
    if (!rt->hb_pending)
        return;
    rt->hb_pending = false;
    for (node_hb_batch_t *b = rt->hb_batches; b; b = b->next)
        if (b->n > 0)
            send_batch(rt, b);
}

void transport_free_batches(node_rt_t *rt)
{
    while (rt->hb_batches) {
        node_hb_batch_t *b = rt->hb_batches;
        rt->hb_batches = b->next;
        free(b->items);
        free(b);
    }
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
    case CORE_MSG_HEARTBEAT:
    case CORE_MSG_HEARTBEAT_RESP:
        rc = queue_heartbeat(n, m, from, to);
        break;
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

static void step_heartbeat(rk_node_t *n, core_msg_t *m, const Rk__Heartbeat *r)
{
    m->type = CORE_MSG_HEARTBEAT;
    m->term = r->term, m->commit = r->committed_index, m->ctx = get_ctx(r->read_context);
    m->index = r->index, m->log_term = r->log_term, m->quiesce = r->quiesce;
    step(n, m);
}

static void step_heartbeat_resp(rk_node_t *n, core_msg_t *m, const Rk__HeartbeatResponse *r)
{
    m->type = CORE_MSG_HEARTBEAT_RESP;
    m->term = r->term, m->ctx = get_ctx(r->read_context), m->quiesce = r->quiesce;
    step(n, m);
}

static void h_heartbeat(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__Heartbeat *r = (const void *)rpc_call_request(call);
    core_msg_t m = {0};
    rk_node_t *n = call_node(call, r->server_id, &m.from);
    if (n)
        step_heartbeat(n, &m, r);
    rpc_call_done(call);
}

static void h_heartbeat_resp(rpc_call_t *call, void *arg)
{
    (void)arg;
    const Rk__HeartbeatResponse *r = (const void *)rpc_call_request(call);
    core_msg_t m = {0};
    rk_node_t *n = call_node(call, r->server_id, &m.from);
    if (n)
        step_heartbeat_resp(n, &m, r);
    rpc_call_done(call);
}

/* The node an item of a batch is for, routed as the server routes a whole
 * request; NULL (item dropped, rate-limited line) when no group here has
 * that (group_id, peer_id). */
static rk_node_t *item_node(node_rt_t *rt, rpc_call_t *call, const char *group,
                            const char *server_id, const char *peer_id, rk_peer_id_t *from)
{
    rk_node_t *n = rt->server ? rpc_server_route_lookup(rt->server, group, peer_id) : NULL;
    if (n == NULL) {
        uint64_t suppressed = 0;
        if (rpc_ratelimit_allow(&rt->hb_drop_rl, uv_now(&rt->loop), &suppressed))
            RK_WARN(group, NULL,
                    "dropping a batched heartbeat for %s, not served here (from %s; %llu more "
                    "dropped)",
                    peer_id, rpc_call_peer_name(call), (unsigned long long)suppressed);
        return NULL;
    }
    if (n->stopping || n->core == NULL)
        return NULL;
    if (rk_peer_id_parse(from, server_id, NULL) != 0 || core_peer_eq(from, &n->self)) {
        RK_WARN(n->group, n->self_str,
                "dropping a batched heartbeat with a bad server_id '%s' from %s", server_id,
                rpc_call_peer_name(call));
        return NULL;
    }
    return n;
}

static void h_heartbeat_batch(rpc_call_t *call, void *arg)
{
    node_rt_t *rt = arg;
    const Rk__HeartbeatBatch *b = (const void *)rpc_call_request(call);
    for (size_t i = 0; i < b->n_heartbeats; i++) {
        const Rk__Heartbeat *r = b->heartbeats[i];
        core_msg_t m = {0};
        rk_node_t *n = item_node(rt, call, r->group_id, r->server_id, r->peer_id, &m.from);
        if (n)
            step_heartbeat(n, &m, r);
    }
    for (size_t i = 0; i < b->n_responses; i++) {
        const Rk__HeartbeatResponse *r = b->responses[i];
        core_msg_t m = {0};
        rk_node_t *n = item_node(rt, call, r->group_id, r->server_id, r->peer_id, &m.from);
        if (n)
            step_heartbeat_resp(n, &m, r);
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
        {RPC_M_HEARTBEAT_BATCH, h_heartbeat_batch},
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
