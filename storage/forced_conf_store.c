/* The configuration forced by reset_peers, in a file beside the log (see
 * forced_conf_store.h). */
#include "storage/forced_conf_store.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "storage/codec.h"
#include "storage/fileio.h"

#define FC_NAME    "forced_conf"
#define FC_MAGIC   "RKFC"
#define FC_VERSION 1u
#define FC_HEADER  20u /* magic, version, index, len */
#define FC_TRAILER 8u  /* XXH64 */

int forced_conf_store_save(const char *dir, uint64_t index, const void *conf, size_t len,
                           rk_status_t *st)
{
    if (len > FORCED_CONF_MAX)
        return rk_status_set(st, RK_EINVAL, "forced configuration of %zu bytes is over %u", len,
                             FORCED_CONF_MAX);
    size_t total = FC_HEADER + len + FC_TRAILER;
    uint8_t *rec = malloc(total);
    if (rec == NULL)
        return rk_status_set(st, RK_ENOMEM, "forced configuration");
    memcpy(rec, FC_MAGIC, 4);
    codec_put_le32(rec + 4, FC_VERSION);
    codec_put_le64(rec + 8, index);
    codec_put_le32(rec + 16, (uint32_t)len);
    if (len)
        memcpy(rec + FC_HEADER, conf, len);
    codec_put_le64(rec + FC_HEADER + len, XXH64(rec, FC_HEADER + len, 0));
    int err = fileio_mkdirs(dir);
    if (err == 0)
        err = fileio_replace(dir, FC_NAME, rec, total);
    free(rec);
    if (err != 0) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, FC_NAME);
        return fileio_err(st, err, "cannot write", p);
    }
    return 0;
}

int forced_conf_store_load(const char *dir, uint64_t *index, uint8_t **conf, size_t *len,
                           rk_status_t *st)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, FC_NAME);
    uint8_t *rec = NULL;
    size_t n = 0;
    int err = fileio_read_file(p, FC_HEADER + FORCED_CONF_MAX + FC_TRAILER, &rec, &n);
    if (err == ENOENT)
        return rk_status_set(st, RK_ENOTFOUND, "no forced configuration in %s", dir);
    if (err == EFBIG)
        return rk_status_set(st, RK_ECORRUPT, "%s: larger than any forced configuration", p);
    if (err != 0)
        return fileio_err(st, err, "cannot read", p);
    size_t clen = n >= FC_HEADER ? codec_get_le32(rec + 16) : 0;
    if (n < FC_HEADER + FC_TRAILER || memcmp(rec, FC_MAGIC, 4) != 0 ||
        codec_get_le32(rec + 4) != FC_VERSION || clen != n - FC_HEADER - FC_TRAILER ||
        codec_get_le64(rec + FC_HEADER + clen) != XXH64(rec, FC_HEADER + clen, 0)) {
        free(rec);
        return rk_status_set(st, RK_ECORRUPT, "%s fails its format or checksum check", p);
    }
    *index = codec_get_le64(rec + 8);
    memmove(rec, rec + FC_HEADER, clen); /* the caller owns the configuration bytes */
    *conf = rec;
    *len = clen;
    return 0;
}

int forced_conf_store_remove(const char *dir, rk_status_t *st)
{
    int err = fileio_unlink(dir, FC_NAME);
    if (err != 0) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, FC_NAME);
        return fileio_err(st, err, "cannot remove", p);
    }
    return 0;
}
