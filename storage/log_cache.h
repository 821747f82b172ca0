/* The recent-entries cache of a log store: a ring of copies of the newest
 * entries, contiguous and ending at the last index, bounded in bytes. A
 * leader replicating to followers that keep up reads only from here.
 * Not thread-safe: the owning log store guards it with its mutex. */
#ifndef RAFTKIT_STORAGE_LOG_CACHE_H
#define RAFTKIT_STORAGE_LOG_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/codec.h"

typedef struct log_cache_ent {
    uint64_t index;
    uint64_t term;
    log_entry_type_t type;
    size_t len;
    unsigned char data[];
} log_cache_ent_t;

typedef struct log_cache {
    log_cache_ent_t **ring;
    size_t cap, head, count;
    size_t bytes, limit;
    uint64_t hits;
} log_cache_t;

/* Per-entry accounting overhead added to the payload length. */
#define LOG_CACHE_OVERHEAD (sizeof(log_cache_ent_t) + sizeof(void *))

void log_cache_init(log_cache_t *c, size_t limit);
void log_cache_free(log_cache_t *c);
void log_cache_clear(log_cache_t *c);
/* Removes entries with index >= from. */
void log_cache_drop_from(log_cache_t *c, uint64_t from);
/* Removes entries with index < keep. */
void log_cache_drop_before(log_cache_t *c, uint64_t keep);
/* Adds a copy of e. If e does not directly follow the newest entry the cache
 * restarts at e. Evicts the oldest entries past the byte limit. Allocation
 * failure just leaves the entry out (the cache is an optimisation). */
void log_cache_append(log_cache_t *c, const log_entry_t *e);
/* Whether index is cached (no hit counted). */
bool log_cache_holds(const log_cache_t *c, uint64_t index);
/* The cached entry at index, or NULL. Counts a hit when found. */
const log_cache_ent_t *log_cache_find(log_cache_t *c, uint64_t index);

#endif /* RAFTKIT_STORAGE_LOG_CACHE_H */
