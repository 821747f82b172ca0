/* Packing of rk_node_status_t (packed_status.h): the struct's bytes in
 * order, each array cut to its count. The arrays and their counts are
 * described by a table, in the order they lie in the struct; every count
 * lies before its array, so unpacking in order knows each count in time. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/metrics/packed_status.h"

typedef struct array {
    size_t off, count_off, elem, max;
} array_t;

#define ARRAY(field, count, max)                                              \
    {                                                                         \
        offsetof(rk_node_status_t, field), offsetof(rk_node_status_t, count), \
            sizeof(((rk_node_status_t *)0)->field[0]), max                    \
    }

static const array_t arrays[] = {
    ARRAY(conf.peers, conf.n_peers, RK_CONF_MAX_PEERS),
    ARRAY(conf.learners, conf.n_learners, RK_CONF_MAX_PEERS),
    ARRAY(old_conf.peers, old_conf.n_peers, RK_CONF_MAX_PEERS),
    ARRAY(old_conf.learners, old_conf.n_learners, RK_CONF_MAX_PEERS),
    ARRAY(peers, n_peers, RK_STATUS_MAX_PEERS),
};
#define N_ARRAYS (sizeof arrays / sizeof arrays[0])

/* The hub's own fields, first in the struct: not compared. */
#define OWN_END (offsetof(rk_node_status_t, self) + sizeof(rk_peer_id_t))

static size_t used(const unsigned char *st, const array_t *a)
{
    uint32_t n;
    memcpy(&n, st + a->count_off, sizeof n);
    return (n < a->max ? n : a->max) * a->elem;
}

/* Calls f(struct offset, length) for each packed segment of st, in order. */
#define FOR_SEGMENTS(st, f)                        \
    do {                                           \
        size_t at_ = 0;                            \
        for (size_t i_ = 0; i_ < N_ARRAYS; i_++) { \
            const array_t *a_ = &arrays[i_];       \
            f(at_, a_->off - at_);                 \
            f(a_->off, used((st), a_));            \
            at_ = a_->off + a_->elem * a_->max;    \
        }                                          \
        f(at_, sizeof(rk_node_status_t) - at_);    \
    } while (0)

static size_t packed_len(const rk_node_status_t *st)
{
    size_t len = 0;
#define ADD(off, n) len += (n)
    FOR_SEGMENTS((const unsigned char *)st, ADD);
#undef ADD
    return len;
}

int packed_status_set(packed_status_t *p, const rk_node_status_t *st)
{
    size_t len = packed_len(st);
    if (len > p->cap) {
        unsigned char *b = realloc(p->bytes, len);
        if (b == NULL)
            return RK_ENOMEM;
        p->bytes = b;
        p->cap = len;
    }
    const unsigned char *src = (const unsigned char *)st;
    size_t k = 0;
#define PUT(off, n) (memcpy(p->bytes + k, src + (off), (n)), k += (n))
    FOR_SEGMENTS(src, PUT);
#undef PUT
    p->len = len;
    return 0;
}

bool packed_status_equal(const packed_status_t *p, const rk_node_status_t *st)
{
    if (p->len != packed_len(st))
        return false;
    const unsigned char *src = (const unsigned char *)st;
    size_t k = 0;
    bool eq = true;
    /* The first segment starts with the hub's own fields: compared past them. */
#define CMP(off, n)                                                                           \
    do {                                                                                      \
        size_t skip_ = (off) < OWN_END ? (OWN_END - (off) < (n) ? OWN_END - (off) : (n)) : 0; \
        eq = eq && memcmp(p->bytes + k + skip_, src + (off) + skip_, (n)-skip_) == 0;         \
        k += (n);                                                                             \
    } while (0)
    FOR_SEGMENTS(src, CMP);
#undef CMP
    return eq;
}

void packed_status_get(const packed_status_t *p, rk_node_status_t *st, bool clean)
{
    unsigned char *dst = (unsigned char *)st;
    size_t k = 0, at = 0;
    for (size_t i = 0; i < N_ARRAYS; i++) {
        const array_t *a = &arrays[i];
        memcpy(dst + at, p->bytes + k, a->off - at);
        k += a->off - at;
        size_t n = used(dst, a); /* its count was just copied */
        memcpy(dst + a->off, p->bytes + k, n);
        k += n;
        if (clean)
            memset(dst + a->off + n, 0, a->elem * a->max - n);
        at = a->off + a->elem * a->max;
    }
    memcpy(dst + at, p->bytes + k, sizeof *st - at);
}

int packed_status_copy(packed_status_t *dst, const packed_status_t *src)
{
    if (src->len > dst->cap) {
        unsigned char *b = realloc(dst->bytes, src->len);
        if (b == NULL)
            return RK_ENOMEM;
        dst->bytes = b;
        dst->cap = src->len;
    }
    memcpy(dst->bytes, src->bytes, src->len);
    dst->len = src->len;
    return 0;
}

void packed_status_free(packed_status_t *p)
{
    free(p->bytes);
    p->bytes = NULL;
    p->len = p->cap = 0;
}

void packed_status_reset(rk_node_status_t *st)
{
    unsigned char *b = (unsigned char *)st;
    size_t at = 0;
    for (size_t i = 0; i < N_ARRAYS; i++) {
        memset(b + at, 0, arrays[i].off - at);
        at = arrays[i].off + arrays[i].elem * arrays[i].max;
    }
    memset(b + at, 0, sizeof *st - at);
    st->state = RK_STATE_UNINITIALIZED;
    rk_peer_id_clear(&st->self);
    rk_peer_id_clear(&st->leader);
    rk_status_clear(&st->error);
}

void packed_status_conf_copy(rk_configuration_t *dst, const rk_configuration_t *src)
{
    uint32_t np = src->n_peers < RK_CONF_MAX_PEERS ? src->n_peers : RK_CONF_MAX_PEERS;
    uint32_t nl = src->n_learners < RK_CONF_MAX_PEERS ? src->n_learners : RK_CONF_MAX_PEERS;
    dst->n_peers = np;
    dst->n_learners = nl;
    memcpy(dst->peers, src->peers, np * sizeof src->peers[0]);
    memcpy(dst->learners, src->learners, nl * sizeof src->learners[0]);
}
