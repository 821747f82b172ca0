/* Frame header encoding and the stream splitter shared by server, client and
 * fuzzer (see rpc_frame.h for the layout). */
#include <stdlib.h>
#include <string.h>

#include "rpc/rpc_frame.h"

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

void rpc_frame_hdr_encode(const rpc_frame_hdr_t *h, uint8_t out[RPC_FRAME_HDR_LEN])
{
    put_u16(out, RPC_FRAME_MAGIC);
    out[2] = h->version;
    out[3] = h->flags;
    put_u32(out + 4, h->method);
    put_u64(out + 8, h->corr_id);
    put_u32(out + 16, h->body_len);
    put_u32(out + 20, h->attach_len);
}

long rpc_frame_next(const uint8_t *buf, size_t len, size_t max_frame, rpc_frame_hdr_t *h,
                    rk_status_t *why)
{
    uint64_t total;

    /* Check the magic as soon as two bytes are in, so garbage is refused
     * without waiting for a full header that may never come. */
    if (len >= 2 && ((uint16_t)(buf[0] << 8 | buf[1])) != RPC_FRAME_MAGIC)
        return rk_status_set(why, RK_EPROTO, "bad magic 0x%02x%02x", buf[0], buf[1]);
    if (len >= 3 && buf[2] != RPC_WIRE_VERSION)
        return rk_status_set(why, RK_EPROTO, "unsupported wire version %u", buf[2]);
    if (len < RPC_FRAME_HDR_LEN)
        return 0;
    h->version = buf[2];
    h->flags = buf[3];
    h->method = get_u32(buf + 4);
    h->corr_id = get_u64(buf + 8);
    h->body_len = get_u32(buf + 16);
    h->attach_len = get_u32(buf + 20);
    if ((h->flags & ~RPC_F_MASK) != 0)
        return rk_status_set(why, RK_EPROTO, "unknown flags 0x%02x", h->flags);
    if ((h->flags & RPC_F_RESPONSE) && (h->flags & RPC_F_ONEWAY))
        return rk_status_set(why, RK_EPROTO, "one-way response");
    if ((h->flags & RPC_F_ERROR) && !(h->flags & RPC_F_RESPONSE))
        return rk_status_set(why, RK_EPROTO, "error flag on a request");
    total = (uint64_t)RPC_FRAME_HDR_LEN + h->body_len + h->attach_len;
    if (total > max_frame)
        return rk_status_set(why, RK_ETOOBIG, "frame of %llu bytes exceeds the limit of %zu",
                             (unsigned long long)total, max_frame);
    if (len < total)
        return 0;
    return (long)total;
}

uint8_t *rpc_frame_pack(rpc_frame_hdr_t *h, const ProtobufCMessage *msg, const void *raw,
                        size_t raw_len, size_t *len)
{
    size_t body = msg != NULL ? protobuf_c_message_get_packed_size(msg) : raw_len;
    uint8_t *buf;

    if (body > UINT32_MAX)
        return NULL;
    buf = malloc(RPC_FRAME_HDR_LEN + body + (body == 0));
    if (buf == NULL)
        return NULL;
    h->version = RPC_WIRE_VERSION;
    h->body_len = (uint32_t)body;
    rpc_frame_hdr_encode(h, buf);
    if (msg != NULL)
        protobuf_c_message_pack(msg, buf + RPC_FRAME_HDR_LEN);
    else if (body > 0)
        memcpy(buf + RPC_FRAME_HDR_LEN, raw, body);
    *len = RPC_FRAME_HDR_LEN + body;
    return buf;
}

ProtobufCMessage *rpc_frame_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *body,
                                   size_t len)
{
    return protobuf_c_message_unpack(d, NULL, len, body);
}
