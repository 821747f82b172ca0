/* Refcounted immutable byte buffers (see buf.h). */
#include "src/base/buf.h"

#include <stdlib.h>
#include <string.h>

buf_t *buf_alloc(size_t len)
{
    buf_t *b = malloc(sizeof *b + len);
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    return b;
}

buf_t *buf_new(const void *data, size_t len)
{
    buf_t *b = buf_alloc(len);
    if (b != NULL && len > 0)
        memcpy(b->data, data, len);
    return b;
}

buf_t *buf_ref(buf_t *b)
{
    if (b != NULL)
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void buf_unref(buf_t *b)
{
    if (b == NULL)
        return;
    /* acq_rel: the freeing thread must see every write made before the other
     * references were dropped. */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}
