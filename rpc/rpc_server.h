/* The RPC server: listens on one endpoint, performs the handshake, routes
 * each request to the handler registered for its method and, for routed
 * methods, to the (group_id, peer_id) it is addressed to, so many Raft groups
 * and peers share one port (JRaft's NodeManager).
 *
 * Threading: every function here must be called on the thread running the
 * server's loop, and handlers run on that thread.
 *
 * Requests that cannot be served get an ErrorResponse (unknown method:
 * RK_ENOTFOUND, unknown group: RK_ENOGROUP, unknown peer: RK_EUNKNOWNPEER);
 * the same for a one-way frame is dropped with a rate-limited log line. A bad
 * magic, an oversized length, a truncated or undecodable frame closes that
 * connection with one log line; everyone else is served on.
 *
 * Memory is bounded per connection: a connection stops being read while it
 * has max_inflight calls outstanding or more than half of max_pending_out
 * bytes of responses unwritten, and is closed if a response would push the
 * unwritten bytes past max_pending_out (a peer that does not read).
 */
#ifndef RPC_SERVER_H
#define RPC_SERVER_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "raftkit/status.h"
#include "rpc/rpc_conn.h"
#include "rpc/rpc_method.h"

typedef struct rpc_server rpc_server_t;
typedef struct rpc_call rpc_call_t;

typedef struct rpc_server_opts {
    size_t max_frame;              /* largest frame accepted; 0: RPC_DEFAULT_MAX_FRAME (64 MiB) */
    size_t max_pending_out;        /* unwritten response bytes per connection; 0: 16 MiB */
    uint32_t max_inflight;         /* outstanding calls per connection; 0: 1024 */
    uint32_t handshake_timeout_ms; /* close connections without a handshake; 0: 10000 */
    const char *name;              /* shown to clients and in logs; copied */
    /* TLS (rpc_tls.h, a server context; the server takes a reference), or
     * NULL for plaintext. With TLS a connection is closed, before any frame
     * is parsed, unless it completes the TLS handshake within
     * handshake_timeout_ms; each request is then checked against the
     * connection's roles (rpc_method_role) and refused with RK_EPERM. */
    struct rpc_tls_ctx *tls;
} rpc_server_opts_t;

/* Handler for one method. Runs on the loop thread. It must complete the call
 * exactly once, now or later: rpc_call_reply*, rpc_call_fail or
 * rpc_call_done. The request and its attachment stay valid until then. */
typedef void (*rpc_handler_fn)(rpc_call_t *call, void *arg);

/* Creates a server on loop. Returns NULL when out of memory. */
rpc_server_t *rpc_server_new(uv_loop_t *loop, const rpc_server_opts_t *opts);

/* Binds and listens on host:port (port 0: any free port, see
 * rpc_server_port). Returns 0, RK_EINVAL for a bad address, RK_EEXIST when
 * already listening, or RK_EIO with the system's reason in err. */
int rpc_server_listen(rpc_server_t *s, const char *host, uint16_t port, rk_status_t *err);

/* The bound port, 0 when not listening. */
uint16_t rpc_server_port(const rpc_server_t *s);

/* Registers a handler. Built-in methods (rpc_method.h) decode with their
 * registered message and flags: pass desc = NULL, flags = 0. Application
 * methods (id >= RPC_M_APP_FIRST) pass their request descriptor, or NULL to
 * receive the raw body, and RPC_MF_ROUTED if the request has group_id and
 * peer_id fields to route by. Returns 0, RK_EINVAL (bad id, NULL fn, or a
 * descriptor for a built-in, RPC_MF_ROUTED without a descriptor), RK_EEXIST when
 * the method already has a handler. */
int rpc_server_register(rpc_server_t *s, uint32_t method, const ProtobufCMessageDescriptor *desc,
                        unsigned flags, rpc_handler_fn fn, void *arg);

/* Removes method's handler: from now on a request for it gets the same
 * RK_ENOTFOUND ErrorResponse as a method that was never registered, so the
 * handler's arg may be freed as soon as this returns. Calls already handed to
 * the handler are not affected (they are completed as usual). Returns 0 or
 * RK_ENOTFOUND (no handler registered). */
int rpc_server_unregister(rpc_server_t *s, uint32_t method);

/* Declares that (group_id, peer_id) is served here; ctx is handed to the
 * handlers of routed requests addressed to it (rpc_call_route_ctx). A routed
 * request with an empty peer_id goes to the group's first route. Strings are
 * copied. Returns 0, RK_EINVAL, RK_EEXIST, RK_ENOMEM. */
int rpc_server_add_route(rpc_server_t *s, const char *group_id, const char *peer_id, void *ctx);

/* Returns 0 or RK_ENOTFOUND. Calls already dispatched keep their ctx. */
int rpc_server_remove_route(rpc_server_t *s, const char *group_id, const char *peer_id);

/* ctx of the route (group_id, peer_id) as a routed request would match it,
 * or NULL: for messages that carry several routed items in one frame (the
 * handler routes each item itself). */
void *rpc_server_route_lookup(const rpc_server_t *s, const char *group_id, const char *peer_id);

/* Stops listening and closes every connection. Calls still outstanding may be
 * completed afterwards (their responses are dropped). cb runs once every
 * handle is closed and every call completed; then s is freed. */
void rpc_server_close(rpc_server_t *s, void (*cb)(void *arg), void *arg);

typedef struct rpc_server_stats {
    uint64_t accepted;         /* connections accepted */
    uint64_t closed_bad_input; /* connections closed for protocol errors */
    uint64_t closed_slow;      /* connections closed for not reading responses */
    uint64_t requests;         /* frames dispatched to handlers */
    uint64_t rejected;         /* requests answered with routing errors or dropped */
    uint64_t paused;           /* times a connection's reading was paused */
    uint64_t frames;           /* frames parsed, handshakes included */
    uint64_t tls_refused;      /* connections closed before completing the TLS handshake */
    uint64_t denied;           /* requests refused for the connection's identity (RK_EPERM) */
    size_t max_pending_out_seen;
    uint32_t connections; /* open now */
} rpc_server_stats_t;

void rpc_server_stats(const rpc_server_t *s, rpc_server_stats_t *st);

/* ---- the call handle a handler completes ---- */

uint32_t rpc_call_method(const rpc_call_t *call);
bool rpc_call_is_oneway(const rpc_call_t *call);
/* Decoded request, or NULL for a raw application method. */
const ProtobufCMessage *rpc_call_request(const rpc_call_t *call);
const uint8_t *rpc_call_body(const rpc_call_t *call, size_t *len);
/* Attachment bytes; valid until the call completes, never copied. */
const uint8_t *rpc_call_attachment(const rpc_call_t *call, size_t *len);
/* ctx of the route a routed request matched (NULL for unrouted methods). */
void *rpc_call_route_ctx(const rpc_call_t *call);
/* The group id of a routed request ("" otherwise). */
const char *rpc_call_group(const rpc_call_t *call);
/* Remote address for log lines. */
const char *rpc_call_peer_name(const rpc_call_t *call);

/* Completes a request with a response: resp packed (or raw body/len when resp
 * is NULL) plus attachment buffers written without copying; release (may be
 * NULL) runs exactly once when they are no longer needed, also when the
 * connection is already gone. For a one-way call nothing is sent. */
void rpc_call_reply(rpc_call_t *call, const ProtobufCMessage *resp, const uv_buf_t *att,
                    unsigned n_att, rpc_release_fn release, void *release_arg);
void rpc_call_reply_raw(rpc_call_t *call, const void *body, size_t len, const uv_buf_t *att,
                        unsigned n_att, rpc_release_fn release, void *release_arg);

/* Completes a request with an ErrorResponse {code, msg}. */
void rpc_call_fail(rpc_call_t *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Completes without a response (one-way calls; for a request this sends an
 * empty body). */
void rpc_call_done(rpc_call_t *call);

#endif /* RPC_SERVER_H */
