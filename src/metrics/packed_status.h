/* rk_node_status_t without the unused tails of its arrays.
 *
 * The status is a plain 19 KiB value (room for 32 voters, 32 learners, two
 * configurations and 64 followers), of which a 3-voter group uses about
 * 1 KiB. The metrics hub keeps two of them per group (the last publication
 * and the readers' copy) and the loop publishes every tick: with thousands
 * of groups, copying and keeping whole structs would cost more memory and
 * CPU than everything else the idle groups do. A packed status is the
 * struct's bytes with each array cut to its count.
 */
#ifndef RAFTKIT_METRICS_PACKED_STATUS_H
#define RAFTKIT_METRICS_PACKED_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "raftkit/metrics.h"

typedef struct packed_status {
    unsigned char *bytes; /* malloc'd */
    size_t len, cap;
} packed_status_t;

/* Packs st into p (growing p->bytes as needed); counts past their array's
 * size are taken as the size. Returns 0, or RK_ENOMEM with p unchanged. */
int packed_status_set(packed_status_t *p, const rk_node_status_t *st);

/* Whether p holds st, ignoring the group and self fields (the hub's own). */
bool packed_status_equal(const packed_status_t *p, const rk_node_status_t *st);

/* Unpacks p into st. clean: also zeroes the arrays past their counts, so
 * that st is exactly what was packed (for readers); else they are left as
 * they were (for the loop's own comparisons, which read only up to the
 * counts). */
void packed_status_get(const packed_status_t *p, rk_node_status_t *st, bool clean);

/* Copies src into dst; RK_ENOMEM with dst unchanged. */
int packed_status_copy(packed_status_t *dst, const packed_status_t *src);

void packed_status_free(packed_status_t *p);

/* What rk_node_status_init does, but leaving the arrays' entries alone
 * (their counts become 0): for a status built to be published, where
 * clearing 19 KiB every tick would be most of the cost. */
void packed_status_reset(rk_node_status_t *st);

/* *dst = *src for the entries in use only. */
void packed_status_conf_copy(rk_configuration_t *dst, const rk_configuration_t *src);

#endif /* RAFTKIT_METRICS_PACKED_STATUS_H */
