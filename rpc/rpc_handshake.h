/* The connection handshake: the first frame on every connection is a
 * Handshake request from the client; the server answers with a
 * HandshakeResponse (or an ErrorResponse and a close). No other frame is
 * accepted before it. Kept as its own step so cluster-secret authentication
 * can be added here without touching framing or routing. Pure functions.
 */
#ifndef RPC_HANDSHAKE_H
#define RPC_HANDSHAKE_H

#include "raftkit/status.h"
#include "rpc/rpc.pb-c.h"

/* Fills the client's hello. hello keeps a pointer to name. */
void rpc_handshake_hello(Rk__Handshake *hello, const char *client_name);

/* Server side: decides on a hello. Returns 0 and fills resp (which keeps a
 * pointer to server_name), or a negative code with the reason in why. */
int rpc_handshake_accept(const Rk__Handshake *hello, const char *server_name,
                         Rk__HandshakeResponse *resp, rk_status_t *why);

/* Client side: checks the server's answer. Returns 0 or RK_EPROTO. */
int rpc_handshake_check(const Rk__HandshakeResponse *resp, rk_status_t *why);

#endif /* RPC_HANDSHAKE_H */
