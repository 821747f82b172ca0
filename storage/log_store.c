/* A raft group's log in the shared LMDB environment (see log_store.h). */
#include "storage/log_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "storage/journal.h"
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
    /* What LMDB holds (writer only): behind the published state while
     * appends are pending (see "pending"); transactions start from it. */
    uint64_t db_base_index, db_base_term, db_last;
    /* Lowest index among this store's pending entries, 0 = none: the cache
     * must hold it and everything after it. */
    uint64_t pend_lo;
    /* LMDB holds group -> gid (writer only; see "registration"). */
    bool registered;
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

/* A new group is not registered by a write of its own: that would be one
 * synchronous commit and checkpoint per group, ten thousand of them for a
 * process creating ten thousand groups. It gets its number in memory (one
 * more than the largest registered or handed out), and the name -> number
 * record goes into LMDB with the group's first write transaction (write_fn)
 * and into the journal record of every batch of the group until then
 * (journal.c, encode_ops), so that a replay re-registers it before applying
 * its ops. A group that never writes leaves nothing behind; its number may
 * be handed out again by the next process, which is harmless since nothing
 * was stored under it. */
static int next_gid(log_env_t *env, uint64_t *gid)
{
    int rc = 0;
    pthread_mutex_lock(&env->gid_mu);
    if (env->next_gid == 0) {
        MDB_txn *txn;
        MDB_cursor *cur;
        uint64_t max = 0;
        if ((rc = log_env_read_begin(env, &txn)) == 0) {
            if ((rc = mdb_cursor_open(txn, env->groups_dbi, &cur)) == 0) {
                MDB_val k, v;
                for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
                     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
                    if (v.mv_size == 8 && codec_get_be64(v.mv_data) > max)
                        max = codec_get_be64(v.mv_data);
                mdb_cursor_close(cur);
                if (rc == MDB_NOTFOUND)
                    rc = 0;
            }
            log_env_read_end(env, txn);
        }
        if (rc == 0)
            env->next_gid = max + 1;
    }
    if (rc == 0)
        *gid = env->next_gid++;
    pthread_mutex_unlock(&env->gid_mu);
    return rc;
}

static int put_gid(MDB_txn *txn, log_store_t *s)
{
    uint8_t buf[8];
    codec_put_be64(buf, s->gid);
    MDB_val k = {strlen(s->group), s->group}, v = {8, buf};
    return mdb_put(txn, s->env->groups_dbi, &k, &v, 0);
}

/* ---- reading stored entries ---- */

static int corrupt(log_store_t *s, rk_status_t *st, uint64_t index, const char *what)
{
    return rk_status_set(st, RK_ECORRUPT, "group %s: log entry %llu %s", s->group,
                         (unsigned long long)index, what);
}

/* ---- records ----
 *
 * The value under key (gid, first) is a record: one or more encoded entries
 * first, first + 1, ... back to back (each carries its own length and
 * checksum, seeded with its own index). A record of one entry is exactly
 * the format of the first version, and small entries still get a record
 * each. Runs of large entries of one append share a record (see
 * apply_append): LMDB keeps any value over about 2 KiB in whole overflow
 * pages, so a 4 KiB payload plus its 24-byte header alone would occupy two
 * pages -- twice the bytes to write and sync -- while n of them packed take
 * about n + 1.
 *
 * Prefix truncation deletes the records that end before the new first
 * index; the one holding it stays whole (its older entries are dead, below
 * the base the meta record names). Suffix truncation deletes the records
 * from the cut on and shortens the one holding it. */
#define REC_PACK_MIN    2000u /* encoded entries this big get packed */
#define REC_MAX_ENTRIES 64u
#define REC_MAX_BYTES   (1u << 20)

/* Size of the encoded entry at p, 0 if it does not fit in left. */
static size_t rec_entry_len(const uint8_t *p, size_t left)
{
    if (left < CODEC_ENTRY_HEADER)
        return 0;
    size_t len = CODEC_ENTRY_HEADER + (size_t)codec_get_le32(p + 4);
    return len <= left ? len : 0;
}

/* Entries in the record v (0: malformed). */
static uint64_t rec_count(const MDB_val *v)
{
    const uint8_t *p = v->mv_data;
    size_t left = v->mv_size;
    uint64_t n = 0;
    while (left > 0) {
        size_t k = rec_entry_len(p, left);
        if (k == 0)
            return 0;
        p += k, left -= k, n++;
    }
    return n;
}

/* The encoded entry `index` in the record (first, v). Returns 0,
 * RK_ENOTFOUND (the record ends before index) or RK_ECORRUPT. */
static int rec_slice(const MDB_val *v, uint64_t first, uint64_t index, const uint8_t **out,
                     size_t *out_len)
{
    const uint8_t *p = v->mv_data;
    size_t left = v->mv_size;
    if (left == 0)
        return RK_ECORRUPT;
    for (uint64_t i = first;; i++) {
        if (left == 0)
            return RK_ENOTFOUND;
        size_t k = rec_entry_len(p, left);
        if (k == 0)
            return RK_ECORRUPT;
        if (i == index) {
            *out = p;
            *out_len = k;
            return 0;
        }
        p += k, left -= k;
    }
}

/* Positions cur on the group's record whose key is the largest <= index:
 * the only one that can hold index. Returns 0 (*first, *v set),
 * MDB_NOTFOUND, MDB_CORRUPTED or another LMDB error. */
static int rec_seek(log_store_t *s, MDB_cursor *cur, uint64_t index, uint64_t *first, MDB_val *v)
{
    uint8_t key[16];
    make_key(key, s->gid, index);
    MDB_val k = {16, key};
    int rc = mdb_cursor_get(cur, &k, v, MDB_SET_RANGE);
    if (rc == 0 && k.mv_size == 16 && codec_get_be64(k.mv_data) == s->gid &&
        codec_get_be64((uint8_t *)k.mv_data + 8) == index) {
        *first = index;
        return 0;
    }
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, v, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(cur, &k, v, MDB_LAST);
    if (rc != 0)
        return rc;
    if (k.mv_size < 8 || codec_get_be64(k.mv_data) != s->gid)
        return MDB_NOTFOUND;
    if (k.mv_size != 16)
        return MDB_CORRUPTED;
    *first = codec_get_be64((uint8_t *)k.mv_data + 8);
    return 0;
}

/* Reads and verifies the entry at index within txn; e->data points into the
 * map. Returns 0, RK_ENOTFOUND, RK_ECORRUPT (with st) or an RK code. */
static int read_entry(log_store_t *s, MDB_txn *txn, uint64_t index, log_entry_t *e, rk_status_t *st)
{
    uint8_t key[16];
    make_key(key, s->gid, index);
    MDB_val k = {16, key}, v;
    uint64_t first = index;
    int rc = mdb_get(txn, s->env->log_dbi, &k, &v); /* a record starts here? */
    if (rc == MDB_NOTFOUND) {                       /* else: inside an earlier one? */
        MDB_cursor *cur;
        if ((rc = mdb_cursor_open(txn, s->env->log_dbi, &cur)) == 0) {
            rc = rec_seek(s, cur, index, &first, &v);
            mdb_cursor_close(cur);
        }
    }
    if (rc == MDB_NOTFOUND)
        return RK_ENOTFOUND;
    if (rc == MDB_CORRUPTED)
        return corrupt(s, st, index, "is under a malformed key");
    if (rc != 0)
        return rk_status_set(st, log_env_err(rc), "group %s: reading entry %llu: %s", s->group,
                             (unsigned long long)index, mdb_strerror(rc));
    const uint8_t *p;
    size_t len;
    rc = rec_slice(&v, first, index, &p, &len);
    if (rc == RK_ENOTFOUND)
        return RK_ENOTFOUND;
    if (rc != 0 || codec_entry_decode(index, p, len, e) != 0)
        return corrupt(s, st, index, "fails its checksum or format check");
    return 0;
}

/* Key index of the group's first record (0: none). */
static int first_key(log_store_t *s, MDB_txn *txn, uint64_t *out)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->env->log_dbi, &cur);
    if (rc != 0)
        return rc;
    uint8_t key[16];
    make_key(key, s->gid, 0);
    MDB_val k = {16, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    *out = 0;
    if (rc == 0 && k.mv_size >= 8 && codec_get_be64(k.mv_data) == s->gid) {
        if (k.mv_size == 16)
            *out = codec_get_be64((uint8_t *)k.mv_data + 8);
        else
            rc = MDB_CORRUPTED;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Index of the group's last stored entry (0: none). A malformed last record
 * gives *last = its key, for the caller's verification to report. */
static int last_stored(log_store_t *s, MDB_txn *txn, uint64_t *out)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->env->log_dbi, &cur);
    if (rc != 0)
        return rc;
    uint64_t first = 0;
    MDB_val v;
    rc = rec_seek(s, cur, UINT64_MAX, &first, &v);
    *out = 0;
    if (rc == 0) {
        uint64_t n = rec_count(&v);
        *out = n ? first + n - 1 : first;
    }
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
    if ((rc = first_key(s, txn, &first)) != 0 || (rc = last_stored(s, txn, &last)) != 0) {
        rk_status_set(st, log_env_err(rc), "group %s: cannot find log bounds: %s", s->group,
                      mdb_strerror(rc));
        rc = log_env_err(rc);
        goto out;
    }
    if (first == 0) {
        last = bi; /* empty log */
    } else if (last <= bi) {
        last = bi; /* only dead entries below the base are left: empty log */
    } else if (first > bi + 1) {
        /* (a record may start before base + 1 after a prefix truncation,
         * never after it) */
        rc = rk_status_set(st, RK_ECORRUPT, "group %s: log starts at %llu but its base is %llu",
                           s->group, (unsigned long long)first, (unsigned long long)bi);
        goto out;
    } else {
        /* Verify both ends: a torn or corrupt tail is found at startup, not
         * when a follower asks for it. */
        log_entry_t e;
        uint64_t at = bi + 1;
        if ((rc = read_entry(s, txn, at, &e, st)) == 0)
            rc = read_entry(s, txn, at = last, &e, st);
        if (rc == RK_ENOTFOUND)
            rc = corrupt(s, st, at, "is missing");
        if (rc != 0)
            goto out;
    }
    s->base_index = s->db_base_index = bi;
    s->base_term = s->db_base_term = bt;
    s->last_index = s->db_last = last;
    rc = 0;
out:
    log_env_read_end(s->env, txn);
    return rc;
}

/* gid: 0, or the number the group must have (journal replay). */
static int store_open(log_env_t *env, const char *group_id, uint64_t gid,
                      const log_store_options_t *o, log_store_t **out, rk_status_t *st)
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
    uint64_t found = 0;
    rc = find_gid(txn, env, group_id, &found);
    log_env_read_end(env, txn);
    if (rc == MDB_NOTFOUND) { /* a new group: empty, registered by its first write */
        rc = gid != 0 ? 0 : next_gid(env, &gid);
        if (rc != 0) {
            rc = rk_status_set(st, log_env_err(rc), "group %s: cannot number it: %s", group_id,
                               mdb_strerror(rc));
            goto err;
        }
        s->gid = gid;
        *out = s;
        return 0;
    }
    if (rc != 0) {
        rc = rk_status_set(st, log_env_err(rc), "group %s: cannot look up group: %s", group_id,
                           mdb_strerror(rc));
        goto err;
    }
    if (gid != 0 && gid != found) {
        rc = rk_status_set(st, RK_ECORRUPT, "group %s is number %llu, not %llu", group_id,
                           (unsigned long long)found, (unsigned long long)gid);
        goto err;
    }
    s->gid = found;
    s->registered = true;
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

int log_store_open(log_env_t *env, const char *group_id, const log_store_options_t *o,
                   log_store_t **out, rk_status_t *st)
{
    return store_open(env, group_id, 0, o, out, st);
}

int log_store_open_gid(log_env_t *env, const char *group_id, uint64_t gid,
                       const log_store_options_t *o, log_store_t **out, rk_status_t *st)
{
    if (gid == 0)
        return rk_status_set(st, RK_EINVAL, "group number 0");
    return store_open(env, group_id, gid, o, out, st);
}

bool log_store_registered(const log_store_t *s)
{
    return s->registered;
}

static void pend_forget(log_env_t *env, log_store_t *s);

void log_store_close(log_store_t *s)
{
    if (s == NULL)
        return;
    if (s->env->journal != NULL) { /* nothing pending may point at s */
        rk_status_t st;
        rk_status_clear(&st);
        journal_lock(s->env->journal);
        if (log_store_drain(s->env, &st) != 0) {
            RK_WARN(s->group, NULL,
                    "log: closing with journaled batches not applied (%s); the next open "
                    "replays them",
                    st.msg);
            pend_forget(s->env, s);
        }
        journal_unlock(s->env->journal);
    }
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
    int rc = log_store_sync_pending(s->env, st); /* what LMDB holds is what is checked */
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&s->mu);
    uint64_t first = s->base_index + 1, last = s->last_index;
    pthread_mutex_unlock(&s->mu);
    MDB_txn *txn;
    rc = log_env_read_begin(s->env, &txn);
    if (rc != 0)
        return rk_status_set(st, rc, "group %s: cannot begin read transaction", s->group);
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, s->env->log_dbi, &cur)) != 0) {
        log_env_read_end(s->env, txn);
        return rk_status_set(st, log_env_err(rc), "group %s: %s", s->group, mdb_strerror(rc));
    }
    uint64_t expect = first, rfirst = 0;
    MDB_val k, v;
    int mrc = first <= last ? rec_seek(s, cur, first, &rfirst, &v) : 0;
    while (expect <= last) {
        if (mrc != 0 || rfirst > expect) {
            rc = corrupt(s, st, expect, "is missing");
            break;
        }
        /* walk the record, skipping dead entries before the first index */
        const uint8_t *p = v.mv_data;
        size_t left = v.mv_size;
        uint64_t i = rfirst;
        if (left == 0) {
            rc = corrupt(s, st, expect, "fails its checksum or format check");
            break;
        }
        while (left > 0 && expect <= last) {
            size_t len = rec_entry_len(p, left);
            log_entry_t e;
            if (len == 0 || (i >= expect && codec_entry_decode(i, p, len, &e) != 0)) {
                rc = corrupt(s, st, i > expect ? i : expect, "fails its checksum or format check");
                break;
            }
            if (i >= expect)
                expect = i + 1;
            p += len, left -= len, i++;
        }
        if (rc != 0 || expect > last)
            break;
        if (i < expect) { /* the record ended before the first index */
            rc = corrupt(s, st, expect, "is missing");
            break;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        if (mrc == 0 && (k.mv_size != 16 || codec_get_be64(k.mv_data) != s->gid))
            mrc = MDB_NOTFOUND;
        if (mrc == 0)
            rfirst = codec_get_be64((uint8_t *)k.mv_data + 8);
        if (mrc == 0 && rfirst != expect) {
            rc = corrupt(s, st, expect, "is missing");
            break;
        }
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
    uint64_t seq; /* journal sequence number to record as applied, or 0 */
};

/* Distinguishes transaction attempts so that a retry after MDB_MAP_FULL
 * reloads every store's scratch state instead of building on the aborted one. */
static _Atomic uint64_t attempt_counter;

/* Deletes every entry >= from: the records that start there or later, and
 * the tail of the record holding from. */
static int delete_from(log_store_t *s, MDB_txn *txn, uint64_t from)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->env->log_dbi, &cur);
    if (rc != 0)
        return rc;
    uint64_t first = 0;
    MDB_val k, v;
    rc = rec_seek(s, cur, from, &first, &v);
    if (rc == 0 && first < from) {
        const uint8_t *p;
        size_t len;
        int r = rec_slice(&v, first, from, &p, &len);
        if (r == 0 && from - 1 <= s->tx_base_index) {
            /* what would be kept lies below the base (dead since a prefix
             * truncation): the whole record goes */
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                goto out;
        } else if (r == 0) { /* keep the entries before from */
            size_t keep = (size_t)(p - (const uint8_t *)v.mv_data);
            void *copy = malloc(keep); /* v points into the map */
            if (copy == NULL) {
                rc = RK_ENOMEM;
                goto out;
            }
            memcpy(copy, v.mv_data, keep);
            uint8_t key[16];
            make_key(key, s->gid, first);
            MDB_val rk = {16, key}, nv = {keep, copy};
            rc = mdb_put(txn, s->env->log_dbi, &rk, &nv, 0);
            free(copy);
            if (rc != 0)
                goto out;
        } else if (r != RK_ENOTFOUND) {
            rc = MDB_CORRUPTED;
            goto out;
        }
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        goto out;
    }
    uint8_t key[16];
    make_key(key, s->gid, from);
    k.mv_size = 16, k.mv_data = key;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size < 8 || codec_get_be64(k.mv_data) != s->gid)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        /* After a delete the cursor already sits on the next record and
         * MDB_NEXT returns that record rather than skipping it. */
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
out:
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Deletes the records whose entries all lie before keep; the record holding
 * keep stays whole. */
static int delete_below(log_store_t *s, MDB_txn *txn, uint64_t keep)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->env->log_dbi, &cur);
    if (rc != 0)
        return rc;
    uint8_t key[16];
    make_key(key, s->gid, 0);
    MDB_val k = {16, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size != 16 || codec_get_be64(k.mv_data) != s->gid)
            break;
        uint64_t first = codec_get_be64((uint8_t *)k.mv_data + 8), n = rec_count(&v);
        if (n == 0) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (first + n - 1 >= keep)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
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

/* Does op fit a log whose base and last index are *base and *last? If so,
 * moves them to where op leaves them. The one definition of what fits, for
 * the transaction (apply_*) and for the check before the journal record
 * (ops_fit). */
static bool op_fits(const log_op_t *op, uint64_t *base, uint64_t *last)
{
    switch (op->kind) {
    case LOG_OP_APPEND: {
        uint64_t l = *last;
        if (op->truncate_from != 0) {
            if (op->truncate_from <= *base || op->truncate_from > l + 1)
                return false;
            l = op->truncate_from - 1;
        }
        for (size_t i = 0; i < op->n_entries; i++) {
            const log_entry_t *e = &op->entries[i];
            if (e->index != l + 1 + i || e->len > UINT32_MAX || e->type < LOG_ENTRY_DATA ||
                e->type > LOG_ENTRY_CONF)
                return false;
        }
        *last = l + op->n_entries;
        return true;
    }
    case LOG_OP_TRUNCATE_PREFIX:
        if (op->index > *last + 1)
            return false;
        if (op->index > *base + 1)
            *base = op->index - 1;
        return true;
    case LOG_OP_RESET:
        *base = *last = op->index;
        return true;
    default:
        return false;
    }
}

static int apply_append(log_op_t *op, MDB_txn *txn, rk_status_t *st)
{
    log_store_t *s = op->store;
    uint64_t base = s->tx_base_index, last = s->tx_last;
    (void)st;
    if (!op_fits(op, &base, &last))
        return op_invalid(op);
    int rc;
    if (op->truncate_from != 0 && (rc = delete_from(s, txn, op->truncate_from)) != 0)
        return rc;
    for (size_t i = 0; i < op->n_entries;) {
        /* one record: this entry, and the large ones after it if it is large */
        size_t j = i + 1, bytes = codec_entry_size(&op->entries[i]);
        if (bytes >= REC_PACK_MIN) {
            while (j < op->n_entries && j - i < REC_MAX_ENTRIES &&
                   codec_entry_size(&op->entries[j]) >= REC_PACK_MIN &&
                   bytes + codec_entry_size(&op->entries[j]) <= REC_MAX_BYTES)
                bytes += codec_entry_size(&op->entries[j++]);
        }
        uint8_t key[16];
        make_key(key, s->gid, op->entries[i].index);
        MDB_val k = {16, key}, v = {bytes, NULL};
        /* MDB_RESERVE: LMDB hands us the space in the new page and we encode
         * the entries straight into it, so each payload is copied once. */
        if ((rc = mdb_put(txn, s->env->log_dbi, &k, &v, MDB_RESERVE)) != 0)
            return rc;
        uint8_t *p = v.mv_data;
        for (; i < j; i++) {
            codec_entry_encode(&op->entries[i], p);
            p += codec_entry_size(&op->entries[i]);
        }
    }
    if (op->hard_state &&
        (rc = meta_put_hard_state(txn, s->env->meta_dbi, s->gid, op->hard_state)) != 0)
        return rc;
    s->tx_last = last;
    op->status = 0;
    return 0;
}

static int apply_truncate_prefix(log_op_t *op, MDB_txn *txn, rk_status_t *st)
{
    log_store_t *s = op->store;
    uint64_t keep = op->index, base = s->tx_base_index, last = s->tx_last;
    if (!op_fits(op, &base, &last))
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
    if ((rc = delete_below(s, txn, keep)) != 0)
        return rc;
    s->tx_base_index = keep - 1;
    return 0;
}

static int apply_reset(log_op_t *op, MDB_txn *txn, rk_status_t *st)
{
    log_store_t *s = op->store;
    (void)st;
    int rc = delete_from(s, txn, 1);
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
        int rc;
        if (s->tx_attempt != c->attempt) {
            s->tx_base_index = s->db_base_index;
            s->tx_base_term = s->db_base_term;
            s->tx_last = s->db_last;
            s->tx_attempt = c->attempt;
            if (!s->registered && (rc = put_gid(txn, s)) != 0)
                return rc;
        }
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
    if (c->seq != 0) {
        uint8_t key[9], val[8];
        journal_applied_key(key);
        codec_put_le64(val, c->seq);
        MDB_val k = {9, key}, v = {8, val};
        return mdb_put(txn, c->env->meta_dbi, &k, &v, 0);
    }
    return 0;
}

int log_store_write(log_env_t *env, log_op_t *ops, size_t n, rk_status_t *st)
{
    return log_store_write_flags(env, ops, n, 0, st);
}

static int commit_ops(log_env_t *env, log_op_t *ops, size_t n, unsigned flags, uint64_t seq,
                      bool publish, rk_status_t *st);

int log_store_apply(log_env_t *env, log_op_t *ops, size_t n, uint64_t seq, rk_status_t *st)
{
    return commit_ops(env, ops, n, LOG_ENV_JOURNALED, seq, true, st);
}

/* The published bounds of each store a batch touches, as its ops leave
 * them, and the store's lowest pending index (ops_fit, pend_publish). */
typedef struct bounds_sim {
    log_store_t *s;
    uint64_t base, last, lo;
} bounds_sim_t;

/* The entry for s in sims[0..*ns), added from s's published state on first
 * use. */
static bounds_sim_t *sim_for(bounds_sim_t *sims, size_t *ns, log_store_t *s)
{
    for (size_t k = 0; k < *ns; k++)
        if (sims[k].s == s)
            return &sims[k];
    bounds_sim_t *m = &sims[(*ns)++];
    pthread_mutex_lock(&s->mu);
    *m = (bounds_sim_t){s, s->base_index, s->last_index, s->pend_lo};
    pthread_mutex_unlock(&s->mu);
    return m;
}

/* How many of ops[0..n) fit the log, each after those before it that fit
 * (one that does not fit changes nothing: op_invalid). op_fits on the
 * published bounds instead of a transaction's: the writer is the only one
 * to change them, so they are what the transaction will start from. With
 * out, copies those that fit there, in order: what the transaction will
 * apply, and so what the journal record must hold. (size_t)-1 when out of
 * memory. */
static size_t ops_fitting(const log_op_t *ops, size_t n, log_op_t *out)
{
    bounds_sim_t small[8], *sims = n <= 8 ? small : calloc(n, sizeof(*sims));
    if (sims == NULL)
        return (size_t)-1;
    size_t ns = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        bounds_sim_t *m = sim_for(sims, &ns, ops[i].store);
        if (!op_fits(&ops[i], &m->base, &m->last))
            continue;
        if (out != NULL)
            out[k] = ops[i];
        k++;
    }
    if (sims != small)
        free(sims);
    return k;
}

static bool ops_fit(const log_op_t *ops, size_t n)
{
    return ops_fitting(ops, n, NULL) == n;
}

/* ---- pending ----
 *
 * With the journal, a batch is durable once its record is synced; the LMDB
 * transaction that follows only makes it readable from the map. At low load
 * that transaction is most of the cost of a batch after the fdatasync: a
 * one-entry commit copies a few pages (log leaf and branch, meta leaf,
 * freelist, meta page), all of which checkpoints must later write. So small
 * batches of appends are not committed at once: their bounds and entries are
 * published from memory (the cache, which keeps them: pend_lo) and a copy of
 * their ops waits here until PEND_RECORDS records or PEND_BYTES of payload
 * have gathered, then one transaction applies them all (log_store_drain),
 * recording the newest record's sequence number as applied. A crash loses
 * nothing: the records are in the journal and are replayed at the next
 * open. Anything that needs LMDB to hold everything first drains: a batch
 * that is not a small append (truncating the prefix or resetting reads and
 * rewrites the base), every checkpoint (before the segment is recycled), a
 * write that bypasses the journal (it could otherwise be overtaken by an
 * older pending hard state), log_store_verify and log_store_close. Guarded
 * by the journal lock. */
#define PEND_RECORDS 32
#define PEND_BYTES   (256u << 10)
/* LMDB file space kept allocated for draining (journal_reserve): the
 * pending payload, its per-entry overhead and the pages a transaction copies,
 * with a wide margin */
#define PEND_RESERVE (4u << 20)
/* pending payload never exceeds this, a quarter of the reservation (the
 * rest covers per-entry overhead and the pages a transaction copies) */
#define PEND_MAX_BYTES (PEND_RESERVE / 4)
/* a batch larger than this is committed at once */
#define PEND_BATCH_MAX (64u << 10)
/* and only stores whose cache can hold the pending entries several times */
#define PEND_CACHE_MIN (4 * PEND_BYTES)

typedef struct log_pending {
    log_op_t *ops; /* copies; entries, payloads and hard state in blocks[i] */
    void **blocks;
    size_t n, cap;
    size_t records, bytes;
    uint64_t last_seq;
    uint64_t drains; /* transactions that applied pending ops (for tests) */
} log_pending_t;

/* What an op's entries weigh in the cache: payload plus overhead. */
static size_t op_weight(const log_op_t *op)
{
    size_t b = 0;
    for (size_t k = 0; k < op->n_entries; k++)
        b += op->entries[k].len + LOG_CACHE_OVERHEAD;
    return b;
}

static void pend_clear(log_pending_t *p, size_t keep)
{
    for (size_t i = keep; i < p->n; i++)
        free(p->blocks[i]);
    p->n = keep;
}

static int pend_push(log_pending_t *p, const log_op_t *op)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        log_op_t *o = realloc(p->ops, cap * sizeof *o);
        if (o != NULL)
            p->ops = o;
        void **b = realloc(p->blocks, cap * sizeof *b);
        if (b != NULL)
            p->blocks = b;
        if (o == NULL || b == NULL)
            return RK_ENOMEM;
        p->cap = cap;
    }
    size_t head =
        op->n_entries * sizeof(log_entry_t) + (op->hard_state ? sizeof(meta_hard_state_t) : 0);
    uint8_t *blk = malloc(head + op_weight(op) + 1);
    if (blk == NULL)
        return RK_ENOMEM;
    log_op_t *c = &p->ops[p->n];
    *c = *op;
    log_entry_t *ents = (log_entry_t *)blk;
    uint8_t *q = blk + op->n_entries * sizeof(log_entry_t);
    if (op->hard_state) {
        memcpy(q, op->hard_state, sizeof(meta_hard_state_t));
        c->hard_state = (const meta_hard_state_t *)q;
        q += sizeof(meta_hard_state_t);
    }
    for (size_t k = 0; k < op->n_entries; k++) {
        ents[k] = op->entries[k];
        if (ents[k].len)
            memcpy(q, op->entries[k].data, ents[k].len);
        ents[k].data = q;
        q += ents[k].len;
    }
    c->entries = ents;
    p->blocks[p->n++] = blk;
    return 0;
}

static bool pend_full(const log_env_t *env)
{
    const log_pending_t *p = env->pending;
    return p != NULL && p->n > 0 && (p->records >= PEND_RECORDS || p->bytes >= PEND_BYTES);
}

/* Can this batch wait in memory? Small appends that fit the log (checked
 * already), to stores whose cache keeps them. */
static bool pend_ok(const log_env_t *env, const log_op_t *ops, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind != LOG_OP_APPEND || ops[i].store->cache.limit < PEND_CACHE_MIN)
            return false;
        bytes += op_weight(&ops[i]);
    }
    /* The queue never outgrows the room reserved for draining it (inline
     * writes skip the drain at PEND_BYTES; the writer thread drains later) */
    size_t queued = env->pending != NULL ? env->pending->bytes : 0;
    return bytes <= PEND_BATCH_MAX && queued + bytes <= PEND_MAX_BYTES;
}

/* Publishes a journaled batch without committing it: queues copies of the
 * ops, puts the entries in the cache and moves the bounds. Returns false,
 * with the bounds and the queue unchanged, when that cannot be done (no
 * memory, or the cache would not hold every pending entry); the caller then
 * drains and commits the batch itself. (The cache holds PEND_CACHE_MIN or
 * more and the queue is drained at PEND_BYTES, so in practice only a failed
 * allocation gets there, and until that drain a reader may miss a pending
 * entry that the cache dropped.) */
static bool pend_publish(log_env_t *env, log_op_t *ops, size_t n, uint64_t seq)
{
    log_pending_t *p = env->pending;
    if (p == NULL && (p = env->pending = calloc(1, sizeof *p)) == NULL)
        return false;
    bounds_sim_t small[8], *sims = n <= 8 ? small : calloc(n, sizeof(*sims));
    if (sims == NULL)
        return false;
    size_t n0 = p->n, ns = 0;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++)
        ok = pend_push(p, &ops[i]) == 0;
    /* into the cache; then check that it holds every pending entry of each
     * store before any bound moves */
    for (size_t i = 0; i < n && ok; i++) {
        log_op_t *op = &ops[i];
        bounds_sim_t *m = sim_for(sims, &ns, op->store);
        op_fits(op, &m->base, &m->last);
        pthread_mutex_lock(&op->store->mu);
        if (op->truncate_from != 0)
            log_cache_drop_from(&op->store->cache, op->truncate_from);
        for (size_t k = 0; k < op->n_entries; k++)
            log_cache_append(&op->store->cache, &op->entries[k]);
        pthread_mutex_unlock(&op->store->mu);
        if (op->n_entries > 0 && (m->lo == 0 || op->entries[0].index < m->lo))
            m->lo = op->entries[0].index;
    }
    for (size_t k = 0; k < ns && ok; k++) {
        bounds_sim_t *m = &sims[k];
        pthread_mutex_lock(&m->s->mu);
        if (m->lo != 0 && m->lo <= m->last) /* the cache is contiguous */
            ok = log_cache_holds(&m->s->cache, m->lo) && log_cache_holds(&m->s->cache, m->last);
        pthread_mutex_unlock(&m->s->mu);
    }
    if (ok) {
        for (size_t k = 0; k < ns; k++) {
            pthread_mutex_lock(&sims[k].s->mu);
            sims[k].s->last_index = sims[k].last;
            sims[k].s->pend_lo = sims[k].lo;
            pthread_mutex_unlock(&sims[k].s->mu);
        }
        for (size_t i = 0; i < n; i++) {
            ops[i].status = 0;
            p->bytes += op_weight(&ops[i]);
        }
        p->records++;
        p->last_seq = seq;
    } else {
        pend_clear(p, n0);
    }
    if (sims != small)
        free(sims);
    return ok;
}

/* Drops the pending ops of s (closing with a failed drain: the error is
 * sticky, so nothing later is recorded as applied and the journal replays
 * them at the next open). */
static void pend_forget(log_env_t *env, log_store_t *s)
{
    log_pending_t *p = env->pending;
    if (p == NULL)
        return;
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->ops[i].store == s) {
            free(p->blocks[i]);
            continue;
        }
        p->ops[k] = p->ops[i];
        p->blocks[k++] = p->blocks[i];
    }
    p->n = k;
}

int log_store_drain(log_env_t *env, rk_status_t *st)
{
    log_pending_t *p = env->pending;
    if (env->draining)
        return 0;
    int rc = log_env_failed(env, st);
    if (rc != 0 || p == NULL || p->n == 0)
        return rc;
    env->draining = true;
    rc = commit_ops(env, p->ops, p->n, LOG_ENV_JOURNALED, p->last_seq, false, st);
    env->draining = false;
    for (size_t i = 0; rc == 0 && i < p->n; i++)
        if (p->ops[i].status != 0) /* published as fitting: cannot happen */
            rc =
                rk_status_set(st, RK_ECORRUPT, "group %s: a journaled batch no longer fits the log",
                              p->ops[i].store->group);
    if (rc != 0) /* acknowledged batches LMDB lacks: only replay has them */
        return log_env_fail(env, rc, st);
    for (size_t i = 0; i < p->n; i++) {
        log_store_t *s = p->ops[i].store;
        pthread_mutex_lock(&s->mu);
        s->pend_lo = 0;
        pthread_mutex_unlock(&s->mu);
    }
    pend_clear(p, 0);
    p->records = p->bytes = 0;
    p->drains++;
    journal_committed(env->journal);
    return 0;
}

void log_store_pending_stats(log_env_t *env, size_t *ops, uint64_t *drains)
{
    *ops = 0;
    *drains = 0;
    if (env->journal == NULL)
        return;
    journal_lock(env->journal);
    if (env->pending != NULL) {
        *ops = env->pending->n;
        *drains = env->pending->drains;
    }
    journal_unlock(env->journal);
}

int log_store_sync_pending(log_env_t *env, rk_status_t *st)
{
    if (env->journal == NULL)
        return 0;
    journal_lock(env->journal);
    int rc = log_store_drain(env, st);
    journal_unlock(env->journal);
    return rc;
}

int log_store_sync_pending_of(log_store_t *s, rk_status_t *st)
{
    log_env_t *env = s->env;
    if (env->journal == NULL)
        return 0;
    int rc = 0;
    journal_lock(env->journal);
    for (size_t i = 0; env->pending != NULL && i < env->pending->n; i++) {
        if (env->pending->ops[i].store == s) {
            rc = log_store_drain(env, st);
            break;
        }
    }
    journal_unlock(env->journal);
    return rc;
}

void log_store_pending_free(log_env_t *env)
{
    log_pending_t *p = env->pending;
    if (p == NULL)
        return;
    pend_clear(p, 0);
    free(p->ops);
    free(p->blocks);
    free(p);
    env->pending = NULL;
}

int log_store_write_flags(log_env_t *env, log_op_t *ops, size_t n, unsigned flags, rk_status_t *st)
{
    return log_store_write_ex(env, ops, n, flags, NULL, NULL, st);
}

/* Appends the batch's journal record: every op that fits the log (those
 * that do not are failed by the transaction and must not be replayed). */
static int append_record(log_env_t *env, const log_op_t *ops, size_t n, bool fits, uint64_t *seq,
                         rk_status_t *st)
{
    if (fits)
        return journal_append(env->journal, env, ops, n, seq, st);
    log_op_t *jops = malloc((n ? n : 1) * sizeof *jops);
    size_t k = jops ? ops_fitting(ops, n, jops) : (size_t)-1;
    int rc = k == (size_t)-1 ? rk_status_set(st, RK_ENOMEM, "journal record")
                             : journal_append(env->journal, env, jops, k, seq, st);
    free(jops);
    return rc;
}

/* With a journal: one fdatasync of the journal record, then either the LMDB
 * commit without sync (journal.c explains why that is safe) or, for small
 * appends, publication from memory and a later commit ("pending"). */
int log_store_write_ex(log_env_t *env, log_op_t *ops, size_t n, unsigned flags,
                       void (*on_durable)(void *arg), void *arg, rk_status_t *st)
{
    journal_t *j = env->journal;
    if (j == NULL)
        return commit_ops(env, ops, n, flags, 0, true, st);
    journal_lock(j);
    uint64_t seq = 0;
    /* checked before the record is written: once on_durable has run, the
     * batch cannot be taken back (below) */
    bool fits = ops_fit(ops, n);
    bool early = on_durable != NULL && fits;
    /* (without room reserved in LMDB's file, acknowledged batches could be
     * left that cannot be applied on a full disk: then commit at once and
     * let a full disk fail the batch) */
    bool pend = fits && pend_ok(env, ops, n) && journal_reserve(j, env, PEND_RESERVE) == 0;
    /* Everything older reaches LMDB before a batch that is committed now,
     * and a full queue is committed before the batch is journaled: should
     * that fail, the batch fails cleanly instead of after it was durable. */
    int rc = log_env_failed(env, st);
    bool may_block = !(flags & LOG_STORE_NO_CHECKPOINT);
    if (rc == 0 && (!pend || (may_block && pend_full(env))))
        rc = log_store_drain(env, st);
    /* a due checkpoint too, for the same reason (it drains) */
    if (rc == 0 && pend && may_block && journal_due(j))
        rc = journal_checkpoint(j, env, 1, st);
    if (rc == 0)
        rc = append_record(env, ops, n, fits, &seq, st);
    if (rc == JOURNAL_TOO_BIG) { /* straight into LMDB, then durable */
        rc = log_store_drain(env, st);
        if (rc == 0)
            rc = commit_ops(env, ops, n, LOG_ENV_JOURNALED, 0, true, st);
        if (rc == 0)
            rc = journal_checkpoint(j, env, 1, st);
    } else if (rc == 0) {
        if (early)
            on_durable(arg);
        if (pend && pend_publish(env, ops, n, seq)) {
            /* committed later: log_store_drain */
        } else {
            rc = log_store_drain(env, st);
            if (rc == 0)
                rc = commit_ops(env, ops, n, LOG_ENV_JOURNALED, seq, true, st);
            if (rc == 0) {
                journal_committed(j);
            } else if (!early) {
                /* Nothing of a failed batch may come back at the next open.
                 * If even that fails, it may (as any unacknowledged write
                 * may), and the failed sync is sticky. */
                rk_status_t rst;
                rk_status_clear(&rst);
                journal_retract(j, env, &rst);
            } else {
                /* Reported durable, the record must stay and be applied by
                 * the replay at the next open; until then nothing may be
                 * written, checkpointed or acknowledged after it (a
                 * checkpoint would recycle the record away). */
                log_env_fail(env, rc, st);
            }
            if (rc == 0 && may_block && journal_due(j))
                rc = journal_checkpoint(j, env, 1, st);
        }
    }
    journal_unlock(j);
    if (rc != 0)
        for (size_t i = 0; i < n; i++)
            ops[i].status = rc;
    return rc;
}

int log_store_checkpoint_due(log_env_t *env, rk_status_t *st)
{
    journal_t *j = env->journal;
    if (j == NULL)
        return 0;
    journal_lock(j);
    int rc = pend_full(env) ? log_store_drain(env, st) : 0;
    if (rc == 0 && journal_due(j))
        rc = journal_checkpoint(j, env, 1, st);
    journal_unlock(j);
    return rc;
}

bool log_store_journal_idle(log_env_t *env)
{
    return env->journal != NULL && journal_idle(env->journal);
}

bool log_store_checkpoint_pending(log_env_t *env)
{
    journal_t *j = env->journal;
    if (j == NULL)
        return false;
    journal_lock(j);
    bool due = journal_due(j) != 0 || pend_full(env);
    journal_unlock(j);
    return due;
}

/* Commits ops in one transaction (recording seq as applied when non-zero)
 * and, with publish, makes the result visible: bounds and cache. A drain
 * commits without publishing (what it applies was published already). */
static int commit_ops(log_env_t *env, log_op_t *ops, size_t n, unsigned flags, uint64_t seq,
                      bool publish, rk_status_t *st)
{
    /* Entries about to be deleted leave the cache before the transaction:
     * should a reader look between commit and publication below, it falls
     * through to LMDB and sees the committed state rather than a stale copy. */
    for (size_t i = 0; i < n; i++) {
        log_store_t *s = ops[i].store;
        ops[i].status = RK_ECANCELED;
        if (!publish)
            continue;
        pthread_mutex_lock(&s->mu);
        if (ops[i].kind == LOG_OP_APPEND && ops[i].truncate_from != 0)
            log_cache_drop_from(&s->cache, ops[i].truncate_from);
        else if (ops[i].kind == LOG_OP_RESET)
            log_cache_clear(&s->cache);
        else if (ops[i].kind == LOG_OP_TRUNCATE_PREFIX)
            log_cache_drop_before(&s->cache, ops[i].index);
        pthread_mutex_unlock(&s->mu);
    }
    struct write_ctx c = {env, ops, n, 0, st, seq};
    int rc = log_env_write_flags(env, flags, write_fn, &c, st);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            ops[i].status = rc;
        return rc;
    }
    /* Committed (and durable, or about to be: LOG_ENV_DEFER_META, env.h):
     * LMDB's bounds move; with publish, the visible ones too, and the
     * entries are cached. */
    for (size_t i = 0; i < n; i++) {
        log_op_t *op = &ops[i];
        log_store_t *s = op->store;
        s->registered = true; /* write_fn registered it */
        s->db_base_index = s->tx_base_index;
        s->db_base_term = s->tx_base_term;
        s->db_last = s->tx_last;
        if (!publish)
            continue;
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
