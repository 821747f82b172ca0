/* The RPC server (see rpc_server.h): accept, handshake, route, dispatch, and
 * keep each connection's memory bounded. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/rpc.pb-c.h"
#include "rpc/rpc_handshake.h"
#include "rpc/rpc_log.h"
#include "rpc/rpc_server.h"
#include "rpc/rpc_tls.h"

#define BUILTIN_MAX 128

typedef struct handler {
    uint32_t method;
    const ProtobufCMessageDescriptor *desc;
    unsigned flags;
    rpc_handler_fn fn;
    void *arg;
} handler_t;

typedef struct route {
    struct route *next; /* peers of the same group, in insertion order */
    char *peer_id;
    void *ctx;
} route_t;

/* How many stopped groups are remembered, and for how long their traffic is
 * dropped without a warning. */
#define RETIRED_SLOTS    8
#define RETIRED_QUIET_MS 10000

typedef struct group {
    struct group *next; /* hash chain */
    char *group_id;
    route_t *routes;
} group_t;

typedef struct srv_conn {
    rpc_conn_t conn;
    rpc_server_t *srv;
    struct srv_conn *prev, *next;
    bool handshaken;
    uint64_t accepted_ms; /* loop time of accept, for the handshake deadline */
    bool handle_closed;
    bool paused;
    uint32_t inflight; /* calls handed to handlers, not completed */
} srv_conn_t;

struct rpc_call {
    srv_conn_t *sc;
    rpc_frame_hdr_t hdr;
    ProtobufCMessage *req;
    rpc_rbuf_t *rb;
    const uint8_t *body;
    const uint8_t *attach;
    void *route_ctx;
    const char *group_id;
};

struct rpc_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening;
    bool closing;
    uint16_t port;
    size_t max_frame;
    size_t max_pending_out;
    uint32_t max_inflight;
    uint32_t handshake_timeout_ms;
    uv_timer_t sweep;  /* closes connections that never finish the handshake */
    uv_tcp_t spare;    /* takes a connection there is no memory for, to close it */
    bool spare_busy;   /* spare is closing */
    bool shed_waiting; /* libuv holds a connection until spare is free */
    unsigned n_unhandshaken;
    char *name;
    handler_t builtin[BUILTIN_MAX];
    handler_t *app;
    unsigned n_app, cap_app;
    group_t **groups;
    unsigned n_buckets, n_groups;
    srv_conn_t *conns;
    uint64_t outstanding_calls; /* over all connections, open or closed */
    unsigned open_handles;      /* listener + connections not yet closed */
    void (*close_cb)(void *);
    void *close_arg;
    rpc_ratelimit_t rl_drop;
    rpc_ratelimit_t rl_deny;
    rpc_tls_ctx_t *tls; /* NULL: plaintext */
    /* Groups whose last route went away lately: their peers keep sending
     * for a while (answers in flight, heartbeats until they notice), which
     * is expected after a group stops here and not worth a warning. */
    struct {
        char *group_id;
        uint64_t at_ms;
    } retired[RETIRED_SLOTS];
    unsigned retired_next;
    rpc_server_stats_t stats;
};

static void maybe_finish_close(rpc_server_t *s);

/* ---- routes ---- */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

static group_t *group_find(const rpc_server_t *s, const char *group_id)
{
    group_t *g;

    if (s->n_buckets == 0)
        return NULL;
    for (g = s->groups[hash_str(group_id) & (s->n_buckets - 1)]; g != NULL; g = g->next)
        if (strcmp(g->group_id, group_id) == 0)
            return g;
    return NULL;
}

static int groups_grow(rpc_server_t *s)
{
    unsigned nb = s->n_buckets ? s->n_buckets * 2 : 16;
    group_t **t = calloc(nb, sizeof *t);

    if (t == NULL)
        return RK_ENOMEM;
    for (unsigned i = 0; i < s->n_buckets; i++) {
        group_t *g = s->groups[i], *next;
        for (; g != NULL; g = next) {
            next = g->next;
            uint32_t b = hash_str(g->group_id) & (nb - 1);
            g->next = t[b];
            t[b] = g;
        }
    }
    free(s->groups);
    s->groups = t;
    s->n_buckets = nb;
    return 0;
}

/* The route of peer_id in g, or g's first route for an empty peer_id. */
static route_t *route_find(const group_t *g, const char *peer_id)
{
    route_t *r = g->routes;
    if (peer_id != NULL && peer_id[0] != '\0')
        for (; r != NULL && strcmp(r->peer_id, peer_id) != 0; r = r->next)
            ;
    return r;
}

void *rpc_server_route_lookup(const rpc_server_t *s, const char *group_id, const char *peer_id)
{
    const group_t *g = group_id != NULL ? group_find(s, group_id) : NULL;
    const route_t *r = g != NULL ? route_find(g, peer_id) : NULL;
    return r != NULL ? r->ctx : NULL;
}

int rpc_server_add_route(rpc_server_t *s, const char *group_id, const char *peer_id, void *ctx)
{
    group_t *g;
    route_t *r, **tail;

    if (group_id == NULL || group_id[0] == '\0' || peer_id == NULL || peer_id[0] == '\0')
        return RK_EINVAL;
    g = group_find(s, group_id);
    if (g == NULL) {
        if (s->n_groups >= s->n_buckets && groups_grow(s) != 0)
            return RK_ENOMEM;
        g = calloc(1, sizeof *g);
        if (g == NULL || (g->group_id = strdup(group_id)) == NULL) {
            free(g);
            return RK_ENOMEM;
        }
        uint32_t b = hash_str(group_id) & (s->n_buckets - 1);
        g->next = s->groups[b];
        s->groups[b] = g;
        s->n_groups++;
    }
    for (tail = &g->routes; *tail != NULL; tail = &(*tail)->next)
        if (strcmp((*tail)->peer_id, peer_id) == 0)
            return RK_EEXIST;
    r = calloc(1, sizeof *r);
    if (r == NULL || (r->peer_id = strdup(peer_id)) == NULL) {
        free(r);
        return RK_ENOMEM;
    }
    r->ctx = ctx;
    *tail = r;
    return 0;
}

static void group_unlink_free(rpc_server_t *s, group_t *g)
{
    group_t **pp = &s->groups[hash_str(g->group_id) & (s->n_buckets - 1)];

    while (*pp != g)
        pp = &(*pp)->next;
    *pp = g->next;
    s->n_groups--;
    /* the id moves to the oldest retired slot */
    unsigned i = s->retired_next++ % RETIRED_SLOTS;
    free(s->retired[i].group_id);
    s->retired[i].group_id = g->group_id;
    s->retired[i].at_ms = uv_now(s->loop);
    free(g);
}

static bool recently_retired(const rpc_server_t *s, const char *group_id)
{
    for (unsigned i = 0; i < RETIRED_SLOTS; i++)
        if (s->retired[i].group_id != NULL && strcmp(s->retired[i].group_id, group_id) == 0 &&
            uv_now(s->loop) - s->retired[i].at_ms < RETIRED_QUIET_MS)
            return true;
    return false;
}

int rpc_server_remove_route(rpc_server_t *s, const char *group_id, const char *peer_id)
{
    group_t *g = group_id != NULL ? group_find(s, group_id) : NULL;
    route_t **pp;

    if (g == NULL || peer_id == NULL)
        return RK_ENOTFOUND;
    for (pp = &g->routes; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->peer_id, peer_id) == 0) {
            route_t *r = *pp;
            *pp = r->next;
            free(r->peer_id);
            free(r);
            if (g->routes == NULL)
                group_unlink_free(s, g);
            return 0;
        }
    }
    return RK_ENOTFOUND;
}

static void routes_free(rpc_server_t *s)
{
    for (unsigned i = 0; i < s->n_buckets; i++) {
        group_t *g = s->groups[i], *gn;
        for (; g != NULL; g = gn) {
            gn = g->next;
            route_t *r = g->routes, *rn;
            for (; r != NULL; r = rn) {
                rn = r->next;
                free(r->peer_id);
                free(r);
            }
            free(g->group_id);
            free(g);
        }
    }
    free(s->groups);
    for (unsigned i = 0; i < RETIRED_SLOTS; i++)
        free(s->retired[i].group_id);
}

/* ---- setup ---- */

rpc_server_t *rpc_server_new(uv_loop_t *loop, const rpc_server_opts_t *opts)
{
    rpc_server_t *s = calloc(1, sizeof *s);

    if (s == NULL)
        return NULL;
    s->loop = loop;
    s->max_frame = opts && opts->max_frame ? opts->max_frame : RPC_DEFAULT_MAX_FRAME;
    s->max_pending_out = opts && opts->max_pending_out ? opts->max_pending_out : 16u << 20;
    s->max_inflight = opts && opts->max_inflight ? opts->max_inflight : 1024;
    s->name = strdup(opts && opts->name ? opts->name : "");
    if (s->name == NULL) {
        free(s);
        return NULL;
    }
    s->handshake_timeout_ms =
        opts && opts->handshake_timeout_ms ? opts->handshake_timeout_ms : 10000;
    s->rl_drop.period_ms = 1000;
    s->rl_deny.period_ms = 1000;
    s->tls = opts != NULL ? opts->tls : NULL;
    if (s->tls != NULL)
        rpc_tls_ctx_ref(s->tls);
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    s->open_handles++;
    return s;
}

uint16_t rpc_server_port(const rpc_server_t *s)
{
    return s->listening ? s->port : 0;
}

int rpc_server_register(rpc_server_t *s, uint32_t method, const ProtobufCMessageDescriptor *desc,
                        unsigned flags, rpc_handler_fn fn, void *arg)
{
    const rpc_method_info_t *mi = rpc_method_info(method);
    handler_t *h;

    if (fn == NULL || method == RPC_M_NONE || method == RPC_M_HANDSHAKE)
        return RK_EINVAL;
    if (mi != NULL) {
        if (desc != NULL || method >= BUILTIN_MAX)
            return RK_EINVAL;
        h = &s->builtin[method];
        if (h->fn != NULL)
            return RK_EEXIST;
        *h = (handler_t){method, mi->req, mi->flags, fn, arg};
        return 0;
    }
    if (!rpc_method_is_app(method) || ((flags & RPC_MF_ROUTED) && desc == NULL))
        return RK_EINVAL; /* routing needs a decoded group_id/peer_id */
    for (unsigned i = 0; i < s->n_app; i++)
        if (s->app[i].method == method)
            return RK_EEXIST;
    if (s->n_app == s->cap_app) {
        unsigned nc = s->cap_app ? s->cap_app * 2 : 8;
        handler_t *na = realloc(s->app, nc * sizeof *na);
        if (na == NULL)
            return RK_ENOMEM;
        s->app = na;
        s->cap_app = nc;
    }
    s->app[s->n_app++] = (handler_t){method, desc, flags & RPC_MF_ROUTED, fn, arg};
    return 0;
}

int rpc_server_unregister(rpc_server_t *s, uint32_t method)
{
    if (method < BUILTIN_MAX) {
        if (s->builtin[method].fn == NULL)
            return RK_ENOTFOUND;
        s->builtin[method] = (handler_t){0};
        return 0;
    }
    for (unsigned i = 0; i < s->n_app; i++) {
        if (s->app[i].method == method) {
            /* on_frame looks handlers up per frame and never keeps the
             * pointer past the handler call, so shifting is safe. */
            memmove(&s->app[i], &s->app[i + 1], (s->n_app - i - 1) * sizeof s->app[0]);
            s->n_app--;
            return 0;
        }
    }
    return RK_ENOTFOUND;
}

static const handler_t *handler_find(const rpc_server_t *s, uint32_t method)
{
    if (method < BUILTIN_MAX)
        return s->builtin[method].fn != NULL ? &s->builtin[method] : NULL;
    for (unsigned i = 0; i < s->n_app; i++)
        if (s->app[i].method == method)
            return &s->app[i];
    return NULL;
}

void rpc_server_stats(const rpc_server_t *s, rpc_server_stats_t *st)
{
    *st = s->stats;
}

/* ---- connections ---- */

static void conn_update_flow(srv_conn_t *sc)
{
    rpc_server_t *s = sc->srv;
    bool over = sc->inflight >= s->max_inflight || sc->conn.pending_out > s->max_pending_out / 2;

    if (sc->conn.closing)
        return;
    if (over && !sc->paused) {
        /* Stop reading: TCP flow control then pushes back on the sender
         * instead of us buffering its requests or our answers. */
        rpc_conn_read_stop(&sc->conn);
        sc->paused = true;
        s->stats.paused++;
    } else if (!over && sc->paused) {
        sc->paused = false;
        if (rpc_conn_read_start(&sc->conn) != 0)
            rpc_conn_close(&sc->conn, RK_EUNREACHABLE, "cannot resume reading");
    }
}

static void conn_maybe_free(srv_conn_t *sc)
{
    rpc_server_t *s = sc->srv;

    if (!sc->handle_closed || sc->inflight > 0)
        return;
    free(sc);
    maybe_finish_close(s);
}

/* Sends a frame on a server connection, enforcing the pending-output bound.
 * Consumes w in every case. */
static void conn_send(srv_conn_t *sc, rpc_wreq_t *w)
{
    rpc_server_t *s = sc->srv;

    if (sc->conn.closing) {
        rpc_wreq_free(w);
        return;
    }
    if (sc->conn.pending_out > 0 && sc->conn.pending_out + w->bytes > s->max_pending_out) {
        rpc_conn_close(&sc->conn, RK_EBUSY,
                       "peer is not reading (%zu response bytes unwritten, limit %zu)",
                       sc->conn.pending_out, s->max_pending_out);
        rpc_wreq_free(w);
        return;
    }
    if (rpc_conn_write(&sc->conn, w) != 0) {
        rpc_wreq_free(w);
        rpc_conn_close(&sc->conn, RK_EUNREACHABLE, "write failed");
        return;
    }
    if (sc->conn.pending_out > s->stats.max_pending_out_seen)
        s->stats.max_pending_out_seen = sc->conn.pending_out;
    conn_update_flow(sc);
}

static void send_error(srv_conn_t *sc, const rpc_frame_hdr_t *req, int code, const char *msg)
{
    Rk__ErrorResponse er = RK__ERROR_RESPONSE__INIT;
    rpc_frame_hdr_t h = {0};
    rpc_wreq_t *w;
    int err;

    er.code = code;
    er.msg = (char *)msg;
    h.flags = RPC_F_RESPONSE | RPC_F_ERROR;
    h.method = req->method;
    h.corr_id = req->corr_id;
    w = rpc_wreq_new(&h, &er.base, NULL, 0, NULL, 0, sc->srv->max_frame, &err);
    if (w == NULL) {
        rpc_conn_close(&sc->conn, err, "cannot build an error response");
        return;
    }
    conn_send(sc, w);
}

static void bad_input(srv_conn_t *sc, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Protocol violation: close this connection only; on_closed writes the one
 * log line. */
static void bad_input(srv_conn_t *sc, int code, const char *fmt, ...)
{
    char why[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    rpc_conn_close(&sc->conn, code, "%s", why);
}

/* Rejects a request (error response) or drops a one-way frame, logged at
 * `level` and rate-limited: an unknown group may keep sending heartbeats for
 * a while. */
static void reject_at(srv_conn_t *sc, const rpc_frame_hdr_t *h, int code, const char *msg,
                      rk_log_level_t level)
{
    rpc_server_t *s = sc->srv;
    uint64_t suppressed;
    char mname[32];

    s->stats.rejected++;
    if (!(h->flags & RPC_F_ONEWAY)) {
        send_error(sc, h, code, msg);
        return;
    }
    if (level < RK_LOG_WARN) /* expected: not counted against the warnings' rate */
        RPC_LOG(level, sc->conn.name, "dropping one-way %s: %s",
                rpc_method_name(h->method, mname, sizeof mname), msg);
    else if (rpc_ratelimit_allow(&s->rl_drop, uv_now(s->loop), &suppressed))
        RPC_LOG(level, sc->conn.name, "dropping one-way %s: %s (%llu similar suppressed)",
                rpc_method_name(h->method, mname, sizeof mname), msg,
                (unsigned long long)suppressed);
}

static void reject(srv_conn_t *sc, const rpc_frame_hdr_t *h, int code, const char *msg)
{
    reject_at(sc, h, code, msg, RK_LOG_WARN);
}

static void on_handshake(srv_conn_t *sc, const rpc_frame_hdr_t *h, const uint8_t *body)
{
    Rk__Handshake *hello;
    Rk__HandshakeResponse resp;
    rpc_frame_hdr_t rh = {0};
    rk_status_t why;
    rpc_wreq_t *w;
    int err;

    if (h->method != RPC_M_HANDSHAKE || (h->flags & (RPC_F_RESPONSE | RPC_F_ONEWAY))) {
        bad_input(sc, RK_EPROTO, "first frame is not a handshake (method %u)", h->method);
        return;
    }
    hello = (Rk__Handshake *)rpc_frame_unpack(&rk__handshake__descriptor, body, h->body_len);
    if (hello == NULL) {
        bad_input(sc, RK_EPROTO, "undecodable handshake");
        return;
    }
    err = rpc_handshake_accept(hello, sc->srv->name, &resp, &why);
    if (err != 0) {
        RPC_LOG(RK_LOG_WARN, sc->conn.name, "handshake refused: %s", why.msg);
        send_error(sc, h, err, why.msg);
        protobuf_c_message_free_unpacked(&hello->base, NULL);
        /* Closing here would cancel the error response (uv_close drops
         * pending writes), so the connection stays open unhandshaken: the
         * client closes on the error, and the sweep timer closes it after
         * handshake_timeout_ms if it does not. */
        return;
    }
    RPC_LOG(RK_LOG_DEBUG, sc->conn.name, "handshake from '%s'", hello->client_name);
    protobuf_c_message_free_unpacked(&hello->base, NULL);
    rh.flags = RPC_F_RESPONSE;
    rh.method = RPC_M_HANDSHAKE;
    rh.corr_id = h->corr_id;
    w = rpc_wreq_new(&rh, &resp.base, NULL, 0, NULL, 0, sc->srv->max_frame, &err);
    if (w == NULL) {
        rpc_conn_close(&sc->conn, err, "cannot build the handshake response");
        return;
    }
    sc->handshaken = true;
    sc->srv->n_unhandshaken--;
    conn_send(sc, w);
}

static unsigned conn_roles(const srv_conn_t *sc)
{
    return sc->conn.tls != NULL ? rpc_tls_roles(sc->conn.tls) : RPC_ROLE_ALL;
}

static const char *role_name(unsigned role)
{
    return role == RPC_ROLE_PEER ? "peer" : role == RPC_ROLE_ADMIN ? "admin" : "client";
}

/* The connection's identity may not call this method: RK_EPERM for a
 * request, a dropped one-way frame, and a rate-limited line naming who. */
static void deny(srv_conn_t *sc, const rpc_frame_hdr_t *h, unsigned need)
{
    rpc_server_t *s = sc->srv;
    const char *who = sc->conn.tls != NULL ? rpc_tls_identity(sc->conn.tls) : "?";
    uint64_t suppressed;
    char mname[32], msg[RK_STATUS_MSG_MAX];

    s->stats.denied++;
    rpc_method_name(h->method, mname, sizeof mname);
    if (rpc_ratelimit_allow(&s->rl_deny, uv_now(s->loop), &suppressed))
        RPC_LOG(RK_LOG_WARN, sc->conn.name,
                "refused %s from %s: needs the %s role (%llu similar suppressed)", mname, who,
                role_name(need), (unsigned long long)suppressed);
    if (!(h->flags & RPC_F_ONEWAY)) {
        snprintf(msg, sizeof msg, "%s needs the %s role; %s does not have it", mname,
                 role_name(need), who);
        send_error(sc, h, RK_EPERM, msg);
    }
}

static void on_frame(rpc_conn_t *c, const rpc_frame_hdr_t *h, rpc_rbuf_t *rb, const uint8_t *body,
                     const uint8_t *attach)
{
    srv_conn_t *sc = (srv_conn_t *)c;
    rpc_server_t *s = sc->srv;
    const handler_t *hd;
    ProtobufCMessage *req = NULL;
    void *route_ctx = NULL;
    const char *group_id = "";
    rpc_call_t *call;
    char mname[32], why[160];

    if (s->closing)
        return;
    s->stats.frames++;
    if (!sc->handshaken) {
        on_handshake(sc, h, body);
        return;
    }
    if (h->flags & RPC_F_RESPONSE) {
        bad_input(sc, RK_EPROTO, "unexpected response frame (method %u)", h->method);
        return;
    }
    unsigned need = rpc_method_role(h->method);
    if (!(conn_roles(sc) & need)) {
        deny(sc, h, need);
        return;
    }
    hd = handler_find(s, h->method);
    if (hd == NULL) {
        snprintf(why, sizeof why, "no handler for method %s",
                 rpc_method_name(h->method, mname, sizeof mname));
        reject(sc, h, RK_ENOTFOUND, why);
        return;
    }
    if (hd->desc != NULL) {
        req = rpc_frame_unpack(hd->desc, body, h->body_len);
        if (req == NULL) {
            bad_input(sc, RK_EPROTO, "undecodable %s body (%u bytes)",
                      rpc_method_name(h->method, mname, sizeof mname), h->body_len);
            return;
        }
    }
    if ((hd->flags & RPC_MF_ROUTED) && req != NULL) {
        const char *peer_id;
        group_t *g;
        route_t *r;

        rpc_msg_route_fields(req, &group_id, &peer_id);
        g = group_id != NULL ? group_find(s, group_id) : NULL;
        if (g == NULL) {
            bool retired = group_id != NULL && recently_retired(s, group_id);
            snprintf(why, sizeof why, "%s group '%s'", retired ? "stopped" : "unknown",
                     group_id != NULL ? group_id : "");
            reject_at(sc, h, RK_ENOGROUP, why, retired ? RK_LOG_DEBUG : RK_LOG_WARN);
            goto err_after_decode;
        }
        r = route_find(g, peer_id);
        if (r == NULL) {
            snprintf(why, sizeof why, "peer '%s' is not in group '%s' here", peer_id, group_id);
            reject(sc, h, RK_EUNKNOWNPEER, why);
            goto err_after_decode;
        }
        route_ctx = r->ctx;
    }
    call = calloc(1, sizeof *call);
    if (call == NULL) {
        reject(sc, h, RK_ENOMEM, "out of memory");
        goto err_after_decode;
    }
    call->sc = sc;
    call->hdr = *h;
    call->req = req;
    call->rb = rb;
    call->body = body;
    call->attach = attach;
    call->route_ctx = route_ctx;
    call->group_id = group_id != NULL ? group_id : "";
    rpc_rbuf_ref(rb);
    sc->inflight++;
    s->outstanding_calls++;
    s->stats.requests++;
    conn_update_flow(sc);
    hd->fn(call, hd->arg);
    return;

err_after_decode:
    if (req != NULL)
        protobuf_c_message_free_unpacked(req, NULL);
}

static void on_write_done(rpc_conn_t *c)
{
    conn_update_flow((srv_conn_t *)c);
}

static void on_closed(rpc_conn_t *c)
{
    srv_conn_t *sc = (srv_conn_t *)c;
    rpc_server_t *s = sc->srv;

    /* Exactly one line per connection closed for cause; ordinary
     * disconnects are debug noise. */
    switch (c->close_status.code) {
    case 0:
    case RK_EUNREACHABLE:
    case RK_ESHUTDOWN:
        RPC_LOG(RK_LOG_DEBUG, c->name, "connection closed: %s", c->close_status.msg);
        break;
    case RK_EPROTO:
    case RK_ETOOBIG:
        s->stats.closed_bad_input++;
        RPC_LOG(RK_LOG_WARN, c->name, "connection closed: %s", c->close_status.msg);
        break;
    case RK_EPERM: /* refused by TLS: one line naming the cause */
        s->stats.tls_refused++;
        RPC_LOG(RK_LOG_WARN, c->name, "connection closed: %s", c->close_status.msg);
        break;
    case RK_EBUSY:
        s->stats.closed_slow++;
        /* fall through */
    default:
        RPC_LOG(RK_LOG_WARN, c->name, "connection closed: %s", c->close_status.msg);
    }
    if (sc->prev != NULL)
        sc->prev->next = sc->next;
    else
        s->conns = sc->next;
    if (sc->next != NULL)
        sc->next->prev = sc->prev;
    sc->handle_closed = true;
    if (!sc->handshaken)
        s->n_unhandshaken--;
    s->stats.connections--;
    s->open_handles--;
    conn_maybe_free(sc);
}

static const rpc_conn_ops_t srv_conn_ops = {on_frame, on_write_done, on_closed};

/* One timer for the whole server: connections still without a handshake
 * after handshake_timeout_ms are closed, so idle sockets cannot hold slots
 * forever (and a later authentication step gets a deadline for free). */
static void sweep_cb(uv_timer_t *t)
{
    rpc_server_t *s = t->data;
    uint64_t now = uv_now(s->loop);

    for (srv_conn_t *sc = s->conns; sc != NULL; sc = sc->next)
        if (!sc->handshaken && !sc->conn.closing &&
            now - sc->accepted_ms >= s->handshake_timeout_ms) {
            if (sc->conn.tls != NULL && !sc->conn.tls_ready)
                rpc_conn_close(&sc->conn, RK_EPERM, "TLS handshake not completed within %u ms",
                               s->handshake_timeout_ms);
            else
                rpc_conn_close(&sc->conn, RK_EPROTO, "no handshake within %u ms",
                               s->handshake_timeout_ms);
        }
    if (s->n_unhandshaken == 0)
        uv_timer_stop(t);
}

static void on_connection(uv_stream_t *listener, int status);

static void spare_closed(uv_handle_t *h)
{
    rpc_server_t *s = h->data;

    s->spare_busy = false;
    s->open_handles--;
    if (s->closing) {
        maybe_finish_close(s);
        return;
    }
    if (s->shed_waiting) {
        s->shed_waiting = false;
        on_connection((uv_stream_t *)&s->listener, 0); /* memory may be back */
    }
}

/* No memory for a connection: accept it into the spare handle and close it.
 * Returning without uv_accept is no option: libuv keeps the accepted socket
 * for a later uv_accept and stops polling the listener until then, so the
 * server would never accept again. When the spare is still closing the
 * previous one, the connection waits in libuv and spare_closed comes back
 * for it. */
static void shed_connection(rpc_server_t *s)
{
    uint64_t suppressed;

    if (s->spare_busy) {
        s->shed_waiting = true;
        return;
    }
    if (rpc_ratelimit_allow(&s->rl_drop, uv_now(s->loop), &suppressed))
        RPC_LOG(RK_LOG_WARN, NULL,
                "out of memory: closing a new connection (%llu similar suppressed)",
                (unsigned long long)suppressed);
    uv_tcp_init(s->loop, &s->spare);
    s->spare.data = s;
    s->spare_busy = true;
    s->open_handles++;
    (void)uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&s->spare);
    uv_close((uv_handle_t *)&s->spare, spare_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
    rpc_server_t *s = listener->data;
    srv_conn_t *sc;

    if (status < 0) {
        RPC_LOG(RK_LOG_WARN, NULL, "accept failed: %s", uv_strerror(status));
        return;
    }
    sc = calloc(1, sizeof *sc);
    if (sc == NULL) {
        shed_connection(s);
        return;
    }
    uv_tcp_init(s->loop, &sc->conn.tcp);
    rpc_conn_init(&sc->conn, &srv_conn_ops, s, s->max_frame);
    sc->srv = s;
    sc->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = sc;
    s->conns = sc;
    s->open_handles++;
    s->stats.connections++;
    s->stats.accepted++;
    sc->accepted_ms = uv_now(s->loop);
    if (s->n_unhandshaken++ == 0) {
        uint32_t period = s->handshake_timeout_ms / 4 ? s->handshake_timeout_ms / 4 : 1;
        uv_timer_start(&s->sweep, sweep_cb, period, period);
    }
    if (uv_accept(listener, (uv_stream_t *)&sc->conn.tcp) != 0) {
        rpc_conn_close(&sc->conn, RK_ESHUTDOWN, "accept failed");
        return;
    }
    uv_tcp_nodelay(&sc->conn.tcp, 1);
    rpc_conn_set_name_from_peer(&sc->conn);
    if (s->tls != NULL) {
        rpc_tls_t *t = rpc_tls_new(s->tls);
        if (t == NULL) {
            rpc_conn_close(&sc->conn, RK_ENOMEM, "out of memory for TLS");
            return;
        }
        if (rpc_conn_set_tls(&sc->conn, t) != 0)
            return; /* closed, with the reason */
    }
    if (rpc_conn_read_start(&sc->conn) != 0)
        rpc_conn_close(&sc->conn, RK_ESHUTDOWN, "cannot start reading");
}

int rpc_server_listen(rpc_server_t *s, const char *host, uint16_t port, rk_status_t *err)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ep[96];
    int rv;

    if (s->listening || s->closing)
        return rk_status_set(err, RK_EEXIST, "already listening");
    snprintf(ep, sizeof ep, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port ? port : 1);
    if (rpc_endpoint_addr(ep, &ss, err) != 0)
        return RK_EINVAL;
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->open_handles++;
    s->listening = true; /* the handle must be closed from now on */
    rv = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    if (rv == 0)
        rv = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    if (rv != 0) {
        rk_status_set(err, RK_EIO, "cannot listen on %s:%u: %s", host, port, uv_strerror(rv));
        return RK_EIO;
    }
    s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

static void maybe_finish_close(rpc_server_t *s)
{
    void (*cb)(void *);
    void *arg;

    if (!s->closing || s->open_handles > 0 || s->outstanding_calls > 0)
        return;
    cb = s->close_cb;
    arg = s->close_arg;
    routes_free(s);
    free(s->app);
    free(s->name);
    rpc_tls_ctx_unref(s->tls);
    free(s);
    if (cb != NULL)
        cb(arg);
}

static void server_handle_closed(uv_handle_t *h)
{
    rpc_server_t *s = h->data;

    s->open_handles--;
    maybe_finish_close(s);
}

void rpc_server_close(rpc_server_t *s, void (*cb)(void *arg), void *arg)
{
    if (s->closing)
        return;
    s->closing = true;
    s->close_cb = cb;
    s->close_arg = arg;
    if (s->listening)
        uv_close((uv_handle_t *)&s->listener, server_handle_closed);
    uv_close((uv_handle_t *)&s->sweep, server_handle_closed);
    for (srv_conn_t *sc = s->conns; sc != NULL; sc = sc->next)
        rpc_conn_close(&sc->conn, RK_ESHUTDOWN, "server closing");
}

/* ---- calls ---- */

uint32_t rpc_call_method(const rpc_call_t *call)
{
    return call->hdr.method;
}
bool rpc_call_is_oneway(const rpc_call_t *call)
{
    return (call->hdr.flags & RPC_F_ONEWAY) != 0;
}
const ProtobufCMessage *rpc_call_request(const rpc_call_t *call)
{
    return call->req;
}
void *rpc_call_route_ctx(const rpc_call_t *call)
{
    return call->route_ctx;
}
const char *rpc_call_group(const rpc_call_t *call)
{
    return call->group_id;
}
const char *rpc_call_peer_name(const rpc_call_t *call)
{
    return call->sc->conn.name;
}

const uint8_t *rpc_call_body(const rpc_call_t *call, size_t *len)
{
    *len = call->hdr.body_len;
    return call->body;
}

const uint8_t *rpc_call_attachment(const rpc_call_t *call, size_t *len)
{
    *len = call->hdr.attach_len;
    return call->attach;
}

static void call_free(rpc_call_t *call)
{
    srv_conn_t *sc = call->sc;
    rpc_server_t *s = sc->srv;

    if (call->req != NULL)
        protobuf_c_message_free_unpacked(call->req, NULL);
    rpc_rbuf_unref(call->rb);
    free(call);
    sc->inflight--;
    s->outstanding_calls--;
    if (sc->handle_closed)
        conn_maybe_free(sc);
    else
        conn_update_flow(sc);
}

static void call_send(rpc_call_t *call, uint8_t flags, const ProtobufCMessage *msg, const void *raw,
                      size_t raw_len, const uv_buf_t *att, unsigned n_att, rpc_release_fn release,
                      void *release_arg)
{
    srv_conn_t *sc = call->sc;
    rpc_frame_hdr_t h = {0};
    rpc_wreq_t *w;
    int err;

    if ((call->hdr.flags & RPC_F_ONEWAY) || sc->conn.closing || sc->srv->closing) {
        if (release != NULL)
            release(release_arg);
        return;
    }
    h.flags = flags;
    h.method = call->hdr.method;
    h.corr_id = call->hdr.corr_id;
    w = rpc_wreq_new(&h, msg, raw, raw_len, att, n_att, sc->srv->max_frame, &err);
    if (w == NULL) {
        if (release != NULL)
            release(release_arg);
        send_error(sc, &call->hdr, err,
                   err == RK_ETOOBIG ? "response exceeds the frame limit" : "out of memory");
        return;
    }
    w->release = release;
    w->release_arg = release_arg;
    conn_send(sc, w);
}

void rpc_call_reply(rpc_call_t *call, const ProtobufCMessage *resp, const uv_buf_t *att,
                    unsigned n_att, rpc_release_fn release, void *release_arg)
{
    call_send(call, RPC_F_RESPONSE, resp, NULL, 0, att, n_att, release, release_arg);
    call_free(call);
}

void rpc_call_reply_raw(rpc_call_t *call, const void *body, size_t len, const uv_buf_t *att,
                        unsigned n_att, rpc_release_fn release, void *release_arg)
{
    call_send(call, RPC_F_RESPONSE, NULL, body, len, att, n_att, release, release_arg);
    call_free(call);
}

void rpc_call_fail(rpc_call_t *call, int code, const char *fmt, ...)
{
    Rk__ErrorResponse er = RK__ERROR_RESPONSE__INIT;
    char msg[RK_STATUS_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    er.code = code;
    er.msg = msg;
    call_send(call, RPC_F_RESPONSE | RPC_F_ERROR, &er.base, NULL, 0, NULL, 0, NULL, NULL);
    call_free(call);
}

void rpc_call_done(rpc_call_t *call)
{
    call_send(call, RPC_F_RESPONSE, NULL, NULL, 0, NULL, 0, NULL, NULL);
    call_free(call);
}
