/* Power-loss simulation for storage-crash -p: a SIGKILL keeps everything the
 * process wrote (the page cache survives), so by itself it cannot show that
 * an acknowledgement waited for an fdatasync. In -p mode the child's writes
 * to the LMDB data file are interposed: every write range is logged as
 * "unsynced" until an fdatasync/fsync of that file (or the write went through
 * an O_DSYNC descriptor), and a shadow copy of the file holds what has been
 * synced. After the kill, pl_power_loss() plays the power cut: each unsynced
 * 4 KiB page independently either made it to the disk or not (then it gets
 * its last synced content back, or disappears if the file grew), which is
 * any state a real disk may be left in, including "meta page written, data
 * pages not". The checks that follow must then still find every entry that
 * was acknowledged.
 *
 * The interposition works because the executable's definitions of pwrite,
 * writev, fdatasync... take precedence over libc's for liblmdb's calls too.
 * The wrappers issue the system calls directly. Outside -p mode (pl_dir
 * unset) they are plain pass-throughs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tests/storage/powerloss.h"

#define PL_PAGE 4096

static char pl_dir[PATH_MAX];          /* child: the LMDB directory ("" = inactive) */
static int data_fd = -1, meta_fd = -1; /* the data file's plain and O_DSYNC fds */
static int pending_fd = -1, shadow_fd = -1;

static void paths(const char *dir, char *shadow, char *pending)
{
    snprintf(shadow, PATH_MAX + 16, "%s.pl-shadow", dir);
    snprintf(pending, PATH_MAX + 16, "%s.pl-pending", dir);
}

static ssize_t raw_pread(int fd, void *b, size_t n, off_t off)
{
    return syscall(SYS_pread64, fd, b, n, off);
}
static ssize_t raw_pwrite(int fd, const void *b, size_t n, off_t off)
{
    return syscall(SYS_pwrite64, fd, b, n, off);
}

static void copy_range(int from, int to, off_t off, size_t len)
{
    char buf[PL_PAGE];
    while (len > 0) {
        size_t k = len < sizeof buf ? len : sizeof buf;
        ssize_t r = raw_pread(from, buf, k, off);
        if (r <= 0)
            return;
        raw_pwrite(to, buf, (size_t)r, off);
        off += r;
        len -= (size_t)r;
    }
}

/* Is fd the LMDB data file? Decided by its path, remembered once found. */
static int is_data(int fd)
{
    if (pl_dir[0] == '\0' || fd < 0)
        return 0;
    if (fd == data_fd || fd == meta_fd)
        return 1;
    char link[64], path[PATH_MAX], want[PATH_MAX + 16], real_dir[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return 0;
    path[n] = '\0';
    if (realpath(pl_dir, real_dir) == NULL)
        return 0;
    snprintf(want, sizeof want, "%s/data.mdb", real_dir);
    if (strcmp(path, want) != 0)
        return 0;
    if (fcntl(fd, F_GETFL) & O_DSYNC)
        meta_fd = fd;
    else
        data_fd = fd;
    return 1;
}

/* A readable descriptor of the data file (the O_DSYNC one is write-only). */
static int readable(void)
{
    if (data_fd >= 0)
        return data_fd;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/data.mdb", pl_dir);
    data_fd = open(path, O_RDONLY);
    return data_fd;
}

static void synced(void)
{
    /* everything logged as unsynced is now on the disk: copy it over */
    uint64_t r[2];
    off_t pos = 0;
    while (raw_pread(pending_fd, r, sizeof r, pos) == (ssize_t)sizeof r) {
        copy_range(readable(), shadow_fd, (off_t)r[0], (size_t)r[1]);
        pos += (off_t)sizeof r;
    }
    if (ftruncate(pending_fd, 0) != 0)
        abort();
}

static void wrote(int fd, off_t off, size_t len)
{
    if (len == 0)
        return;
    if (fcntl(fd, F_GETFL) & O_DSYNC) { /* synchronous write: durable now */
        copy_range(readable(), shadow_fd, off, len);
        return;
    }
    uint64_t r[2] = {(uint64_t)off, (uint64_t)len};
    struct stat st;
    if (fstat(pending_fd, &st) != 0 || raw_pwrite(pending_fd, r, sizeof r, st.st_size) != sizeof r)
        abort();
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t r = raw_pwrite(fd, buf, n, off);
    if (r > 0 && is_data(fd))
        wrote(fd, off, (size_t)r);
    return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    off_t off = is_data(fd) ? lseek(fd, 0, SEEK_CUR) : -1;
    ssize_t r = syscall(SYS_writev, fd, iov, cnt);
    if (r > 0 && off >= 0)
        wrote(fd, off, (size_t)r);
    return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    ssize_t r = syscall(SYS_pwritev, fd, iov, cnt, (long)off, (long)((uint64_t)off >> 32));
    if (r > 0 && is_data(fd))
        wrote(fd, off, (size_t)r);
    return r;
}

int fdatasync(int fd)
{
    int r = (int)syscall(SYS_fdatasync, fd);
    if (r == 0 && is_data(fd))
        synced();
    return r;
}

int fsync(int fd)
{
    int r = (int)syscall(SYS_fsync, fd);
    if (r == 0 && is_data(fd))
        synced();
    return r;
}

int pl_child_begin(const char *dir)
{
    char shadow[PATH_MAX + 16], pending[PATH_MAX + 16];
    paths(dir, shadow, pending);
    snprintf(pl_dir, sizeof pl_dir, "%s", dir);
    shadow_fd = open(shadow, O_RDWR | O_CREAT, 0644);
    pending_fd = open(pending, O_RDWR | O_CREAT, 0644);
    return shadow_fd >= 0 && pending_fd >= 0 ? 0 : -1;
}

int pl_power_loss(const char *dir, uint64_t (*rnd)(void), unsigned *lost, unsigned *kept)
{
    char data[PATH_MAX + 16], shadow[PATH_MAX + 16], pending[PATH_MAX + 16];
    paths(dir, shadow, pending);
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    int d = open(data, O_RDWR), s = open(shadow, O_RDWR | O_CREAT, 0644),
        p = open(pending, O_RDWR | O_CREAT, 0644);
    int rc = -1;
    if (s < 0 || p < 0)
        goto out;
    if (d < 0) { /* the child died before creating the file */
        rc = errno == ENOENT ? 0 : -1;
        goto out;
    }
    struct stat ss;
    if (fstat(s, &ss) != 0)
        goto out;
    off_t shadow_size = ss.st_size, keep_size = shadow_size;
    static const char zero[PL_PAGE];
    uint64_t r[2];
    off_t pos = 0;
    while (raw_pread(p, r, sizeof r, pos) == (ssize_t)sizeof r) {
        pos += (off_t)sizeof r;
        for (off_t o = (off_t)r[0]; o < (off_t)(r[0] + r[1]); o += PL_PAGE) {
            size_t len = (size_t)((off_t)(r[0] + r[1]) - o);
            if (len > PL_PAGE)
                len = PL_PAGE;
            if (rnd() % 2 == 0) { /* this page reached the disk */
                copy_range(d, s, o, len);
                if (o + (off_t)len > keep_size)
                    keep_size = o + (off_t)len;
                ++*kept;
            } else if (o < shadow_size) { /* it did not: old content */
                copy_range(s, d, o, len);
                ++*lost;
            } else { /* it did not, in a part the file grew into */
                raw_pwrite(d, zero, len, o);
                raw_pwrite(s, zero, len, o);
                ++*lost;
            }
        }
    }
    /* growth nothing of which survived is gone */
    if (ftruncate(d, keep_size) != 0 || ftruncate(s, keep_size) != 0 || ftruncate(p, 0) != 0)
        goto out;
    rc = 0;
out:
    if (d >= 0)
        close(d);
    if (s >= 0)
        close(s);
    if (p >= 0)
        close(p);
    return rc;
}

int pl_init(const char *dir)
{
    char data[PATH_MAX + 16], shadow[PATH_MAX + 16], pending[PATH_MAX + 16];
    paths(dir, shadow, pending);
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    int d = open(data, O_RDONLY), s = open(shadow, O_RDWR | O_CREAT | O_TRUNC, 0644),
        p = open(pending, O_RDWR | O_CREAT | O_TRUNC, 0644);
    struct stat st;
    int rc = d >= 0 && s >= 0 && p >= 0 && fstat(d, &st) == 0 ? 0 : -1;
    if (rc == 0)
        copy_range(d, s, 0, (size_t)st.st_size);
    if (d >= 0)
        close(d);
    if (s >= 0)
        close(s);
    if (p >= 0)
        close(p);
    return rc;
}

void pl_remove(const char *dir)
{
    char shadow[PATH_MAX + 16], pending[PATH_MAX + 16];
    paths(dir, shadow, pending);
    unlink(shadow);
    unlink(pending);
}
