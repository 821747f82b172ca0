/* Durable file I/O for the storage layer: the one place where raftkit
 * writes a whole buffer, makes a file or a name durable, and turns an errno
 * into an RK_E* status. Used by the journal, the snapshot store and the
 * files kept beside the log (forced_conf_store.h).
 *
 * Functions return 0 or an errno value (never -1), so that a caller can
 * hand the value to fileio_err without reading errno again.
 */
#ifndef RAFTKIT_STORAGE_FILEIO_H
#define RAFTKIT_STORAGE_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "raftkit/status.h"

/* Writes all n bytes at off, retrying short writes and EINTR. A write that
 * makes no progress (returns 0) is EIO, never retried. Returns 0 or errno. */
int fileio_write_all(int fd, const void *p, size_t n, off_t off);

/* Reads exactly n bytes at off. Returns 0, errno, or ENODATA when the file
 * ends first. */
int fileio_read_all(int fd, void *p, size_t n, off_t off);

/* fsync of a file or directory by path. Returns 0 or errno. */
int fileio_fsync_path(const char *path, bool dir);

/* Makes the directory entry of path durable: fsyncs the directory holding
 * it. Returns 0 or errno. */
int fileio_fsync_parent(const char *path);

/* Creates directory path and any missing parent, each new one made durable
 * (its parent fsynced), so that a file later made durable inside it cannot
 * lose its directory to a power loss. Existing directories are not synced.
 * Returns 0 or errno. */
int fileio_mkdirs(const char *path);

/* Atomically replaces dir/name with len bytes of data: writes dir/name.tmp,
 * fsyncs it, renames it over dir/name and fsyncs dir. After a crash dir/name
 * holds either the old or the new content, never a mix. Returns 0 or errno
 * (then dir/name is unchanged, though a stale dir/name.tmp may remain). */
int fileio_replace(const char *dir, const char *name, const void *data, size_t len);

/* Creates dir/name as size zero bytes the same way (temporary name, fsync,
 * rename, directory fsync), so that the file exists whole or not at all and
 * later overwrites in place change no file metadata. *fd gets a read-write
 * descriptor of it. Returns 0 or errno. */
int fileio_create_zeroed(const char *dir, const char *name, size_t size, int *fd);

/* Removes dir/name and fsyncs dir, so that the removal survives a power
 * loss. A name that does not exist is not an error (the fsync still runs).
 * Returns 0 or errno. */
int fileio_unlink(const char *dir, const char *name);

/* Reads the whole file at path (at most max bytes) into a malloc'ed buffer
 * *out of *len bytes, owned by the caller. Returns 0, errno (ENOENT when it
 * does not exist), or EFBIG when it is larger than max. */
int fileio_read_file(const char *path, size_t max, uint8_t **out, size_t *len);

/* Sets st from errno value err: "<what> <path>: <strerror>" with code
 * RK_ENOSPC (ENOSPC, EFBIG, EDQUOT), RK_ENOMEM, RK_ENOTFOUND (ENOENT) or
 * RK_EIO. Returns the code. */
int fileio_err(rk_status_t *st, int err, const char *what, const char *path);

#endif /* RAFTKIT_STORAGE_FILEIO_H */
