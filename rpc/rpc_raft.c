/* Entry payloads in attachments (see rpc_raft.h). */
#include "raftkit/status.h"
#include "rpc/rpc_raft.h"

int rpc_entries_resolve(const Rk__AppendEntriesRequest *req, const uint8_t *att, size_t att_len,
                        rpc_entry_view_t *out)
{
    size_t off = 0;

    for (size_t i = 0; i < req->n_entries; i++) {
        const Rk__Entry *e = req->entries[i];
        out[i].term = e->term;
        out[i].type = e->type;
        if (e->in_attachment) {
            if (e->data.len != 0 || e->data_len > att_len - off)
                return RK_EPROTO;
            out[i].data = att + off;
            out[i].len = e->data_len;
            off += e->data_len;
        } else {
            out[i].data = e->data.data;
            out[i].len = e->data.len;
        }
    }
    return off == att_len ? 0 : RK_EPROTO;
}

void rpc_entries_to_attachment(Rk__Entry **entries, size_t n, const void *const *payloads,
                               const size_t *lens, uv_buf_t *bufs)
{
    for (size_t i = 0; i < n; i++) {
        entries[i]->in_attachment = 1;
        entries[i]->data_len = (uint32_t)lens[i];
        entries[i]->data.data = NULL;
        entries[i]->data.len = 0;
        bufs[i] = uv_buf_init((char *)payloads[i], (unsigned)lens[i]);
    }
}
