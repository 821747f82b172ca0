/* The in-memory Raft log of mem_log.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/common/mem_log.h"

int mem_log_term(void *arg, uint64_t index, uint64_t *term)
{
    const mem_log_t *l = arg;
    if (index == l->compact_index) {
        *term = l->compact_term;
        return 0;
    }
    if (index < l->compact_index || index > mem_log_last(l))
        return RK_ENOTFOUND;
    *term = l->v[index - l->compact_index - 1].term;
    return 0;
}

int mem_log_entries(void *arg, uint64_t lo, uint64_t hi, size_t max_bytes, core_entry_t *out,
                    size_t *cnt)
{
    const mem_log_t *l = arg;
    size_t bytes = 0;
    *cnt = 0;
    if (lo <= l->compact_index)
        return RK_ENOTFOUND;
    for (uint64_t i = lo; i < hi && i <= mem_log_last(l); i++) {
        const core_entry_t *e = &l->v[i - l->compact_index - 1];
        size_t sz = core_entry_size(e);
        if (*cnt > 0 && bytes + sz > max_bytes)
            break;
        out[*cnt] = *e;
        buf_ref(e->data);
        (*cnt)++;
        bytes += sz;
    }
    return 0;
}

void mem_log_truncate(mem_log_t *l, uint64_t from)
{
    while (l->n > 0 && mem_log_last(l) >= from)
        buf_unref(l->v[--l->n].data);
}

void mem_log_append(mem_log_t *l, const core_entry_t *e, size_t cnt)
{
    if (cnt == 0)
        return;
    mem_log_truncate(l, e[0].index);
    if (l->n + cnt > l->cap) {
        while (l->n + cnt > l->cap)
            l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (l->v == NULL) {
            fprintf(stderr, "mem_log: out of memory\n");
            abort();
        }
    }
    for (size_t k = 0; k < cnt; k++) {
        l->v[l->n] = e[k];
        buf_ref(e[k].data);
        l->n++;
    }
}

void mem_log_compact(mem_log_t *l, uint64_t index, uint64_t term)
{
    size_t drop = (size_t)(index - l->compact_index);
    for (size_t k = 0; k < drop; k++)
        buf_unref(l->v[k].data);
    memmove(l->v, l->v + drop, (l->n - drop) * sizeof *l->v);
    l->n -= drop;
    l->compact_index = index;
    l->compact_term = term;
}

void mem_log_reset(mem_log_t *l, uint64_t index, uint64_t term)
{
    mem_log_truncate(l, 0);
    l->compact_index = index;
    l->compact_term = term;
}

void mem_log_free(mem_log_t *l)
{
    mem_log_truncate(l, 0);
    free(l->v);
    memset(l, 0, sizeof *l);
}
