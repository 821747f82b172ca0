/* The wire frame: a fixed 24-byte header, a protobuf body, then an optional
 * attachment of raw bytes (entry payloads, file chunks) that is never run
 * through protobuf so it is neither copied on encode nor on decode.
 *
 *   offset  size  field
 *   0       2     magic 0x524B ("RK")
 *   2       1     version (RPC_WIRE_VERSION)
 *   3       1     flags (RPC_F_*)
 *   4       4     method id (rpc_method.h)
 *   8       8     correlation id (0 for one-way frames)
 *   16      4     body length
 *   20      4     attachment length
 *
 * All integers big-endian. A frame is at most max_frame bytes in total
 * (header included). Everything here is pure and thread-safe.
 */
#ifndef RPC_FRAME_H
#define RPC_FRAME_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkit/status.h"

#define RPC_FRAME_MAGIC       0x524Bu
#define RPC_WIRE_VERSION      1u
#define RPC_FRAME_HDR_LEN     24u
#define RPC_DEFAULT_MAX_FRAME (64u << 20)

#define RPC_F_RESPONSE        0x01u /* answers the request with the same correlation id */
#define RPC_F_ONEWAY          0x02u /* request that expects no response */
#define RPC_F_ERROR           0x04u /* response whose body is an ErrorResponse */
#define RPC_F_MASK            0x07u

typedef struct rpc_frame_hdr {
    uint8_t version;
    uint8_t flags;
    uint32_t method;
    uint64_t corr_id;
    uint32_t body_len;
    uint32_t attach_len;
} rpc_frame_hdr_t;

void rpc_frame_hdr_encode(const rpc_frame_hdr_t *h, uint8_t out[RPC_FRAME_HDR_LEN]);

/* Looks at the start of a byte stream. Returns the total length of the first
 * frame (header + body + attachment) when it is complete in buf, 0 when more
 * bytes are needed, or a negative code: RK_EPROTO for a bad magic, version or
 * flag combination, RK_ETOOBIG when the frame would exceed max_frame. *h is
 * filled whenever the header itself is complete and valid; why (may be NULL)
 * gets the reason of an error. */
long rpc_frame_next(const uint8_t *buf, size_t len, size_t max_frame, rpc_frame_hdr_t *h,
                    rk_status_t *why);

/* Packs header + protobuf body (msg, or the raw bytes when msg is NULL) into
 * one malloc'ed buffer; h->body_len is set from the body, h->attach_len is
 * taken as given. Returns the buffer (caller frees) with *len, or NULL on
 * allocation failure or when the body exceeds 4 GiB. */
uint8_t *rpc_frame_pack(rpc_frame_hdr_t *h, const ProtobufCMessage *msg, const void *raw,
                        size_t raw_len, size_t *len);

/* Decodes a body with the given descriptor. Returns the message (free with
 * protobuf_c_message_free_unpacked(m, NULL)) or NULL when undecodable. */
ProtobufCMessage *rpc_frame_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *body,
                                   size_t len);

#endif /* RPC_FRAME_H */
