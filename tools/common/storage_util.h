/* Helpers shared by the storage tests and the storage benchmark: temporary directories and
 * deterministic entry payloads that a reader can check without the writer's
 * help (the crash test's parent verifies what a killed child wrote). */
#ifndef RAFTKIT_TOOLS_COMMON_STORAGE_UTIL_H
#define RAFTKIT_TOOLS_COMMON_STORAGE_UTIL_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/codec.h"

static inline char *tu_mkdtemp(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/raftkit-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (mkdtemp(p) == NULL) {
        perror("mkdtemp");
        abort();
    }
    return p;
}

static inline int tu_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void tu_rm_rf(const char *path)
{
    nftw(path, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Payload of the entry at index in term: length in [0, max_len], contents a
 * function of (index, term). */
static inline size_t tu_payload_len(uint64_t index, size_t max_len)
{
    return max_len == 0 ? 0 : (size_t)((index * 2654435761u) % (max_len + 1));
}

static inline void tu_payload_fill(uint64_t index, uint64_t term, unsigned char *buf, size_t len)
{
    uint64_t x = index * 0x9E3779B97F4A7C15ull ^ term;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
}

static inline int tu_payload_check(uint64_t index, uint64_t term, const void *data, size_t len)
{
    unsigned char *want = malloc(len ? len : 1);
    tu_payload_fill(index, term, want, len);
    int ok = len == 0 || memcmp(want, data, len) == 0;
    free(want);
    return ok;
}

/* Builds n entries [first, first + n) of term with payloads of at most
 * max_len bytes; frees with tu_entries_free. */
static inline log_entry_t *tu_entries(uint64_t first, size_t n, uint64_t term, size_t max_len)
{
    log_entry_t *e = calloc(n ? n : 1, sizeof *e);
    for (size_t i = 0; i < n; i++) {
        e[i].index = first + i;
        e[i].term = term;
        e[i].type = (first + i) % 7 == 0 ? LOG_ENTRY_NOOP : LOG_ENTRY_DATA;
        e[i].len = tu_payload_len(first + i, max_len);
        unsigned char *p = malloc(e[i].len ? e[i].len : 1);
        tu_payload_fill(first + i, term, p, e[i].len);
        e[i].data = p;
    }
    return e;
}

static inline void tu_entries_free(log_entry_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)e[i].data);
    free(e);
}

#endif /* RAFTKIT_TOOLS_COMMON_STORAGE_UTIL_H */
