/* Byte-bounded ring of recent log entries (see log_cache.h). */
#include "storage/log_cache.h"

#include <stdlib.h>
#include <string.h>

void log_cache_init(log_cache_t *c, size_t limit)
{
    memset(c, 0, sizeof *c);
    c->limit = limit;
}

static log_cache_ent_t **slot(log_cache_t *c, size_t i)
{
    return &c->ring[(c->head + i) % c->cap];
}

static void pop_front(log_cache_t *c)
{
    log_cache_ent_t **p = slot(c, 0);
    c->bytes -= (*p)->len + LOG_CACHE_OVERHEAD;
    free(*p);
    *p = NULL;
    c->head = (c->head + 1) % c->cap;
    c->count--;
}

static void pop_back(log_cache_t *c)
{
    log_cache_ent_t **p = slot(c, c->count - 1);
    c->bytes -= (*p)->len + LOG_CACHE_OVERHEAD;
    free(*p);
    *p = NULL;
    c->count--;
}

void log_cache_clear(log_cache_t *c)
{
    while (c->count > 0)
        pop_back(c);
    c->head = 0;
}

void log_cache_free(log_cache_t *c)
{
    log_cache_clear(c);
    free(c->ring);
    c->ring = NULL;
    c->cap = 0;
}

void log_cache_drop_from(log_cache_t *c, uint64_t from)
{
    while (c->count > 0 && (*slot(c, c->count - 1))->index >= from)
        pop_back(c);
}

void log_cache_drop_before(log_cache_t *c, uint64_t keep)
{
    while (c->count > 0 && (*slot(c, 0))->index < keep)
        pop_front(c);
}

static int grow(log_cache_t *c)
{
    size_t ncap = c->cap ? c->cap * 2 : 64;
    log_cache_ent_t **n = malloc(ncap * sizeof *n);
    if (n == NULL)
        return -1;
    for (size_t i = 0; i < c->count; i++)
        n[i] = *slot(c, i);
    free(c->ring);
    c->ring = n;
    c->cap = ncap;
    c->head = 0;
    return 0;
}

void log_cache_append(log_cache_t *c, const log_entry_t *e)
{
    if (c->limit == 0 || e->len + LOG_CACHE_OVERHEAD > c->limit) {
        log_cache_clear(c); /* keep the cache contiguous up to the last index */
        return;
    }
    if (c->count > 0 && (*slot(c, c->count - 1))->index + 1 != e->index)
        log_cache_clear(c);
    if (c->count == c->cap && grow(c) != 0) {
        log_cache_clear(c);
        return;
    }
    log_cache_ent_t *ent = malloc(sizeof *ent + e->len);
    if (ent == NULL) {
        log_cache_clear(c);
        return;
    }
    ent->index = e->index;
    ent->term = e->term;
    ent->type = e->type;
    ent->len = e->len;
    if (e->len)
        memcpy(ent->data, e->data, e->len);
    *slot(c, c->count) = ent;
    c->count++;
    c->bytes += e->len + LOG_CACHE_OVERHEAD;
    while (c->bytes > c->limit)
        pop_front(c);
}

bool log_cache_holds(const log_cache_t *c, uint64_t index)
{
    if (c->count == 0)
        return false;
    uint64_t first = c->ring[c->head]->index;
    return index >= first && index - first < c->count;
}

const log_cache_ent_t *log_cache_find(log_cache_t *c, uint64_t index)
{
    if (c->count == 0)
        return NULL;
    uint64_t first = (*slot(c, 0))->index;
    if (index < first || index - first >= c->count)
        return NULL;
    c->hits++;
    return *slot(c, (size_t)(index - first));
}
