/* Write-ahead journal in front of LMDB (see journal.h): log batches become
 * durable with one fdatasync of a preallocated segment; LMDB is written
 * without syncing and made durable only at checkpoints.
 *
 * Why it is safe
 * --------------
 * 1. What an acknowledgement promises. The writer appends a batch's ops as
 *    one record (checksum, sequence number seq) to journal.wal, fdatasyncs
 *    it, applies the same ops to LMDB in a transaction that also stores
 *    "applied seq", and only then completes the requests. (Small appends are
 *    instead published from memory and applied later, a few dozen records
 *    per transaction that stores the newest seq: log_store.c, "pending".
 *    Nothing changes below: until that transaction, replay has them.) The segment was
 *    zero-filled and fsync'ed (file and directory) when it was created and is
 *    overwritten in place, never extended, so the fdatasync has no file
 *    metadata to flush: it is one device flush, and after it the record
 *    survives any crash.
 *
 * 2. LMDB without sync is not consistent by itself. Commits use MDB_NOSYNC:
 *    after a power loss any subset of the pages written since the last sync
 *    may be on the disk, including a meta page whose tree pages are not.
 *    Two things make the last checkpointed state recoverable anyway:
 *    a. A read transaction ("the pin") is kept open on the snapshot of the
 *       last checkpoint. LMDB never reuses a page that a live reader's
 *       snapshot can reach, so every later commit writes only to pages that
 *       snapshot does not use: the checkpointed tree stays intact on disk
 *       whatever happens to the later writes.
 *    b. The checkpoint stores a copy of both meta pages, taken right after
 *       mdb_env_sync, in journal.ckpt (two alternating checksummed slots,
 *       each fdatasync'ed: a torn slot leaves the other one valid). At open,
 *       before LMDB looks at data.mdb, the meta pages are written back, so
 *       LMDB opens exactly the checkpointed snapshot, never a later meta
 *       page that may point at torn pages.
 *    The map size can only change with no transaction open, so a resize
 *    checkpoints first and re-pins the same, now durable, snapshot.
 *
 * 3. Replay. From the checkpointed snapshot, whose stored applied seq is A,
 *    the records with seq > A are re-applied in order. The checkpoint slot
 *    names the sequence number of the record at offset 0 (the segment is
 *    recycled at checkpoints, so everything before it is in LMDB). Reading
 *    stops at the first record that is not the expected next one: a zero
 *    tail, a record from before the last recycle (smaller seq), or a torn
 *    record. Because record k+1 is written only after record k was synced,
 *    only the last record can be torn; so when a record fails to verify and
 *    an intact record with a larger seq follows it, that is media corruption
 *    of an acknowledged write and open fails with RK_ECORRUPT rather than
 *    silently dropping it. Replaying is idempotent: each replayed
 *    transaction stores its seq, and records at or below it are skipped.
 *    Record checksums are salted with the lap's first sequence number (the
 *    slot's start), so the image of a record from an earlier lap, or one
 *    carried inside a payload, never verifies as part of this lap. A record
 *    holds only the ops of its batch that fit the log (the others fail in
 *    the live transaction and change nothing), so every replayed op must
 *    apply; one that does not means replay diverged from the live path,
 *    and the open fails with RK_ECORRUPT instead of dropping it.
 *
 * 4. Visibility. Readers (log_store_get...) see a batch only once its LMDB
 *    transaction committed, or it was published from memory, both after its
 *    journal record was synced, so nothing a crash can take back is ever
 *    visible.
 *
 * 5. Writes that bypass the journal (batches bigger than the segment)
 *    commit to LMDB, after anything pending, and then checkpoint, which
 *    makes them durable before the call returns. A new group is registered
 *    by its first write transaction, not by a write of its own; until LMDB
 *    holds the registration, each record naming the group carries its name
 *    (encode_ops), and replay registers it before applying the op. Every
 *    checkpoint first applies what is pending, so a recycled segment never
 *    held a record LMDB lacks.
 *
 * When things fail
 * ----------------
 * 6. Sticky failure. Some failures leave the files in a state this process
 *    can no longer vouch for, and carrying on would make it worse:
 *    a. a batch whose record is synced (and possibly acknowledged: the
 *       writer's durable_cb, a follower's answer) but whose LMDB commit, or
 *       the drain of pending appends, then fails (ENOSPC while LMDB grows
 *       the file, a failed map growth). LMDB lacks a record only the
 *       journal has; a checkpoint now (a clean close, the writer's due
 *       checkpoint) would recycle the segment past it and lose it;
 *    b. a failed fdatasync, fsync or mdb_env_sync. After a failed writeback
 *       Linux marks the pages clean and the next sync reports success: a
 *       checkpoint would then declare durable a snapshot whose pages never
 *       reached the disk, and recycle the records that could rebuild it;
 *    c. a checkpoint slot half written, or the pin lost (a failed map
 *       resize, or re-pinning refused with MDB_READERS_FULL): LMDB could
 *       reuse pages of the checkpointed snapshot.
 *    Each calls log_env_fail (env.h): from then on every write, drain, sync
 *    and checkpoint fails with the first error before touching a file, so
 *    nothing more is acknowledged, and closing does not checkpoint. The
 *    node hears it as a failed write and enters its error state. The next
 *    open restores the last good checkpoint and replays every record after
 *    it, which brings back everything acknowledged (a record synced but
 *    never acknowledged may come back too, as Raft allows of any
 *    unacknowledged write). A batch whose commit fails before anything was
 *    acknowledged is not sticky: its record is taken back (journal_retract,
 *    itself sticky when its sync fails) and the batch simply failed.
 *
 * 7. What this relies on, checked at open. The restore writes LMDB 0.9's
 *    meta pages (pages 0 and 1, no checksum, highest txnid wins) back by
 *    position, so: the page size is the one stored in data.mdb (LMDB uses
 *    it, not the kernel's, and caps a new file's at 32 KiB) and must match
 *    mdb_env_stat; the meta pages must carry 0.9's magic and version
 *    (checked at open and whenever they are copied); the library must be a
 *    0.9 release (env.c). Another process with data.mdb open while the meta
 *    pages are rewritten could see a mix, so the environment holds an
 *    exclusive lock on its directory (env.c; LMDB's own tools do not take
 *    it: never run them on a live directory). journal.wal and journal.ckpt
 *    are created whole under a temporary name and renamed (a half-created
 *    journal.ckpt would look like two damaged slots); turning the journal
 *    off removes journal.ckpt, then journal.wal, each removal made durable
 *    by a directory fsync before LMDB runs unpinned.
 *
 * 8. Space. Pending appends are applied later, so room to apply them is
 *    reserved in data.mdb beforehand (journal_reserve, fallocate), and the
 *    pending payload is kept under a quarter of that reservation
 *    (log_store.c, PEND_MAX_BYTES). The reservation is not fsynced: after a
 *    power loss it may be gone and replay needs the space again. On a disk
 *    full by then the open fails with RK_ENOSPC and loses nothing (the
 *    records stay until a replay succeeds); syncing each reservation would
 *    put a flush of data.mdb on the path of an acknowledgement.
 */
#include "storage/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "raftkit/log.h"
#include "storage/codec.h"
#include "storage/env.h"
#include "storage/fileio.h"
#include "storage/log_store.h"

#define REC_MAGIC   0x4a4b5252u /* "RRKJ" */
#define REC_HEADER  24u
#define CKPT_MAGIC  0x504b4352u /* "RCKP" */
#define CKPT_HEADER 4096u
/* Slot format 2: records are checksummed with their lap's start sequence
 * number (rec_sum); format 1 slots (older versions) name unsalted ones. */
#define CKPT_VERSION 2u
/* Checkpoint at least this often: until a checkpoint, LMDB cannot reuse the
 * pages that its commits copy (the pin, essay 2a), so the data file and the
 * mapped memory grow by a few pages per commit in between. */
#define CKPT_EVERY_MS   100
#define CKPT_EVERY_TXNS 128
/* Start the writeback of LMDB's dirty pages (without waiting for it) after
 * this many journaled commits or journal bytes: otherwise a checkpoint finds
 * megabytes to flush at once (every commit copies a few pages: the pin, essay
 * 2a), and for those milliseconds every journal fdatasync on the same disk
 * waits behind it. Measured with raftkit-bench at one task in flight: p99
 * 4.1 -> 1.3 ms (p50 +2-5 %); under load p99 drops too, ops/s unchanged. */
#define KICK_EVERY_TXNS  16
#define KICK_EVERY_BYTES (1u << 20)
/* A batch this big goes straight to LMDB (then a checkpoint): writing it
 * twice costs more bandwidth than the journal saves in flushes. */
#define JOURNAL_DIRECT_BYTES (256u << 10)
#define OP_HEADER            40u
#define HS_BYTES             (16u + RK_PEER_ID_STRLEN)
#define ENTRY_HEADER         24u

struct journal {
    pthread_mutex_t mu;
    char dir[PATH_MAX];
    int wal_fd, ckpt_fd, data_fd;
    size_t seg, off, last_off, psize, slot;
    uint64_t start_seq, next_seq, ckpt_no;
    bool ckpt_valid;
    bool salted; /* records are checksummed with start_seq (essay, 3) */
    MDB_txn *pin;
    uint64_t since_ckpt_bytes, since_ckpt_txns, ckpt_at_ms, ckpt_every_ms;
    uint64_t since_kick_bytes, since_kick_txns;
    uint64_t reserved_to; /* data.mdb is allocated up to here (journal_reserve) */
    uint64_t checkpoints, replayed;
    uint8_t *buf;
    size_t buf_cap;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* errno (a fileio result) as a journal status */
static int io_err(rk_status_t *st, int err, const char *what, const char *path)
{
    char w[96];
    snprintf(w, sizeof w, "journal: %s", what);
    return fileio_err(st, err, w, path);
}

/* A failure after which the files are in a state this process cannot vouch
 * for (essay, 6): sticky for the environment. */
static int failed(log_env_t *env, int rc, rk_status_t *st)
{
    rk_status_t why;
    if (st == NULL || st->code != rc)
        rk_status_set(&why, rc, "%s", st && st->msg[0] ? st->msg : rk_strerror(rc));
    else
        why = *st;
    return log_env_fail(env, rc, &why);
}

/* ---- checkpoint slots ---- */

static uint64_t slot_sum(const uint8_t *slot, size_t psize)
{
    uint64_t seed = codec_checksum(slot, 32, CKPT_MAGIC);
    return codec_checksum(slot + CKPT_HEADER, 2 * psize, seed);
}

/* Parses both slots of the file image f (2 * j->slot bytes) and keeps the
 * valid one with the highest number. Returns 1 (loaded: *best points to
 * it), 0 (none yet) or -1 (both slots damaged). */
static int load_checkpoint(journal_t *j, const uint8_t *f, const uint8_t **best_out)
{
    const uint8_t *best = NULL;
    int blank = 0;
    for (int i = 0; i < 2; i++) {
        const uint8_t *s = f + i * j->slot;
        size_t nz = 0;
        while (nz < j->slot && s[nz] == 0)
            nz++;
        blank += nz == j->slot;
        uint32_t version = codec_get_le32(s + 4);
        if (codec_get_le32(s) != CKPT_MAGIC || (version != 1 && version != CKPT_VERSION) ||
            codec_get_le32(s + 8) != j->psize || codec_get_le64(s + 32) != slot_sum(s, j->psize))
            continue;
        if (best == NULL || codec_get_le64(s + 16) > codec_get_le64(best + 16))
            best = s;
    }
    /* No valid slot: fine while one is still blank (no checkpoint yet, or
     * the very first one torn, before anything relied on it); two written
     * slots that both fail cannot come from one torn write. */
    if (best == NULL)
        return blank > 0 ? 0 : -1;
    j->ckpt_valid = true;
    j->ckpt_no = codec_get_le64(best + 16);
    j->start_seq = codec_get_le64(best + 24);
    j->salted = codec_get_le32(best + 4) >= 2; /* version 1 wrote unsalted records */
    *best_out = best;
    return 1;
}

/* LMDB 0.9's meta page: the page header (16 bytes), then mm_magic,
 * mm_version, mm_address, mm_mapsize and mm_dbs[0], whose first field
 * (md_pad) holds the environment's page size (mm_psize in mdb.c). LMDB
 * writes them in host byte order. */
#define MDB_META_MAGIC   0xBEEFC0DEu
#define MDB_META_VERSION 1u
#define MDB_META_PSIZE   40u

static uint32_t host32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Does the page at p look like an LMDB 0.9 meta page? */
static bool meta_page_ok(const uint8_t *p)
{
    return host32(p + 16) == MDB_META_MAGIC && host32(p + 20) == MDB_META_VERSION;
}

/* The page size of the existing data.mdb (open as fd), from its first meta
 * page: 0 when the file is empty (LMDB has not initialized it yet). */
static int data_page_size(int fd, const char *path, size_t *psize, rk_status_t *st)
{
    uint8_t h[64];
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return io_err(st, errno, "cannot stat", path);
    *psize = 0;
    if (sb.st_size == 0)
        return 0;
    int err = fileio_read_all(fd, h, sizeof h, 0);
    if (err != 0 && err != ENODATA)
        return io_err(st, err, "cannot read", path);
    size_t ps = err == 0 ? host32(h + MDB_META_PSIZE) : 0;
    if (err != 0 || !meta_page_ok(h) || ps < 512 || ps > (64u << 10) || (ps & (ps - 1)) != 0)
        return rk_status_set(st, RK_ECORRUPT,
                             "journal: %s is not an LMDB 0.9 data file (magic 0x%08x, version %u, "
                             "page size %zu): the journal only works with LMDB 0.9 meta pages",
                             path, err ? 0 : host32(h + 16), err ? 0 : host32(h + 20), ps);
    *psize = ps;
    return 0;
}

/* Opens journal.ckpt, or creates it blank (whole or not at all). A file of
 * the wrong size that is all zeros is a creation that was cut short by an
 * earlier version (which zero-filled it in place): blank too. With the page
 * size still unknown (no data.mdb yet) only checks that the file holds no
 * checkpoint; journal_recover creates it. *image gets the file's two slots
 * (NULL when blank). */
static int open_ckpt(journal_t *j, uint8_t **image, rk_status_t *st)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/journal.ckpt", j->dir);
    uint8_t *f = NULL;
    size_t len = 0;
    *image = NULL;
    int err = fileio_read_file(path, 64u << 20, &f, &len);
    if (err == ENOENT)
        len = 0;
    else if (err != 0)
        return io_err(st, err, "cannot read", path);
    size_t nz = 0;
    while (nz < len && f[nz] == 0)
        nz++;
    bool blank = nz == len;
    if (j->psize == 0 || len != 2 * j->slot) {
        free(f);
        if (!blank)
            return rk_status_set(st, RK_ECORRUPT,
                                 j->psize == 0
                                     ? "journal: checkpoint in %s but no data.mdb"
                                     : "journal: %s/journal.ckpt has the wrong size for the "
                                       "page size of data.mdb",
                                 j->dir);
        if (j->psize == 0) /* created once LMDB has made data.mdb */
            return 0;
        err = fileio_create_zeroed(j->dir, "journal.ckpt", 2 * j->slot, &j->ckpt_fd);
        return err ? io_err(st, err, "cannot create", path) : 0;
    }
    j->ckpt_fd = open(path, O_RDWR | O_CLOEXEC);
    if (j->ckpt_fd < 0) {
        free(f);
        return io_err(st, errno, "cannot open", path);
    }
    *image = f;
    return 0;
}

static void set_page_size(journal_t *j, size_t psize)
{
    j->psize = psize;
    j->slot = CKPT_HEADER + 2 * psize;
}

int journal_open(const char *dir, size_t segment_bytes, unsigned checkpoint_ms, journal_t **out,
                 rk_status_t *st)
{
    journal_t *j = calloc(1, sizeof *j);
    if (j == NULL)
        return rk_status_set(st, RK_ENOMEM, "journal_open");
    pthread_mutex_init(&j->mu, NULL);
    j->wal_fd = j->ckpt_fd = j->data_fd = -1;
    j->salted = true;
    snprintf(j->dir, sizeof j->dir, "%s", dir);
    j->ckpt_every_ms = checkpoint_ms ? checkpoint_ms : CKPT_EVERY_MS;
    char path[PATH_MAX + 32];
    uint8_t *image = NULL;
    const uint8_t *slot = NULL;
    int rc;

    /* LMDB uses the page size stored in the file, not the kernel's */
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    j->data_fd = open(path, O_RDWR | O_CLOEXEC);
    size_t psize = 0;
    if (j->data_fd >= 0 && (rc = data_page_size(j->data_fd, path, &psize, st)) != 0)
        goto fail;
    set_page_size(j, psize);
    if ((rc = open_ckpt(j, &image, st)) != 0)
        goto fail;

    snprintf(path, sizeof path, "%s/journal.wal", dir);
    j->wal_fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat sb;
    bool created = false;
    if (j->wal_fd >= 0 && fstat(j->wal_fd, &sb) == 0 && sb.st_size >= 4096) {
        j->seg = (size_t)sb.st_size;
    } else {
        created = true;
        if (j->wal_fd >= 0)
            close(j->wal_fd);
        j->wal_fd = -1;
        j->seg = segment_bytes ? segment_bytes : JOURNAL_DEFAULT_SEGMENT;
        int err = fileio_create_zeroed(dir, "journal.wal", j->seg, &j->wal_fd);
        if (err != 0) {
            rc = io_err(st, err, "cannot create", path);
            goto fail;
        }
    }
    int ck = image ? load_checkpoint(j, image, &slot) : 0;
    if (ck < 0) {
        rc = rk_status_set(st, RK_ECORRUPT,
                           "journal: both checkpoint slots of %s/journal.ckpt "
                           "fail to verify",
                           dir);
        goto fail;
    }
    if (ck > 0 && created) { /* records it may have held are gone */
        rc = rk_status_set(st, RK_ECORRUPT, "journal: %s/journal.wal is missing or truncated", dir);
        goto fail;
    }
    if (ck > 0) {
        /* Roll LMDB back to the checkpointed snapshot (essay, 2b). */
        snprintf(path, sizeof path, "%s/data.mdb", dir);
        int err = fileio_write_all(j->data_fd, slot + CKPT_HEADER, 2 * j->psize, 0);
        if (err == 0 && fdatasync(j->data_fd) != 0)
            err = errno;
        if (err != 0) {
            rc = io_err(st, err, "cannot restore the checkpoint into", path);
            goto fail;
        }
    }
    free(image);
    *out = j;
    return 0;
fail:
    free(image);
    journal_close(j, NULL);
    return rc;
}

void journal_lock(journal_t *j)
{
    pthread_mutex_lock(&j->mu);
}

void journal_unlock(journal_t *j)
{
    pthread_mutex_unlock(&j->mu);
}

/* journal_checkpoint reads the meta pages through it; journal_committed
 * starts writeback with it. Opened on first use: data.mdb may not exist yet
 * when the journal opens. */
static int data_fd(journal_t *j, char *path, size_t len)
{
    snprintf(path, len, "%s/data.mdb", j->dir);
    if (j->data_fd < 0)
        j->data_fd = open(path, O_RDWR | O_CLOEXEC);
    return j->data_fd;
}

void journal_committed(journal_t *j)
{
    if (++j->since_kick_txns < KICK_EVERY_TXNS && j->since_kick_bytes < KICK_EVERY_BYTES)
        return;
    j->since_kick_txns = 0;
    j->since_kick_bytes = 0;
#ifdef SYNC_FILE_RANGE_WRITE
    char path[PATH_MAX + 32];
    /* a hint: an error here only means the checkpoint has more to do */
    if (data_fd(j, path, sizeof path) >= 0)
        (void)sync_file_range(j->data_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
}

int journal_reserve(journal_t *j, log_env_t *env, size_t room)
{
    MDB_envinfo info;
    if (mdb_env_info(env->mdb, &info) != 0)
        return RK_EIO;
    uint64_t end = ((uint64_t)info.me_last_pgno + 1) * j->psize + room;
    if (end <= j->reserved_to)
        return 0;
    char path[PATH_MAX + 32];
    if (data_fd(j, path, sizeof path) < 0)
        return RK_EIO;
    /* twice the room: this runs once per `room` of LMDB growth */
    uint64_t to = end + room;
    if (fallocate(j->data_fd, FALLOC_FL_KEEP_SIZE, (off_t)j->reserved_to,
                  (off_t)(to - j->reserved_to)) != 0)
        return errno == ENOSPC || errno == EFBIG ? RK_ENOSPC : RK_EIO;
    j->reserved_to = to;
    return 0;
}

bool journal_idle(journal_t *j)
{
    if (pthread_mutex_trylock(&j->mu) != 0)
        return false;
    pthread_mutex_unlock(&j->mu);
    return true;
}

void journal_unpin(journal_t *j)
{
    if (j->pin != NULL)
        mdb_txn_abort(j->pin);
    j->pin = NULL;
}

int journal_repin(journal_t *j, log_env_t *env)
{
    journal_unpin(j);
    return log_env_err(mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, &j->pin));
}

/* Copies both LMDB meta pages (just synced) into the next slot and syncs
 * it. */
static int write_slot(journal_t *j, int recycle, uint64_t *no_out, rk_status_t *st)
{
    char path[PATH_MAX + 32];
    if (data_fd(j, path, sizeof path) < 0)
        return io_err(st, errno, "cannot open", path);
    uint8_t *s = calloc(1, j->slot);
    if (s == NULL)
        return rk_status_set(st, RK_ENOMEM, "journal checkpoint");
    int err = fileio_read_all(j->data_fd, s + CKPT_HEADER, 2 * j->psize, 0);
    if (err != 0) {
        free(s);
        return io_err(st, err, "cannot read the meta pages of", path);
    }
    /* what restoring them at the next open assumes (essay, 7) */
    if (!meta_page_ok(s + CKPT_HEADER) || !meta_page_ok(s + CKPT_HEADER + j->psize)) {
        free(s);
        return rk_status_set(st, RK_ECORRUPT,
                             "journal: the meta pages of %s are not LMDB 0.9 meta pages of %zu "
                             "bytes",
                             path, j->psize);
    }
    /* after a recycle the segment holds salted records only */
    bool salted = j->salted || recycle;
    uint64_t no = j->ckpt_no + 1, start = recycle ? j->next_seq : j->start_seq;
    codec_put_le32(s, CKPT_MAGIC);
    codec_put_le32(s + 4, salted ? CKPT_VERSION : 1);
    codec_put_le32(s + 8, (uint32_t)j->psize);
    codec_put_le64(s + 16, no);
    codec_put_le64(s + 24, start);
    codec_put_le64(s + 32, slot_sum(s, j->psize));
    err = fileio_write_all(j->ckpt_fd, s, j->slot, (off_t)((no % 2) * j->slot));
    free(s);
    if (err == 0 && fdatasync(j->ckpt_fd) != 0)
        err = errno;
    snprintf(path, sizeof path, "%s/journal.ckpt", j->dir);
    if (err != 0)
        return io_err(st, err, "cannot write", path);
    j->salted = salted;
    *no_out = no;
    return 0;
}

int journal_checkpoint(journal_t *j, log_env_t *env, int recycle, rk_status_t *st)
{
    int rc = log_env_failed(env, st);
    if (rc != 0)
        return rc;
    /* LMDB must hold every record before the segment is recycled (a resize
     * checkpoint inside a drain does not recycle, and finds it a no-op). A
     * failed drain is sticky by itself. */
    if ((rc = log_store_drain(env, st)) != 0)
        return rc;
    /* From here on every failure is sticky (essay, 6): a failed sync
     * cannot be retried, and a slot may be half written. */
    if ((rc = mdb_env_sync(env->mdb, 1)) != 0) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/data.mdb", j->dir);
        rk_status_set(st, log_env_err(rc), "journal: cannot sync %s: %s", path, mdb_strerror(rc));
        return failed(env, log_env_err(rc), st);
    }
    uint64_t no = 0;
    if ((rc = write_slot(j, recycle, &no, st)) != 0)
        return failed(env, rc, st);
    j->ckpt_no = no;
    j->ckpt_valid = true;
    if (recycle) {
        j->start_seq = j->next_seq;
        j->off = 0;
    }
    j->since_ckpt_bytes = 0;
    j->since_ckpt_txns = 0;
    j->ckpt_at_ms = now_ms();
    j->checkpoints++;
    if ((rc = journal_repin(j, env)) != 0) {
        rk_status_set(st, rc, "journal: cannot pin the checkpoint: %s", rk_strerror(rc));
        return failed(env, rc, st);
    }
    return 0;
}

int journal_due(journal_t *j)
{
    return j->since_ckpt_bytes >= j->seg / 2 || j->since_ckpt_txns >= CKPT_EVERY_TXNS ||
           now_ms() - j->ckpt_at_ms >= j->ckpt_every_ms;
}

/* ---- records ---- */

static size_t ops_size(const log_op_t *ops, size_t n)
{
    size_t b = 4;
    for (size_t i = 0; i < n; i++) {
        b += OP_HEADER + (ops[i].hard_state ? HS_BYTES : 0);
        if (!log_store_registered(ops[i].store))
            b += 1 + strlen(log_store_group(ops[i].store));
        for (size_t k = 0; k < ops[i].n_entries; k++)
            b += ENTRY_HEADER + ops[i].entries[k].len;
    }
    return b;
}

static void encode_ops(const log_op_t *ops, size_t n, uint8_t *p)
{
    codec_put_le32(p, (uint32_t)n);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        const log_op_t *op = &ops[i];
        memset(p, 0, OP_HEADER);
        /* A group not registered in LMDB yet (log_store.c, "registration")
         * carries its name, so that replay can register it first. */
        const char *name = log_store_registered(op->store) ? NULL : log_store_group(op->store);
        p[0] = (uint8_t)op->kind;
        p[1] = op->hard_state != NULL;
        p[2] = name != NULL;
        codec_put_le32(p + 4, (uint32_t)op->n_entries);
        codec_put_le64(p + 8, log_store_gid(op->store));
        codec_put_le64(p + 16, op->truncate_from);
        codec_put_le64(p + 24, op->index);
        codec_put_le64(p + 32, op->term);
        p += OP_HEADER;
        if (name != NULL) {
            p[0] = (uint8_t)strlen(name); /* < LOG_GROUP_ID_MAX */
            memcpy(p + 1, name, p[0]);
            p += 1 + p[0];
        }
        if (op->hard_state) {
            codec_put_le64(p, op->hard_state->term);
            codec_put_le64(p + 8, op->hard_state->commit);
            memcpy(p + 16, op->hard_state->voted_for, RK_PEER_ID_STRLEN);
            p += HS_BYTES;
        }
        for (size_t k = 0; k < op->n_entries; k++) {
            const log_entry_t *e = &op->entries[k];
            codec_put_le64(p, e->index);
            codec_put_le64(p + 8, e->term);
            codec_put_le32(p + 16, (uint32_t)e->type);
            codec_put_le32(p + 20, (uint32_t)e->len);
            if (e->len)
                memcpy(p + 24, e->data, e->len);
            p += ENTRY_HEADER + e->len;
        }
    }
}

/* The record checksum, salted with the sequence number of the lap's first
 * record (essay, 3): an image of a record from an earlier lap, or one
 * embedded in a payload, does not verify as a record of this lap. Format 1
 * checkpoints name unsalted laps (salt 0; start_seq is never 0). */
static uint64_t rec_sum(const journal_t *j, const uint8_t *rec, size_t len)
{
    uint64_t salt = j->salted ? j->start_seq : 0;
    return codec_checksum(rec + REC_HEADER, len, codec_checksum(rec, 16, REC_MAGIC + salt));
}

int journal_append(journal_t *j, log_env_t *env, const log_op_t *ops, size_t n, uint64_t *seq,
                   rk_status_t *st)
{
    size_t len = ops_size(ops, n), total = (REC_HEADER + len + 7) & ~(size_t)7;
    if (total > j->seg || total > JOURNAL_DIRECT_BYTES)
        return JOURNAL_TOO_BIG;
    int rc = log_env_failed(env, st);
    if (rc != 0)
        return rc;
    if (j->off + total > j->seg && (rc = journal_checkpoint(j, env, 1, st)) != 0)
        return rc;
    if (total > j->buf_cap) {
        uint8_t *b = realloc(j->buf, total);
        if (b == NULL)
            return rk_status_set(st, RK_ENOMEM, "journal record of %zu bytes", total);
        j->buf = b;
        j->buf_cap = total;
    }
    uint8_t *r = j->buf;
    memset(r + REC_HEADER + len, 0, total - REC_HEADER - len);
    codec_put_le32(r, REC_MAGIC);
    codec_put_le32(r + 4, (uint32_t)len);
    codec_put_le64(r + 8, j->next_seq);
    encode_ops(ops, n, r + REC_HEADER);
    codec_put_le64(r + 16, rec_sum(j, r, len));
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/journal.wal", j->dir);
    int err = fileio_write_all(j->wal_fd, r, total, (off_t)j->off);
    if (err == 0 && fdatasync(j->wal_fd) != 0)
        err = errno;
    if (err != 0) /* the record may be on the disk, whole or torn: sticky */
        return failed(env, io_err(st, err, "cannot write", path), st);
    *seq = j->next_seq++;
    j->last_off = j->off;
    j->off += total;
    j->since_ckpt_bytes += total;
    j->since_ckpt_txns++;
    j->since_kick_bytes += total;
    return 0;
}

int journal_retract(journal_t *j, log_env_t *env, rk_status_t *st)
{
    static const uint8_t zero[REC_HEADER];
    int err = fileio_write_all(j->wal_fd, zero, sizeof zero, (off_t)j->last_off);
    if (err == 0 && fdatasync(j->wal_fd) != 0)
        err = errno;
    if (err != 0) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/journal.wal", j->dir);
        return failed(env, io_err(st, err, "cannot retract the last record of", path), st);
    }
    j->off = j->last_off;
    j->next_seq--;
    return 0;
}

/* ---- recovery ---- */

/* The journal sequence number of the last applied batch (0 if none). */
static int applied_seq(log_env_t *env, uint64_t *seq, rk_status_t *st)
{
    MDB_txn *txn;
    int rc = log_env_read_begin(env, &txn);
    if (rc != 0)
        return rk_status_set(st, rc, "cannot begin read transaction");
    uint8_t key[9];
    journal_applied_key(key);
    MDB_val k = {9, key}, v;
    rc = mdb_get(txn, env->meta_dbi, &k, &v);
    *seq = rc == 0 && v.mv_size == 8 ? codec_get_le64(v.mv_data) : 0;
    log_env_read_end(env, txn);
    if (rc == 0 && v.mv_size != 8)
        return rk_status_set(st, RK_ECORRUPT, "applied journal sequence record is malformed");
    return rc == 0 || rc == MDB_NOTFOUND
               ? 0
               : rk_status_set(st, log_env_err(rc), "%s", mdb_strerror(rc));
}

/* Opens the group registered under number gid, without a cache. */
static int open_group(log_env_t *env, uint64_t gid, log_store_t **out, rk_status_t *st)
{
    MDB_txn *txn;
    int rc = log_env_read_begin(env, &txn);
    if (rc != 0)
        return rk_status_set(st, rc, "cannot begin read transaction");
    MDB_cursor *cur;
    char name[LOG_GROUP_ID_MAX];
    name[0] = '\0';
    if ((rc = mdb_cursor_open(txn, env->groups_dbi, &cur)) == 0) {
        MDB_val k, v;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (v.mv_size == 8 && codec_get_be64(v.mv_data) == gid &&
                k.mv_size < LOG_GROUP_ID_MAX) {
                memcpy(name, k.mv_data, k.mv_size);
                name[k.mv_size] = '\0';
                break;
            }
        }
        mdb_cursor_close(cur);
    }
    log_env_read_end(env, txn);
    if (name[0] == '\0')
        return rk_status_set(st, RK_ENOTFOUND, "no group number %llu", (unsigned long long)gid);
    log_store_options_t o = {.cache_bytes = 0};
    return log_store_open_gid(env, name, gid, &o, out, st);
}

/* Recovery reads the segment through a window of WIN_BYTES, which holds any
 * record journal_append can write, rather than all of it at once. */
#define WIN_BYTES (1u << 20)
_Static_assert(JOURNAL_DIRECT_BYTES + REC_HEADER + 8 <= WIN_BYTES, "a record must fit the window");

typedef struct win {
    const journal_t *j;
    int fd;
    size_t seg, start, len;
    uint8_t *buf;
} win_t;

/* Bytes [off, off + n) of the segment, or NULL (beyond it, unreadable). */
static const uint8_t *win_at(win_t *w, size_t off, size_t n)
{
    if (n > WIN_BYTES || off + n > w->seg)
        return NULL;
    if (off < w->start || off + n > w->start + w->len) {
        size_t k = w->seg - off < WIN_BYTES ? w->seg - off : WIN_BYTES;
        w->len = 0;
        if (fileio_read_all(w->fd, w->buf, k, (off_t)off) != 0)
            return NULL;
        w->start = off;
        w->len = k;
    }
    return w->buf + (off - w->start);
}

/* Verifies the record at off; returns its total size (and *rec, valid until
 * the next win_at), or 0 when it is not a valid record. */
static size_t rec_check(win_t *w, size_t off, const uint8_t **rec)
{
    const uint8_t *h = win_at(w, off, REC_HEADER);
    if (h == NULL || codec_get_le32(h) != REC_MAGIC)
        return 0;
    size_t len = codec_get_le32(h + 4), total = (REC_HEADER + len + 7) & ~(size_t)7;
    const uint8_t *r = win_at(w, off, total);
    if (r == NULL || codec_get_le64(r + 16) != rec_sum(w->j, r, len))
        return 0;
    *rec = r;
    return total;
}

typedef struct replay {
    log_env_t *env;
    log_store_t **stores; /* the groups seen so far, opened once */
    uint64_t *gids;
    size_t n_stores, cap;
    log_op_t *ops;
    log_entry_t *entries;
    meta_hard_state_t *hs;
} replay_t;

/* The store of group number gid; name: the group's name when the record
 * registers it, else NULL (then LMDB has it). */
static int store_for(replay_t *r, uint64_t gid, const char *name, log_store_t **out,
                     rk_status_t *st)
{
    for (size_t i = 0; i < r->n_stores; i++)
        if (r->gids[i] == gid)
            return *out = r->stores[i], 0;
    if (r->n_stores == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        log_store_t **s = realloc(r->stores, cap * sizeof *s);
        if (s != NULL)
            r->stores = s;
        uint64_t *g = realloc(r->gids, cap * sizeof *g);
        if (g != NULL)
            r->gids = g;
        if (s == NULL || g == NULL)
            return rk_status_set(st, RK_ENOMEM, "journal replay");
        r->cap = cap;
    }
    log_store_options_t o = {.cache_bytes = 0};
    int rc = name != NULL ? log_store_open_gid(r->env, name, gid, &o, out, st)
                          : open_group(r->env, gid, out, st);
    if (rc == 0) {
        r->gids[r->n_stores] = gid;
        r->stores[r->n_stores++] = *out;
    }
    return rc;
}

/* Decodes one record's payload into ops and applies them with its seq. */
static int replay_one(replay_t *r, const uint8_t *p, size_t len, uint64_t seq, rk_status_t *st)
{
    const uint8_t *end = p + len;
    if (len < 4)
        goto bad;
    size_t n = codec_get_le32(p), n_ent = 0, n_hs = 0;
    p += 4;
    r->ops = calloc(n ? n : 1, sizeof *r->ops);
    r->hs = calloc(n ? n : 1, sizeof *r->hs);
    r->entries = calloc(len / ENTRY_HEADER + 1, sizeof *r->entries);
    if (r->ops == NULL || r->hs == NULL || r->entries == NULL)
        return rk_status_set(st, RK_ENOMEM, "journal replay");
    for (size_t i = 0; i < n; i++) {
        if ((size_t)(end - p) < OP_HEADER)
            goto bad;
        log_op_t *op = &r->ops[i];
        const uint8_t *h = p;
        p += OP_HEADER;
        char name[LOG_GROUP_ID_MAX];
        if (h[2] != 0) {
            if (end - p < 1 || p[0] == 0 || p[0] >= LOG_GROUP_ID_MAX || end - p < 1 + p[0])
                goto bad;
            memcpy(name, p + 1, p[0]);
            name[p[0]] = '\0';
            p += 1 + p[0];
        }
        op->kind = (log_op_kind_t)h[0];
        size_t ne = codec_get_le32(h + 4);
        int rc = store_for(r, codec_get_le64(h + 8), h[2] != 0 ? name : NULL, &op->store, st);
        if (rc != 0)
            return rc;
        op->truncate_from = codec_get_le64(h + 16);
        op->index = codec_get_le64(h + 24);
        op->term = codec_get_le64(h + 32);
        bool has_hs = h[1] != 0;
        if (has_hs) {
            if ((size_t)(end - p) < HS_BYTES)
                goto bad;
            meta_hard_state_t *h = &r->hs[n_hs++];
            h->term = codec_get_le64(p);
            h->commit = codec_get_le64(p + 8);
            memcpy(h->voted_for, p + 16, RK_PEER_ID_STRLEN);
            h->voted_for[RK_PEER_ID_STRLEN - 1] = '\0';
            op->hard_state = h;
            p += HS_BYTES;
        }
        op->entries = &r->entries[n_ent];
        op->n_entries = ne;
        for (size_t k = 0; k < ne; k++) {
            if ((size_t)(end - p) < ENTRY_HEADER || n_ent >= len / ENTRY_HEADER + 1)
                goto bad;
            log_entry_t *e = &r->entries[n_ent++];
            e->index = codec_get_le64(p);
            e->term = codec_get_le64(p + 8);
            e->type = (log_entry_type_t)codec_get_le32(p + 16);
            e->len = codec_get_le32(p + 20);
            if ((size_t)(end - p) - ENTRY_HEADER < e->len)
                goto bad;
            e->data = p + ENTRY_HEADER;
            p += ENTRY_HEADER + e->len;
        }
    }
    int rc = log_store_apply(r->env, r->ops, n, seq, st);
    /* Only ops that fitted the log were journaled (log_store_write_ex):
     * one that does not fit now means replay diverged from the live
     * path. Never drop it quietly. */
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (r->ops[i].status != 0)
            rc = rk_status_set(st, RK_ECORRUPT,
                               "journal record %llu: op %zu (group %s) does not fit the log on "
                               "replay: %s",
                               (unsigned long long)seq, i, log_store_group(r->ops[i].store),
                               rk_strerror(r->ops[i].status));
    return rc;
bad:
    return rk_status_set(st, RK_ECORRUPT, "journal record %llu verifies but does not decode",
                         (unsigned long long)seq);
}

static void replay_free_batch(replay_t *r)
{
    free(r->ops);
    free(r->entries);
    free(r->hs);
    r->ops = NULL, r->entries = NULL, r->hs = NULL;
}

/* LMDB has opened data.mdb: the page size it uses must be the one the
 * checkpoint slots are laid out for; a new data.mdb gets its journal.ckpt
 * now. */
static int check_page_size(journal_t *j, log_env_t *env, rk_status_t *st)
{
    MDB_stat ms;
    int rc = mdb_env_stat(env->mdb, &ms);
    if (rc != 0)
        return rk_status_set(st, log_env_err(rc), "journal: mdb_env_stat: %s", mdb_strerror(rc));
    if (j->psize != 0 && ms.ms_psize != j->psize)
        return rk_status_set(
            st, RK_ECORRUPT,
            "journal: LMDB uses pages of %u bytes in %s but its meta page says %zu", ms.ms_psize,
            j->dir, j->psize);
    if (j->ckpt_fd >= 0)
        return 0;
    set_page_size(j, ms.ms_psize);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/journal.ckpt", j->dir);
    int err = fileio_create_zeroed(j->dir, "journal.ckpt", 2 * j->slot, &j->ckpt_fd);
    return err ? io_err(st, err, "cannot create", path) : 0;
}

int journal_recover(journal_t *j, log_env_t *env, rk_status_t *st)
{
    int rc = check_page_size(j, env, st);
    if (rc != 0)
        return rc;
    /* Pin the restored snapshot before replay commits anything (essay, 2a). */
    rc = journal_repin(j, env);
    if (rc != 0)
        return rk_status_set(st, rc, "journal: cannot pin the checkpoint");
    uint64_t applied = 0;
    rc = applied_seq(env, &applied, st);
    if (rc != 0)
        return rc;
    uint64_t expect = applied + 1;
    if (j->ckpt_valid) {
        win_t w = {.j = j, .fd = j->wal_fd, .seg = j->seg, .buf = malloc(WIN_BYTES)};
        if (w.buf == NULL)
            return rk_status_set(st, RK_ENOMEM, "journal recovery");
        replay_t r = {.env = env};
        size_t off = 0, total;
        const uint8_t *rec;
        expect = j->start_seq;
        while ((total = rec_check(&w, off, &rec)) != 0 && codec_get_le64(rec + 8) == expect) {
            if (expect > applied) {
                rc = replay_one(&r, rec + REC_HEADER, codec_get_le32(rec + 4), expect, st);
                replay_free_batch(&r);
                if (rc != 0)
                    break;
                j->replayed++;
            }
            expect++;
            off += total;
        }
        /* The end of the journal, or a hole in it? (essay, 3) */
        for (size_t o = off + 8; rc == 0 && o + REC_HEADER <= j->seg; o += 8) {
            if (rec_check(&w, o, &rec) != 0 && codec_get_le64(rec + 8) >= expect) {
                rc = rk_status_set(st, RK_ECORRUPT,
                                   "journal %s/journal.wal: record %llu at offset %zu is corrupt "
                                   "but record %llu after it is intact",
                                   j->dir, (unsigned long long)expect, off,
                                   (unsigned long long)codec_get_le64(rec + 8));
            }
        }
        for (size_t i = 0; i < r.n_stores; i++)
            log_store_close(r.stores[i]);
        free(r.stores);
        free(r.gids);
        free(w.buf);
        if (rc != 0)
            return rc;
        if (expect <= applied)
            expect = applied + 1;
    }
    j->next_seq = expect;
    return journal_checkpoint(j, env, 1, st);
}

void journal_close(journal_t *j, log_env_t *env)
{
    if (j == NULL)
        return;
    /* after a sticky failure the journal is left for the next open to
     * replay: checkpointing now could declare unsynced pages durable */
    if (env != NULL && j->pin != NULL && log_env_failed(env, NULL) == 0) {
        rk_status_t st;
        rk_status_clear(&st);
        if (journal_checkpoint(j, env, 1, &st) != 0)
            RK_WARN(NULL, NULL, "journal: final checkpoint failed: %s", st.msg);
    }
    journal_unpin(j);
    if (j->wal_fd >= 0)
        close(j->wal_fd);
    if (j->ckpt_fd >= 0)
        close(j->ckpt_fd);
    if (j->data_fd >= 0)
        close(j->data_fd);
    pthread_mutex_destroy(&j->mu);
    free(j->buf);
    free(j);
}

void journal_stats(journal_t *j, uint64_t *checkpoints, uint64_t *replayed, uint64_t *next_seq)
{
    pthread_mutex_lock(&j->mu);
    if (checkpoints)
        *checkpoints = j->checkpoints;
    if (replayed)
        *replayed = j->replayed;
    if (next_seq)
        *next_seq = j->next_seq;
    pthread_mutex_unlock(&j->mu);
}
