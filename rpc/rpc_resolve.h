/* Host name resolution for RPC endpoints. IP literals are parsed at once;
 * host names go through uv_getaddrinfo, which runs getaddrinfo on libuv's
 * thread pool, so the loop never waits for a resolver. Callers resolve again
 * on every (re)connect: nothing is cached, so a name that moved to another
 * address (a restarted pod, an edited /etc/hosts) is found at the next
 * attempt.
 *
 * Loop thread only, except rpc_resolve_sync.
 */
#ifndef RPC_RESOLVE_H
#define RPC_RESOLVE_H

#include <stdint.h>
#include <uv.h>

#include "raftkit/status.h"

typedef struct rpc_resolve rpc_resolve_t;

#define RPC_RESOLVE_MAX 8 /* addresses kept per lookup */

/* Runs once on the loop thread, unless the request was canceled first:
 * status 0 with addrs[0..n) (1 <= n <= RPC_RESOLVE_MAX, port set) in
 * getaddrinfo's order of preference, or a negative libuv error
 * (UV_EAI_NONAME...) with n 0. */
typedef void (*rpc_resolve_fn)(void *arg, int status, const struct sockaddr_storage *addrs,
                               unsigned n);

/* Starts resolving host (a name, not bracketed) for port. Returns 0 and sets
 * *out (valid until cb runs or rpc_resolve_cancel), or a negative libuv error
 * without ever running cb. */
int rpc_resolve_start(uv_loop_t *loop, const char *host, uint16_t port, rpc_resolve_fn cb,
                      void *arg, rpc_resolve_t **out);

/* cb will not run. The request frees itself once the thread pool is done
 * with it (the loop keeps running until then, as for any pending request). */
void rpc_resolve_cancel(rpc_resolve_t *r);

/* Blocking resolution, for callers that are not on a running loop (a node
 * binding its listen address while it starts). Fills ss with the first
 * address. Returns 0, or RK_EUNREACHABLE with the resolver's reason in err. */
int rpc_resolve_sync(const char *host, uint16_t port, struct sockaddr_storage *ss,
                     rk_status_t *err);

/* Writes the address of ss (no port) into buf: "10.0.0.7", "fe80::1". */
void rpc_addr_name(const struct sockaddr_storage *ss, char *buf, size_t len);

#endif /* RPC_RESOLVE_H */
