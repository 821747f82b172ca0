/* One TCP connection's byte plumbing, shared by the server and the client:
 * reading frames into reference-counted buffers (so a handler can keep a
 * request's attachment without copying it), writing a frame as a list of
 * buffers (header+body plus caller-owned attachment buffers, no copy), and a
 * count of bytes handed to the kernel but not yet written, which the owners
 * bound. Loop thread only.
 */
#ifndef RPC_CONN_H
#define RPC_CONN_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "raftkit/status.h"
#include "rpc/rpc_frame.h"

/* A read buffer. Frames parsed out of it point into data; whoever needs a
 * frame's bytes after the frame callback returns takes a reference. */
typedef struct rpc_rbuf {
    uint32_t refs;
    size_t cap;
    uint8_t data[];
} rpc_rbuf_t;

void rpc_rbuf_ref(rpc_rbuf_t *rb);
void rpc_rbuf_unref(rpc_rbuf_t *rb);

/* Called exactly once when attachment buffers handed to a write are no longer
 * needed (written, failed or canceled). */
typedef void (*rpc_release_fn)(void *arg);

/* One frame on its way out: header+body in head, then the attachments. */
typedef struct rpc_wreq {
    uv_write_t req;
    struct rpc_conn *conn;
    struct rpc_wreq *next; /* owner's queue while the connection is not ready */
    void *owner_data;      /* e.g. the client call waiting for this frame */
    size_t bytes;
    rpc_release_fn release;
    void *release_arg;
    uint8_t *head;
    unsigned nbufs;
    uv_buf_t bufs[];
} rpc_wreq_t;

/* Builds a frame to write. The body is msg packed, or raw/raw_len when msg is
 * NULL; att[0..n_att) are referenced, not copied, and must stay valid until
 * release runs (set w->release afterwards). Returns the request, or NULL with
 * *err = RK_ENOMEM, or RK_ETOOBIG when the frame would exceed max_frame. */
rpc_wreq_t *rpc_wreq_new(rpc_frame_hdr_t *h, const ProtobufCMessage *msg, const void *raw,
                         size_t raw_len, const uv_buf_t *att, unsigned n_att, size_t max_frame,
                         int *err);

/* Frees a frame that was never written (or was), running its release. */
void rpc_wreq_free(rpc_wreq_t *w);

typedef struct rpc_conn rpc_conn_t;

typedef struct rpc_conn_ops {
    /* A complete frame. body and attach point into rb and stay valid after the
     * return only if the callee took a reference on rb. May close c. */
    void (*on_frame)(rpc_conn_t *c, const rpc_frame_hdr_t *h, rpc_rbuf_t *rb, const uint8_t *body,
                     const uint8_t *attach);
    /* Bytes handed to the kernel completed; pending_out went down. */
    void (*on_write_done)(rpc_conn_t *c);
    /* The handle is closed (c->close_status says why); the owner may free c. */
    void (*on_closed)(rpc_conn_t *c);
} rpc_conn_ops_t;

struct rpc_conn {
    uv_tcp_t tcp;
    const rpc_conn_ops_t *ops;
    void *owner;
    rpc_rbuf_t *rb;
    size_t rlen;       /* bytes of rb->data holding unparsed input */
    size_t frame_need; /* total length of the frame being read, 0 if unknown */
    size_t max_frame;
    size_t pending_out; /* bytes in uv_write requests not yet completed */
    /* Frames written while a read is being processed are collected and
     * handed to the kernel in one writev when the read callback ends, so a
     * batch of pipelined requests gets its answers in one system call. */
    bool in_read;
    rpc_wreq_t *batch_head, *batch_tail;
    unsigned batch_nbufs;
    /* Frames written outside a read wait in the same batch until the loop
     * is about to poll again (flush_prep, a prepare handle set up on the
     * first such write): a runtime driving many groups in one loop
     * iteration sends each peer one writev, not one write per message. */
    uv_prepare_t flush_prep;
    bool prep_open;  /* flush_prep initialized (closed with the connection) */
    bool prep_armed; /* flush_prep started */
    int close_left;  /* handles still closing */
    bool reading;
    bool closing;
    rk_status_t close_status;
    char name[96]; /* remote address, for log lines */
    /* TLS (rpc_tls.h), NULL for plaintext. Until tls_ready no plaintext is
     * parsed, and frames written meanwhile wait in the batch list. */
    struct rpc_tls *tls;
    bool tls_ready;
    uint64_t tls_bytes_in; /* ciphertext bytes read so far */
    uint8_t *tls_in;       /* ciphertext read buffer */
};

/* Prepares c around an initialized c->tcp (uv_tcp_init done by the owner). */
void rpc_conn_init(rpc_conn_t *c, const rpc_conn_ops_t *ops, void *owner, size_t max_frame);

/* Fills c->name from the peer address of the connected handle. */
void rpc_conn_set_name_from_peer(rpc_conn_t *c);

/* Makes c a TLS connection (before reading starts); c owns tls from now on.
 * A client side then sends its hello at once. Returns 0 or RK_ENOMEM. */
int rpc_conn_set_tls(rpc_conn_t *c, struct rpc_tls *tls);

int rpc_conn_read_start(rpc_conn_t *c);
void rpc_conn_read_stop(rpc_conn_t *c);

/* Hands a frame to the kernel (from inside a read callback: at its end,
 * together with the other frames written meanwhile). On success the conn owns
 * w (freed, and its release run, when the write completes or fails). On error
 * (RK_ESHUTDOWN when closing, RK_EUNREACHABLE when libuv refuses) w is still
 * the caller's. */
int rpc_conn_write(rpc_conn_t *c, rpc_wreq_t *w);

/* Hands the frames waiting in c's batch to the kernel now rather than when
 * the loop is about to poll (a caller about to block the loop, e.g. on a
 * disk flush, lets the network go first). */
void rpc_conn_flush(rpc_conn_t *c);

/* Starts closing with a reason (idempotent: the first reason wins). Pending
 * writes are canceled; ops->on_closed runs from the loop afterwards. */
void rpc_conn_close(rpc_conn_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses "ip:port" or "[ipv6]:port" ("localhost" means 127.0.0.1) into ss.
 * Returns 0 or RK_EINVAL with the reason in err. Other host names are not
 * resolved here (it never blocks): the RPC client resolves them on its loop
 * (rpc_resolve.h) before each connection attempt. */
int rpc_endpoint_addr(const char *endpoint, struct sockaddr_storage *ss, rk_status_t *err);

#endif /* RPC_CONN_H */
