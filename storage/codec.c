/* Entry, configuration and integer encodings shared by the storage modules. */
#include "storage/codec.h"

#include <string.h>
#include <xxhash.h>

#include "raftkit/status.h"

void codec_put_be64(void *p, uint64_t v)
{
    uint8_t *b = p;
    for (int i = 7; i >= 0; i--) {
        b[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t codec_get_be64(const void *p)
{
    const uint8_t *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return v;
}

void codec_put_le64(void *p, uint64_t v)
{
    uint8_t *b = p;
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t codec_get_le64(const void *p)
{
    const uint8_t *b = p;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

void codec_put_le32(void *p, uint32_t v)
{
    uint8_t *b = p;
    for (int i = 0; i < 4; i++) {
        b[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint32_t codec_get_le32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

uint64_t codec_checksum(const void *p, size_t len, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, len, seed);
}

static uint64_t entry_checksum(uint64_t index, const uint8_t *header, const void *data, size_t len)
{
    return XXH3_64bits_withSeed(data, len, XXH3_64bits_withSeed(header, 16, index));
}

void codec_entry_encode(const log_entry_t *e, void *buf)
{
    uint8_t *b = buf;
    b[0] = CODEC_ENTRY_VERSION;
    b[1] = (uint8_t)e->type;
    b[2] = b[3] = 0;
    codec_put_le32(b + 4, (uint32_t)e->len);
    codec_put_le64(b + 8, e->term);
    if (e->len > 0)
        memcpy(b + CODEC_ENTRY_HEADER, e->data, e->len);
    codec_put_le64(b + 16, entry_checksum(e->index, b, b + CODEC_ENTRY_HEADER, e->len));
}

int codec_entry_decode(uint64_t index, const void *buf, size_t len, log_entry_t *out)
{
    const uint8_t *b = buf;
    if (len < CODEC_ENTRY_HEADER || b[0] != CODEC_ENTRY_VERSION)
        return RK_ECORRUPT;
    if (b[1] < LOG_ENTRY_DATA || b[1] > LOG_ENTRY_CONF || b[2] != 0 || b[3] != 0)
        return RK_ECORRUPT;
    uint32_t plen = codec_get_le32(b + 4);
    if ((size_t)plen != len - CODEC_ENTRY_HEADER)
        return RK_ECORRUPT;
    if (codec_get_le64(b + 16) != entry_checksum(index, b, b + CODEC_ENTRY_HEADER, plen))
        return RK_ECORRUPT;
    out->index = index;
    out->term = codec_get_le64(b + 8);
    out->type = (log_entry_type_t)b[1];
    out->data = b + CODEC_ENTRY_HEADER;
    out->len = plen;
    return 0;
}

/* A peer is encoded as: u8 host length, host bytes, u16 port, i32 idx,
 * i32 priority. A configuration is u32 n_peers, u32 n_learners, the peers. */
static size_t peer_size(const rk_peer_id_t *p)
{
    return 1 + strnlen(p->endpoint.host, RK_HOST_MAX - 1) + 2 + 4 + 4;
}

size_t codec_conf_size(const rk_configuration_t *c)
{
    size_t n = 8;
    for (uint32_t i = 0; i < c->n_peers && i < RK_CONF_MAX_PEERS; i++)
        n += peer_size(&c->peers[i]);
    for (uint32_t i = 0; i < c->n_learners && i < RK_CONF_MAX_PEERS; i++)
        n += peer_size(&c->learners[i]);
    return n;
}

static size_t peer_encode(const rk_peer_id_t *p, uint8_t *b)
{
    size_t hl = strnlen(p->endpoint.host, RK_HOST_MAX - 1);
    b[0] = (uint8_t)hl;
    memcpy(b + 1, p->endpoint.host, hl);
    b += 1 + hl;
    b[0] = (uint8_t)p->endpoint.port;
    b[1] = (uint8_t)(p->endpoint.port >> 8);
    codec_put_le32(b + 2, (uint32_t)p->idx);
    codec_put_le32(b + 6, (uint32_t)p->priority);
    return 1 + hl + 10;
}

size_t codec_conf_encode(const rk_configuration_t *c, uint8_t *p)
{
    uint32_t np = c->n_peers < RK_CONF_MAX_PEERS ? c->n_peers : RK_CONF_MAX_PEERS;
    uint32_t nl = c->n_learners < RK_CONF_MAX_PEERS ? c->n_learners : RK_CONF_MAX_PEERS;
    uint8_t *start = p;
    codec_put_le32(p, np);
    codec_put_le32(p + 4, nl);
    p += 8;
    for (uint32_t i = 0; i < np; i++)
        p += peer_encode(&c->peers[i], p);
    for (uint32_t i = 0; i < nl; i++)
        p += peer_encode(&c->learners[i], p);
    return (size_t)(p - start);
}

static long peer_decode(const uint8_t *b, size_t len, rk_peer_id_t *p)
{
    if (len < 1)
        return RK_ECORRUPT;
    size_t hl = b[0];
    if (hl >= RK_HOST_MAX || len < 1 + hl + 10)
        return RK_ECORRUPT;
    memset(p, 0, sizeof *p);
    memcpy(p->endpoint.host, b + 1, hl);
    b += 1 + hl;
    p->endpoint.port = (uint16_t)(b[0] | b[1] << 8);
    p->idx = (int32_t)codec_get_le32(b + 2);
    p->priority = (int32_t)codec_get_le32(b + 6);
    return (long)(1 + hl + 10);
}

long codec_conf_decode(const uint8_t *p, size_t len, rk_configuration_t *c)
{
    if (len < 8)
        return RK_ECORRUPT;
    memset(c, 0, sizeof *c);
    uint32_t np = codec_get_le32(p), nl = codec_get_le32(p + 4);
    if (np > RK_CONF_MAX_PEERS || nl > RK_CONF_MAX_PEERS)
        return RK_ECORRUPT;
    size_t off = 8;
    for (uint32_t i = 0; i < np + nl; i++) {
        rk_peer_id_t *dst = i < np ? &c->peers[i] : &c->learners[i - np];
        long n = peer_decode(p + off, len - off, dst);
        if (n < 0)
            return n;
        off += (size_t)n;
    }
    c->n_peers = np;
    c->n_learners = nl;
    return (long)off;
}
