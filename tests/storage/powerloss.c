/* Power-loss simulation for storage-crash -p: a SIGKILL keeps everything the
 * process wrote (the page cache survives), so by itself it cannot show that
 * an acknowledgement waited for an fdatasync. In -p mode the child's writes
 * to the LMDB data file and to the journal's files are interposed: every write range is logged as
 * "unsynced" until an fdatasync/fsync of that file (or the write went through
 * an O_DSYNC descriptor), and a shadow copy of the file holds what has been
 * synced. After the kill, pl_power_loss() plays the power cut: each unsynced
 * 4 KiB page of each file independently either made it to the disk or not (then it gets
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

#define PL_PAGE  4096
#define PL_FILES 3

/* The files whose unsynced writes a power loss may undo: LMDB's data file
 * and the journal's segment and checkpoint slots (storage/journal.h). */
static const char *const pl_names[PL_FILES] = {"data.mdb", "journal.wal", "journal.ckpt"};

typedef struct pl_file {
    int fd, dsync_fd; /* the process's plain and O_DSYNC descriptors */
    int rd_fd;        /* a readable descriptor opened by us */
    int pending_fd, shadow_fd;
} pl_file_t;

static char pl_dir[PATH_MAX]; /* child: the directory ("" = inactive) */
static pl_file_t pl_files[PL_FILES] = {
    {-1, -1, -1, -1, -1}, {-1, -1, -1, -1, -1}, {-1, -1, -1, -1, -1}};

static void paths(const char *dir, int i, char *shadow, char *pending)
{
    snprintf(shadow, PATH_MAX + 32, "%s.pl-shadow-%d", dir, i);
    snprintf(pending, PATH_MAX + 32, "%s.pl-pending-%d", dir, i);
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

/* Which tracked file is fd (-1: none)? Decided by its path, remembered. */
static int tracked(int fd)
{
    if (pl_dir[0] == '\0' || fd < 0)
        return -1;
    for (int i = 0; i < PL_FILES; i++)
        if (fd == pl_files[i].fd || fd == pl_files[i].dsync_fd)
            return i;
    char link[64], path[PATH_MAX], want[PATH_MAX + 32], real_dir[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0 || realpath(pl_dir, real_dir) == NULL)
        return -1;
    path[n] = '\0';
    for (int i = 0; i < PL_FILES; i++) {
        snprintf(want, sizeof want, "%s/%s", real_dir, pl_names[i]);
        if (strcmp(path, want) != 0)
            continue;
        /* a descriptor number may be reused after a close: forget the old */
        if (fcntl(fd, F_GETFL) & O_DSYNC)
            pl_files[i].dsync_fd = fd;
        else
            pl_files[i].fd = fd;
        return i;
    }
    return -1;
}

/* A readable descriptor of file i (the O_DSYNC one is write-only). */
static int readable(int i)
{
    if (pl_files[i].rd_fd < 0) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/%s", pl_dir, pl_names[i]);
        pl_files[i].rd_fd = open(path, O_RDONLY);
    }
    return pl_files[i].rd_fd;
}

static void synced(int i)
{
    /* everything logged as unsynced is now on the disk: copy it over */
    uint64_t r[2];
    off_t pos = 0;
    while (raw_pread(pl_files[i].pending_fd, r, sizeof r, pos) == (ssize_t)sizeof r) {
        copy_range(readable(i), pl_files[i].shadow_fd, (off_t)r[0], (size_t)r[1]);
        pos += (off_t)sizeof r;
    }
    if (ftruncate(pl_files[i].pending_fd, 0) != 0)
        abort();
}

static void wrote(int fd, int i, off_t off, size_t len)
{
    if (len == 0)
        return;
    if (fcntl(fd, F_GETFL) & O_DSYNC) { /* synchronous write: durable now */
        copy_range(readable(i), pl_files[i].shadow_fd, off, len);
        return;
    }
    uint64_t r[2] = {(uint64_t)off, (uint64_t)len};
    struct stat st;
    int p = pl_files[i].pending_fd;
    if (fstat(p, &st) != 0 || raw_pwrite(p, r, sizeof r, st.st_size) != sizeof r)
        abort();
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t r = raw_pwrite(fd, buf, n, off);
    int i = tracked(fd);
    if (r > 0 && i >= 0)
        wrote(fd, i, off, (size_t)r);
    return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    int i = tracked(fd);
    off_t off = i >= 0 ? lseek(fd, 0, SEEK_CUR) : -1;
    ssize_t r = syscall(SYS_writev, fd, iov, cnt);
    if (r > 0 && off >= 0)
        wrote(fd, i, off, (size_t)r);
    return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    ssize_t r = syscall(SYS_pwritev, fd, iov, cnt, (long)off, (long)((uint64_t)off >> 32));
    int i = tracked(fd);
    if (r > 0 && i >= 0)
        wrote(fd, i, off, (size_t)r);
    return r;
}

int fdatasync(int fd)
{
    int r = (int)syscall(SYS_fdatasync, fd);
    int i = tracked(fd);
    if (r == 0 && i >= 0)
        synced(i);
    return r;
}

int fsync(int fd)
{
    int r = (int)syscall(SYS_fsync, fd);
    int i = tracked(fd);
    if (r == 0 && i >= 0)
        synced(i);
    return r;
}

int pl_child_begin(const char *dir)
{
    snprintf(pl_dir, sizeof pl_dir, "%s", dir);
    for (int i = 0; i < PL_FILES; i++) {
        char shadow[PATH_MAX + 32], pending[PATH_MAX + 32];
        paths(dir, i, shadow, pending);
        pl_files[i].shadow_fd = open(shadow, O_RDWR | O_CREAT, 0644);
        pl_files[i].pending_fd = open(pending, O_RDWR | O_CREAT, 0644);
        if (pl_files[i].shadow_fd < 0 || pl_files[i].pending_fd < 0)
            return -1;
    }
    return 0;
}

/* The power cut for file i of dir. */
static int lose_one(const char *dir, int i, uint64_t (*rnd)(void), unsigned *lost, unsigned *kept)
{
    char data[PATH_MAX + 32], shadow[PATH_MAX + 32], pending[PATH_MAX + 32];
    paths(dir, i, shadow, pending);
    snprintf(data, sizeof data, "%s/%s", dir, pl_names[i]);
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
        for (off_t o = (off_t)r[0]; o < (off_t)(r[0] + r[1]);) {
            /* per 4 KiB page of the file (a write need not start on one) */
            off_t page_end = (o / PL_PAGE + 1) * PL_PAGE;
            size_t len =
                (size_t)((off_t)(r[0] + r[1]) < page_end ? (off_t)(r[0] + r[1]) - o : page_end - o);
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
            o += (off_t)len;
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

int pl_power_loss(const char *dir, uint64_t (*rnd)(void), unsigned *lost, unsigned *kept)
{
    for (int i = 0; i < PL_FILES; i++)
        if (lose_one(dir, i, rnd, lost, kept) != 0)
            return -1;
    return 0;
}

int pl_init(const char *dir)
{
    for (int i = 0; i < PL_FILES; i++) {
        char data[PATH_MAX + 32], shadow[PATH_MAX + 32], pending[PATH_MAX + 32];
        paths(dir, i, shadow, pending);
        snprintf(data, sizeof data, "%s/%s", dir, pl_names[i]);
        int d = open(data, O_RDONLY), s = open(shadow, O_RDWR | O_CREAT | O_TRUNC, 0644),
            p = open(pending, O_RDWR | O_CREAT | O_TRUNC, 0644);
        struct stat st;
        /* a file that does not exist yet starts with an empty shadow */
        int rc = s >= 0 && p >= 0 && (d < 0 ? errno == ENOENT : fstat(d, &st) == 0) ? 0 : -1;
        if (rc == 0 && d >= 0)
            copy_range(d, s, 0, (size_t)st.st_size);
        if (d >= 0)
            close(d);
        if (s >= 0)
            close(s);
        if (p >= 0)
            close(p);
        if (rc != 0)
            return -1;
    }
    return 0;
}

void pl_remove(const char *dir)
{
    for (int i = 0; i < PL_FILES; i++) {
        char shadow[PATH_MAX + 32], pending[PATH_MAX + 32];
        paths(dir, i, shadow, pending);
        unlink(shadow);
        unlink(pending);
    }
}
