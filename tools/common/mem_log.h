/* An in-memory Raft log for hosts of the core that keep no disk: the
 * scenario-test harness and the core benchmark. It also serves as their
 * core_storage_t (pass the mem_log_t as arg with mem_log_term and
 * mem_log_entries). Entries hold one reference on their data each. */
#ifndef RAFTKIT_TOOLS_COMMON_MEM_LOG_H
#define RAFTKIT_TOOLS_COMMON_MEM_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "src/core/core.h"

typedef struct mem_log {
    uint64_t compact_index, compact_term; /* last entry dropped (snapshot) */
    core_entry_t *v;                      /* v[k] has index compact_index + 1 + k */
    size_t n, cap;
} mem_log_t;

static inline uint64_t mem_log_last(const mem_log_t *l)
{
    return l->compact_index + l->n;
}

/* core_storage_t callbacks; arg is the mem_log_t. */
int mem_log_term(void *arg, uint64_t index, uint64_t *term);
int mem_log_entries(void *arg, uint64_t lo, uint64_t hi, size_t max_bytes, core_entry_t *out,
                    size_t *cnt);

/* Drops entries >= from, then appends e[0..cnt) (taking references);
 * e[0].index must be at most last + 1. Aborts when out of memory. */
void mem_log_append(mem_log_t *l, const core_entry_t *e, size_t cnt);
void mem_log_truncate(mem_log_t *l, uint64_t from);

/* Drops entries <= index (a snapshot covers them; index <= last). */
void mem_log_compact(mem_log_t *l, uint64_t index, uint64_t term);

/* Drops every entry and restarts the log after (index, term). */
void mem_log_reset(mem_log_t *l, uint64_t index, uint64_t term);

void mem_log_free(mem_log_t *l);

#endif
