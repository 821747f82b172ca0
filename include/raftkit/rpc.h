/* Application RPC: register your own methods on the port a raftkit server
 * already listens on (JRaft applications register processors the same way),
 * and call them, or any raftkit CLI method, from a client program.
 *
 * Bodies are opaque bytes; encode them as you like (the examples use
 * protobuf-c). Method ids from RK_RPC_APP_FIRST up belong to applications;
 * lower ids are raftkit's.
 *
 * Server side:
 *
 *   rk_server_t *srv = rk_server_new(&listen, &st);           // node.h
 *   rk_rpc_server_t *rs = rk_rpc_server_attach(srv, &st);
 *   rk_rpc_server_register(rs, MY_METHOD, my_handler, my_arg);
 *   svc = rk_group_service_new_shared(group, &self, &opts, srv, &st);
 *   ...
 *   rk_rpc_server_detach(rs);   // first: handlers may use the nodes
 *   (shut down, join and free every group service)
 *   rk_server_free(srv);
 *
 * raftkit's CLI service (membership, leader, snapshot and status requests,
 * as used by raftkit-cli) is served on every server without attaching.
 *
 * Client side (blocking calls on a private event loop; one thread at a time):
 *
 *   rk_rpc_client_t *c = rk_rpc_client_new(NULL);
 *   rk_rpc_reply_t r;
 *   rk_rpc_client_call(c, &ep, MY_METHOD, req, req_len, 1000, &r);
 *   ... r.status, r.body, r.len, r.maybe_delivered ...
 *   rk_rpc_reply_release(&r);
 *   rk_rpc_client_free(c);
 */
#ifndef RAFTKIT_RPC_H
#define RAFTKIT_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkit/node.h"
#include "raftkit/peer.h"
#include "raftkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; what is declared here is its API. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* First method id available to applications. */
#define RK_RPC_APP_FIRST 1024u

/* ---- server ---- */

typedef struct rk_rpc_server rk_rpc_server_t;
typedef struct rk_rpc_call rk_rpc_call_t;

/* A method handler. Runs on the server's loop thread and must not block
 * (hand slow work to another thread). body/len is the request, valid until
 * the call is completed. The handler (or whoever it hands the call to) must
 * complete the call exactly once with rk_rpc_call_reply or rk_rpc_call_fail,
 * from any thread. */
typedef void (*rk_rpc_handler_fn)(rk_rpc_call_t *call, const void *body, size_t len, void *arg);

/* Wraps the RPC port of srv so that the application can register methods on
 * it. Returns NULL with err set (RK_EINVAL, RK_ENOMEM). Any thread but srv's
 * loop thread; srv must outlive the returned handle. */
rk_rpc_server_t *rk_rpc_server_attach(rk_server_t *srv, rk_status_t *err);

/* Registers fn for method (>= RK_RPC_APP_FIRST). Returns 0, RK_EINVAL (s or
 * fn NULL, or method below RK_RPC_APP_FIRST), RK_EEXIST (already
 * registered), RK_ETOOBIG (the handle holds its maximum of methods),
 * RK_ESHUTDOWN (the server is stopping). Any thread but the loop's. */
int rk_rpc_server_register(rk_rpc_server_t *s, uint32_t method, rk_rpc_handler_fn fn, void *arg);

/* Unregisters the handle's methods and frees it. When it returns, no new
 * request reaches the handlers (clients get RK_ENOTFOUND); calls already
 * handed to a handler must still be completed with rk_rpc_call_reply/_fail:
 * rk_server_free waits for them. Any thread but the loop's; before
 * rk_server_free. */
void rk_rpc_server_detach(rk_rpc_server_t *s);

/* Completes call with a response body (copied before return; body may be
 * NULL when len is 0). Any thread, exactly once per call (either this or
 * rk_rpc_call_fail). Returns 0 when the call is completed (if the copy cannot
 * be allocated the client gets RK_ENOMEM instead), or RK_EINVAL when call is
 * NULL or body is NULL with len > 0: then nothing happened and the call must
 * still be completed. */
int rk_rpc_call_reply(rk_rpc_call_t *call, const void *body, size_t len);

/* Completes call with an error: the client sees code (an RK_E* value; 0
 * becomes RK_EINTERNAL) and msg (may be NULL; truncated to fit
 * rk_status_t.msg). Any thread, exactly once per call. */
void rk_rpc_call_fail(rk_rpc_call_t *call, int code, const char *msg);

/* Remote address of the call, for log lines; valid until completion. */
const char *rk_rpc_call_peer(const rk_rpc_call_t *call);

/* ---- client ---- */

typedef struct rk_rpc_client rk_rpc_client_t;

typedef struct rk_rpc_client_options {
    int connect_timeout_ms; /* connect + handshake; 0: 1000 */
    const char *name;       /* shown in the server's log lines; NULL: "raftkit-client" */
} rk_rpc_client_options_t;

/* The outcome of a call. */
typedef struct rk_rpc_reply {
    rk_status_t status; /* RK_OK with a body, the server's error (rk_rpc_call_fail),
                         * or a transport error: RK_ETIMEDOUT, RK_EUNREACHABLE, ... */
    void *body;         /* response bytes (malloc'd; rk_rpc_reply_release frees) */
    size_t len;
    /* false only when the request certainly did not reach the server's
     * handler: it was never written to a connection (connection refused,
     * no connection before the timeout); true after any answer and whenever
     * the transport cannot tell (timeout or connection lost after the
     * request was written). A client deciding whether a write may have
     * happened must read this, not just the code. */
    bool maybe_delivered;
} rk_rpc_reply_t;

/* Creates a client (opts may be NULL). Returns NULL when out of memory. */
rk_rpc_client_t *rk_rpc_client_new(const rk_rpc_client_options_t *opts);

/* Calls method on the server at ep and waits for the answer, at most
 * timeout_ms (<= 0: 5000) in all (connecting included). Returns
 * out->status.code, with out->status.msg saying what went wrong: RK_EINVAL
 * for bad arguments (which one is named; with out NULL nothing is
 * written), RK_ETOOBIG for a request over the 64 MiB frame limit, a
 * transport error, or the server's error. out must be released with
 * rk_rpc_reply_release. A client is used by one thread at a time.
 * ep's host may be a DNS name: it is resolved by the system resolver on
 * libuv's thread pool while the call waits (within timeout_ms), again at
 * each new connection, so a server that moved under its name is found; a
 * name that does not resolve fails the call with RK_EUNREACHABLE ("cannot
 * resolve ..."), maybe_delivered false. rk_rpc_client_free may wait for a
 * lookup the resolver is still running. */
int rk_rpc_client_call(rk_rpc_client_t *c, const rk_endpoint_t *ep, uint32_t method,
                       const void *body, size_t len, int timeout_ms, rk_rpc_reply_t *out);

/* Frees out->body (NULL-safe, idempotent). */
void rk_rpc_reply_release(rk_rpc_reply_t *out);

/* Closes every connection and frees the client. */
void rk_rpc_client_free(rk_rpc_client_t *c);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* RAFTKIT_RPC_H */
