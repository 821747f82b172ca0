/* Snapshot store: `snapshot_<index>/` directories holding the state
 * machine's files plus a metadata record (last included index and term,
 * configuration, file list with sizes and checksums).
 *
 * A snapshot is written into a temporary directory, its files and metadata
 * fsynced, and renamed into place: the rename is the commit point, so a
 * directory named snapshot_<index> is always complete. The newest one wins;
 * older ones are removed once the new one is durable and no reader (e.g. a
 * transfer to a follower) still uses them. Temporary directories left by a
 * crash are removed at open.
 *
 * Raft (Section 7, "Log compaction"; thesis 5.1): the snapshot carries the
 * last included index and term so that AppendEntries consistency checks work
 * at its boundary, and the latest configuration as of that index.
 *
 * Threads: a snap_store_t may be used from several threads (an internal
 * mutex guards its bookkeeping); each writer, reader or download object is
 * used by one thread at a time. All calls do disk I/O: keep them off the node
 * loop thread.
 */
#ifndef RAFTKIT_STORAGE_SNAPSHOT_STORE_H
#define RAFTKIT_STORAGE_SNAPSHOT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkit/peer.h"
#include "raftkit/status.h"

/* Name under which the metadata record is stored and served for transfer. */
#define SNAP_META_NAME "__raftkit_snapshot_meta"
#define SNAP_NAME_MAX  256

typedef struct snap_file {
    char name[SNAP_NAME_MAX];
    uint64_t size;
    uint64_t checksum; /* XXH3-64 of the contents */
} snap_file_t;

typedef struct snap_meta {
    uint64_t last_index;
    uint64_t last_term;
    rk_configuration_t conf;
    /* The old configuration while a joint consensus change is in progress
     * at last_index; has_old_conf false otherwise. */
    bool has_old_conf;
    rk_configuration_t old_conf;
    uint32_t n_files;
    snap_file_t *files; /* owned by whoever owns the meta */
} snap_meta_t;

typedef struct snap_store snap_store_t;
typedef struct snap_writer snap_writer_t;
typedef struct snap_reader snap_reader_t;
typedef struct snap_download snap_download_t;

/* Opens the store in dir, removes temporary directories left by an
 * interrupted write or download and snapshots older than the newest one. A
 * missing dir is an empty store: it is created (with its missing parents,
 * durably) by the first snapshot written or downloaded, so opening creates
 * no file. Errors: RK_EINVAL, RK_ENOMEM, RK_EIO. */
int snap_store_open(const char *dir, snap_store_t **out, rk_status_t *st);
/* All readers, writers and downloads must be finished first. */
void snap_store_close(snap_store_t *s);

/* Index of the newest snapshot, 0 when there is none. */
uint64_t snap_store_latest_index(snap_store_t *s);

/* ---- writing (the state machine's on_snapshot_save) ---- */

/* Starts a snapshot of the state up to (last_index, last_term) with
 * configuration conf (and old_conf during a joint change, else NULL). The
 * state machine writes its files into snap_writer_path() and names each one
 * with snap_writer_add_file(). Errors: RK_EINVAL, RK_ENOMEM, RK_EIO. */
int snap_writer_begin(snap_store_t *s, uint64_t last_index, uint64_t last_term,
                      const rk_configuration_t *conf, const rk_configuration_t *old_conf,
                      snap_writer_t **out, rk_status_t *st);
/* The temporary directory to write files into. */
const char *snap_writer_path(const snap_writer_t *w);
/* Records file `name` (a plain name inside the directory: no '/', not "."
 * or "..", not SNAP_META_NAME, not already added), which must exist by
 * commit time. Errors: RK_EINVAL, RK_EEXIST, RK_ENOMEM. */
int snap_writer_add_file(snap_writer_t *w, const char *name, rk_status_t *st);
/* Convenience: writes data into file name and adds it. */
int snap_writer_write_file(snap_writer_t *w, const char *name, const void *data, size_t len,
                           rk_status_t *st);
/* Checksums and fsyncs the files, writes and fsyncs the metadata, renames
 * the directory to snapshot_<last_index>, fsyncs the parent, then removes
 * older snapshots not in use. Frees w in every case. Errors: RK_ENOTFOUND
 * (an added file is missing), RK_EEXIST (a snapshot at this index already
 * exists; it is kept), RK_EIO, RK_ENOSPC; then nothing was installed. */
int snap_writer_commit(snap_writer_t *w, rk_status_t *st);
/* Removes the temporary directory and frees w. */
void snap_writer_abort(snap_writer_t *w);

/* ---- reading (loading at startup, serving transfers) ---- */

/* Opens the newest snapshot after verifying its metadata checksum and every
 * file's size and checksum. While open, the snapshot is not removed even if a
 * newer one is committed. Errors: RK_ENOTFOUND (no snapshot), RK_ECORRUPT
 * (naming the snapshot and the file that fails), RK_ENOMEM, RK_EIO. */
int snap_reader_open(snap_store_t *s, snap_reader_t **out, rk_status_t *st);
const snap_meta_t *snap_reader_meta(const snap_reader_t *r);
/* The snapshot directory, for the state machine to open its files. */
const char *snap_reader_path(const snap_reader_t *r);
/* Reads up to len bytes of file name (a listed file or SNAP_META_NAME) at
 * offset into buf: *nread bytes were read, *eof tells whether the file ends
 * there. This is the server side of a resumable, throttled GetFile copy.
 * Errors: RK_ENOTFOUND (unknown name), RK_EINVAL (offset beyond the end),
 * RK_EIO. */
int snap_reader_read(snap_reader_t *r, const char *name, uint64_t offset, void *buf, size_t len,
                     size_t *nread, bool *eof, rk_status_t *st);
void snap_reader_close(snap_reader_t *r);

/* ---- downloading (a follower installing the leader's snapshot) ---- */

/* Starts a download from the leader's metadata record (the bytes of
 * SNAP_META_NAME, fetched first). Errors: RK_ECORRUPT (record does not
 * verify), RK_ENOMEM, RK_EIO. */
int snap_download_begin(snap_store_t *s, const void *meta_rec, size_t len, snap_download_t **out,
                        rk_status_t *st);
const snap_meta_t *snap_download_meta(const snap_download_t *d);
/* Writes a received chunk of file name at offset. Chunks may arrive in any
 * order and be repeated (a resumed copy). Errors: RK_ENOTFOUND (not in the
 * metadata), RK_EINVAL (beyond the file's size), RK_EIO, RK_ENOSPC. */
int snap_download_write(snap_download_t *d, const char *name, uint64_t offset, const void *data,
                        size_t len, rk_status_t *st);
/* Verifies every file against the metadata, then installs the snapshot as
 * snap_writer_commit does. Frees d in every case. Errors: RK_ECORRUPT (a
 * file's size or checksum does not match: nothing installed), RK_EEXIST,
 * RK_EIO, RK_ENOSPC. */
int snap_download_commit(snap_download_t *d, rk_status_t *st);
void snap_download_abort(snap_download_t *d);

/* ---- metadata record ---- */

/* Encodes m into a malloc'ed record (*buf, *len). Errors: RK_ENOMEM. */
int snap_meta_encode(const snap_meta_t *m, uint8_t **buf, size_t *len);
/* Decodes and verifies a record; m->files is malloc'ed (snap_meta_free).
 * Errors: RK_ECORRUPT, RK_ENOMEM. */
int snap_meta_decode(const uint8_t *buf, size_t len, snap_meta_t *m);
void snap_meta_free(snap_meta_t *m);

#endif /* RAFTKIT_STORAGE_SNAPSHOT_STORE_H */
