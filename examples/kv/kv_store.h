/* The kv example's state: a hash map of byte-string keys to byte-string
 * values plus a session table that makes retried writes idempotent. Pure
 * data structure, no threads and no Raft: the state machine (kv_sm.c) calls
 * it on the FSM thread and the tests call it directly.
 *
 * Not thread-safe: the caller serializes every call (kv_sm.c holds a mutex
 * so stale reads from the loop thread can run beside the FSM thread).
 */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "examples/kv/kv.pb-c.h"

typedef struct kv_store kv_store_t;

/* Sessions kept at most; past it the least recently written one is dropped
 * (deterministically, by log index, so every replica drops the same one). A
 * client whose session was dropped loses deduplication, nothing else. */
#define KV_MAX_SESSIONS 65536

/* The outcome of a command: result (Kv__Result), and for a cas mismatch the
 * current value (NULL when the key is absent). value points into the store
 * and is valid until the next call that modifies it. */
typedef struct kv_outcome {
    Kv__Result result;
    const uint8_t *value;
    size_t value_len;
    int duplicate; /* 1 when answered from the session table */
} kv_outcome_t;

/* Returns NULL when out of memory. */
kv_store_t *kv_store_new(void);
void kv_store_free(kv_store_t *s);

/* Number of keys. */
size_t kv_store_count(const kv_store_t *s);

/* Looks key up. Returns KV__RESULT__RES_OK with *value and *len pointing into
 * the store (valid until the next modification), or KV__RESULT__RES_NOT_FOUND. */
Kv__Result kv_store_get(const kv_store_t *s, const uint8_t *key, size_t klen, const uint8_t **value,
                        size_t *len);

/* Executes a write command (put, cas, del) applied at log index `index`.
 * When cmd->client_id != 0 and cmd->seq is not above the client's last
 * applied seq, nothing changes and out holds the recorded result with
 * duplicate = 1 (a seq below the last one is answered the same way: that
 * client has already moved on and only a delayed duplicate can carry it).
 * Returns 0, -1 for an unknown op (state unchanged), or -2 when out of
 * memory (state unchanged). */
int kv_store_exec(kv_store_t *s, const Kv__Command *cmd, uint64_t index, kv_outcome_t *out);

/* Writes the whole state (keys and sessions) to path and fsyncs it. Returns
 * 0 or -errno. */
int kv_store_save(const kv_store_t *s, const char *path);

/* Replaces the whole state with the file's. Returns 0, -errno, or -EILSEQ for
 * a malformed file (state unchanged then). */
int kv_store_load(kv_store_t *s, const char *path);

#endif /* KV_STORE_H */
