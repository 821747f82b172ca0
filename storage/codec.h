/* Encoding of log entries, hard state and snapshot metadata into the byte
 * records raftkit stores on disk, each protected by an xxHash3 checksum.
 *
 * Entry value layout (all integers little-endian):
 *
 *   0  u8  format version (1)
 *   1  u8  entry type (log_entry_type_t)
 *   2  u16 reserved, 0
 *   4  u32 payload length
 *   8  u64 term
 *   16 u64 checksum: XXH3-64 of the payload, seeded with XXH3-64 of bytes
 *          0..15 seeded with the entry's log index
 *   24 payload
 *
 * The index is in the checksum although it is not in the value: a value that
 * ends up under the wrong key (a misdirected write, a bad page copy) fails to
 * verify instead of being served as the entry at that index.
 *
 * All functions are pure and thread-safe.
 */
#ifndef RAFTKIT_STORAGE_CODEC_H
#define RAFTKIT_STORAGE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "raftkit/peer.h"

#define CODEC_ENTRY_HEADER  24u
#define CODEC_ENTRY_VERSION 1u

/* Entry types. The payload is opaque to storage in every case. */
typedef enum log_entry_type {
    LOG_ENTRY_DATA = 1,
    LOG_ENTRY_NOOP = 2,
    LOG_ENTRY_CONF = 3,
} log_entry_type_t;

/* One log entry as storage sees it: plain values plus a borrowed or owned
 * payload (the owner is stated by whoever hands the entry over). */
typedef struct log_entry {
    uint64_t index;
    uint64_t term;
    log_entry_type_t type;
    const void *data;
    size_t len;
} log_entry_t;

/* Bytes needed to encode e. */
static inline size_t codec_entry_size(const log_entry_t *e)
{
    return CODEC_ENTRY_HEADER + e->len;
}

/* Encodes e into buf, which holds codec_entry_size(e) bytes. */
void codec_entry_encode(const log_entry_t *e, void *buf);

/* Decodes and verifies the value stored under `index`. On success fills out
 * (out->data points into buf, so it lives as long as buf) and returns 0;
 * returns RK_ECORRUPT for a short value, an unknown version or type, a length
 * that does not match, or a checksum mismatch. */
int codec_entry_decode(uint64_t index, const void *buf, size_t len, log_entry_t *out);

/* Big-endian u64 helpers for keys: big-endian keys sort in numeric order
 * under LMDB's default memcmp comparison. */
void codec_put_be64(void *p, uint64_t v);
uint64_t codec_get_be64(const void *p);
void codec_put_le64(void *p, uint64_t v);
uint64_t codec_get_le64(const void *p);
void codec_put_le32(void *p, uint32_t v);
uint32_t codec_get_le32(const void *p);

/* ---- configurations (for snapshot metadata) ---- */

/* Bytes needed to encode c (fixed per peer count). */
size_t codec_conf_size(const rk_configuration_t *c);
/* Encodes c at p; returns the bytes written (codec_conf_size(c)). */
size_t codec_conf_encode(const rk_configuration_t *c, uint8_t *p);
/* Decodes a configuration from p[0..len); returns the bytes consumed, or
 * RK_ECORRUPT when the record is short or out of range. */
long codec_conf_decode(const uint8_t *p, size_t len, rk_configuration_t *c);

/* 64-bit checksum used for every storage record and snapshot file. */
uint64_t codec_checksum(const void *p, size_t len, uint64_t seed);

#endif /* RAFTKIT_STORAGE_CODEC_H */
