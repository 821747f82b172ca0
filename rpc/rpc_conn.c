/* Frame reading and writing on one libuv TCP handle (see rpc_conn.h).
 *
 * Reads go into a reference-counted buffer. Once a frame's header is in, the
 * buffer is grown to hold the whole frame, so libuv reads a large entry batch
 * or file chunk straight into its final place and nothing is copied before
 * the handler sees it. When a handler keeps a buffer (asynchronous reply with
 * the attachment still in use), the connection moves the few unparsed bytes
 * to a fresh buffer instead of compacting in place.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/rpc_conn.h"
#include "rpc/rpc_tls.h"

#define RBUF_MIN    (64u << 10) /* read granularity */
#define RBUF_SHRINK (1u << 20)  /* give back buffers grown past this once idle */
#define TLS_IN_LEN  (64u << 10) /* ciphertext read buffer */
#define TLS_STAGE   (16u << 10) /* small buffers are coalesced up to one record */

static rpc_rbuf_t *rbuf_new(size_t cap)
{
    rpc_rbuf_t *rb = malloc(sizeof *rb + cap);

    if (rb == NULL)
        return NULL;
    rb->refs = 1;
    rb->cap = cap;
    return rb;
}

void rpc_rbuf_ref(rpc_rbuf_t *rb)
{
    rb->refs++;
}

void rpc_rbuf_unref(rpc_rbuf_t *rb)
{
    if (rb != NULL && --rb->refs == 0)
        free(rb);
}

rpc_wreq_t *rpc_wreq_new(rpc_frame_hdr_t *h, const ProtobufCMessage *msg, const void *raw,
                         size_t raw_len, const uv_buf_t *att, unsigned n_att, size_t max_frame,
                         int *err)
{
    uint64_t att_len = 0;
    size_t head_len;
    rpc_wreq_t *w;

    for (unsigned i = 0; i < n_att; i++)
        att_len += att[i].len;
    if (att_len > UINT32_MAX) {
        *err = RK_ETOOBIG;
        return NULL;
    }
    h->attach_len = (uint32_t)att_len;
    w = calloc(1, sizeof *w + (1 + n_att) * sizeof(uv_buf_t));
    if (w == NULL) {
        *err = RK_ENOMEM;
        return NULL;
    }
    w->head = rpc_frame_pack(h, msg, raw, raw_len, &head_len);
    if (w->head == NULL) {
        free(w);
        *err = RK_ENOMEM;
        return NULL;
    }
    w->bytes = head_len + att_len;
    if (w->bytes > max_frame) {
        free(w->head);
        free(w);
        *err = RK_ETOOBIG;
        return NULL;
    }
    w->bufs[0] = uv_buf_init((char *)w->head, (unsigned)head_len);
    w->nbufs = 1;
    for (unsigned i = 0; i < n_att; i++)
        if (att[i].len > 0)
            w->bufs[w->nbufs++] = att[i];
    return w;
}

void rpc_wreq_free(rpc_wreq_t *w)
{
    if (w == NULL)
        return;
    if (w->release != NULL)
        w->release(w->release_arg);
    free(w->head);
    free(w);
}

void rpc_conn_init(rpc_conn_t *c, const rpc_conn_ops_t *ops, void *owner, size_t max_frame)
{
    c->tcp.data = c;
    c->ops = ops;
    c->owner = owner;
    c->rb = NULL;
    c->rlen = 0;
    c->frame_need = 0;
    c->max_frame = max_frame;
    c->pending_out = 0;
    c->in_read = false;
    c->batch_head = c->batch_tail = NULL;
    c->batch_nbufs = 0;
    c->prep_open = false;
    c->prep_armed = false;
    c->close_left = 0;
    c->reading = false;
    c->closing = false;
    c->tls = NULL;
    c->tls_ready = false;
    c->tls_bytes_in = 0;
    c->tls_in = NULL;
    rk_status_clear(&c->close_status);
    snprintf(c->name, sizeof c->name, "?");
}

void rpc_conn_set_name_from_peer(rpc_conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        snprintf(c->name, sizeof c->name, "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        snprintf(c->name, sizeof c->name, "[%s]:%d", ip, port);
    }
}

/* Makes room for at least RBUF_MIN / 4 more bytes of plaintext in c->rb
 * (the whole frame being read when its length is known) and points buf at it.
 * buf gets a NULL base when there is no memory. */
static void rbuf_reserve(rpc_conn_t *c, uv_buf_t *buf)
{
    size_t want = c->rlen + RBUF_MIN;

    if (c->frame_need > want)
        want = c->frame_need;
    if (c->rb == NULL) {
        c->rb = rbuf_new(want);
    } else if (c->rb->cap - c->rlen < RBUF_MIN / 4 || c->rb->cap < c->frame_need) {
        rpc_rbuf_t *nb;
        if (c->rb->refs == 1) {
            nb = realloc(c->rb, sizeof *nb + want);
            if (nb != NULL)
                nb->cap = want;
        } else {
            nb = rbuf_new(want);
            if (nb != NULL) {
                memcpy(nb->data, c->rb->data, c->rlen);
                rpc_rbuf_unref(c->rb);
            }
        }
        if (nb == NULL) {
            *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
            return;
        }
        c->rb = nb;
    }
    if (c->rb == NULL) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)c->rb->data + c->rlen, (unsigned)(c->rb->cap - c->rlen));
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    rpc_conn_t *c = handle->data;

    (void)suggested;
    if (c->tls == NULL) {
        rbuf_reserve(c, buf);
        return;
    }
    /* TLS: ciphertext goes to its own buffer, plaintext into rb later. */
    if (c->tls_in == NULL)
        c->tls_in = malloc(TLS_IN_LEN);
    *buf = c->tls_in != NULL ? uv_buf_init((char *)c->tls_in, TLS_IN_LEN) : uv_buf_init(NULL, 0);
}

/* Drops parsed bytes [0, off) and keeps the tail for the next read. */
static void compact(rpc_conn_t *c, size_t off)
{
    size_t left = c->rlen - off;
    rpc_rbuf_t *rb = c->rb;

    if (off == 0 && rb->refs == 1)
        return;
    if (rb->refs > 1 || (rb->cap > RBUF_SHRINK && c->frame_need < RBUF_MIN)) {
        /* Someone holds the buffer (or it grew for one huge frame): move the
         * unparsed tail, at most one partial frame, to a fresh buffer. */
        size_t cap = c->frame_need > RBUF_MIN ? c->frame_need : RBUF_MIN;
        rpc_rbuf_t *nb = rbuf_new(cap < left ? left : cap);
        if (nb == NULL) {
            rpc_conn_close(c, RK_ENOMEM, "out of memory for a read buffer");
            return;
        }
        memcpy(nb->data, rb->data + off, left);
        rpc_rbuf_unref(rb);
        c->rb = nb;
    } else {
        memmove(rb->data, rb->data + off, left);
    }
    c->rlen = left;
}

static void flush_batch(rpc_conn_t *c);
static int tls_flush(rpc_conn_t *c, size_t plain_bytes);

/* Hands every complete frame in c->rb to on_frame, keeps the rest, and then
 * writes the answers collected meanwhile in one go. */
static void parse_input(rpc_conn_t *c)
{
    size_t off = 0;

    c->in_read = true;
    while (!c->closing && c->rb != NULL) {
        rpc_frame_hdr_t h;
        rk_status_t why;
        rpc_rbuf_t *rb = c->rb;
        long n = rpc_frame_next(rb->data + off, c->rlen - off, c->max_frame, &h, &why);

        if (n < 0) {
            rpc_conn_close(c, (int)n, "%s", why.msg);
            return;
        }
        if (n == 0) {
            c->frame_need = c->rlen - off >= RPC_FRAME_HDR_LEN
                                ? RPC_FRAME_HDR_LEN + (size_t)h.body_len + h.attach_len
                                : 0;
            break;
        }
        c->frame_need = 0;
        /* Hold the buffer across the callback: it may close the connection,
         * which must not free bytes the callee is still reading. */
        rpc_rbuf_ref(rb);
        c->ops->on_frame(c, &h, rb, rb->data + off + RPC_FRAME_HDR_LEN,
                         rb->data + off + RPC_FRAME_HDR_LEN + h.body_len);
        rpc_rbuf_unref(rb);
        off += (size_t)n;
    }
    c->in_read = false;
    if (!c->closing && c->rb != NULL)
        compact(c, off);
    flush_batch(c);
}

/* Sends what the TLS engine produced (an alert) without waiting, right
 * before a close that would cancel a queued write. */
static void tls_try_flush(rpc_conn_t *c)
{
    uint8_t out[512];
    size_t n = rpc_tls_take_out(c->tls, out, sizeof out);

    if (n > 0)
        (void)uv_try_write((uv_stream_t *)&c->tcp, &(uv_buf_t){.base = (char *)out, .len = n}, 1);
}

/* Ciphertext arrived: refuse what cannot be TLS, advance the handshake,
 * decrypt into rb and parse. No plaintext byte is parsed before the peer is
 * authenticated. */
static void tls_input(rpc_conn_t *c, const uint8_t *p, size_t n)
{
    rk_status_t why;

    if (c->tls_bytes_in == 0 && n >= 1 && p[0] != 0x16 && p[0] != 0x15) {
        /* A TLS connection starts with a handshake record (0x16 0x03), or
         * an alert when the other side refuses us at once. */
        if (n >= 2 && p[0] == (RPC_FRAME_MAGIC >> 8) && p[1] == (RPC_FRAME_MAGIC & 0xff))
            rpc_conn_close(c, RK_EPERM,
                           "plaintext raftkit client on a TLS port (configure it with TLS or the "
                           "cluster key)");
        else
            rpc_conn_close(c, RK_EPERM, "the peer does not speak TLS (first byte 0x%02x)", p[0]);
        return;
    }
    c->tls_bytes_in += n;
    if (rpc_tls_feed(c->tls, p, n) != 0) {
        rpc_conn_close(c, RK_ENOMEM, "out of memory for TLS input");
        return;
    }
    if (!c->tls_ready) {
        int r = rpc_tls_handshake(c->tls, &why);
        if (r < 0) {
            tls_try_flush(c);
            rpc_conn_close(c, why.code, "TLS handshake refused: %s", why.msg);
            return;
        }
        if (tls_flush(c, 0) != 0)
            return;
        if (r == 0)
            return;
        c->tls_ready = true;
    }
    for (;;) {
        uv_buf_t room;
        long got;

        rbuf_reserve(c, &room);
        if (room.base == NULL) {
            rpc_conn_close(c, RK_ENOMEM, "out of memory for a read buffer");
            return;
        }
        got = rpc_tls_read(c->tls, room.base, room.len, &why);
        if (got < 0) {
            rpc_conn_close(c, (int)got, "%s", why.msg);
            return;
        }
        if (got == 0)
            break;
        c->rlen += (size_t)got;
    }
    /* Post-handshake messages (key updates) may want an answer. */
    if (tls_flush(c, 0) != 0)
        return;
    parse_input(c);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    rpc_conn_t *c = stream->data;

    if (nread < 0) {
        if (c->tls != NULL && !c->tls_ready && nread == UV_EOF)
            rpc_conn_close(c, RK_EUNREACHABLE,
                           "connection closed during the TLS handshake (the other side may not "
                           "use TLS, or refused us: see its log)");
        else if (nread == UV_EOF && c->rlen > 0)
            rpc_conn_close(c, RK_EPROTO, "truncated frame: peer closed after %zu bytes of it",
                           c->rlen);
        else if (nread == UV_EOF)
            rpc_conn_close(c, RK_EUNREACHABLE, "connection closed by peer");
        else if (nread == UV_ENOBUFS)
            rpc_conn_close(c, RK_ENOMEM, "out of memory for a read buffer");
        else
            rpc_conn_close(c, RK_EUNREACHABLE, "read error: %s", uv_strerror((int)nread));
        return;
    }
    if (nread == 0 || c->closing)
        return;
    if (c->tls != NULL) {
        tls_input(c, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    c->rlen += (size_t)nread;
    parse_input(c);
}

int rpc_conn_read_start(rpc_conn_t *c)
{
    int rv;

    if (c->closing || c->reading)
        return 0;
    rv = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rv != 0)
        return RK_EUNREACHABLE;
    c->reading = true;
    return 0;
}

void rpc_conn_read_stop(rpc_conn_t *c)
{
    if (!c->reading || c->closing)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

static void write_cb(uv_write_t *req, int status)
{
    rpc_wreq_t *w = (rpc_wreq_t *)req;
    rpc_conn_t *c = w->conn;

    c->pending_out -= w->bytes;
    rpc_wreq_free(w);
    if (status < 0 && status != UV_ECANCELED)
        rpc_conn_close(c, RK_EUNREACHABLE, "write error: %s", uv_strerror(status));
    if (!c->closing && c->ops->on_write_done != NULL)
        c->ops->on_write_done(c);
}

/* Several frames in one uv_write. */
typedef struct wbatch {
    uv_write_t req;
    rpc_conn_t *conn;
    rpc_wreq_t *head;
    uv_buf_t bufs[];
} wbatch_t;

static void free_chain(rpc_conn_t *c, rpc_wreq_t *w)
{
    while (w != NULL) {
        rpc_wreq_t *next = w->next;
        c->pending_out -= w->bytes;
        rpc_wreq_free(w);
        w = next;
    }
}

static void batch_cb(uv_write_t *req, int status)
{
    wbatch_t *b = (wbatch_t *)req;
    rpc_conn_t *c = b->conn;

    free_chain(c, b->head);
    free(b);
    if (status < 0 && status != UV_ECANCELED)
        rpc_conn_close(c, RK_EUNREACHABLE, "write error: %s", uv_strerror(status));
    if (!c->closing && c->ops->on_write_done != NULL)
        c->ops->on_write_done(c);
}

/* Ciphertext on its way out. The frames it carries (chain) stay counted in
 * pending_out, and their attachments are released, when the kernel has it,
 * exactly as for a plaintext write. */
typedef struct tls_wreq {
    uv_write_t req;
    rpc_conn_t *conn;
    size_t plain_bytes;
    rpc_wreq_t *chain;
    uint8_t data[];
} tls_wreq_t;

static void free_wreqs(rpc_wreq_t *w)
{
    while (w != NULL) {
        rpc_wreq_t *next = w->next;
        rpc_wreq_free(w);
        w = next;
    }
}

static void tls_write_cb(uv_write_t *req, int status)
{
    tls_wreq_t *tw = (tls_wreq_t *)req;
    rpc_conn_t *c = tw->conn;

    c->pending_out -= tw->plain_bytes;
    free_wreqs(tw->chain);
    free(tw);
    if (status < 0 && status != UV_ECANCELED)
        rpc_conn_close(c, RK_EUNREACHABLE, "write error: %s", uv_strerror(status));
    if (!c->closing && c->ops->on_write_done != NULL)
        c->ops->on_write_done(c);
}

/* Writes every byte of ciphertext the engine holds, carrying chain (frames
 * of plain_bytes in pending_out; may be NULL). Returns 0, or an error after
 * closing c and freeing chain. */
static int tls_flush_chain(rpc_conn_t *c, size_t plain_bytes, rpc_wreq_t *chain)
{
    size_t n = rpc_tls_out_pending(c->tls);
    tls_wreq_t *tw;
    int rc = 0;

    if (n == 0) {
        c->pending_out -= plain_bytes;
        free_wreqs(chain);
        return 0;
    }
    tw = malloc(sizeof *tw + n);
    if (tw == NULL) {
        rc = RK_ENOMEM;
        rpc_conn_close(c, rc, "out of memory for a write");
        goto err;
    }
    tw->conn = c;
    tw->plain_bytes = plain_bytes;
    tw->chain = chain;
    n = rpc_tls_take_out(c->tls, tw->data, n);
    if (uv_write(&tw->req, (uv_stream_t *)&c->tcp, &(uv_buf_t){.base = (char *)tw->data, .len = n},
                 1, tls_write_cb) != 0) {
        free(tw);
        rc = RK_EUNREACHABLE;
        rpc_conn_close(c, rc, "write refused");
        goto err;
    }
    return 0;
err:
    c->pending_out -= plain_bytes;
    free_wreqs(chain);
    return rc;
}

static int tls_flush(rpc_conn_t *c, size_t plain_bytes)
{
    return tls_flush_chain(c, plain_bytes, NULL);
}

/* Encrypts a chain of frames (counted in pending_out) and writes it. Small
 * buffers are coalesced so that a batch of small frames costs few records.
 * Returns 0 or an error after closing c; the chain is consumed either way. */
static int tls_send_chain(rpc_conn_t *c, rpc_wreq_t *head)
{
    uint8_t stage[TLS_STAGE];
    size_t staged = 0, plain = 0;
    int rc = 0;

    for (rpc_wreq_t *w = head; w != NULL; w = w->next) {
        plain += w->bytes;
        for (unsigned i = 0; i < w->nbufs && rc == 0; i++) {
            const uv_buf_t *b = &w->bufs[i];
            if (staged + b->len <= sizeof stage) {
                memcpy(stage + staged, b->base, b->len);
                staged += b->len;
                continue;
            }
            if (staged > 0)
                rc = rpc_tls_write(c->tls, stage, staged);
            staged = 0;
            if (rc == 0 && b->len < sizeof stage) {
                memcpy(stage, b->base, b->len);
                staged = b->len;
            } else if (rc == 0) {
                rc = rpc_tls_write(c->tls, b->base, b->len);
            }
        }
    }
    if (rc == 0 && staged > 0)
        rc = rpc_tls_write(c->tls, stage, staged);
    if (rc != 0) {
        c->pending_out -= plain;
        free_wreqs(head);
        rpc_conn_close(c, rc, "TLS encryption failed");
        return rc;
    }
    return tls_flush_chain(c, plain, head);
}

static void flush_batch(rpc_conn_t *c)
{
    rpc_wreq_t *head = c->batch_head;
    wbatch_t *b;
    unsigned n = 0;

    if (head == NULL || (c->tls != NULL && !c->tls_ready))
        return;
    c->batch_head = c->batch_tail = NULL;
    if (c->tls != NULL) {
        c->batch_nbufs = 0;
        (void)tls_send_chain(c, head);
        return;
    }
    if (head->next == NULL) {
        c->batch_nbufs = 0;
        if (uv_write(&head->req, (uv_stream_t *)&c->tcp, head->bufs, head->nbufs, write_cb) != 0) {
            free_chain(c, head);
            rpc_conn_close(c, RK_EUNREACHABLE, "write refused");
        }
        return;
    }
    b = malloc(sizeof *b + c->batch_nbufs * sizeof(uv_buf_t));
    if (b == NULL) {
        c->batch_nbufs = 0;
        free_chain(c, head);
        rpc_conn_close(c, RK_ENOMEM, "out of memory for a write");
        return;
    }
    b->conn = c;
    b->head = head;
    for (rpc_wreq_t *w = head; w != NULL; w = w->next)
        for (unsigned i = 0; i < w->nbufs; i++)
            b->bufs[n++] = w->bufs[i];
    c->batch_nbufs = 0;
    if (uv_write(&b->req, (uv_stream_t *)&c->tcp, b->bufs, n, batch_cb) != 0) {
        free_chain(c, head);
        free(b);
        rpc_conn_close(c, RK_EUNREACHABLE, "write refused");
    }
}

void rpc_conn_flush(rpc_conn_t *c)
{
    if (!c->closing && !c->in_read && c->batch_head != NULL)
        flush_batch(c);
}

static void prep_cb(uv_prepare_t *h)
{
    rpc_conn_t *c = h->data;
    uv_prepare_stop(h);
    c->prep_armed = false;
    if (!c->closing)
        flush_batch(c);
}

int rpc_conn_write(rpc_conn_t *c, rpc_wreq_t *w)
{
    if (c->closing)
        return RK_ESHUTDOWN;
    w->conn = c;
    /* Outside a read the batch goes out before the loop polls again. */
    if (!c->in_read && !c->prep_armed) {
        if (!c->prep_open) {
            if (uv_prepare_init(c->tcp.loop, &c->flush_prep) != 0)
                return RK_EUNREACHABLE;
            c->flush_prep.data = c;
            c->prep_open = true;
        }
        uv_prepare_start(&c->flush_prep, prep_cb);
        c->prep_armed = true;
    }
    /* Every frame waits in the batch: until the read callback ends, until
     * the loop is about to poll, or on a TLS connection until the peer is
     * authenticated. */
    w->next = NULL;
    if (c->batch_tail != NULL)
        c->batch_tail->next = w;
    else
        c->batch_head = w;
    c->batch_tail = w;
    c->batch_nbufs += w->nbufs;
    c->pending_out += w->bytes;
    return 0;
}

int rpc_conn_set_tls(rpc_conn_t *c, struct rpc_tls *tls)
{
    rk_status_t why;

    c->tls = tls;
    c->tls_ready = false;
    /* A client speaks first: its hello goes out now. */
    if (rpc_tls_handshake(tls, &why) < 0) {
        rpc_conn_close(c, why.code, "TLS handshake: %s", why.msg);
        return why.code;
    }
    return tls_flush(c, 0);
}

static void close_cb(uv_handle_t *handle)
{
    rpc_conn_t *c = handle->data;

    if (--c->close_left > 0)
        return;
    rpc_rbuf_unref(c->rb);
    c->rb = NULL;
    free(c->tls_in);
    c->tls_in = NULL;
    rpc_tls_free(c->tls);
    c->tls = NULL;
    c->ops->on_closed(c);
}

void rpc_conn_close(rpc_conn_t *c, int code, const char *fmt, ...)
{
    va_list ap;

    if (c->closing)
        return;
    c->closing = true;
    /* Frames still collected in a batch never reached libuv: release them
     * here, as libuv releases the ones it had by canceling them. */
    free_chain(c, c->batch_head);
    c->batch_head = c->batch_tail = NULL;
    c->batch_nbufs = 0;
    va_start(ap, fmt);
    rk_status_vset(&c->close_status, code, fmt, ap);
    va_end(ap);
    c->close_left = c->prep_open ? 2 : 1;
    if (c->prep_open)
        uv_close((uv_handle_t *)&c->flush_prep, close_cb);
    uv_close((uv_handle_t *)&c->tcp, close_cb);
}

int rpc_endpoint_addr(const char *endpoint, struct sockaddr_storage *ss, rk_status_t *err)
{
    char host[64];
    const char *colon;
    const char *hs = endpoint;
    size_t hl;
    char *end;
    unsigned long port;

    memset(ss, 0, sizeof *ss);
    if (endpoint == NULL)
        return rk_status_set(err, RK_EINVAL, "no endpoint");
    if (endpoint[0] == '[') {
        const char *rb = strchr(endpoint, ']');
        if (rb == NULL || rb[1] != ':')
            return rk_status_set(err, RK_EINVAL, "bad IPv6 endpoint '%s'", endpoint);
        hs = endpoint + 1;
        hl = (size_t)(rb - hs);
        colon = rb + 1;
    } else {
        colon = strrchr(endpoint, ':');
        if (colon == NULL)
            return rk_status_set(err, RK_EINVAL, "endpoint '%s' has no port", endpoint);
        hl = (size_t)(colon - endpoint);
    }
    if (hl == 0 || hl >= sizeof host)
        return rk_status_set(err, RK_EINVAL, "bad host in '%s'", endpoint);
    memcpy(host, hs, hl);
    host[hl] = '\0';
    port = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port == 0 || port > 65535)
        return rk_status_set(err, RK_EINVAL, "bad port in '%s'", endpoint);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return rk_status_set(err, RK_EINVAL, "'%s' is not an IP address", host);
}
