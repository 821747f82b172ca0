/* The admin HTTP endpoint: GET /metrics
 * (Prometheus text), /status (JSON) and /health, served by libmicrohttpd on
 * its own thread from the metrics hubs of the groups attached to it. It only
 * ever reads what the loops published (metrics_read_status, atomics), so a
 * slow or hostile client can never stall a raft loop.
 *
 * The node's whole view of it: admin_attach when a group starts with an
 * admin_port, admin_detach when it stops (src/node/node_obs.c). Nothing
 * else of the endpoint is visible to the node.
 */
#ifndef RAFTKIT_ADMIN_ADMIN_H
#define RAFTKIT_ADMIN_ADMIN_H

#include <stdint.h>

#include "raftkit/status.h"
#include "src/metrics/metrics.h"

typedef struct admin_server admin_server_t;

/* Serves group m on ip:port. Groups of one process that name the same
 * ip:port share one server (one listening socket, one thread); port 0 always
 * starts a new server on an ephemeral port (see admin_server_port). ip is a
 * numeric IPv4 or IPv6 address or a host name; the socket is bound to it
 * only, never to every interface. Returns the server, or NULL with err set
 * (RK_EINVAL for a bad address, RK_EIO when the port cannot be bound,
 * RK_ENOMEM). m must stay valid until admin_detach. Any thread. */
admin_server_t *admin_attach(const char *ip, uint16_t port, metrics_node_t *m, rk_status_t *err);

/* Security of an admin endpoint (README "Security"): with cert_file and
 * key_file (PEM) the server speaks HTTPS only, and with token it answers
 * /status and /metrics only to "Authorization: Bearer <token>" (401
 * otherwise); /health stays open. Strings are copied. */
typedef struct admin_security {
    const char *cert_file;
    const char *key_file;
    const char *token;
} admin_security_t;

/* admin_attach with security (sec NULL: plain HTTP, no token). Groups may
 * share an ip:port only with the same security; else RK_EINVAL. A
 * certificate or key that cannot be read is RK_EINVAL too. */
admin_server_t *admin_attach_secure(const char *ip, uint16_t port, metrics_node_t *m,
                                    const admin_security_t *sec, rk_status_t *err);

/* Stops serving m; when it was the last group, stops the server (waits for
 * requests in progress) and frees it. Any thread but the server's. */
void admin_detach(admin_server_t *s, metrics_node_t *m);

/* The port the server listens on (useful after port 0). */
uint16_t admin_server_port(const admin_server_t *s);

#endif /* RAFTKIT_ADMIN_ADMIN_H */
