/* The simulated host's log: an array of entries after a compaction point,
 * each carrying the chain hash of the prefix it ends, so two logs that agree
 * at one (index, chain) agree on everything before it. */
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

void slog_init(sim_log_t *l)
{
    memset(l, 0, sizeof *l);
}

void slog_free(sim_log_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        buf_unref(l->v[i].e.data);
    free(l->v);
    slog_init(l);
}

uint64_t slog_last(const sim_log_t *l)
{
    return l->compact_index + l->n;
}

const sim_ent_t *slog_get(const sim_log_t *l, uint64_t index)
{
    if (index <= l->compact_index || index > slog_last(l))
        return NULL;
    return &l->v[index - l->compact_index - 1];
}

bool slog_chain(const sim_log_t *l, uint64_t index, uint64_t *chain)
{
    if (index == l->compact_index) {
        *chain = l->compact_chain;
        return true;
    }
    const sim_ent_t *e = slog_get(l, index);
    if (e == NULL)
        return false;
    *chain = e->chain;
    return true;
}

bool slog_term(const sim_log_t *l, uint64_t index, uint64_t *term)
{
    if (index == l->compact_index) {
        *term = l->compact_term;
        return true;
    }
    const sim_ent_t *e = slog_get(l, index);
    if (e == NULL)
        return false;
    *term = e->e.term;
    return true;
}

void slog_truncate(sim_log_t *l, uint64_t from)
{
    if (from <= l->compact_index)
        from = l->compact_index + 1;
    while (slog_last(l) >= from) {
        buf_unref(l->v[l->n - 1].e.data);
        l->n--;
    }
}

void slog_push(sim_log_t *l, const core_entry_t *e, uint64_t chain)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (l->v == NULL)
            abort();
    }
    sim_ent_t *d = &l->v[l->n++];
    d->e = *e;
    d->e.data = buf_ref(e->data);
    d->chain = chain;
}

void slog_compact(sim_log_t *l, uint64_t index)
{
    if (index <= l->compact_index)
        return;
    if (index > slog_last(l))
        index = slog_last(l);
    size_t k = (size_t)(index - l->compact_index);
    const sim_ent_t *last = &l->v[k - 1];
    l->compact_term = last->e.term;
    l->compact_chain = last->chain;
    for (size_t i = 0; i < k; i++)
        buf_unref(l->v[i].e.data);
    memmove(l->v, l->v + k, (l->n - k) * sizeof *l->v);
    l->n -= k;
    l->compact_index = index;
}

void slog_reset(sim_log_t *l, uint64_t index, uint64_t term, uint64_t chain)
{
    slog_truncate(l, 0);
    l->compact_index = index;
    l->compact_term = term;
    l->compact_chain = chain;
}

void slog_copy(sim_log_t *dst, const sim_log_t *src)
{
    slog_free(dst);
    dst->compact_index = src->compact_index;
    dst->compact_term = src->compact_term;
    dst->compact_chain = src->compact_chain;
    for (size_t i = 0; i < src->n; i++)
        slog_push(dst, &src->v[i].e, src->v[i].chain);
}

uint64_t sim_entry_hash(const core_entry_t *e)
{
    uint64_t h = sim_mix(0x51ed270b27e1ULL, (uint64_t)e->type);
    size_t len = buf_len(e->data);
    h = sim_mix(h, len);
    for (size_t i = 0; i < len; i++)
        h = sim_mix(h, e->data->data[i]);
    return h;
}

uint64_t sim_chain_next(uint64_t prev_chain, const core_entry_t *e)
{
    uint64_t h = sim_mix(prev_chain, e->index);
    h = sim_mix(h, e->term);
    return sim_mix(h, sim_entry_hash(e));
}
