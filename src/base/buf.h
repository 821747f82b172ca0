/* Refcounted immutable byte buffers, so one entry payload can sit in the
 * unstable log, in outgoing messages and in the log writer's batch without
 * being copied.
 *
 * A buffer is written once by its creator (buf_alloc + fill, or buf_new) and
 * is immutable from the moment a second reference exists. The reference count
 * is atomic: references may be taken and dropped on any thread (the node loop,
 * the log writer, the FSM caller).
 */
#ifndef RAFTKIT_BASE_BUF_H
#define RAFTKIT_BASE_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    atomic_uint refs;
    size_t len;
    uint8_t data[]; /* len bytes */
} buf_t;

/* A new buffer of len bytes (contents undefined) with one reference owned by
 * the caller, who fills data before sharing it. NULL on out of memory. */
buf_t *buf_alloc(size_t len);

/* A new buffer holding a copy of data[0..len) with one reference owned by the
 * caller. data may be NULL when len is 0. NULL on out of memory. */
buf_t *buf_new(const void *data, size_t len);

/* Takes one more reference and returns b; NULL-safe (returns NULL). */
buf_t *buf_ref(buf_t *b);

/* Drops one reference, freeing the buffer with the last one; NULL-safe. */
void buf_unref(buf_t *b);

static inline size_t buf_len(const buf_t *b) { return b != NULL ? b->len : 0; }

#endif /* RAFTKIT_BASE_BUF_H */
