/* The built-in method table behind rpc_method.h. */
#include <stdio.h>
#include <string.h>

#include "rpc/cli.pb-c.h"
#include "rpc/raft.pb-c.h"
#include "rpc/rpc.pb-c.h"
#include "rpc/rpc_method.h"
#include "rpc/rpc_tls.h"

#define R  RPC_MF_ROUTED
#define OW (RPC_MF_ROUTED | RPC_MF_ONEWAY)

static const rpc_method_info_t methods[] = {
    {RPC_M_HANDSHAKE, "handshake", &rk__handshake__descriptor, &rk__handshake_response__descriptor,
     0},
    {RPC_M_REQUEST_VOTE, "request_vote", &rk__request_vote_request__descriptor, NULL, OW},
    {RPC_M_REQUEST_VOTE_RESP, "request_vote_resp", &rk__request_vote_response__descriptor, NULL,
     OW},
    {RPC_M_APPEND_ENTRIES, "append_entries", &rk__append_entries_request__descriptor, NULL, OW},
    {RPC_M_APPEND_ENTRIES_RESP, "append_entries_resp", &rk__append_entries_response__descriptor,
     NULL, OW},
    {RPC_M_HEARTBEAT, "heartbeat", &rk__heartbeat__descriptor, NULL, OW},
    {RPC_M_HEARTBEAT_RESP, "heartbeat_resp", &rk__heartbeat_response__descriptor, NULL, OW},
    {RPC_M_INSTALL_SNAPSHOT, "install_snapshot", &rk__install_snapshot_request__descriptor, NULL,
     OW},
    {RPC_M_INSTALL_SNAPSHOT_RESP, "install_snapshot_resp",
     &rk__install_snapshot_response__descriptor, NULL, OW},
    {RPC_M_TIMEOUT_NOW, "timeout_now", &rk__timeout_now_request__descriptor, NULL, OW},
    {RPC_M_TIMEOUT_NOW_RESP, "timeout_now_resp", &rk__timeout_now_response__descriptor, NULL, OW},
    {RPC_M_READ_INDEX, "read_index", &rk__read_index_request__descriptor,
     &rk__read_index_response__descriptor, OW},
    {RPC_M_READ_INDEX_RESP, "read_index_resp", &rk__read_index_response__descriptor, NULL, OW},
    {RPC_M_HEARTBEAT_BATCH, "heartbeat_batch", &rk__heartbeat_batch__descriptor, NULL,
     RPC_MF_ONEWAY},
    {RPC_M_PROCESS_HEARTBEAT, "process_heartbeat", &rk__process_heartbeat__descriptor,
     &rk__process_heartbeat_response__descriptor, 0},
    {RPC_M_GET_FILE, "get_file", &rk__get_file_request__descriptor,
     &rk__get_file_response__descriptor, R},
    {RPC_M_CLI_ADD_PEER, "add_peer", &rk__add_peer_request__descriptor,
     &rk__add_peer_response__descriptor, R},
    {RPC_M_CLI_REMOVE_PEER, "remove_peer", &rk__remove_peer_request__descriptor,
     &rk__remove_peer_response__descriptor, R},
    {RPC_M_CLI_CHANGE_PEERS, "change_peers", &rk__change_peers_request__descriptor,
     &rk__change_peers_response__descriptor, R},
    {RPC_M_CLI_RESET_PEER, "reset_peer", &rk__reset_peer_request__descriptor,
     &rk__empty_response__descriptor, R},
    {RPC_M_CLI_ADD_LEARNERS, "add_learners", &rk__add_learners_request__descriptor,
     &rk__learners_op_response__descriptor, R},
    {RPC_M_CLI_REMOVE_LEARNERS, "remove_learners", &rk__remove_learners_request__descriptor,
     &rk__learners_op_response__descriptor, R},
    {RPC_M_CLI_RESET_LEARNERS, "reset_learners", &rk__reset_learners_request__descriptor,
     &rk__learners_op_response__descriptor, R},
    {RPC_M_CLI_TRANSFER_LEADER, "transfer_leader", &rk__transfer_leader_request__descriptor,
     &rk__empty_response__descriptor, R},
    {RPC_M_CLI_SNAPSHOT, "snapshot", &rk__snapshot_request__descriptor,
     &rk__empty_response__descriptor, R},
    {RPC_M_CLI_GET_LEADER, "get_leader", &rk__get_leader_request__descriptor,
     &rk__get_leader_response__descriptor, R},
    {RPC_M_CLI_GET_PEERS, "get_peers", &rk__get_peers_request__descriptor,
     &rk__get_peers_response__descriptor, R},
    {RPC_M_CLI_GET_NODE_STATUS, "get_node_status", &rk__get_node_status_request__descriptor,
     &rk__get_node_status_response__descriptor, R},
};

#undef R
#undef OW

const rpc_method_info_t *rpc_method_info(uint32_t id)
{
    /* The table is small; a linear scan beats a hash for 25 entries. */
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].id == id)
            return &methods[i];
    return NULL;
}

const rpc_method_info_t *rpc_method_all(unsigned *n)
{
    *n = (unsigned)(sizeof methods / sizeof methods[0]);
    return methods;
}

const char *rpc_method_name(uint32_t id, char *buf, unsigned len)
{
    const rpc_method_info_t *mi = rpc_method_info(id);

    if (mi != NULL)
        snprintf(buf, len, "%s", mi->name);
    else if (rpc_method_is_app(id))
        snprintf(buf, len, "app#%u", id);
    else
        snprintf(buf, len, "unknown#%u", id);
    return buf;
}

static const char *string_field(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);

    if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return *(const char *const *)((const char *)m + f->offset);
}

void rpc_msg_route_fields(const ProtobufCMessage *m, const char **group_id, const char **peer_id)
{
    if (group_id != NULL)
        *group_id = string_field(m, "group_id");
    if (peer_id != NULL)
        *peer_id = string_field(m, "peer_id");
}

unsigned rpc_method_role(uint32_t id)
{
    if (rpc_method_is_app(id))
        return RPC_ROLE_CLIENT;
    switch (id) {
    case RPC_M_CLI_GET_LEADER:
    case RPC_M_CLI_GET_PEERS:
    case RPC_M_CLI_GET_NODE_STATUS:
        return RPC_ROLE_CLIENT;
    default:
        break;
    }
    /* Raft messages and the file service; anything else (membership,
     * disaster commands, ids not assigned yet) needs an admin. */
    if (id >= RPC_M_RAFT_FIRST && id <= RPC_M_GET_FILE)
        return RPC_ROLE_PEER;
    return RPC_ROLE_ADMIN;
}
