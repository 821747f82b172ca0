/* The configuration forced by rk_node_reset_peers, kept durable in the
 * group's directory until the log carries it (src/node/forced_conf.c explains why).
 * Storage sees opaque configuration bytes and the log index they apply at.
 *
 * File <dir>/forced_conf (all integers little-endian): "RKFC", u32 version
 * 1, u64 index, u32 len, len bytes of configuration, u64 XXH64 (seed 0) of
 * everything before it. Replaced atomically (fileio_replace).
 */
#ifndef RAFTKIT_STORAGE_FORCED_CONF_STORE_H
#define RAFTKIT_STORAGE_FORCED_CONF_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "raftkit/status.h"

/* Largest configuration accepted (bytes). */
#define FORCED_CONF_MAX (1u << 20)

/* Makes (index, conf[0..len)) durable in dir (created if missing),
 * replacing any earlier one, before returning. Thread: any. Errors: RK_EINVAL (len over
 * FORCED_CONF_MAX), RK_ENOMEM, RK_EIO, RK_ENOSPC; st says what failed. */
int forced_conf_store_save(const char *dir, uint64_t index, const void *conf, size_t len,
                           rk_status_t *st);

/* Reads it back: *conf is malloc'ed (owned by the caller), *len bytes.
 * Errors: RK_ENOTFOUND (none saved), RK_ECORRUPT (fails its format or
 * checksum check), RK_ENOMEM, RK_EIO. Thread: any. */
int forced_conf_store_load(const char *dir, uint64_t *index, uint8_t **conf, size_t *len,
                           rk_status_t *st);

/* Removes it, durably (a removal a power loss undoes is harmless anyway:
 * the caller compares the index with the log's). Errors: RK_EIO. */
int forced_conf_store_remove(const char *dir, rk_status_t *st);

#endif /* RAFTKIT_STORAGE_FORCED_CONF_STORE_H */
