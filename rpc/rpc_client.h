/* The RPC client: one channel per remote endpoint, each with at most one TCP
 * connection that is (re)established on demand with capped exponential
 * backoff. Requests on a channel are pipelined and matched to responses by
 * correlation id; each has a timeout. One-way frames (Raft messages) keep no
 * state after they are written.
 *
 * Threading: every function here must be called on the thread running the
 * client's loop; callbacks run on that thread.
 *
 * Reachability: a channel is reachable while its connection is up and the
 * handshake done. While it is down between retries, calls and sends fail at
 * once with RK_EUNREACHABLE (so Raft replication backs off instead of
 * queueing); while a connection attempt is in progress they are queued. The
 * on_reachability callback and one log line report each change of state, not
 * each retry.
 *
 * Memory is bounded per channel: frames queued or handed to the kernel but not
 * yet written count against max_pending_out; past it calls and sends fail with
 * RK_EBUSY (a single frame is always accepted on an empty queue).
 */
#ifndef RPC_CLIENT_H
#define RPC_CLIENT_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "raftkit/status.h"
#include "rpc/rpc_conn.h"
#include "rpc/rpc_method.h"

typedef struct rpc_client rpc_client_t;
typedef struct rpc_channel rpc_channel_t;

typedef void (*rpc_reach_fn)(void *arg, rpc_channel_t *ch, bool reachable, const rk_status_t *why);

typedef struct rpc_client_opts {
    size_t max_frame;             /* 0: RPC_DEFAULT_MAX_FRAME (64 MiB) */
    size_t max_pending_out;       /* per channel; 0: 16 MiB */
    uint32_t connect_timeout_ms;  /* connect + handshake; 0: 3000 */
    uint32_t backoff_min_ms;      /* first retry delay after a failed attempt; 0: 100 */
    uint32_t backoff_max_ms;      /* cap of the doubling delay; 0: 5000 */
    const char *name;             /* sent in the handshake; copied */
    rpc_reach_fn on_reachability; /* may be NULL */
    void *arg;
    /* TLS (rpc_tls.h, a client context; the client takes a reference), or
     * NULL for plaintext. Every connection then completes a TLS handshake
     * (counted in connect_timeout_ms) before its first frame; a refusal
     * makes the channel unreachable with the cause in the message. */
    struct rpc_tls_ctx *tls;
} rpc_client_opts_t;

/* What a request carries. msg is packed at call time (or body/body_len is
 * sent as is when msg is NULL); attachment buffers are written without a
 * copy and must stay valid until release(release_arg) runs. If the call or
 * send returns an error, release is not run and the buffers are still the
 * caller's. */
typedef struct rpc_req {
    uint32_t method;
    const ProtobufCMessage *msg;
    const void *body;
    size_t body_len;
    const uv_buf_t *attach;
    unsigned n_attach;
    rpc_release_fn release;
    void *release_arg;
    /* Response message; NULL: the built-in method's response, or the raw body
     * for application methods. Calls only. */
    const ProtobufCMessageDescriptor *resp_desc;
    uint32_t timeout_ms; /* calls only; 0: 5000 */
    /* Calls only, may be NULL: set to true when the request frame is handed
     * to an established connection (from then on the server may execute it,
     * whatever the outcome says); left false when the call ends before that
     * (never connected, connection not ready before the timeout, channel
     * closed first). Must stay valid until the callback has run. */
    bool *sent;
} rpc_req_t;

/* A response handed to a call's callback; everything in it is valid only
 * during the callback. */
typedef struct rpc_resp {
    uint32_t method;
    const ProtobufCMessage *msg; /* decoded, or NULL for a raw body */
    const uint8_t *body;
    size_t body_len;
    const uint8_t *attach;
    size_t attach_len;
} rpc_resp_t;

/* Runs exactly once per accepted call. st->code is 0 with resp, or an error
 * with resp NULL: the server's ErrorResponse code and message, RK_ETIMEDOUT,
 * RK_EUNREACHABLE (connection failed, or lost with the request in flight:
 * rpc_req_t.sent tells which),
 * RK_EPROTO (undecodable response), RK_ECANCELED (channel closed),
 * RK_ESHUTDOWN (client closed). */
typedef void (*rpc_resp_fn)(void *arg, const rk_status_t *st, const rpc_resp_t *resp);

/* Creates a client on loop. Returns NULL when out of memory. */
rpc_client_t *rpc_client_new(uv_loop_t *loop, const rpc_client_opts_t *opts);

/* Fails every outstanding call with RK_ESHUTDOWN (callbacks run inside this
 * function), closes all channels and frees the client; cb (may be NULL) runs
 * when all handles are closed. */
void rpc_client_close(rpc_client_t *c, void (*cb)(void *arg), void *arg);

/* The channel to endpoint ("ip:port", "[v6]:port" or "name:port"; one
 * channel per endpoint, host compared case-insensitively), created on first
 * use. Connecting starts with the first call or send. A host name is
 * resolved asynchronously before every connection attempt; one that does not
 * resolve makes the channel unreachable until it does (retried with the
 * usual backoff). Returns NULL with RK_EINVAL (bad endpoint, see
 * rk_endpoint_parse) or RK_ENOMEM in err. The channel lives until
 * rpc_channel_close or rpc_client_close. */
rpc_channel_t *rpc_client_channel(rpc_client_t *c, const char *endpoint, rk_status_t *err);

/* Sends a request; cb runs exactly once with the outcome. Returns 0, or
 * without running cb: RK_EUNREACHABLE (down, waiting to retry), RK_EBUSY
 * (pending output over the bound), RK_ETOOBIG (frame over max_frame),
 * RK_EINVAL, RK_ENOMEM, RK_ESHUTDOWN. */
int rpc_channel_call(rpc_channel_t *ch, const rpc_req_t *req, rpc_resp_fn cb, void *arg);

/* Sends a one-way frame: no correlation entry, no response. Returns 0 once
 * the frame is queued or written (release runs later), or the same errors as
 * rpc_channel_call, quickly and without blocking. */
int rpc_channel_send(rpc_channel_t *ch, const rpc_req_t *req);

/* Starts connecting now if the channel is idle (e.g. to learn reachability). */
void rpc_channel_connect(rpc_channel_t *ch);

bool rpc_channel_reachable(const rpc_channel_t *ch);
const char *rpc_channel_endpoint(const rpc_channel_t *ch);
/* Calls waiting for a response on this channel. */
unsigned rpc_channel_inflight(const rpc_channel_t *ch);
/* Bytes queued or being written on this channel. */
size_t rpc_channel_pending_out(const rpc_channel_t *ch);
/* Hands every frame of c's connections still waiting for the end of the
 * loop iteration to the kernel now (rpc_conn_flush). Loop thread. */
void rpc_client_flush(rpc_client_t *c);

/* Fails the channel's calls with RK_ECANCELED and drops it. */
void rpc_channel_close(rpc_channel_t *ch);

#endif /* RPC_CLIENT_H */
