/* The RPC client (see rpc_client.h): channels, reconnection with backoff,
 * pipelined calls matched by correlation id, timeouts, one-way sends.
 *
 * Every outstanding call is in three places at once: the client's hash by
 * correlation id (to match a response), the client's deadline heap (one
 * timer for all timeouts) and its channel's list (to fail them all when the
 * connection drops). Completing a call removes it from all three before its
 * callback runs, so whichever of response, timeout, disconnect or close
 * comes first wins and the callback runs exactly once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "raftkit/peer.h"
#include "rpc/rpc.pb-c.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_handshake.h"
#include "rpc/rpc_log.h"
#include "rpc/rpc_resolve.h"
#include "rpc/rpc_tls.h"

typedef enum ch_state {
    CH_IDLE,       /* never connected */
    CH_CONNECTING, /* TCP connect in progress */
    CH_HANDSHAKE,  /* connected, hello sent */
    CH_READY,
    CH_BACKOFF, /* down; the timer starts the next attempt */
    CH_CLOSING,
} ch_state_t;

typedef struct cl_conn {
    rpc_conn_t conn;
    uv_connect_t creq;
    rpc_channel_t *ch; /* NULL once detached from its channel */
} cl_conn_t;

typedef struct ccall {
    uint64_t corr;
    rpc_channel_t *ch;
    rpc_resp_fn cb;
    void *arg;
    const ProtobufCMessageDescriptor *resp_desc;
    uint32_t method;
    uint64_t deadline;
    unsigned heap_idx;
    struct ccall *hnext;
    struct ccall *prev, *next;
    rpc_wreq_t *queued; /* still in the channel's queue, not yet written */
    bool *sent;         /* rpc_req_t.sent: set when the frame reaches a connection */
} ccall_t;

struct rpc_channel {
    rpc_client_t *cli;
    struct rpc_channel *prev, *next;
    char endpoint[80];
    struct sockaddr_storage addr; /* where the current attempt connects */
    /* Address resolution (see channel_resolve): a host name is resolved
     * again before every connection attempt. */
    char host[RK_HOST_MAX];
    uint16_t port;
    bool is_name;             /* host is a name, not an IP literal */
    rpc_resolve_t *resolving; /* in progress for the current attempt */
    char resolved[80];        /* last outcome, to log each change once */
    unsigned addr_turn;       /* which of a name's addresses the attempt uses */
    ch_state_t state;
    cl_conn_t *conn;
    uv_timer_t timer; /* connect timeout, then backoff */
    rpc_wreq_t *q_head, *q_tail;
    size_t q_bytes;
    ccall_t *calls;
    unsigned n_calls;
    uint32_t backoff_ms;
    bool reachable;
    bool reported;
    uint64_t hs_corr;
    unsigned handles; /* timer + live connection handles */
};

struct rpc_client {
    uv_loop_t *loop;
    size_t max_frame;
    size_t max_pending_out;
    uint32_t connect_timeout_ms, backoff_min_ms, backoff_max_ms;
    char *name;
    rpc_reach_fn on_reach;
    void *reach_arg;
    rpc_channel_t *chans;
    unsigned closing_chans;
    ccall_t **hash;
    unsigned n_buckets, n_calls;
    ccall_t **heap;
    unsigned heap_len, heap_cap;
    uv_timer_t timer;
    bool timer_closed;
    uint64_t next_corr;
    bool closing;
    void (*close_cb)(void *);
    void *close_arg;
    rpc_tls_ctx_t *tls; /* NULL: plaintext */
};

static void start_connect(rpc_channel_t *ch);
static void channel_resolve(rpc_channel_t *ch);
static int channel_set_endpoint(rpc_channel_t *ch, const char *endpoint, rk_status_t *err);
static void channel_down(rpc_channel_t *ch, int code, const char *msg);
static void maybe_free_client(rpc_client_t *c);

/* ---- correlation hash ---- */

static int hash_grow(rpc_client_t *c)
{
    unsigned nb = c->n_buckets ? c->n_buckets * 2 : 64;
    ccall_t **t = calloc(nb, sizeof *t);

    if (t == NULL)
        return RK_ENOMEM;
    for (unsigned i = 0; i < c->n_buckets; i++) {
        ccall_t *k = c->hash[i], *next;
        for (; k != NULL; k = next) {
            next = k->hnext;
            k->hnext = t[k->corr & (nb - 1)];
            t[k->corr & (nb - 1)] = k;
        }
    }
    free(c->hash);
    c->hash = t;
    c->n_buckets = nb;
    return 0;
}

static ccall_t *hash_find(const rpc_client_t *c, uint64_t corr)
{
    if (c->n_buckets == 0)
        return NULL;
    for (ccall_t *k = c->hash[corr & (c->n_buckets - 1)]; k != NULL; k = k->hnext)
        if (k->corr == corr)
            return k;
    return NULL;
}

static void hash_remove(rpc_client_t *c, ccall_t *k)
{
    ccall_t **pp = &c->hash[k->corr & (c->n_buckets - 1)];

    while (*pp != k)
        pp = &(*pp)->hnext;
    *pp = k->hnext;
    c->n_calls--;
}

/* ---- deadline heap ---- */

static void heap_swap(rpc_client_t *c, unsigned a, unsigned b)
{
    ccall_t *t = c->heap[a];

    c->heap[a] = c->heap[b];
    c->heap[b] = t;
    c->heap[a]->heap_idx = a;
    c->heap[b]->heap_idx = b;
}

static void heap_up(rpc_client_t *c, unsigned i)
{
    while (i > 0 && c->heap[(i - 1) / 2]->deadline > c->heap[i]->deadline) {
        heap_swap(c, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(rpc_client_t *c, unsigned i)
{
    for (;;) {
        unsigned l = 2 * i + 1, r = l + 1, m = i;
        if (l < c->heap_len && c->heap[l]->deadline < c->heap[m]->deadline)
            m = l;
        if (r < c->heap_len && c->heap[r]->deadline < c->heap[m]->deadline)
            m = r;
        if (m == i)
            return;
        heap_swap(c, i, m);
        i = m;
    }
}

static void heap_remove(rpc_client_t *c, ccall_t *k)
{
    unsigned i = k->heap_idx;

    c->heap_len--;
    if (i != c->heap_len) {
        c->heap[i] = c->heap[c->heap_len];
        c->heap[i]->heap_idx = i;
        heap_up(c, i);
        heap_down(c, c->heap[i]->heap_idx);
    }
}

static void timer_cb(uv_timer_t *t);

/* Points the client's one timer at the earliest deadline. */
static void arm_timer(rpc_client_t *c)
{
    uint64_t now = uv_now(c->loop);

    if (c->heap_len == 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, timer_cb, c->heap[0]->deadline > now ? c->heap[0]->deadline - now : 0,
                   0);
}

/* ---- calls ---- */

static void queue_unlink(rpc_channel_t *ch, rpc_wreq_t *w)
{
    rpc_wreq_t **pp = &ch->q_head, *prev = NULL;

    while (*pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = w->next;
    if (ch->q_tail == w)
        ch->q_tail = prev;
    ch->q_bytes -= w->bytes;
}

/* Removes the call from every index, then runs its callback once. */
static void call_complete(ccall_t *k, const rk_status_t *st, const rpc_resp_t *resp)
{
    rpc_channel_t *ch = k->ch;
    rpc_client_t *c = ch->cli;

    hash_remove(c, k);
    heap_remove(c, k);
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        ch->calls = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    ch->n_calls--;
    if (k->queued != NULL) {
        /* Never written: drop the frame rather than send a request whose
         * caller has already been told it failed. */
        queue_unlink(ch, k->queued);
        rpc_wreq_free(k->queued);
    }
    k->cb(k->arg, st, resp);
    free(k);
}

static void call_fail(ccall_t *k, int code, const char *fmt, const char *detail)
{
    rk_status_t st;

    rk_status_set(&st, code, fmt, k->ch->endpoint, detail);
    call_complete(k, &st, NULL);
}

static void timer_cb(uv_timer_t *t)
{
    rpc_client_t *c = t->data;
    uint64_t now = uv_now(c->loop);

    while (c->heap_len > 0 && c->heap[0]->deadline <= now) {
        ccall_t *k = c->heap[0];
        rk_status_t st;
        rk_status_set(&st, RK_ETIMEDOUT, "no response from %s in time%s", k->ch->endpoint,
                      k->queued != NULL ? " (never sent: connection not ready)" : "");
        call_complete(k, &st, NULL);
    }
    if (!c->closing)
        arm_timer(c);
}

/* ---- channel state ---- */

static void report(rpc_channel_t *ch, bool reachable, const rk_status_t *why)
{
    rpc_client_t *c = ch->cli;

    if (ch->reported && ch->reachable == reachable)
        return; /* one line per change of state, not per retry */
    ch->reported = true;
    ch->reachable = reachable;
    if (reachable)
        RPC_LOG(RK_LOG_INFO, ch->endpoint, "peer reachable");
    else
        RPC_LOG(RK_LOG_WARN, ch->endpoint, "peer unreachable: %s", why->msg);
    if (c->on_reach != NULL)
        c->on_reach(c->reach_arg, ch, reachable, why);
}

static void free_queue(rpc_channel_t *ch)
{
    while (ch->q_head != NULL) {
        rpc_wreq_t *w = ch->q_head;
        ch->q_head = w->next;
        if (w->owner_data != NULL)
            ((ccall_t *)w->owner_data)->queued = NULL;
        rpc_wreq_free(w);
    }
    ch->q_tail = NULL;
    ch->q_bytes = 0;
}

static void channel_resolve_cancel(rpc_channel_t *ch);

static void detach_conn(rpc_channel_t *ch, int code, const char *msg)
{
    cl_conn_t *cc = ch->conn;

    channel_resolve_cancel(ch);
    if (cc == NULL)
        return;
    ch->conn = NULL;
    cc->ch = NULL;
    rpc_conn_close(&cc->conn, code, "%s", msg);
}

static void fail_calls(rpc_channel_t *ch, int code, const char *fmt, const char *msg)
{
    while (ch->calls != NULL)
        call_fail(ch->calls, code, fmt, msg);
}

static void backoff_cb(uv_timer_t *t)
{
    rpc_channel_t *ch = t->data;

    if (ch->state == CH_BACKOFF)
        start_connect(ch);
    else if (ch->state == CH_CONNECTING || ch->state == CH_HANDSHAKE)
        channel_down(ch, RK_ETIMEDOUT, "connect/handshake timed out");
}

/* The connection failed or was lost: fail what waits on it, report, and
 * schedule the next attempt. */
static void channel_down(rpc_channel_t *ch, int code, const char *msg)
{
    rpc_client_t *c = ch->cli;
    bool was_ready = ch->state == CH_READY;
    rk_status_t why;

    (void)code;
    detach_conn(ch, code, msg);
    /* After losing an established connection retry soon; after a failed
     * attempt double the delay up to the cap, so a dead peer costs one
     * attempt per backoff_max_ms, not a tight loop. */
    if (was_ready || ch->backoff_ms == 0)
        ch->backoff_ms = c->backoff_min_ms;
    else if (ch->backoff_ms < c->backoff_max_ms)
        ch->backoff_ms =
            ch->backoff_ms * 2 < c->backoff_max_ms ? ch->backoff_ms * 2 : c->backoff_max_ms;
    ch->state = CH_BACKOFF;
    uv_timer_start(&ch->timer, backoff_cb, ch->backoff_ms, 0);
    free_queue(ch);
    rk_status_set(&why, RK_EUNREACHABLE, "%s", msg);
    report(ch, false, &why);
    fail_calls(ch, RK_EUNREACHABLE,
               was_ready
                   ? "connection to %s lost with the request in flight (it may or may not have "
                     "been executed): %s"
                   : "cannot connect to %s: %s",
               msg);
}

static void channel_ready(rpc_channel_t *ch)
{
    rk_status_t ok;

    uv_timer_stop(&ch->timer);
    ch->state = CH_READY;
    ch->backoff_ms = 0;
    while (ch->q_head != NULL && ch->conn != NULL) {
        rpc_wreq_t *w = ch->q_head;
        ch->q_head = w->next;
        if (ch->q_head == NULL)
            ch->q_tail = NULL;
        ch->q_bytes -= w->bytes;
        if (w->owner_data != NULL) {
            ccall_t *k = w->owner_data;
            k->queued = NULL;
            if (k->sent != NULL)
                *k->sent = true;
        }
        if (rpc_conn_write(&ch->conn->conn, w) != 0) {
            rpc_wreq_free(w);
            channel_down(ch, RK_EUNREACHABLE, "write failed");
            return;
        }
    }
    rk_status_clear(&ok);
    report(ch, true, &ok);
}

/* ---- connection callbacks ---- */

static void handle_handshake(rpc_channel_t *ch, const rpc_frame_hdr_t *h, const uint8_t *body)
{
    rk_status_t why;

    if (!(h->flags & RPC_F_RESPONSE) || h->method != RPC_M_HANDSHAKE || h->corr_id != ch->hs_corr) {
        channel_down(ch, RK_EPROTO, "server sent something else than a handshake response");
        return;
    }
    if (h->flags & RPC_F_ERROR) {
        Rk__ErrorResponse *er = (Rk__ErrorResponse *)rpc_frame_unpack(
            &rk__error_response__descriptor, body, h->body_len);
        char msg[RK_STATUS_MSG_MAX];
        snprintf(msg, sizeof msg, "handshake refused: %s", er != NULL ? er->msg : "?");
        if (er != NULL)
            protobuf_c_message_free_unpacked(&er->base, NULL);
        channel_down(ch, RK_EPROTO, msg);
        return;
    }
    Rk__HandshakeResponse *hr = (Rk__HandshakeResponse *)rpc_frame_unpack(
        &rk__handshake_response__descriptor, body, h->body_len);
    if (hr == NULL || rpc_handshake_check(hr, &why) != 0) {
        if (hr != NULL)
            protobuf_c_message_free_unpacked(&hr->base, NULL);
        channel_down(ch, RK_EPROTO, hr == NULL ? "undecodable handshake response" : why.msg);
        return;
    }
    protobuf_c_message_free_unpacked(&hr->base, NULL);
    channel_ready(ch);
}

static void handle_response(rpc_channel_t *ch, const rpc_frame_hdr_t *h, const uint8_t *body,
                            const uint8_t *attach)
{
    rpc_client_t *c = ch->cli;
    ccall_t *k = hash_find(c, h->corr_id);
    rk_status_t st;
    rpc_resp_t resp;
    const ProtobufCMessageDescriptor *d;
    ProtobufCMessage *m = NULL;

    if (!(h->flags & RPC_F_RESPONSE)) {
        channel_down(ch, RK_EPROTO, "server sent a request frame");
        return;
    }
    if (k == NULL || k->ch != ch) {
        /* A late answer to a call that timed out: nobody waits for it. */
        RPC_LOG(RK_LOG_DEBUG, ch->endpoint, "dropping response to unknown call %llu",
                (unsigned long long)h->corr_id);
        return;
    }
    if (h->flags & RPC_F_ERROR) {
        Rk__ErrorResponse *er = (Rk__ErrorResponse *)rpc_frame_unpack(
            &rk__error_response__descriptor, body, h->body_len);
        if (er == NULL) {
            channel_down(ch, RK_EPROTO, "undecodable error response");
            return;
        }
        rk_status_set(&st, er->code < 0 ? er->code : RK_EINTERNAL, "%s", er->msg);
        protobuf_c_message_free_unpacked(&er->base, NULL);
        call_complete(k, &st, NULL);
        return;
    }
    d = k->resp_desc;
    if (d == NULL && !rpc_method_is_app(k->method)) {
        const rpc_method_info_t *mi = rpc_method_info(k->method);
        d = mi != NULL ? mi->resp : NULL;
    }
    if (d != NULL && (m = rpc_frame_unpack(d, body, h->body_len)) == NULL) {
        channel_down(ch, RK_EPROTO, "undecodable response body");
        return;
    }
    resp = (rpc_resp_t){h->method, m, body, h->body_len, attach, h->attach_len};
    rk_status_clear(&st);
    call_complete(k, &st, &resp);
    if (m != NULL)
        protobuf_c_message_free_unpacked(m, NULL);
}

static void cl_on_frame(rpc_conn_t *conn, const rpc_frame_hdr_t *h, rpc_rbuf_t *rb,
                        const uint8_t *body, const uint8_t *attach)
{
    rpc_channel_t *ch = ((cl_conn_t *)conn)->ch;

    (void)rb;
    if (ch == NULL)
        return;
    if (ch->state == CH_HANDSHAKE)
        handle_handshake(ch, h, body);
    else if (ch->state == CH_READY)
        handle_response(ch, h, body, attach);
}

static void cl_on_closed(rpc_conn_t *conn)
{
    cl_conn_t *cc = (cl_conn_t *)conn;
    rpc_channel_t *ch = cc->ch;
    rpc_client_t *c;

    if (ch != NULL && ch->state == CH_HANDSHAKE && ch->cli->tls == NULL &&
        conn->close_status.code == RK_EUNREACHABLE) {
        /* A secured server closes a plaintext client without a word. */
        channel_down(ch, RK_EUNREACHABLE,
                     "closed by the server during the handshake (a server with TLS or cluster "
                     "keys refuses plaintext clients)");
    } else if (ch != NULL) {
        /* Closed from below (peer reset, EOF, protocol error). */
        channel_down(ch, conn->close_status.code, conn->close_status.msg);
    }
    ch = (rpc_channel_t *)conn->owner;
    c = ch->cli;
    free(cc);
    ch->handles--;
    if (ch->handles == 0 && ch->state == CH_CLOSING) {
        free(ch);
        c->closing_chans--;
        maybe_free_client(c);
    }
}

static const rpc_conn_ops_t cl_conn_ops = {cl_on_frame, NULL, cl_on_closed};

static void on_connect(uv_connect_t *req, int status)
{
    cl_conn_t *cc = req->data;
    rpc_channel_t *ch = cc->ch;
    Rk__Handshake hello;
    rpc_frame_hdr_t h = {0};
    rpc_wreq_t *w;
    int err;

    if (ch == NULL)
        return; /* detached (timed out or channel closed); the close is under way */
    if (status < 0) {
        channel_down(ch, RK_EUNREACHABLE, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&cc->conn.tcp, 1);
    rpc_conn_set_name_from_peer(&cc->conn);
    if (ch->cli->tls != NULL) {
        /* TLS first: the hello below waits in the connection until the
         * server is authenticated. */
        rpc_tls_t *t = rpc_tls_new(ch->cli->tls);
        if (t == NULL) {
            channel_down(ch, RK_ENOMEM, "out of memory for TLS");
            return;
        }
        if (rpc_conn_set_tls(&cc->conn, t) != 0)
            return; /* closed: cl_on_closed reports why */
    }
    rpc_handshake_hello(&hello, ch->cli->name);
    h.method = RPC_M_HANDSHAKE;
    h.corr_id = ch->hs_corr = ++ch->cli->next_corr;
    w = rpc_wreq_new(&h, &hello.base, NULL, 0, NULL, 0, ch->cli->max_frame, &err);
    if (w == NULL) {
        channel_down(ch, err, "cannot build the handshake");
        return;
    }
    if (rpc_conn_read_start(&cc->conn) != 0 || rpc_conn_write(&cc->conn, w) != 0) {
        rpc_wreq_free(w);
        channel_down(ch, RK_EUNREACHABLE, "cannot start the handshake");
        return;
    }
    ch->state = CH_HANDSHAKE;
}

/* ---- address resolution ----
 *
 * A channel to an IP literal connects to the address parsed when the
 * channel was made. A channel to a host name resolves it (uv_getaddrinfo,
 * off the loop) at the start of every connection attempt, so a peer that
 * comes back at another address under its name is found by the next
 * attempt. A name that does not resolve fails the attempt like a refused
 * connection: the channel is unreachable and retries after the usual
 * backoff. A name with several addresses (dual stack, several A records)
 * is tried at the preferred one first, then, while attempts keep failing,
 * at the next one each attempt. Each change of outcome (the set of
 * addresses, or the failure) is logged once, not each retry. The connect
 * timeout starts once the name is resolved; the resolver bounds its own
 * time (resolv.conf timeout/attempts). */

/* Checks endpoint ("host:port", "[v6]:port") and keeps what connecting needs. */
static int channel_set_endpoint(rpc_channel_t *ch, const char *endpoint, rk_status_t *err)
{
    rk_endpoint_t ep;

    if (rk_endpoint_parse(&ep, endpoint, err) != 0)
        return RK_EINVAL;
    memcpy(ch->host, ep.host, sizeof ch->host);
    ch->port = ep.port;
    ch->is_name = rpc_endpoint_addr(endpoint, &ch->addr, NULL) != 0;
    return 0;
}

/* Connects to ch->addr; the attempt's connection is ch->conn. */
static void channel_connect_addr(rpc_channel_t *ch)
{
    cl_conn_t *cc = ch->conn;
    int rv = uv_tcp_connect(&cc->creq, &cc->conn.tcp, (struct sockaddr *)&ch->addr, on_connect);

    if (rv != 0) {
        /* Report from the close callback, never from inside the caller's
         * rpc_channel_call: a call that returned 0 must not have run its
         * callback yet. */
        rpc_conn_close(&cc->conn, RK_EUNREACHABLE, "connect: %s", uv_strerror(rv));
    }
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The addresses as a sorted list ("10.0.0.1, 10.0.0.2"), so that a resolver
 * rotating their order (round-robin DNS) is no change worth a log line. */
static void addrs_outcome(const struct sockaddr_storage *addrs, unsigned n, char *buf, size_t len)
{
    char names[RPC_RESOLVE_MAX][INET6_ADDRSTRLEN];
    size_t used = 0;

    for (unsigned i = 0; i < n; i++)
        rpc_addr_name(&addrs[i], names[i], sizeof names[i]);
    qsort(names, n, sizeof names[0], cmp_names);
    buf[0] = '\0';
    for (unsigned i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i > 0 ? ", " : "", names[i]);
}

static void channel_resolved(void *arg, int status, const struct sockaddr_storage *addrs,
                             unsigned n)
{
    rpc_channel_t *ch = arg;
    char outcome[sizeof ch->resolved], why[RK_STATUS_MSG_MAX];

    ch->resolving = NULL;
    if (status != 0) {
        snprintf(outcome, sizeof outcome, "!%s", uv_strerror(status));
        snprintf(why, sizeof why, "cannot resolve '%s': %s", ch->host, uv_strerror(status));
    } else {
        addrs_outcome(addrs, n, outcome, sizeof outcome);
    }
    if (strcmp(outcome, ch->resolved) != 0) {
        if (status != 0)
            RPC_LOG(RK_LOG_WARN, ch->endpoint, "%s", why);
        else
            RPC_LOG(RK_LOG_INFO, ch->endpoint, "'%s' resolves to %s%s", ch->host, outcome,
                    ch->resolved[0] != '\0' && ch->resolved[0] != '!' ? " (address changed)" : "");
        snprintf(ch->resolved, sizeof ch->resolved, "%s", outcome);
    }
    if (status != 0) {
        channel_down(ch, RK_EUNREACHABLE, why);
        return;
    }
    /* After a failed attempt (the channel is reported down), the next
     * address: a dead one of several is not retried forever. */
    if (ch->reported && !ch->reachable)
        ch->addr_turn++;
    ch->addr = addrs[ch->addr_turn % n];
    uv_timer_start(&ch->timer, backoff_cb, ch->cli->connect_timeout_ms, 0);
    channel_connect_addr(ch);
}

/* Gets the address for the attempt that start_connect began, then connects. */
static void channel_resolve(rpc_channel_t *ch)
{
    int rv;

    if (!ch->is_name) {
        channel_connect_addr(ch);
        return;
    }
    uv_timer_stop(&ch->timer);
    rv = rpc_resolve_start(ch->cli->loop, ch->host, ch->port, channel_resolved, ch, &ch->resolving);
    if (rv != 0)
        rpc_conn_close(&ch->conn->conn, RK_EUNREACHABLE, "cannot resolve '%s': %s", ch->host,
                       uv_strerror(rv));
}

/* The attempt is abandoned (channel down or closing): drop its resolution. */
static void channel_resolve_cancel(rpc_channel_t *ch)
{
    if (ch->resolving != NULL) {
        rpc_resolve_cancel(ch->resolving);
        ch->resolving = NULL;
    }
}

static void start_connect(rpc_channel_t *ch)
{
    rpc_client_t *c = ch->cli;
    cl_conn_t *cc = calloc(1, sizeof *cc);

    if (cc == NULL) {
        ch->state = CH_BACKOFF;
        uv_timer_start(&ch->timer, backoff_cb, c->backoff_max_ms, 0);
        return;
    }
    uv_tcp_init(c->loop, &cc->conn.tcp);
    rpc_conn_init(&cc->conn, &cl_conn_ops, ch, c->max_frame);
    snprintf(cc->conn.name, sizeof cc->conn.name, "%s", ch->endpoint);
    cc->ch = ch;
    cc->creq.data = cc;
    ch->conn = cc;
    ch->handles++;
    ch->state = CH_CONNECTING;
    uv_timer_start(&ch->timer, backoff_cb, c->connect_timeout_ms, 0);
    channel_resolve(ch);
}

/* ---- public ---- */

rpc_client_t *rpc_client_new(uv_loop_t *loop, const rpc_client_opts_t *o)
{
    rpc_client_t *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->max_frame = o && o->max_frame ? o->max_frame : RPC_DEFAULT_MAX_FRAME;
    c->max_pending_out = o && o->max_pending_out ? o->max_pending_out : 16u << 20;
    c->connect_timeout_ms = o && o->connect_timeout_ms ? o->connect_timeout_ms : 3000;
    c->backoff_min_ms = o && o->backoff_min_ms ? o->backoff_min_ms : 100;
    c->backoff_max_ms = o && o->backoff_max_ms ? o->backoff_max_ms : 5000;
    if (c->backoff_max_ms < c->backoff_min_ms)
        c->backoff_max_ms = c->backoff_min_ms;
    c->on_reach = o ? o->on_reachability : NULL;
    c->tls = o ? o->tls : NULL;
    c->reach_arg = o ? o->arg : NULL;
    c->name = strdup(o && o->name ? o->name : "");
    if (c->name == NULL || hash_grow(c) != 0) {
        free(c->name);
        free(c);
        return NULL;
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    if (c->tls != NULL)
        rpc_tls_ctx_ref(c->tls);
    return c;
}

rpc_channel_t *rpc_client_channel(rpc_client_t *c, const char *endpoint, rk_status_t *err)
{
    rpc_channel_t *ch;

    if (c->closing) {
        rk_status_set(err, RK_ESHUTDOWN, "client closing");
        return NULL;
    }
    for (ch = c->chans; ch != NULL; ch = ch->next)
        if (strcasecmp(ch->endpoint, endpoint) == 0)
            return ch;
    ch = calloc(1, sizeof *ch);
    if (ch == NULL) {
        rk_status_set(err, RK_ENOMEM, "out of memory");
        return NULL;
    }
    if (strlen(endpoint) >= sizeof ch->endpoint || channel_set_endpoint(ch, endpoint, err) != 0) {
        if (strlen(endpoint) >= sizeof ch->endpoint)
            rk_status_set(err, RK_EINVAL, "endpoint too long");
        free(ch);
        return NULL;
    }
    snprintf(ch->endpoint, sizeof ch->endpoint, "%s", endpoint);
    ch->cli = c;
    ch->state = CH_IDLE;
    uv_timer_init(c->loop, &ch->timer);
    ch->timer.data = ch;
    ch->handles = 1;
    ch->next = c->chans;
    if (c->chans != NULL)
        c->chans->prev = ch;
    c->chans = ch;
    return ch;
}

/* Checks state and builds the frame; shared by call and send. */
static int prepare(rpc_channel_t *ch, const rpc_req_t *req, uint8_t flags, uint64_t corr,
                   rpc_wreq_t **out)
{
    rpc_client_t *c = ch->cli;
    rpc_frame_hdr_t h = {0};
    size_t pending;
    rpc_wreq_t *w;
    int err;

    if (c->closing || ch->state == CH_CLOSING)
        return RK_ESHUTDOWN;
    if (req == NULL || req->method == RPC_M_NONE || req->method == RPC_M_HANDSHAKE ||
        (req->n_attach > 0 && req->attach == NULL))
        return RK_EINVAL;
    if (ch->state == CH_BACKOFF)
        return RK_EUNREACHABLE;
    h.flags = flags;
    h.method = req->method;
    h.corr_id = corr;
    w = rpc_wreq_new(&h, req->msg, req->body, req->msg != NULL ? 0 : req->body_len, req->attach,
                     req->n_attach, c->max_frame, &err);
    if (w == NULL)
        return err;
    pending = rpc_channel_pending_out(ch);
    if (pending > 0 && pending + w->bytes > c->max_pending_out) {
        rpc_wreq_free(w);
        return RK_EBUSY;
    }
    *out = w;
    return 0;
}

/* Writes now or queues until the connection is ready. Consumes w. */
static void submit(rpc_channel_t *ch, rpc_wreq_t *w)
{
    if (ch->state == CH_READY) {
        if (rpc_conn_write(&ch->conn->conn, w) == 0)
            return;
        /* The connection is closing under us: keep the frame queued, the
         * close callback fails or releases it. */
    }
    w->next = NULL;
    if (ch->q_tail != NULL)
        ch->q_tail->next = w;
    else
        ch->q_head = w;
    ch->q_tail = w;
    ch->q_bytes += w->bytes;
    if (ch->state == CH_IDLE)
        start_connect(ch);
}

int rpc_channel_call(rpc_channel_t *ch, const rpc_req_t *req, rpc_resp_fn cb, void *arg)
{
    rpc_client_t *c = ch->cli;
    rpc_wreq_t *w;
    ccall_t *k;
    int rv;

    if (cb == NULL)
        return RK_EINVAL;
    if (c->heap_len == c->heap_cap) {
        unsigned nc = c->heap_cap ? c->heap_cap * 2 : 64;
        ccall_t **nh = realloc(c->heap, nc * sizeof *nh);
        if (nh == NULL)
            return RK_ENOMEM;
        c->heap = nh;
        c->heap_cap = nc;
    }
    if (c->n_calls >= c->n_buckets && hash_grow(c) != 0)
        return RK_ENOMEM;
    k = calloc(1, sizeof *k);
    if (k == NULL)
        return RK_ENOMEM;
    rv = prepare(ch, req, 0, c->next_corr + 1, &w);
    if (rv != 0) {
        free(k);
        return rv;
    }
    k->corr = ++c->next_corr;
    k->ch = ch;
    k->cb = cb;
    k->arg = arg;
    k->method = req->method;
    k->resp_desc = req->resp_desc;
    k->sent = req->sent;
    if (k->sent != NULL)
        *k->sent = false;
    k->deadline = uv_now(c->loop) + (req->timeout_ms ? req->timeout_ms : 5000);
    k->hnext = c->hash[k->corr & (c->n_buckets - 1)];
    c->hash[k->corr & (c->n_buckets - 1)] = k;
    c->n_calls++;
    k->heap_idx = c->heap_len;
    c->heap[c->heap_len++] = k;
    heap_up(c, k->heap_idx);
    k->next = ch->calls;
    if (ch->calls != NULL)
        ch->calls->prev = k;
    ch->calls = k;
    ch->n_calls++;
    w->release = req->release;
    w->release_arg = req->release_arg;
    if (ch->state != CH_READY) {
        w->owner_data = k;
        k->queued = w;
    } else if (k->sent != NULL) {
        *k->sent = true; /* submit writes it now (or keeps it for a close that fails it) */
    }
    submit(ch, w);
    if (c->heap[0] == k)
        arm_timer(c);
    return 0;
}

int rpc_channel_send(rpc_channel_t *ch, const rpc_req_t *req)
{
    rpc_wreq_t *w;
    int rv = prepare(ch, req, RPC_F_ONEWAY, 0, &w);

    if (rv != 0)
        return rv;
    w->release = req->release;
    w->release_arg = req->release_arg;
    submit(ch, w);
    return 0;
}

void rpc_channel_connect(rpc_channel_t *ch)
{
    if (ch->state == CH_IDLE && !ch->cli->closing)
        start_connect(ch);
}

bool rpc_channel_reachable(const rpc_channel_t *ch)
{
    return ch->state == CH_READY;
}
const char *rpc_channel_endpoint(const rpc_channel_t *ch)
{
    return ch->endpoint;
}
unsigned rpc_channel_inflight(const rpc_channel_t *ch)
{
    return ch->n_calls;
}

void rpc_client_flush(rpc_client_t *c)
{
    for (rpc_channel_t *ch = c->chans; ch != NULL; ch = ch->next)
        if (ch->conn != NULL)
            rpc_conn_flush(&ch->conn->conn);
}

size_t rpc_channel_pending_out(const rpc_channel_t *ch)
{
    return ch->q_bytes + (ch->conn != NULL ? ch->conn->conn.pending_out : 0);
}

static void channel_timer_closed(uv_handle_t *h)
{
    rpc_channel_t *ch = h->data;
    rpc_client_t *c = ch->cli;

    if (--ch->handles == 0) {
        free(ch);
        c->closing_chans--;
        maybe_free_client(c);
    }
}

static void channel_close(rpc_channel_t *ch, int code, const char *why)
{
    rpc_client_t *c = ch->cli;

    if (ch->state == CH_CLOSING)
        return;
    ch->state = CH_CLOSING;
    if (ch->prev != NULL)
        ch->prev->next = ch->next;
    else
        c->chans = ch->next;
    if (ch->next != NULL)
        ch->next->prev = ch->prev;
    c->closing_chans++;
    detach_conn(ch, code, why);
    free_queue(ch);
    fail_calls(ch, code, "call to %s abandoned: %s", why);
    uv_close((uv_handle_t *)&ch->timer, channel_timer_closed);
}

void rpc_channel_close(rpc_channel_t *ch)
{
    channel_close(ch, RK_ECANCELED, "channel closed");
}

static void client_timer_closed(uv_handle_t *h)
{
    rpc_client_t *c = h->data;

    c->timer_closed = true;
    maybe_free_client(c);
}

static void maybe_free_client(rpc_client_t *c)
{
    void (*cb)(void *);
    void *arg;

    if (!c->closing || !c->timer_closed || c->closing_chans > 0 || c->chans != NULL)
        return;
    cb = c->close_cb;
    arg = c->close_arg;
    free(c->hash);
    free(c->heap);
    free(c->name);
    rpc_tls_ctx_unref(c->tls);
    free(c);
    if (cb != NULL)
        cb(arg);
}

void rpc_client_close(rpc_client_t *c, void (*cb)(void *arg), void *arg)
{
    if (c->closing)
        return;
    c->closing = true;
    c->close_cb = cb;
    c->close_arg = arg;
    while (c->chans != NULL)
        channel_close(c->chans, RK_ESHUTDOWN, "client closing");
    uv_close((uv_handle_t *)&c->timer, client_timer_closed);
}
