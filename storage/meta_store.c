/* Hard state and log base records in the "meta" database (meta_store.h). */
#include "storage/meta_store.h"

#include <string.h>

#include "storage/codec.h"
#include "storage/env.h"
#include "storage/log_store.h"

/* Hard state record: u64 term, u64 commit, u16 vote length, vote bytes,
 * u64 checksum of everything before it (seeded with the group number).
 * Base record: u64 index, u64 term, u64 checksum. */
#define HS_MAX (8 + 8 + 2 + RK_PEER_ID_STRLEN + 8)

static void meta_key(uint8_t key[9], uint64_t gid, char tag)
{
    codec_put_be64(key, gid);
    key[8] = (uint8_t)tag;
}

int meta_put_hard_state(MDB_txn *txn, MDB_dbi dbi, uint64_t gid, const meta_hard_state_t *hs)
{
    uint8_t buf[HS_MAX], key[9];
    size_t vl = strnlen(hs->voted_for, RK_PEER_ID_STRLEN - 1);
    codec_put_le64(buf, hs->term);
    codec_put_le64(buf + 8, hs->commit);
    buf[16] = (uint8_t)vl;
    buf[17] = (uint8_t)(vl >> 8);
    memcpy(buf + 18, hs->voted_for, vl);
    size_t n = 18 + vl;
    codec_put_le64(buf + n, codec_checksum(buf, n, gid));
    meta_key(key, gid, META_TAG_HARD_STATE);
    MDB_val k = {9, key}, v = {n + 8, buf};
    return mdb_put(txn, dbi, &k, &v, 0);
}

int meta_get_hard_state(MDB_txn *txn, MDB_dbi dbi, uint64_t gid, meta_hard_state_t *hs)
{
    uint8_t key[9];
    meta_key(key, gid, META_TAG_HARD_STATE);
    MDB_val k = {9, key}, v;
    memset(hs, 0, sizeof *hs);
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc != 0)
        return log_env_err(rc);
    const uint8_t *b = v.mv_data;
    if (v.mv_size < 26)
        return RK_ECORRUPT;
    size_t vl = (size_t)b[16] | (size_t)b[17] << 8;
    if (vl >= RK_PEER_ID_STRLEN || v.mv_size != 26 + vl ||
        codec_get_le64(b + 18 + vl) != codec_checksum(b, 18 + vl, gid))
        return RK_ECORRUPT;
    hs->term = codec_get_le64(b);
    hs->commit = codec_get_le64(b + 8);
    memcpy(hs->voted_for, b + 18, vl);
    hs->voted_for[vl] = '\0';
    return 0;
}

int meta_put_base(MDB_txn *txn, MDB_dbi dbi, uint64_t gid, uint64_t index, uint64_t term)
{
    uint8_t buf[24], key[9];
    codec_put_le64(buf, index);
    codec_put_le64(buf + 8, term);
    codec_put_le64(buf + 16, codec_checksum(buf, 16, gid));
    meta_key(key, gid, META_TAG_BASE);
    MDB_val k = {9, key}, v = {24, buf};
    return mdb_put(txn, dbi, &k, &v, 0);
}

int meta_get_base(MDB_txn *txn, MDB_dbi dbi, uint64_t gid, uint64_t *index, uint64_t *term)
{
    uint8_t key[9];
    meta_key(key, gid, META_TAG_BASE);
    MDB_val k = {9, key}, v;
    *index = *term = 0;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc != 0)
        return log_env_err(rc);
    const uint8_t *b = v.mv_data;
    if (v.mv_size != 24 || codec_get_le64(b + 16) != codec_checksum(b, 16, gid))
        return RK_ECORRUPT;
    *index = codec_get_le64(b);
    *term = codec_get_le64(b + 8);
    return 0;
}

int meta_store_load(log_store_t *s, meta_hard_state_t *out, rk_status_t *st)
{
    log_env_t *env = log_store_env(s);
    MDB_txn *txn;
    int rc = log_store_sync_pending_of(s, st); /* a newer hard state may be pending */
    if (rc != 0)
        return rc;
    if ((rc = log_env_read_begin(env, &txn)) != 0)
        return rk_status_set(st, rc, "group %s: cannot begin read transaction", log_store_group(s));
    rc = meta_get_hard_state(txn, env->meta_dbi, log_store_gid(s), out);
    log_env_read_end(env, txn);
    if (rc == RK_ENOTFOUND)
        return 0; /* a new group: term 0, no vote */
    if (rc != 0)
        return rk_status_set(st, rc, "group %s: hard state record %s", log_store_group(s),
                             rc == RK_ECORRUPT ? "fails its checksum" : "cannot be read");
    return 0;
}

int meta_store_save(log_store_t *s, const meta_hard_state_t *hs, rk_status_t *st)
{
    log_op_t op = {.store = s, .kind = LOG_OP_APPEND, .hard_state = hs};
    return log_store_write(log_store_env(s), &op, 1, st);
}
