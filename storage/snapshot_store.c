/* Snapshot directories: atomic install by rename, verification, chunked
 * reads for transfer and the follower-side download (snapshot_store.h). */
#include "storage/snapshot_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "storage/codec.h"
#include "storage/fileio.h"

#define SNAP_MAGIC      "RKSNAP01"
#define SNAP_PREFIX     "snapshot_"
#define SNAP_TMP_PREFIX "tmp_"
/* A directory path plus a file name: room for both without truncation. */
#define SNAP_PATH_BUF (PATH_MAX + SNAP_NAME_MAX + 64)

typedef struct snap_ref {
    uint64_t index;
    int readers;
} snap_ref_t;

struct snap_store {
    pthread_mutex_t mu;
    uint64_t latest;
    /* snapshots with open readers */
    snap_ref_t refs[16];
    int n_refs;
    bool created; /* dir exists (made durable by whoever created it) */
    char dir[];
};

struct snap_writer {
    snap_store_t *store;
    snap_meta_t meta;
    uint32_t cap;
    char path[PATH_MAX];
};

struct snap_reader {
    snap_store_t *store;
    snap_meta_t meta;
    char path[PATH_MAX];
};

struct snap_download {
    snap_store_t *store;
    snap_meta_t meta;
    uint8_t *rec;
    size_t rec_len;
    char path[PATH_MAX];
};

/* ---- helpers ---- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool parse_snapshot_name(const char *name, uint64_t *index)
{
    if (strncmp(name, SNAP_PREFIX, strlen(SNAP_PREFIX)) != 0)
        return false;
    const char *p = name + strlen(SNAP_PREFIX);
    if (*p < '0' || *p > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno || *end != '\0')
        return false;
    *index = v;
    return true;
}

static void snapshot_path(const snap_store_t *s, uint64_t index, char *buf, size_t len)
{
    snprintf(buf, len, "%s/" SNAP_PREFIX "%llu", s->dir, (unsigned long long)index);
}

static bool valid_name(const char *name)
{
    size_t n = strnlen(name, SNAP_NAME_MAX);
    return n > 0 && n < SNAP_NAME_MAX && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0 && strcmp(name, SNAP_META_NAME) != 0;
}

static const snap_file_t *find_file(const snap_meta_t *m, const char *name)
{
    for (uint32_t i = 0; i < m->n_files; i++)
        if (strcmp(m->files[i].name, name) == 0)
            return &m->files[i];
    return NULL;
}

/* XXH3-64 and size of a file's contents. */
static int file_checksum(const char *path, uint64_t *size, uint64_t *sum)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    XXH3_state_t *x = XXH3_createState();
    unsigned char *buf = malloc(1 << 16);
    int rc = 0;
    if (x == NULL || buf == NULL) {
        rc = ENOMEM;
        goto out;
    }
    XXH3_64bits_reset(x);
    *size = 0;
    for (;;) {
        ssize_t n = read(fd, buf, 1 << 16);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errno;
            break;
        }
        if (n == 0)
            break;
        XXH3_64bits_update(x, buf, (size_t)n);
        *size += (uint64_t)n;
    }
    *sum = XXH3_64bits_digest(x);
out:
    free(buf);
    XXH3_freeState(x);
    close(fd);
    return rc;
}

/* Writes data to path (created or truncated) and fsyncs it. */
static int write_file_sync(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    int rc = fileio_write_all(fd, data, len, 0);
    if (rc == 0 && fsync(fd) != 0)
        rc = errno;
    close(fd);
    return rc;
}

/* A metadata record over 1 GiB is not one: EIO, not "file too big". */
static int read_whole(const char *path, uint8_t **out, size_t *len)
{
    int err = fileio_read_file(path, 1u << 30, out, len);
    return err == EFBIG ? EIO : err;
}

/* ---- metadata record ----
 * magic[8] u64 last_index u64 last_term conf u8 has_old [conf]
 * u32 n_files { u16 name_len, name, u64 size, u64 checksum }* u64 checksum */

int snap_meta_encode(const snap_meta_t *m, uint8_t **buf, size_t *len)
{
    size_t n = 8 + 16 + codec_conf_size(&m->conf) + 1 + 4 + 8;
    if (m->has_old_conf)
        n += codec_conf_size(&m->old_conf);
    for (uint32_t i = 0; i < m->n_files; i++)
        n += 2 + strlen(m->files[i].name) + 16;
    uint8_t *b = malloc(n), *p = b;
    if (b == NULL)
        return RK_ENOMEM;
    memcpy(p, SNAP_MAGIC, 8);
    codec_put_le64(p + 8, m->last_index);
    codec_put_le64(p + 16, m->last_term);
    p += 24;
    p += codec_conf_encode(&m->conf, p);
    *p++ = m->has_old_conf;
    if (m->has_old_conf)
        p += codec_conf_encode(&m->old_conf, p);
    codec_put_le32(p, m->n_files);
    p += 4;
    for (uint32_t i = 0; i < m->n_files; i++) {
        size_t nl = strlen(m->files[i].name);
        p[0] = (uint8_t)nl;
        p[1] = (uint8_t)(nl >> 8);
        memcpy(p + 2, m->files[i].name, nl);
        p += 2 + nl;
        codec_put_le64(p, m->files[i].size);
        codec_put_le64(p + 8, m->files[i].checksum);
        p += 16;
    }
    codec_put_le64(p, codec_checksum(b, (size_t)(p - b), 0));
    *buf = b;
    *len = n;
    return 0;
}

int snap_meta_decode(const uint8_t *b, size_t len, snap_meta_t *m)
{
    memset(m, 0, sizeof *m);
    if (len < 8 + 16 + 8 + 1 + 4 + 8 || memcmp(b, SNAP_MAGIC, 8) != 0 ||
        codec_get_le64(b + len - 8) != codec_checksum(b, len - 8, 0))
        return RK_ECORRUPT;
    size_t end = len - 8, off = 24;
    m->last_index = codec_get_le64(b + 8);
    m->last_term = codec_get_le64(b + 16);
    long c = codec_conf_decode(b + off, end - off, &m->conf);
    if (c < 0)
        return RK_ECORRUPT;
    off += (size_t)c;
    if (off + 1 > end)
        return RK_ECORRUPT;
    m->has_old_conf = b[off++] != 0;
    if (m->has_old_conf) {
        if ((c = codec_conf_decode(b + off, end - off, &m->old_conf)) < 0)
            return RK_ECORRUPT;
        off += (size_t)c;
    }
    if (off + 4 > end)
        return RK_ECORRUPT;
    uint32_t nf = codec_get_le32(b + off);
    off += 4;
    if (nf > (end - off) / 18)
        return RK_ECORRUPT;
    m->files = calloc(nf ? nf : 1, sizeof *m->files);
    if (m->files == NULL)
        return RK_ENOMEM;
    for (uint32_t i = 0; i < nf; i++) {
        if (off + 2 > end)
            goto corrupt;
        size_t nl = (size_t)b[off] | (size_t)b[off + 1] << 8;
        if (nl == 0 || nl >= SNAP_NAME_MAX || off + 2 + nl + 16 > end)
            goto corrupt;
        memcpy(m->files[i].name, b + off + 2, nl);
        m->files[i].name[nl] = '\0';
        if (!valid_name(m->files[i].name))
            goto corrupt;
        off += 2 + nl;
        m->files[i].size = codec_get_le64(b + off);
        m->files[i].checksum = codec_get_le64(b + off + 8);
        off += 16;
    }
    if (off != end)
        goto corrupt;
    m->n_files = nf;
    return 0;
corrupt:
    free(m->files);
    m->files = NULL;
    return RK_ECORRUPT;
}

void snap_meta_free(snap_meta_t *m)
{
    free(m->files);
    m->files = NULL;
    m->n_files = 0;
}

/* ---- store ---- */

/* Removes snapshots older than the latest that no reader holds. Called with
 * s->mu held. */
static void remove_old_locked(snap_store_t *s)
{
    DIR *d = opendir(s->dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t idx;
        if (!parse_snapshot_name(de->d_name, &idx) || idx >= s->latest)
            continue;
        bool held = false;
        for (int i = 0; i < s->n_refs; i++)
            held |= s->refs[i].index == idx;
        if (held)
            continue;
        char p[SNAP_PATH_BUF];
        snapshot_path(s, idx, p, sizeof p);
        rm_rf(p);
    }
    closedir(d);
}

int snap_store_open(const char *dir, snap_store_t **out, rk_status_t *st)
{
    if (dir == NULL || out == NULL || strlen(dir) > PATH_MAX - 64)
        return rk_status_set(st, RK_EINVAL, "snap_store_open: bad directory");
    snap_store_t *s = calloc(1, sizeof *s + strlen(dir) + 1);
    if (s == NULL)
        return rk_status_set(st, RK_ENOMEM, "snap_store_open");
    strcpy(s->dir, dir);
    pthread_mutex_init(&s->mu, NULL);
    /* A group without a snapshot has no directory: ten thousand groups on a
     * process cost no inode, and opening them no fsync, until they have
     * one (make_temp creates it). */
    DIR *d = opendir(dir);
    if (d == NULL && errno == ENOENT) {
        *out = s;
        return 0;
    }
    if (d == NULL) {
        int err = errno;
        snap_store_close(s);
        return fileio_err(st, err, "cannot open snapshot directory", dir);
    }
    s->created = true;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t idx;
        if (parse_snapshot_name(de->d_name, &idx)) {
            if (idx > s->latest)
                s->latest = idx;
        } else if (strncmp(de->d_name, SNAP_TMP_PREFIX, strlen(SNAP_TMP_PREFIX)) == 0) {
            /* an interrupted write or download: never renamed, never valid */
            char p[SNAP_PATH_BUF];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            rm_rf(p);
        }
    }
    closedir(d);
    remove_old_locked(s);
    *out = s;
    return 0;
}

void snap_store_close(snap_store_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

uint64_t snap_store_latest_index(snap_store_t *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->latest;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static int make_temp(snap_store_t *s, const char *kind, char *path, rk_status_t *st)
{
    /* install() makes each snapshot's name durable in dir; dir's own name,
     * and those of the parents created with it, must be durable too, or a
     * power loss can take every snapshot with it while the log was
     * truncated on their strength. */
    pthread_mutex_lock(&s->mu);
    int err = s->created ? 0 : fileio_mkdirs(s->dir);
    s->created = err == 0;
    pthread_mutex_unlock(&s->mu);
    if (err != 0)
        return fileio_err(st, err, "cannot create snapshot directory", s->dir);
    snprintf(path, PATH_MAX, "%s/" SNAP_TMP_PREFIX "%s_XXXXXX", s->dir, kind);
    if (mkdtemp(path) == NULL)
        return fileio_err(st, errno, "cannot create temporary snapshot directory in", s->dir);
    return 0;
}

/* Writes the metadata record into tmp, fsyncs, renames tmp into place and
 * removes older snapshots. On failure tmp is removed. */
static int install(snap_store_t *s, const char *tmp, uint64_t index, const uint8_t *rec,
                   size_t rec_len, rk_status_t *st)
{
    char p[SNAP_PATH_BUF], final[PATH_MAX];
    int err;
    snprintf(p, sizeof p, "%s/%s", tmp, SNAP_META_NAME);
    if ((err = write_file_sync(p, rec, rec_len)) != 0) {
        fileio_err(st, err, "cannot write snapshot metadata", p);
        goto fail;
    }
    if ((err = fileio_fsync_path(tmp, true)) != 0) {
        fileio_err(st, err, "cannot fsync", tmp);
        goto fail;
    }
    snapshot_path(s, index, final, sizeof final);
    pthread_mutex_lock(&s->mu);
    struct stat sb;
    if (stat(final, &sb) == 0) {
        pthread_mutex_unlock(&s->mu);
        rk_status_set(st, RK_EEXIST, "snapshot %llu already exists", (unsigned long long)index);
        goto fail;
    }
    /* The commit point: before the rename there is no snapshot_<index>, after
     * it a complete one (its contents were fsynced above). */
    if (rename(tmp, final) != 0) {
        err = errno;
        pthread_mutex_unlock(&s->mu);
        fileio_err(st, err, "cannot rename snapshot into", final);
        goto fail;
    }
    if ((err = fileio_fsync_path(s->dir, true)) != 0) {
        pthread_mutex_unlock(&s->mu);
        /* The rename may or may not survive a crash; either way the
         * directory is complete. Report it: the caller must not truncate the
         * log on the strength of this snapshot. */
        return fileio_err(st, err, "cannot fsync", s->dir);
    }
    if (index > s->latest)
        s->latest = index;
    remove_old_locked(s);
    pthread_mutex_unlock(&s->mu);
    return 0;
fail:
    rm_rf(tmp);
    return st ? st->code : RK_EIO;
}

/* ---- writer ---- */

int snap_writer_begin(snap_store_t *s, uint64_t last_index, uint64_t last_term,
                      const rk_configuration_t *conf, const rk_configuration_t *old_conf,
                      snap_writer_t **out, rk_status_t *st)
{
    if (s == NULL || conf == NULL || out == NULL || last_index == 0)
        return rk_status_set(st, RK_EINVAL, "snap_writer_begin: bad argument");
    snap_writer_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return rk_status_set(st, RK_ENOMEM, "snap_writer_begin");
    w->store = s;
    w->meta.last_index = last_index;
    w->meta.last_term = last_term;
    w->meta.conf = *conf;
    if (old_conf) {
        w->meta.has_old_conf = true;
        w->meta.old_conf = *old_conf;
    }
    int rc = make_temp(s, "snapshot", w->path, st);
    if (rc != 0) {
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

const char *snap_writer_path(const snap_writer_t *w)
{
    return w->path;
}

int snap_writer_add_file(snap_writer_t *w, const char *name, rk_status_t *st)
{
    if (name == NULL || !valid_name(name))
        return rk_status_set(st, RK_EINVAL, "bad snapshot file name");
    if (find_file(&w->meta, name))
        return rk_status_set(st, RK_EEXIST, "snapshot file %s added twice", name);
    if (w->meta.n_files == w->cap) {
        uint32_t ncap = w->cap ? w->cap * 2 : 8;
        snap_file_t *f = realloc(w->meta.files, ncap * sizeof *f);
        if (f == NULL)
            return rk_status_set(st, RK_ENOMEM, "snap_writer_add_file");
        w->meta.files = f;
        w->cap = ncap;
    }
    snap_file_t *f = &w->meta.files[w->meta.n_files++];
    memset(f, 0, sizeof *f);
    strcpy(f->name, name);
    return 0;
}

int snap_writer_write_file(snap_writer_t *w, const char *name, const void *data, size_t len,
                           rk_status_t *st)
{
    if (name == NULL || !valid_name(name))
        return rk_status_set(st, RK_EINVAL, "bad snapshot file name");
    char p[SNAP_PATH_BUF];
    snprintf(p, sizeof p, "%s/%s", w->path, name);
    int err = write_file_sync(p, data, len);
    if (err != 0)
        return fileio_err(st, err, "cannot write", p);
    return snap_writer_add_file(w, name, st);
}

int snap_writer_commit(snap_writer_t *w, rk_status_t *st)
{
    int rc = 0;
    for (uint32_t i = 0; i < w->meta.n_files; i++) {
        snap_file_t *f = &w->meta.files[i];
        char p[SNAP_PATH_BUF];
        snprintf(p, sizeof p, "%s/%s", w->path, f->name);
        int err = file_checksum(p, &f->size, &f->checksum);
        if (err == 0)
            err = fileio_fsync_path(p, false);
        if (err != 0) {
            rc = fileio_err(st, err, "snapshot file", p);
            break;
        }
    }
    uint8_t *rec = NULL;
    size_t rec_len = 0;
    if (rc == 0 && (rc = snap_meta_encode(&w->meta, &rec, &rec_len)) != 0)
        rk_status_set(st, rc, "snap_writer_commit");
    if (rc == 0)
        rc = install(w->store, w->path, w->meta.last_index, rec, rec_len, st);
    else
        rm_rf(w->path);
    free(rec);
    snap_meta_free(&w->meta);
    free(w);
    return rc;
}

void snap_writer_abort(snap_writer_t *w)
{
    if (w == NULL)
        return;
    rm_rf(w->path);
    snap_meta_free(&w->meta);
    free(w);
}

/* ---- reader ---- */

static void ref_add(snap_store_t *s, uint64_t index, int delta)
{
    for (int i = 0; i < s->n_refs; i++) {
        if (s->refs[i].index == index) {
            s->refs[i].readers += delta;
            if (s->refs[i].readers == 0)
                s->refs[i] = s->refs[--s->n_refs];
            return;
        }
    }
    if (delta > 0 && s->n_refs < (int)(sizeof s->refs / sizeof s->refs[0]))
        s->refs[s->n_refs++] = (snap_ref_t){index, delta};
}

int snap_reader_open(snap_store_t *s, snap_reader_t **out, rk_status_t *st)
{
    pthread_mutex_lock(&s->mu);
    uint64_t idx = s->latest;
    if (idx != 0)
        ref_add(s, idx, 1); /* pin it before anything can remove it */
    pthread_mutex_unlock(&s->mu);
    if (idx == 0)
        return rk_status_set(st, RK_ENOTFOUND, "no snapshot in %s", s->dir);
    snap_reader_t *r = calloc(1, sizeof *r);
    int rc;
    if (r == NULL) {
        rc = rk_status_set(st, RK_ENOMEM, "snap_reader_open");
        goto err;
    }
    r->store = s;
    snapshot_path(s, idx, r->path, sizeof r->path);
    char p[SNAP_PATH_BUF];
    snprintf(p, sizeof p, "%s/%s", r->path, SNAP_META_NAME);
    uint8_t *rec = NULL;
    size_t len = 0;
    int err = read_whole(p, &rec, &len);
    if (err != 0) {
        rc = err == ENOENT ? rk_status_set(st, RK_ECORRUPT, "snapshot %s has no metadata", r->path)
                           : fileio_err(st, err, "cannot read", p);
        goto err;
    }
    rc = snap_meta_decode(rec, len, &r->meta);
    free(rec);
    if (rc == 0 && r->meta.last_index != idx)
        rc = RK_ECORRUPT;
    if (rc != 0) {
        rk_status_set(st, rc, "snapshot %s: metadata fails its checksum or format check", r->path);
        goto err;
    }
    for (uint32_t i = 0; i < r->meta.n_files; i++) {
        const snap_file_t *f = &r->meta.files[i];
        uint64_t size = 0, sum = 0;
        snprintf(p, sizeof p, "%s/%s", r->path, f->name);
        err = file_checksum(p, &size, &sum);
        if (err == ENOENT) {
            rc =
                rk_status_set(st, RK_ECORRUPT, "snapshot %s: file %s is missing", r->path, f->name);
            goto err;
        }
        if (err != 0) {
            rc = fileio_err(st, err, "cannot read", p);
            goto err;
        }
        if (size != f->size || sum != f->checksum) {
            rc = rk_status_set(st, RK_ECORRUPT, "snapshot %s: file %s fails its %s check", r->path,
                               f->name, size != f->size ? "size" : "checksum");
            goto err;
        }
    }
    *out = r;
    return 0;
err:
    if (r)
        snap_meta_free(&r->meta);
    free(r);
    pthread_mutex_lock(&s->mu);
    ref_add(s, idx, -1);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

const snap_meta_t *snap_reader_meta(const snap_reader_t *r)
{
    return &r->meta;
}
const char *snap_reader_path(const snap_reader_t *r)
{
    return r->path;
}

int snap_reader_read(snap_reader_t *r, const char *name, uint64_t offset, void *buf, size_t len,
                     size_t *nread, bool *eof, rk_status_t *st)
{
    *nread = 0;
    *eof = false;
    if (name == NULL || (strcmp(name, SNAP_META_NAME) != 0 && find_file(&r->meta, name) == NULL))
        return rk_status_set(st, RK_ENOTFOUND, "snapshot %s has no file %s", r->path,
                             name ? name : "(null)");
    char p[SNAP_PATH_BUF];
    snprintf(p, sizeof p, "%s/%s", r->path, name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fileio_err(st, errno, "cannot open", p);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int err = errno;
        close(fd);
        return fileio_err(st, err, "cannot stat", p);
    }
    if (offset > (uint64_t)sb.st_size) {
        close(fd);
        return rk_status_set(st, RK_EINVAL, "offset %llu beyond the end of %s",
                             (unsigned long long)offset, p);
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(offset + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            return fileio_err(st, err, "cannot read", p);
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    *nread = got;
    *eof = offset + got >= (uint64_t)sb.st_size;
    return 0;
}

void snap_reader_close(snap_reader_t *r)
{
    if (r == NULL)
        return;
    snap_store_t *s = r->store;
    pthread_mutex_lock(&s->mu);
    ref_add(s, r->meta.last_index, -1);
    remove_old_locked(s); /* it may have been superseded while we read it */
    pthread_mutex_unlock(&s->mu);
    snap_meta_free(&r->meta);
    free(r);
}

/* ---- download ---- */

int snap_download_begin(snap_store_t *s, const void *meta_rec, size_t len, snap_download_t **out,
                        rk_status_t *st)
{
    snap_download_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return rk_status_set(st, RK_ENOMEM, "snap_download_begin");
    d->store = s;
    int rc = snap_meta_decode(meta_rec, len, &d->meta);
    if (rc == 0 && d->meta.last_index == 0)
        rc = RK_ECORRUPT;
    if (rc != 0) {
        free(d);
        return rk_status_set(st, rc,
                             "received snapshot metadata fails its checksum or format check");
    }
    d->rec = malloc(len);
    if (d->rec == NULL) {
        snap_meta_free(&d->meta);
        free(d);
        return rk_status_set(st, RK_ENOMEM, "snap_download_begin");
    }
    memcpy(d->rec, meta_rec, len);
    d->rec_len = len;
    if ((rc = make_temp(s, "download", d->path, st)) != 0) {
        snap_download_abort(d);
        return rc;
    }
    /* Create every file, so that an empty file or one whose chunks never
     * arrive is found by size at commit. */
    for (uint32_t i = 0; i < d->meta.n_files; i++) {
        char p[SNAP_PATH_BUF];
        snprintf(p, sizeof p, "%s/%s", d->path, d->meta.files[i].name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            rc = fileio_err(st, errno, "cannot create", p);
            rm_rf(d->path);
            snap_meta_free(&d->meta);
            free(d->rec);
            free(d);
            return rc;
        }
        close(fd);
    }
    *out = d;
    return 0;
}

const snap_meta_t *snap_download_meta(const snap_download_t *d)
{
    return &d->meta;
}

int snap_download_write(snap_download_t *d, const char *name, uint64_t offset, const void *data,
                        size_t len, rk_status_t *st)
{
    const snap_file_t *f = name ? find_file(&d->meta, name) : NULL;
    if (f == NULL)
        return rk_status_set(st, RK_ENOTFOUND, "snapshot file %s is not in the metadata",
                             name ? name : "(null)");
    if (offset > f->size || len > f->size - offset)
        return rk_status_set(st, RK_EINVAL, "chunk %llu+%zu beyond the size of %s",
                             (unsigned long long)offset, len, name);
    char p[SNAP_PATH_BUF];
    snprintf(p, sizeof p, "%s/%s", d->path, name);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return fileio_err(st, errno, "cannot open", p);
    int err = fileio_write_all(fd, data, len, (off_t)offset);
    close(fd);
    return err ? fileio_err(st, err, "cannot write", p) : 0;
}

int snap_download_commit(snap_download_t *d, rk_status_t *st)
{
    int rc = 0;
    for (uint32_t i = 0; i < d->meta.n_files && rc == 0; i++) {
        const snap_file_t *f = &d->meta.files[i];
        char p[SNAP_PATH_BUF];
        snprintf(p, sizeof p, "%s/%s", d->path, f->name);
        uint64_t size = 0, sum = 0;
        int err = file_checksum(p, &size, &sum);
        if (err == 0)
            err = fileio_fsync_path(p, false);
        if (err != 0)
            rc = fileio_err(st, err, "downloaded snapshot file", p);
        else if (size != f->size || sum != f->checksum)
            rc = rk_status_set(st, RK_ECORRUPT,
                               "downloaded snapshot %llu: file %s fails its %s check",
                               (unsigned long long)d->meta.last_index, f->name,
                               size != f->size ? "size" : "checksum");
    }
    if (rc == 0)
        rc = install(d->store, d->path, d->meta.last_index, d->rec, d->rec_len, st);
    else
        rm_rf(d->path);
    snap_meta_free(&d->meta);
    free(d->rec);
    free(d);
    return rc;
}

void snap_download_abort(snap_download_t *d)
{
    if (d == NULL)
        return;
    if (d->path[0])
        rm_rf(d->path);
    snap_meta_free(&d->meta);
    free(d->rec);
    free(d);
}
