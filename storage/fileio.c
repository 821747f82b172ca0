/* Durable file I/O for the storage layer (see fileio.h). */
#include "storage/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fileio_write_all(int fd, const void *p, size_t n, off_t off)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = pwrite(fd, b, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        if (w == 0) /* no progress: retrying would spin */
            return EIO;
        b += w, n -= (size_t)w, off += w;
    }
    return 0;
}

int fileio_read_all(int fd, void *p, size_t n, off_t off)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = pread(fd, b, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        if (r == 0)
            return ENODATA;
        b += r, n -= (size_t)r, off += r;
    }
    return 0;
}

int fileio_fsync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

int fileio_fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return ENAMETOOLONG;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') /* "a/b/" is "a/b" */
        dir[--n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        return fileio_fsync_path(".", true);
    if (slash == dir)
        slash[1] = '\0'; /* "/a": the root */
    else
        *slash = '\0';
    return fileio_fsync_path(dir, true);
}

int fileio_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return ENAMETOOLONG;
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(tmp, 0755) == 0) {
            int err = fileio_fsync_parent(tmp);
            if (err != 0)
                return err;
        } else if (errno != EEXIST) {
            return errno;
        }
        *p = c;
        if (c == '\0')
            return 0;
    }
}

static int paths(const char *dir, const char *name, char *tmp, char *dst)
{
    if (snprintf(dst, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX ||
        snprintf(tmp, PATH_MAX, "%s/%s.tmp", dir, name) >= PATH_MAX)
        return ENAMETOOLONG;
    return 0;
}

/* Writes what fill() puts into a new dir/name.tmp, fsyncs it, renames it
 * into place and fsyncs dir. On success *fd (when not NULL) keeps the
 * descriptor open. */
static int replace_with(const char *dir, const char *name, int (*fill)(int fd, const void *arg),
                        const void *arg, int *fd_out)
{
    char tmp[PATH_MAX], dst[PATH_MAX];
    int rc = paths(dir, name, tmp, dst);
    if (rc != 0)
        return rc;
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    if ((rc = fill(fd, arg)) == 0 && fsync(fd) != 0)
        rc = errno;
    if (rc == 0 && rename(tmp, dst) != 0)
        rc = errno;
    if (rc == 0)
        rc = fileio_fsync_path(dir, true);
    if (rc != 0) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    if (fd_out != NULL)
        *fd_out = fd;
    else
        close(fd);
    return 0;
}

struct bytes {
    const void *p;
    size_t n;
};

static int fill_bytes(int fd, const void *arg)
{
    const struct bytes *b = arg;
    return fileio_write_all(fd, b->p, b->n, 0);
}

static int fill_zero(int fd, const void *arg)
{
    static const uint8_t zero[1 << 16];
    size_t size = *(const size_t *)arg;
    for (size_t o = 0; o < size; o += sizeof zero) {
        size_t k = size - o < sizeof zero ? size - o : sizeof zero;
        int rc = fileio_write_all(fd, zero, k, (off_t)o);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int fileio_replace(const char *dir, const char *name, const void *data, size_t len)
{
    struct bytes b = {data, len};
    return replace_with(dir, name, fill_bytes, &b, NULL);
}

int fileio_create_zeroed(const char *dir, const char *name, size_t size, int *fd)
{
    return replace_with(dir, name, fill_zero, &size, fd);
}

int fileio_unlink(const char *dir, const char *name)
{
    char tmp[PATH_MAX], dst[PATH_MAX];
    int rc = paths(dir, name, tmp, dst);
    if (rc != 0)
        return rc;
    if (unlink(dst) != 0 && errno != ENOENT)
        return errno;
    return fileio_fsync_path(dir, true);
}

int fileio_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    struct stat sb;
    int rc = fstat(fd, &sb) == 0 ? 0 : errno;
    if (rc == 0 && (uint64_t)sb.st_size > max)
        rc = EFBIG;
    uint8_t *b = NULL;
    if (rc == 0 && (b = malloc((size_t)sb.st_size + 1)) == NULL)
        rc = ENOMEM;
    if (rc == 0)
        rc = fileio_read_all(fd, b, (size_t)sb.st_size, 0);
    close(fd);
    if (rc != 0) {
        free(b);
        return rc;
    }
    *out = b;
    *len = (size_t)sb.st_size;
    return 0;
}

int fileio_err(rk_status_t *st, int err, const char *what, const char *path)
{
    int code = err == ENOSPC || err == EFBIG || err == EDQUOT ? RK_ENOSPC
               : err == ENOMEM                                ? RK_ENOMEM
               : err == ENOENT                                ? RK_ENOTFOUND
                                                              : RK_EIO;
    return rk_status_set(st, code, "%s %s: %s", what, path, strerror(err));
}
