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
 * The wrappers may run on several threads at once (a node's log writer and
 * its checkpoints): the bookkeeping is under one mutex, and a sync marks as
 * durable only the writes logged before it began.
 *
 * The interposition works because the executable's definitions of pwrite,
 * writev, fdatasync... take precedence over libc's for liblmdb's calls too.
 * The wrappers issue the system calls directly. Outside -p mode (pl_dir
 * unset) they are plain pass-throughs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
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
static pthread_mutex_t pl_mu = PTHREAD_MUTEX_INITIALIZER;
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

/* Bytes of file i's unsynced-write log (under pl_mu). */
static off_t pending_size(int i)
{
    struct stat st;
    if (fstat(pl_files[i].pending_fd, &st) != 0)
        abort();
    return st.st_size;
}

/* A sync of file i that began when its log held upto bytes succeeded: the
 * writes logged until then are on the disk, copy them over; the ones logged
 * since (other threads) stay unsynced. Under pl_mu. */
static void synced(int i, off_t upto)
{
    int p = pl_files[i].pending_fd;
    uint64_t r[2];
    off_t pos = 0;
    while (pos < upto && raw_pread(p, r, sizeof r, pos) == (ssize_t)sizeof r) {
        copy_range(readable(i), pl_files[i].shadow_fd, (off_t)r[0], (size_t)r[1]);
        pos += (off_t)sizeof r;
    }
    off_t end = pending_size(i), out = 0;
    for (; pos < end; pos += (off_t)sizeof r, out += (off_t)sizeof r)
        if (raw_pread(p, r, sizeof r, pos) != (ssize_t)sizeof r ||
            raw_pwrite(p, r, sizeof r, out) != (ssize_t)sizeof r)
            abort();
    if (ftruncate(p, out) != 0)
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
    if (raw_pwrite(pl_files[i].pending_fd, r, sizeof r, pending_size(i)) != sizeof r)
        abort();
}

/* A write of len bytes at off to fd completed: log it if fd is tracked. */
static void after_write(int fd, off_t off, ssize_t len)
{
    if (pl_dir[0] == '\0' || len <= 0)
        return;
    pthread_mutex_lock(&pl_mu);
    int i = tracked(fd);
    if (i >= 0)
        wrote(fd, i, off, (size_t)len);
    pthread_mutex_unlock(&pl_mu);
}

/* fdatasync/fsync of fd through the system call sys. */
static int sync_fd(long sys, int fd)
{
    if (pl_dir[0] == '\0')
        return (int)syscall(sys, fd);
    pthread_mutex_lock(&pl_mu);
    int i = tracked(fd);
    off_t upto = i >= 0 ? pending_size(i) : 0;
    pthread_mutex_unlock(&pl_mu);
    int r = (int)syscall(sys, fd);
    if (r == 0 && i >= 0) {
        pthread_mutex_lock(&pl_mu);
        synced(i, upto);
        pthread_mutex_unlock(&pl_mu);
    }
    return r;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t r = raw_pwrite(fd, buf, n, off);
    after_write(fd, off, r);
    return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    /* the file position: only this thread writes a tracked file this way */
    off_t off = pl_dir[0] != '\0' ? lseek(fd, 0, SEEK_CUR) : -1;
    ssize_t r = syscall(SYS_writev, fd, iov, cnt);
    if (off >= 0)
        after_write(fd, off, r);
    return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    ssize_t r = syscall(SYS_pwritev, fd, iov, cnt, (long)off, (long)((uint64_t)off >> 32));
    after_write(fd, off, r);
    return r;
}

int fdatasync(int fd)
{
    return sync_fd(SYS_fdatasync, fd);
}

int fsync(int fd)
{
    return sync_fd(SYS_fsync, fd);
}

int pl_child_begin(const char *dir)
{
    for (int i = 0; i < PL_FILES; i++) {
        char shadow[PATH_MAX + 32], pending[PATH_MAX + 32];
        paths(dir, i, shadow, pending);
        pl_files[i].shadow_fd = open(shadow, O_RDWR | O_CREAT, 0644);
        pl_files[i].pending_fd = open(pending, O_RDWR | O_CREAT, 0644);
        if (pl_files[i].shadow_fd < 0 || pl_files[i].pending_fd < 0)
            return -1;
    }
    snprintf(pl_dir, sizeof pl_dir, "%s", dir); /* last: the wrappers start logging */
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
