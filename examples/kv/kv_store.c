/* The kv example's state: a chained hash map of keys to values and a session
 * table for idempotent retries, with a checksummed snapshot file format. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "examples/kv/kv_store.h"

typedef struct kv_entry {
    struct kv_entry *next;
    uint64_t hash;
    uint8_t *key, *value;
    size_t klen, vlen;
} kv_entry_t;

typedef struct kv_session {
    struct kv_session *next;
    uint64_t client_id;
    uint64_t seq;
    uint64_t index; /* log index of the last write: the eviction order */
    Kv__Result result;
} kv_session_t;

struct kv_store {
    kv_entry_t **buckets;
    size_t nbuckets, count;
    kv_session_t **sbuckets;
    size_t nsbuckets, nsessions;
};

static uint64_t key_hash(const uint8_t *k, size_t len)
{
    return XXH3_64bits(k, len);
}

static uint64_t id_hash(uint64_t id)
{
    return XXH3_64bits(&id, sizeof id);
}

kv_store_t *kv_store_new(void)
{
    kv_store_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->nbuckets = 64;
    s->nsbuckets = 64;
    s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
    s->sbuckets = calloc(s->nsbuckets, sizeof *s->sbuckets);
    if (s->buckets == NULL || s->sbuckets == NULL) {
        kv_store_free(s);
        return NULL;
    }
    return s;
}

static void clear_all(kv_store_t *s)
{
    for (size_t i = 0; i < s->nbuckets; i++) {
        kv_entry_t *e = s->buckets[i];
        while (e != NULL) {
            kv_entry_t *next = e->next;
            free(e->key);
            free(e->value);
            free(e);
            e = next;
        }
        s->buckets[i] = NULL;
    }
    for (size_t i = 0; i < s->nsbuckets; i++) {
        kv_session_t *x = s->sbuckets[i];
        while (x != NULL) {
            kv_session_t *next = x->next;
            free(x);
            x = next;
        }
        s->sbuckets[i] = NULL;
    }
    s->count = 0;
    s->nsessions = 0;
}

void kv_store_free(kv_store_t *s)
{
    if (s == NULL)
        return;
    if (s->buckets != NULL && s->sbuckets != NULL)
        clear_all(s);
    free(s->buckets);
    free(s->sbuckets);
    free(s);
}

size_t kv_store_count(const kv_store_t *s)
{
    return s->count;
}

static kv_entry_t **find_slot(const kv_store_t *s, const uint8_t *key, size_t klen, uint64_t h)
{
    kv_entry_t **pp = &s->buckets[h % s->nbuckets];
    for (; *pp != NULL; pp = &(*pp)->next) {
        kv_entry_t *e = *pp;
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return pp;
    }
    return pp;
}

Kv__Result kv_store_get(const kv_store_t *s, const uint8_t *key, size_t klen, const uint8_t **value,
                        size_t *len)
{
    kv_entry_t *e = *find_slot(s, key, klen, key_hash(key, klen));
    if (e == NULL)
        return KV__RESULT__RES_NOT_FOUND;
    *value = e->value;
    *len = e->vlen;
    return KV__RESULT__RES_OK;
}

/* Doubles the bucket array when the load factor passes 1; on allocation
 * failure the table simply stays denser. */
static void maybe_grow(kv_store_t *s)
{
    if (s->count < s->nbuckets)
        return;
    size_t n = s->nbuckets * 2;
    kv_entry_t **b = calloc(n, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        kv_entry_t *e = s->buckets[i];
        while (e != NULL) {
            kv_entry_t *next = e->next;
            e->next = b[e->hash % n];
            b[e->hash % n] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);
    if (d != NULL && len)
        memcpy(d, p, len);
    return d;
}

/* Sets key to value (insert or replace). Returns 0 or -2 (no memory). */
static int put(kv_store_t *s, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    uint64_t h = key_hash(key, klen);
    kv_entry_t **pp = find_slot(s, key, klen, h);
    uint8_t *v = dup_bytes(val, vlen);
    if (v == NULL)
        return -2;
    if (*pp != NULL) {
        free((*pp)->value);
        (*pp)->value = v;
        (*pp)->vlen = vlen;
        return 0;
    }
    kv_entry_t *e = calloc(1, sizeof *e);
    uint8_t *k = dup_bytes(key, klen);
    if (e == NULL || k == NULL) {
        free(e);
        free(k);
        free(v);
        return -2;
    }
    e->hash = h;
    e->key = k;
    e->klen = klen;
    e->value = v;
    e->vlen = vlen;
    *pp = e;
    s->count++;
    maybe_grow(s);
    return 0;
}

static bool del(kv_store_t *s, const uint8_t *key, size_t klen)
{
    kv_entry_t **pp = find_slot(s, key, klen, key_hash(key, klen));
    kv_entry_t *e = *pp;
    if (e == NULL)
        return false;
    *pp = e->next;
    free(e->key);
    free(e->value);
    free(e);
    s->count--;
    return true;
}

/* ---- sessions ---- */

static kv_session_t **session_slot(const kv_store_t *s, uint64_t id)
{
    kv_session_t **pp = &s->sbuckets[id_hash(id) % s->nsbuckets];
    while (*pp != NULL && (*pp)->client_id != id)
        pp = &(*pp)->next;
    return pp;
}

static void session_evict_oldest(kv_store_t *s)
{
    kv_session_t **oldest = NULL;
    for (size_t i = 0; i < s->nsbuckets; i++)
        for (kv_session_t **pp = &s->sbuckets[i]; *pp != NULL; pp = &(*pp)->next)
            if (oldest == NULL || (*pp)->index < (*oldest)->index ||
                ((*pp)->index == (*oldest)->index && (*pp)->client_id < (*oldest)->client_id))
                oldest = pp;
    if (oldest != NULL) {
        kv_session_t *x = *oldest;
        *oldest = x->next;
        free(x);
        s->nsessions--;
    }
}

static void session_grow(kv_store_t *s)
{
    if (s->nsessions < s->nsbuckets)
        return;
    size_t n = s->nsbuckets * 2;
    kv_session_t **b = calloc(n, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < s->nsbuckets; i++) {
        kv_session_t *x = s->sbuckets[i];
        while (x != NULL) {
            kv_session_t *next = x->next;
            size_t j = id_hash(x->client_id) % n;
            x->next = b[j];
            b[j] = x;
            x = next;
        }
    }
    free(s->sbuckets);
    s->sbuckets = b;
    s->nsbuckets = n;
}

/* Records the result of the client's write seq. Out of memory only loses
 * deduplication for that client, which is the documented degraded mode. */
static void session_record(kv_store_t *s, uint64_t id, uint64_t seq, uint64_t index, Kv__Result r)
{
    kv_session_t **pp = session_slot(s, id);
    if (*pp == NULL) {
        if (s->nsessions >= KV_MAX_SESSIONS)
            session_evict_oldest(s);
        pp = session_slot(s, id);
        kv_session_t *x = calloc(1, sizeof *x);
        if (x == NULL)
            return;
        x->client_id = id;
        *pp = x;
        s->nsessions++;
    }
    (*pp)->seq = seq;
    (*pp)->index = index;
    (*pp)->result = r;
    session_grow(s);
}

int kv_store_exec(kv_store_t *s, const Kv__Command *cmd, uint64_t index, kv_outcome_t *out)
{
    memset(out, 0, sizeof *out);
    if (cmd->op != KV__OP__OP_PUT && cmd->op != KV__OP__OP_CAS && cmd->op != KV__OP__OP_DEL)
        return -1;
    if (cmd->client_id != 0) {
        kv_session_t *x = *session_slot(s, cmd->client_id);
        if (x != NULL && cmd->seq <= x->seq) {
            out->result = x->result;
            out->duplicate = 1;
            return 0;
        }
    }
    const uint8_t *cur;
    size_t curlen;
    Kv__Result found = kv_store_get(s, cmd->key.data, cmd->key.len, &cur, &curlen);
    switch (cmd->op) {
    case KV__OP__OP_PUT:
        if (put(s, cmd->key.data, cmd->key.len, cmd->value.data, cmd->value.len) != 0)
            return -2;
        out->result = KV__RESULT__RES_OK;
        break;
    case KV__OP__OP_CAS:
        /* An empty expected value matches only an absent key: "create if
         * missing" is the one cas a client cannot express otherwise. */
        if (found == KV__RESULT__RES_NOT_FOUND
                ? cmd->expected.len != 0
                : (curlen != cmd->expected.len || memcmp(cur, cmd->expected.data, curlen) != 0)) {
            out->result = KV__RESULT__RES_MISMATCH;
            if (found == KV__RESULT__RES_OK) {
                out->value = cur;
                out->value_len = curlen;
            }
            break;
        }
        if (put(s, cmd->key.data, cmd->key.len, cmd->value.data, cmd->value.len) != 0)
            return -2;
        out->result = KV__RESULT__RES_OK;
        break;
    default: /* KV__OP__OP_DEL */
        out->result =
            del(s, cmd->key.data, cmd->key.len) ? KV__RESULT__RES_OK : KV__RESULT__RES_NOT_FOUND;
        break;
    }
    if (cmd->client_id != 0)
        session_record(s, cmd->client_id, cmd->seq, index, out->result);
    return 0;
}

/* ---- snapshot file ----
 *
 *   "RKKV0001"  u64 nkeys  { u32 klen, key, u32 vlen, value } * nkeys
 *   u64 nsessions  { u64 client_id, u64 seq, u64 index, u32 result } * nsessions
 *   u64 xxh3 of everything before it
 *
 * Integers are little-endian whatever the host, so that a snapshot can be
 * installed on a replica of another architecture. Files written before this
 * was explicit came from little-endian hosts and read the same.
 */

#define KV_MAGIC "RKKV0001"

typedef struct wbuf {
    FILE *f;
    XXH3_state_t *h;
    bool err;
} wbuf_t;

static void w(wbuf_t *b, const void *p, size_t n)
{
    if (b->err || n == 0)
        return;
    if (fwrite(p, 1, n, b->f) != n)
        b->err = true;
    XXH3_64bits_update(b->h, p, n);
}

static void w32(wbuf_t *b, uint32_t v)
{
    uint8_t q[4];
    for (int i = 0; i < 4; i++)
        q[i] = (uint8_t)(v >> (8 * i));
    w(b, q, 4);
}

static void w64(wbuf_t *b, uint64_t v)
{
    uint8_t q[8];
    for (int i = 0; i < 8; i++)
        q[i] = (uint8_t)(v >> (8 * i));
    w(b, q, 8);
}

static uint64_t le64(const uint8_t *q)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | q[i];
    return v;
}

int kv_store_save(const kv_store_t *s, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -errno;
    XXH3_state_t *h = XXH3_createState();
    if (h == NULL) {
        fclose(f);
        return -ENOMEM;
    }
    XXH3_64bits_reset(h);
    wbuf_t b = {f, h, false};
    w(&b, KV_MAGIC, 8);
    w64(&b, s->count);
    for (size_t i = 0; i < s->nbuckets; i++)
        for (kv_entry_t *e = s->buckets[i]; e != NULL; e = e->next) {
            w32(&b, (uint32_t)e->klen);
            w(&b, e->key, e->klen);
            w32(&b, (uint32_t)e->vlen);
            w(&b, e->value, e->vlen);
        }
    w64(&b, s->nsessions);
    for (size_t i = 0; i < s->nsbuckets; i++)
        for (kv_session_t *x = s->sbuckets[i]; x != NULL; x = x->next) {
            w64(&b, x->client_id);
            w64(&b, x->seq);
            w64(&b, x->index);
            w32(&b, (uint32_t)x->result);
        }
    uint64_t sum = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    uint8_t sumle[8];
    for (int i = 0; i < 8; i++)
        sumle[i] = (uint8_t)(sum >> (8 * i));
    if (!b.err && fwrite(sumle, 1, 8, f) != 8)
        b.err = true;
    int rc = b.err ? -EIO : 0;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = rc ? rc : -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

typedef struct rbuf {
    const uint8_t *p, *end;
    bool err;
} rbuf_t;

static const uint8_t *r(rbuf_t *b, size_t n)
{
    if (b->err || (size_t)(b->end - b->p) < n) {
        b->err = true;
        return NULL;
    }
    const uint8_t *q = b->p;
    b->p += n;
    return q;
}

static uint64_t r64(rbuf_t *b)
{
    const uint8_t *q = r(b, 8);
    return q ? le64(q) : 0;
}

static uint32_t r32(rbuf_t *b)
{
    const uint8_t *q = r(b, 4);
    return q ? (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24
             : 0;
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf != NULL) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int rc = ferror(f) ? -EIO : 0;
    fclose(f);
    if (buf == NULL)
        return -ENOMEM;
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

int kv_store_load(kv_store_t *s, const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len);
    if (rc)
        return rc;
    kv_store_t *t = kv_store_new();
    if (t == NULL) {
        free(data);
        return -ENOMEM;
    }
    rc = -EILSEQ;
    if (len < 24 || memcmp(data, KV_MAGIC, 8) != 0)
        goto out;
    if (XXH3_64bits(data, len - 8) != le64(data + len - 8))
        goto out;
    rbuf_t b = {data + 8, data + len - 8, false};
    uint64_t n = r64(&b);
    for (uint64_t i = 0; i < n && !b.err; i++) {
        uint32_t kl = r32(&b);
        const uint8_t *k = r(&b, kl);
        uint32_t vl = r32(&b);
        const uint8_t *v = r(&b, vl);
        if (!b.err && put(t, k, kl, v, vl) != 0) {
            rc = -ENOMEM;
            goto out;
        }
    }
    n = r64(&b);
    for (uint64_t i = 0; i < n && !b.err; i++) {
        uint64_t id = r64(&b), seq = r64(&b), idx = r64(&b);
        uint32_t res = r32(&b);
        if (!b.err)
            session_record(t, id, seq, idx, (Kv__Result)res);
    }
    if (b.err || b.p != b.end)
        goto out;
    /* Swap the loaded contents in; the old ones leave with t. */
    kv_store_t tmp = *s;
    *s = *t;
    *t = tmp;
    rc = 0;
out:
    kv_store_free(t);
    free(data);
    return rc;
}
