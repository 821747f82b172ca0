/* libFuzzer target for everything the RPC layer does with untrusted bytes
 * before a handler sees them: the frame splitter on a stream, then decoding
 * each frame's body as the message its method and flags name (request,
 * response or ErrorResponse), and the routing-field lookup. A second mode
 * (first byte odd) decodes the input directly as one message type, so the
 * fuzzer reaches every decoder without first guessing a valid header. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "rpc/rpc.pb-c.h"
#include "rpc/rpc_frame.h"
#include "rpc/rpc_method.h"
#include "rpc/rpc_raft.h"

static void decode(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, int routed,
                   const uint8_t *att, size_t att_len)
{
    ProtobufCMessage *m = rpc_frame_unpack(d, p, n);
    const char *g, *peer;

    if (m == NULL)
        return;
    if (routed) {
        rpc_msg_route_fields(m, &g, &peer);
        /* Touch the strings so a bad pointer would show under ASan. */
        volatile size_t sink = 0;
        if (g != NULL)
            while (*g)
                sink += (unsigned char)*g++;
        (void)sink;
    }
    if (d == &rk__append_entries_request__descriptor) {
        const Rk__AppendEntriesRequest *ae = (const Rk__AppendEntriesRequest *)m;
        rpc_entry_view_t *v = malloc((ae->n_entries + 1) * sizeof *v);
        if (rpc_entries_resolve(ae, att, att_len, v) == 0) {
            volatile uint8_t sum = 0;
            for (size_t i = 0; i < ae->n_entries; i++)
                for (size_t k = 0; k < v[i].len; k++)
                    sum ^= v[i].data[k];
            (void)sum;
        }
        free(v);
    }
    /* Re-encode: packing what was decoded must not crash either. */
    size_t len = protobuf_c_message_get_packed_size(m);
    (void)len;
    protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned n;
    const rpc_method_info_t *all = rpc_method_all(&n);

    if (size == 0)
        return 0;
    if (data[0] & 1) {
        const rpc_method_info_t *mi = &all[(data[0] >> 1) % n];
        decode(data[0] & 0x80 && mi->resp ? mi->resp : mi->req, data + 1, size - 1,
               (mi->flags & RPC_MF_ROUTED) != 0, data + 1, 0);
        return 0;
    }
    /* Stream mode: a small limit so oversized lengths are exercised too. */
    size_t off = 1;
    while (off < size) {
        rpc_frame_hdr_t h;
        long fl = rpc_frame_next(data + off, size - off, 1u << 16, &h, NULL);
        if (fl <= 0)
            break;
        const uint8_t *body = data + off + RPC_FRAME_HDR_LEN;
        const rpc_method_info_t *mi = rpc_method_info(h.method);
        if (h.flags & RPC_F_ERROR)
            decode(&rk__error_response__descriptor, body, h.body_len, 0, NULL, 0);
        else if (mi != NULL && (h.flags & RPC_F_RESPONSE) && mi->resp != NULL)
            decode(mi->resp, body, h.body_len, 0, NULL, 0);
        else if (mi != NULL)
            decode(mi->req, body, h.body_len, (mi->flags & RPC_MF_ROUTED) != 0, body + h.body_len,
                   h.attach_len);
        off += (size_t)fl;
    }
    return 0;
}
