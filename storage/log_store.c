/* A raft group's log in the shared LMDB environment (see log_store.h). */
#include "storage/log_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "storage/log_cache.h"

#define LOG_DEFAULT_CACHE (8u << 20)

struct log_store {
    log_env_t *env;
    uint64_t gid;
    /* Guards the published state below; held only for memory operations. */
    pthread_mutex_t mu;
    uint64_t base_index, base_term, last_index;
    log_cache_t cache;
    /* Scratch state of the write transaction being built (writer only):
     * valid when tx_attempt equals the attempt counter of the transaction. */
    uint64_t tx_attempt;
    uint64_t tx_base_index, tx_base_term, tx_last;
    char group[];
};

void log_store_options_init(log_store_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->cache_bytes = LOG_DEFAULT_CACHE;
}

static void make_key(uint8_t key[16], uint64_t gid, uint64_t index)
{
    codec_put_be64(key, gid);
    codec_put_be64(key + 8, index);
}

/* ---- group registration ---- */

static int find_gid(MDB_txn *txn, log_env_t *env, const char *group, uint64_t *gid)
{
    MDB_val k = {strlen(group), (void *)group}, v;
    int rc = mdb_get(txn, env->groups_dbi, &k, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size != 8)
        return MDB_CORRUPTED;
    *gid = codec_get_be64(v.mv_data);
    return 0;
}

struct register_ctx {
    log_env_t *env;
    const char *group;
    uint64_t gid;
};

static int register_fn(MDB_txn *txn, void *arg)
{
    struct register_ctx *c = arg;
    int rc = find_gid(txn, c->env, c->group, &c->gid);
    if (rc != MDB_NOTFOUND)
        return rc;
    /* New group: one more than the largest number handed out. */
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, c->env->groups_dbi, &cur)) != 0)
        return rc;
    uint64_t max = 0;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size == 8 && codec_get_be64(v.mv_data) > max)
            max = codec_get_be64(v.mv_data);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc;
    c->gid = max + 1;
    uint8_t buf[8];
    codec_put_be64(buf, c->gid);
    k.mv_size = strlen(c->group);
    k.mv_data = (void *)c->group;
    v.mv_size = 8;
    v.mv_data = buf;
    return mdb_put(txn, c->env->groups_dbi, &k, &v, 0);
}

/* ---- reading stored entries ---- */

static int corrupt(log_store_t *s, rk_status_t *st, uint64_t index, const char *what)
{
    return rk_status_set(st, RK_ECORRUPT, "group %s: log entry %llu %s", s->group,
                         (unsigned long long)index, what);
}

/* Reads and verifies the entry at index within txn; e->data points into the
 * map. Returns 0, RK_ENOTFOUND, RK_ECORRUPT (with st) or an RK code. */
static int read_entry(log_store_t *s, MDB_txn *txn, uint64_t index, log_entry_t *e, rk_status_t *st)
{
    uint8_t key[16];
    make_key(key, s->gid, index);
    MDB_val k = {16, key}, v;
    int rc = mdb_get(txn, s->env->log_dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return RK_ENOTFOUND;
    if (rc != 0)
        return rk_status_set(st, log_env_err(rc), "group %s: reading entry %llu: %s", s->group,
                             (unsigned long long)index, mdb_strerror(rc));
    if (codec_entry_decode(index, v.mv_data, v.mv_size, e) != 0)
        return corrupt(s, st, index, "fails its checksum or format check");
    return 0;
}

/* Index of the first (dir = MDB_SET_RANGE) or last stored entry of the
 * group, or 0 when it has none. */
static int edge_index(log_store_t *s, MDB_txn *txn, bool last, uint64_t *out)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->env->log_dbi, &cur);
    if (rc != 0)
        return rc;
    uint8_t key[16];
    make_key(key, last ? s->gid + 1 : s->gid, 0);
    MDB_val k = {16, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (last) {
        if (rc == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
        else if (rc == MDB_NOTFOUND)
            rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    }
    *out = 0;
    if (rc == 0 && k.mv_size == 16 && codec_get_be64(k.mv_data) == s->gid)
        *out = codec_get_be64((uint8_t *)k.mv_data + 8);
    else if (rc == 0 && k.mv_size != 16 && codec_get_be64(k.mv_data) == s->gid)
        rc = MDB_CORRUPTED;
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int load_state(log_store_t *s, rk_status_t *st)
{
    MDB_txn *txn;
    int rc = log_env_read_begin(s->env, &txn);
    if (rc != 0)
        return rk_status_set(st, rc, "group %s: cannot begin read transaction", s->group);
    uint64_t first = 0, last = 0, bi = 0, bt = 0;
    rc = meta_get_base(txn, s->env->meta_dbi, s->gid, &bi, &bt);
    if (rc == RK_ECORRUPT) {
        rk_status_set(st, rc, "group %s: log base record fails its checksum", s->group);
        goto out;
    }
    if (rc != 0 && rc != RK_ENOTFOUND)
        goto out;
    if ((rc = edge_index(s, txn, false, &first)) != 0 ||
        (rc = edge_index(s, txn, true, &last)) != 0) {
        rk_status_set(st, log_env_err(rc), "group %s: cannot find log bounds: %s", s->group,
                      mdb_strerror(rc));
        rc = log_env_err(rc);
        goto out;
    }
    if (first == 0) {
        last = bi; /* empty log */
    } else if (first != bi + 1) {
        rc = rk_status_set(st, RK_ECORRUPT, "group %s: log starts at %llu but its base is %llu",
                           s->group, (unsigned long long)first, (unsigned long long)bi);
        goto out;
    } else {
        /* Verify both ends: a torn or corrupt tail is found at startup, not
         * when a follower asks for it. */
        log_entry_t e;
        if ((rc = read_entry(s, txn, first, &e, st)) != 0 ||
            (rc = read_entry(s, txn, last, &e, st)) != 0)
            goto out;
    }
    s->base_index = bi;
    s->base_term = bt;
    s->last_index = last;
    rc = 0;
out:
    log_env_read_end(s->env, txn);
    return rc;
}

int log_store_open(log_env_t *env, const char *group_id, const log_store_options_t *o,
                   log_store_t **out, rk_status_t *st)
{
    log_store_options_t defaults;
    if (env == NULL || group_id == NULL || out == NULL)
        return rk_status_set(st, RK_EINVAL, "log_store_open: NULL argument");
    size_t glen = strlen(group_id);
    if (glen == 0 || glen >= LOG_GROUP_ID_MAX)
        return rk_status_set(st, RK_EINVAL, "group id must be 1..%d bytes", LOG_GROUP_ID_MAX - 1);
    if (o == NULL) {
        log_store_options_init(&defaults);
        o = &defaults;
    }
    log_store_t *s = calloc(1, sizeof *s + glen + 1);
    if (s == NULL)
        return rk_status_set(st, RK_ENOMEM, "log_store_open");
    memcpy(s->group, group_id, glen + 1);
    s->env = env;
    pthread_mutex_init(&s->mu, NULL);
    log_cache_init(&s->cache, o->cache_bytes);

    MDB_txn *txn;
    int rc = log_env_read_begin(env, &txn);
    if (rc != 0) {
        rk_status_set(st, rc, "group %s: cannot begin read transaction", group_id);
        goto err;
    }
    rc = find_gid(txn, env, group_id, &s->gid);
    log_env_read_end(env, txn);
    if (rc == MDB_NOTFOUND) {
        struct register_ctx c = {env, group_id, 0};
        if ((rc = log_env_write(env, register_fn, &c, st)) != 0)
            goto err;
        s->gid = c.gid;
    } else if (rc != 0) {
        rc = rk_status_set(st, log_env_err(rc), "group %s: cannot look up group: %s", group_id,
                           mdb_strerror(rc));
        goto err;
    }
    if ((rc = load_state(s, st)) != 0)
        goto err;
    *out = s;
    return 0;
err:
    log_cache_free(&s->cache);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return rc;
}

void log_store_close(log_store_t *s)
{
    if (s == NULL)
        return;
    log_cache_free(&s->cache);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const char *log_store_group(const log_store_t *s)
{
    return s->group;
}
log_env_t *log_store_env(const log_store_t *s)
{
    return s->env;
}
uint64_t log_store_gid(const log_store_t *s)
{
    return s->gid;
}

uint64_t log_store_first_index(log_store_t *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->base_index + 1;
    pthread_mutex_unlock(&s->mu);
    return v;
}

uint64_t log_store_last_index(log_store_t *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->last_index;
    pthread_mutex_unlock(&s->mu);
    return v;
}

void log_store_cache_stats(log_store_t *s, size_t *entries, size_t *bytes, uint64_t *hits)
{
    pthread_mutex_lock(&s->mu);
    if (entries)
        *entries = s->cache.count;
    if (bytes)
        *bytes = s->cache.bytes;
    if (hits)
        *hits = s->cache.hits;
    pthread_mutex_unlock(&s->mu);
}

void log_entry_release(log_entry_t *e)
{
    if (e == NULL)
        return;
    free((void *)e->data);
    e->data = NULL;
    e->len = 0;
}

void log_entries_free(log_entry_t *entries, size_t n)
{
    if (entries == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free((void *)entries[i].data);
    free(entries);
}

static int copy_out(const log_entry_t *src, log_entry_t *dst)
{
    *dst = *src;
    void *p = malloc(src->len ? src->len : 1);
    if (p == NULL)
        return RK_ENOMEM;
    if (src->len)
        memcpy(p, src->data, src->len);
    dst->data = p;
    return 0;
}

/* Looks index up in the cache; copies it into out when present. Returns 1
 * when served, 0 on a miss, RK_ENOMEM. Caller checked the bounds. */
static int cache_get(log_store_t *s, uint64_t index, log_entry_t *out)
{
    pthread_mutex_lock(&s->mu);
    const log_cache_ent_t *c = log_cache_find(&s->cache, index);
    int rc = 0;
    if (c != NULL) {
        log_entry_t e = {c->index, c->term, c->type, c->data, c->len};
        rc = copy_out(&e, out) == 0 ? 1 : RK_ENOMEM;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static bool in_range(log_store_t *s, uint64_t index)
{
    pthread_mutex_lock(&s->mu);
    bool ok = index > s->base_index && index <= s->last_index;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

int log_store_get(log_store_t *s, uint64_t index, log_entry_t *out, rk_status_t *st)
{
    if (!in_range(s, index))
        return rk_status_set(st, RK_ENOTFOUND, "group %s: no entry %llu", s->group,
                             (unsigned long long)index);
    int rc = cache_get(s, index, out);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    MDB_txn *txn;
    if ((rc = log_env_read_begin(s->env, &txn)) != 0)
        return rk_status_set(st, rc, "group %s: cannot begin read transaction", s->group);
    log_entry_t e;
    rc = read_entry(s, txn, index, &e, st);
    if (rc == 0)
        rc = copy_out(&e, out);
    else if (rc == RK_ENOTFOUND)
        rk_status_set(st, rc, "group %s: no entry %llu", s->group, (unsigned long long)index);
    log_env_read_end(s->env, txn);
    return rc;
}

int log_store_term(log_store_t *s, uint64_t index, uint64_t *term, rk_status_t *st)
{
    pthread_mutex_lock(&s->mu);
    bool is_base = index == s->base_index;
    uint64_t bt = s->base_term;
    const log_cache_ent_t *c = is_base ? NULL : log_cache_find(&s->cache, index);
    uint64_t ct = c ? c->term : 0;
    pthread_mutex_unlock(&s->mu);
    if (is_base) {
        *term = bt;
        return 0;
    }
    if (c != NULL) {
        *term = ct;
        return 0;
    }
    if (!in_range(s, index))
        return rk_status_set(st, RK_ENOTFOUND, "group %s: no entry %llu", s->group,
                             (unsigned long long)index);
    MDB_txn *txn;
    int rc = log_env_read_begin(s->env, &txn);
    if (rc != 0)
        return rk_status_set(st, rc, "group %s: cannot begin read transaction", s->group);
    log_entry_t e;
    rc = read_entry(s, txn, index, &e, st);
    if (rc == 0)
        *term = e.term;
    else if (rc == RK_ENOTFOUND)
        rk_status_set(st, rc, "group %s: no entry %llu", s->group, (unsigned long long)index);
    log_env_read_end(s->env, txn);
    return rc;
}

int log_store_fetch(log_store_t *s, uint64_t lo, size_t max_count, size_t max_bytes,
                    log_entry_t **out, size_t *n, rk_status_t *st)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->mu);
    uint64_t first = s->base_index + 1, last = s->last_index;
    pthread_mutex_unlock(&s->mu);
    if (lo < first || lo > last)
        return rk_status_set(st, RK_ENOTFOUND, "group %s: no entry %llu", s->group,
                             (unsigned long long)lo);
    uint64_t avail = last - lo + 1;
    size_t want = max_count == 0 || avail < max_count ? (size_t)avail : max_count;
    log_entry_t *arr = calloc(want, sizeof *arr);
    if (arr == NULL)
        return rk_status_set(st, RK_ENOMEM, "log_store_fetch");
    MDB_txn *txn = NULL;
    size_t got = 0, bytes = 0;
    int rc = 0;
    for (uint64_t i = lo; got < want; i++) {
        rc = cache_get(s, i, &arr[got]);
        if (rc < 0)
            break;
        if (rc == 0) {
            if (txn == NULL && (rc = log_env_read_begin(s->env, &txn)) != 0) {
                txn = NULL;
                rk_status_set(st, rc, "group %s: cannot begin read transaction", s->group);
                break;
            }
            log_entry_t e;
            if ((rc = read_entry(s, txn, i, &e, st)) != 0 || (rc = copy_out(&e, &arr[got])) != 0)
                break;
        }
        rc = 0;
        bytes += arr[got].len;
        got++;
        if (bytes >= max_bytes)
            break;
    }
    if (txn)
        log_env_read_end(s->env, txn);
    if (rc == RK_ENOTFOUND && got > 0)
        rc = 0; /* a concurrent truncation shortened the log: return what we have */
    if (rc != 0) {
        log_entries_free(arr, got);
        if (rc == RK_ENOTFOUND)
            rk_status_set(st, rc, "group %s: no entry %llu", s->group, (unsigned long long)lo);
        return rc;
    }
    *out = arr;
    *n = got;
    return 0;
}

int log_store_verify(log_store_t *s, uint64_t *bad_index, rk_status_t *st)
{
    pthread_mutex_lock(&s->mu);
    uint64_t first = s->base_index + 1, last = s->last_index;
    pthread_mutex_unlock(&s->mu);
    MDB_txn *txn;
    int rc = log_env_read_begin(s->env, &txn);
    if (rc != 0)
        return rk_status_set(st, rc, "group %s: cannot begin read transaction", s->group);
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, s->env->log_dbi, &cur)) != 0) {
        log_env_read_end(s->env, txn);
        return rk_status_set(st, log_env_err(rc), "group %s: %s", s->group, mdb_strerror(rc));
    }
    uint8_t key[16];
    make_key(key, s->gid, first);
    MDB_val k = {16, key}, v;
    uint64_t expect = first;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; expect <= last; expect++) {
        log_entry_t e;
        if (mrc != 0 || k.mv_size != 16 || codec_get_be64(k.mv_data) != s->gid ||
            codec_get_be64((uint8_t *)k.mv_data + 8) != expect) {
            rc = corrupt(s, st, expect, "is missing");
            break;
        }
        if (codec_entry_decode(expect, v.mv_data, v.mv_size, &e) != 0) {
            rc = corrupt(s, st, expect, "fails its checksum or format check");
            break;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    log_env_read_end(s->env, txn);
    if (rc != 0 && bad_index)
        *bad_index = expect;
    return rc;
}

/* ---- writes ---- */

struct write_ctx {
    log_env_t *env;
    log_op_t *ops;
    size_t n;
    uint64_t attempt;
    rk_status_t *st;
};

/* Distinguishes transaction attempts so that a retry after MDB_MAP_FULL
 * reloads every store's scratch state instead of building on the aborted one. */
static _Atomic uint64_t attempt_counter;

/* Deletes the group's entries with index in [from, to]. */
static int delete_range(log_store_t *s, MDB_txn *txn, uint64_t from, uint64_t to)
{
    if (from > to)
        return 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->env->log_dbi, &cur);
    if (rc != 0)
        return rc;
    uint8_t key[16];
    make_key(key, s->gid, from);
    MDB_val k = {16, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size != 16 || codec_get_be64(k.mv_data) != s->gid ||
            codec_get_be64((uint8_t *)k.mv_data + 8) > to)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        /* After a delete the cursor already sits on the next record and
         * MDB_NEXT returns that record rather than skipping it. */
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* An op that does not fit the log changes nothing and fails alone; the
 * transaction carries on with the other ops. */
static int op_invalid(log_op_t *op)
{
    op->status = RK_EINVAL;
    return 0;
}

static int apply_append(log_op_t *op, MDB_txn *txn, rk_status_t *st)
{
    log_store_t *s = op->store;
    uint64_t last = s->tx_last;
    (void)st;
    if (op->truncate_from != 0) {
        if (op->truncate_from <= s->tx_base_index || op->truncate_from > last + 1)
            return op_invalid(op);
        last = op->truncate_from - 1;
    }
    for (size_t i = 0; i < op->n_entries; i++) {
        const log_entry_t *e = &op->entries[i];
        if (e->index != last + 1 + i || e->len > UINT32_MAX || e->type < LOG_ENTRY_DATA ||
            e->type > LOG_ENTRY_CONF)
            return op_invalid(op);
    }
    int rc;
    if (op->truncate_from != 0 && (rc = delete_range(s, txn, op->truncate_from, s->tx_last)) != 0)
        return rc;
    for (size_t i = 0; i < op->n_entries; i++) {
        const log_entry_t *e = &op->entries[i];
        uint8_t key[16];
        make_key(key, s->gid, e->index);
        MDB_val k = {16, key}, v = {codec_entry_size(e), NULL};
        /* MDB_RESERVE: LMDB hands us the space in the new page and we encode
         * the entry straight into it, so the payload is copied exactly once. */
        if ((rc = mdb_put(txn, s->env->log_dbi, &k, &v, MDB_RESERVE)) != 0)
            return rc;
        codec_entry_encode(e, v.mv_data);
    }
    if (op->hard_state &&
        (rc = meta_put_hard_state(txn, s->env->meta_dbi, s->gid, op->hard_state)) != 0)
        return rc;
    s->tx_last = last + op->n_entries;
    op->status = 0;
    return 0;
}

static int apply_truncate_prefix(log_op_t *op, MDB_txn *txn, rk_status_t *st)
{
    log_store_t *s = op->store;
    uint64_t keep = op->index;
    if (keep > s->tx_last + 1)
        return op_invalid(op);
    op->status = 0;
    if (keep <= s->tx_base_index + 1)
        return 0; /* nothing stored before keep */
    log_entry_t e;
    int rc = read_entry(s, txn, keep - 1, &e, st);
    if (rc != 0)
        return rc;
    if ((rc = meta_put_base(txn, s->env->meta_dbi, s->gid, keep - 1, e.term)) != 0)
        return rc;
    /* Delete after reading: e points into a page the deletion may free. */
    s->tx_base_term = e.term;
    if ((rc = delete_range(s, txn, s->tx_base_index + 1, keep - 1)) != 0)
        return rc;
    s->tx_base_index = keep - 1;
    return 0;
}

static int apply_reset(log_op_t *op, MDB_txn *txn, rk_status_t *st)
{
    log_store_t *s = op->store;
    (void)st;
    int rc = delete_range(s, txn, s->tx_base_index + 1, s->tx_last);
    if (rc != 0)
        return rc;
    if ((rc = meta_put_base(txn, s->env->meta_dbi, s->gid, op->index, op->term)) != 0)
        return rc;
    s->tx_base_index = op->index;
    s->tx_base_term = op->term;
    s->tx_last = op->index;
    op->status = 0;
    return 0;
}

static int write_fn(MDB_txn *txn, void *arg)
{
    struct write_ctx *c = arg;
    c->attempt = atomic_fetch_add(&attempt_counter, 1) + 1;
    for (size_t i = 0; i < c->n; i++) {
        log_op_t *op = &c->ops[i];
        log_store_t *s = op->store;
        if (s->tx_attempt != c->attempt) {
            pthread_mutex_lock(&s->mu);
            s->tx_base_index = s->base_index;
            s->tx_base_term = s->base_term;
            s->tx_last = s->last_index;
            pthread_mutex_unlock(&s->mu);
            s->tx_attempt = c->attempt;
        }
        int rc;
        switch (op->kind) {
        case LOG_OP_APPEND:
            rc = apply_append(op, txn, c->st);
            break;
        case LOG_OP_TRUNCATE_PREFIX:
            rc = apply_truncate_prefix(op, txn, c->st);
            break;
        case LOG_OP_RESET:
            rc = apply_reset(op, txn, c->st);
            break;
        default:
            op->status = RK_EINVAL;
            rc = 0;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

int log_store_write(log_env_t *env, log_op_t *ops, size_t n, rk_status_t *st)
{
    return log_store_write_flags(env, ops, n, 0, st);
}

int log_store_write_flags(log_env_t *env, log_op_t *ops, size_t n, unsigned flags,
                          rk_status_t *st)
{
    /* Entries about to be deleted leave the cache before the transaction:
     * should a reader look between commit and publication below, it falls
     * through to LMDB and sees the committed state rather than a stale copy. */
    for (size_t i = 0; i < n; i++) {
        log_store_t *s = ops[i].store;
        ops[i].status = RK_ECANCELED;
        pthread_mutex_lock(&s->mu);
        if (ops[i].kind == LOG_OP_APPEND && ops[i].truncate_from != 0)
            log_cache_drop_from(&s->cache, ops[i].truncate_from);
        else if (ops[i].kind == LOG_OP_RESET)
            log_cache_clear(&s->cache);
        else if (ops[i].kind == LOG_OP_TRUNCATE_PREFIX)
            log_cache_drop_before(&s->cache, ops[i].index);
        pthread_mutex_unlock(&s->mu);
    }
    struct write_ctx c = {env, ops, n, 0, st};
    int rc = log_env_write_flags(env, flags, write_fn, &c, st);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            ops[i].status = rc;
        return rc;
    }
    /* Committed (and durable, or about to be: see log_store_write_flags):
     * publish the new bounds and cache the entries. */
    for (size_t i = 0; i < n; i++) {
        log_op_t *op = &ops[i];
        log_store_t *s = op->store;
        pthread_mutex_lock(&s->mu);
        s->base_index = s->tx_base_index;
        s->base_term = s->tx_base_term;
        s->last_index = s->tx_last;
        if (op->status == 0 && op->kind == LOG_OP_APPEND) {
            if (op->truncate_from != 0)
                log_cache_drop_from(&s->cache, op->truncate_from);
            for (size_t j = 0; j < op->n_entries; j++)
                log_cache_append(&s->cache, &op->entries[j]);
        }
        pthread_mutex_unlock(&s->mu);
    }
    return 0;
}

static int write_one(log_op_t *op, rk_status_t *st)
{
    int rc = log_store_write(op->store->env, op, 1, st);
    if (rc != 0)
        return rc;
    if (op->status != 0)
        return rk_status_set(st, op->status,
                             "group %s: operation does not fit the log (first %llu, last %llu)",
                             op->store->group, (unsigned long long)log_store_first_index(op->store),
                             (unsigned long long)log_store_last_index(op->store));
    return 0;
}

int log_store_append(log_store_t *s, const log_entry_t *entries, size_t n, rk_status_t *st)
{
    log_op_t op = {.store = s, .kind = LOG_OP_APPEND, .entries = entries, .n_entries = n};
    return write_one(&op, st);
}

int log_store_truncate_suffix(log_store_t *s, uint64_t from, rk_status_t *st)
{
    log_op_t op = {.store = s, .kind = LOG_OP_APPEND, .truncate_from = from};
    if (from == 0)
        return rk_status_set(st, RK_EINVAL, "truncate_suffix: index 0");
    return write_one(&op, st);
}

int log_store_truncate_prefix(log_store_t *s, uint64_t keep_from, rk_status_t *st)
{
    log_op_t op = {.store = s, .kind = LOG_OP_TRUNCATE_PREFIX, .index = keep_from};
    return write_one(&op, st);
}

int log_store_reset(log_store_t *s, uint64_t index, uint64_t term, rk_status_t *st)
{
    log_op_t op = {.store = s, .kind = LOG_OP_RESET, .index = index, .term = term};
    return write_one(&op, st);
}
