/* The registry of RPC method ids: which protobuf message each built-in method
 * carries, whether it is routed by group, and the range left to applications.
 *
 * Ids are part of the wire protocol: never renumber, only append. Ranges:
 *   1..15      transport (handshake)
 *   16..63     Raft peer messages (one-way, etcd style: a "response" is its
 *              own one-way message sent back later), and the process
 *              heartbeat between peers (request/response)
 *   64..79     file service (snapshot copy; request/response)
 *   80..127    CLI (request/response)
 *   1024..     application methods (rpc_server_register with own descriptors)
 */
#ifndef RPC_METHOD_H
#define RPC_METHOD_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

enum rpc_method_id {
    RPC_M_NONE = 0,
    RPC_M_HANDSHAKE = 1,

    RPC_M_RAFT_FIRST = 16,
    RPC_M_REQUEST_VOTE = 16,
    RPC_M_REQUEST_VOTE_RESP = 17,
    RPC_M_APPEND_ENTRIES = 18,
    RPC_M_APPEND_ENTRIES_RESP = 19,
    RPC_M_HEARTBEAT = 20,
    RPC_M_HEARTBEAT_RESP = 21,
    RPC_M_INSTALL_SNAPSHOT = 22,
    RPC_M_INSTALL_SNAPSHOT_RESP = 23,
    RPC_M_TIMEOUT_NOW = 24,
    RPC_M_TIMEOUT_NOW_RESP = 25,
    RPC_M_READ_INDEX = 26,
    RPC_M_READ_INDEX_RESP = 27,
    RPC_M_HEARTBEAT_BATCH = 28,   /* not routed: each item is */
    RPC_M_PROCESS_HEARTBEAT = 29, /* request/response, not routed */
    RPC_M_RAFT_LAST = 63,

    RPC_M_GET_FILE = 64,

    RPC_M_CLI_ADD_PEER = 80,
    RPC_M_CLI_REMOVE_PEER = 81,
    RPC_M_CLI_CHANGE_PEERS = 82,
    RPC_M_CLI_RESET_PEER = 83,
    RPC_M_CLI_ADD_LEARNERS = 84,
    RPC_M_CLI_REMOVE_LEARNERS = 85,
    RPC_M_CLI_RESET_LEARNERS = 86,
    RPC_M_CLI_TRANSFER_LEADER = 87,
    RPC_M_CLI_SNAPSHOT = 88,
    RPC_M_CLI_GET_LEADER = 89,
    RPC_M_CLI_GET_PEERS = 90,
    RPC_M_CLI_GET_NODE_STATUS = 91,

    RPC_M_APP_FIRST = 1024,
    RPC_M_APP_LAST = 0x7fffffff,
};

/* Method flags. */
#define RPC_MF_ROUTED 0x1u /* request has group_id/peer_id: server routes it */
#define RPC_MF_ONEWAY 0x2u /* normally sent one-way (Raft messages) */

typedef struct rpc_method_info {
    uint32_t id;
    const char *name;
    const ProtobufCMessageDescriptor *req;  /* request (or one-way message) */
    const ProtobufCMessageDescriptor *resp; /* response; NULL for one-way */
    unsigned flags;
} rpc_method_info_t;

/* The built-in method with this id, or NULL (unknown or an application id).
 * Pure; any thread. */
const rpc_method_info_t *rpc_method_info(uint32_t id);

/* All built-in methods (for tests and the fuzzer); *n receives the count. */
const rpc_method_info_t *rpc_method_all(unsigned *n);

/* "append_entries", or "app#1234" / "unknown#7" into a static-free buffer
 * the caller provides. Returns buf. */
const char *rpc_method_name(uint32_t id, char *buf, unsigned len);

static inline bool rpc_method_is_app(uint32_t id)
{
    return id >= RPC_M_APP_FIRST;
}

/* The role (RPC_ROLE_* of rpc_tls.h) a connection needs to call method: Raft
 * messages and snapshot files need a peer, membership and disaster commands
 * (add/remove/change/reset peers and learners, transfer, snapshot) an admin,
 * read-only CLI queries and application methods a client. Pure. */
unsigned rpc_method_role(uint32_t id);

/* Routing fields of a decoded request: the string fields named group_id and
 * peer_id (the target peer; JRaft's naming). Either out pointer receives NULL
 * when the message has no such field. Pure; any thread. */
void rpc_msg_route_fields(const ProtobufCMessage *m, const char **group_id, const char **peer_id);

#endif /* RPC_METHOD_H */
