/* Connection handshake: version agreement today, authentication later. */
#include "rpc/rpc_frame.h"
#include "rpc/rpc_handshake.h"

void rpc_handshake_hello(Rk__Handshake *hello, const char *client_name)
{
    rk__handshake__init(hello);
    hello->version = RPC_WIRE_VERSION;
    hello->client_name = (char *)(client_name != NULL ? client_name : "");
}

int rpc_handshake_accept(const Rk__Handshake *hello, const char *server_name,
                         Rk__HandshakeResponse *resp, rk_status_t *why)
{
    if (hello->version != RPC_WIRE_VERSION)
        return rk_status_set(why, RK_EPROTO, "client speaks wire version %u, server %u",
                             hello->version, RPC_WIRE_VERSION);
    /* A cluster secret check belongs here (hello->auth). */
    rk__handshake_response__init(resp);
    resp->version = RPC_WIRE_VERSION;
    resp->server_name = (char *)(server_name != NULL ? server_name : "");
    return 0;
}

int rpc_handshake_check(const Rk__HandshakeResponse *resp, rk_status_t *why)
{
    if (resp->version != RPC_WIRE_VERSION)
        return rk_status_set(why, RK_EPROTO, "server speaks wire version %u, client %u",
                             resp->version, RPC_WIRE_VERSION);
    return 0;
}
