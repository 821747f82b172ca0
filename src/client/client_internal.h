/* Internals shared by the files of src/client: the protobuf-aware call under
 * the blocking RPC client (rpc_client_sync.c), which the CLI client
 * (cli_client.c) uses for the CLI service's messages, and a monotonic clock. */
#ifndef RAFTKIT_CLIENT_INTERNAL_H
#define RAFTKIT_CLIENT_INTERNAL_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "raftkit/peer.h"
#include "raftkit/rpc.h"
#include "raftkit/status.h"

/* Calls a method with a protobuf request (req) and, on success, unpacks the
 * response with resp_desc into *resp (caller frees it with
 * protobuf_c_message_free_unpacked). With req NULL, body/len is sent as is.
 * Same outcome rules as rk_rpc_client_call (out->status, maybe_delivered;
 * out->body holds the raw response). Returns out->status.code. */
int client_call(rk_rpc_client_t *c, const rk_endpoint_t *ep, uint32_t method,
                const ProtobufCMessage *req, const void *body, size_t len,
                const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
                ProtobufCMessage **resp, rk_rpc_reply_t *out);

/* Milliseconds on a monotonic clock. */
uint64_t client_now_ms(void);

#endif /* RAFTKIT_CLIENT_INTERNAL_H */
