/* The configuration forced by rk_node_reset_peers, kept durable until the
 * log carries it. reset_peers changes membership without consensus; the
 * forced configuration reaches the log only when this node next leads (it
 * re-proposes it). A restart before that would read the old membership back
 * from the log, so the forced configuration and the log index it applies at
 * are written, fsynced, to <data>/log/forced_conf before reset_peers returns;
 * startup uses it while no later configuration is in the log.
 *
 * Format (little endian): "RKFC", u32 version 1, u64 index, u32 len, len
 * bytes of core_conf_encode(), u64 XXH64 of everything before it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "raftkit/log.h"
#include "src/node/node_internal.h"

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void path_of(const rk_node_t *n, char *buf, size_t len, const char *suffix)
{
    snprintf(buf, len, "%s/forced_conf%s", n->log_dir, suffix);
}

int forced_conf_save(rk_node_t *n, const core_conf_t *conf, uint64_t index)
{
    buf_t *b = core_conf_encode(conf);
    if (b == NULL)
        return RK_ENOMEM;
    size_t len = 4 + 4 + 8 + 4 + b->len + 8;
    uint8_t *rec = malloc(len);
    if (rec == NULL) {
        buf_unref(b);
        return RK_ENOMEM;
    }
    memcpy(rec, "RKFC", 4);
    put32(rec + 4, 1);
    put64(rec + 8, index);
    put32(rec + 16, (uint32_t)b->len);
    memcpy(rec + 20, b->data, b->len);
    put64(rec + 20 + b->len, XXH64(rec, 20 + b->len, 0));
    buf_unref(b);
    char tmp[4200], dst[4200];
    path_of(n, tmp, sizeof(tmp), ".tmp");
    path_of(n, dst, sizeof(dst), "");
    int rc = RK_EIO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        if (write(fd, rec, len) == (ssize_t)len && fsync(fd) == 0)
            rc = 0;
        close(fd);
    }
    if (rc == 0 && rename(tmp, dst) != 0)
        rc = RK_EIO;
    if (rc == 0) {
        int dfd = open(n->log_dir, O_RDONLY | O_DIRECTORY);
        if (dfd < 0 || fsync(dfd) != 0)
            rc = RK_EIO;
        if (dfd >= 0)
            close(dfd);
    }
    if (rc != 0)
        RK_ERROR(n->group, n->self_str, "cannot write %s: %s", dst, strerror(errno));
    free(rec);
    return rc;
}

int forced_conf_load(rk_node_t *n, core_conf_t *conf, uint64_t *index)
{
    char path[4200];
    path_of(n, path, sizeof(path), "");
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return errno == ENOENT ? RK_ENOTFOUND : RK_EIO;
    uint8_t rec[8192];
    size_t len = fread(rec, 1, sizeof(rec), f);
    fclose(f);
    if (len < 28 || memcmp(rec, "RKFC", 4) != 0 || get32(rec + 4) != 1)
        return RK_ECORRUPT;
    uint32_t clen = get32(rec + 16);
    if ((size_t)clen + 28 != len || get64(rec + 20 + clen) != XXH64(rec, 20 + clen, 0))
        return RK_ECORRUPT;
    *index = get64(rec + 8);
    return core_conf_decode(rec + 20, clen, conf) == 0 ? 0 : RK_ECORRUPT;
}

void forced_conf_remove(rk_node_t *n)
{
    char path[4200];
    path_of(n, path, sizeof(path), "");
    unlink(path);
}
