/* Helpers for Raft messages whose entry payloads travel in the frame
 * attachment instead of the protobuf body (no copy on either side).
 * Pure functions; any thread.
 */
#ifndef RPC_RAFT_H
#define RPC_RAFT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rpc/raft.pb-c.h"

/* One entry's payload, pointing into the protobuf body (inline data) or the
 * attachment; valid as long as both are. */
typedef struct rpc_entry_view {
    uint64_t term;
    Rk__EntryType type;
    const uint8_t *data;
    size_t len;
} rpc_entry_view_t;

/* Resolves the payloads of req's entries: inline ones from entry->data,
 * attachment ones as consecutive slices of att (in entry order). out must
 * have room for req->n_entries views. Returns 0, or RK_EPROTO when the
 * attachment slices do not add up to att_len exactly (a peer must not make
 * us read past the attachment or leave bytes unaccounted for). */
int rpc_entries_resolve(const Rk__AppendEntriesRequest *req, const uint8_t *att, size_t att_len,
                        rpc_entry_view_t *out);

/* Sender side: marks each entry as carried in the attachment (clearing its
 * inline data) and fills bufs[i] with its payload pointer, so the frame is
 * written with uv_write over the original payload buffers. payloads[i] and
 * lens[i] are the entries' data. bufs must have room for n. */
void rpc_entries_to_attachment(Rk__Entry **entries, size_t n, const void *const *payloads,
                               const size_t *lens, uv_buf_t *bufs);

#endif /* RPC_RAFT_H */
