/* Snapshot store: atomic install, newest wins, readers pin what they read,
 * chunked reads for transfer, the follower-side download, and refusal of
 * snapshots whose metadata or files do not verify. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "storage/snapshot_store.h"
#include "tools/common/storage_util.h"

typedef struct fx {
    char *dir;
    char snaps[4200];
    snap_store_t *store;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp("snap");
    snprintf(f->snaps, sizeof f->snaps, "%s/snapshots", f->dir);
    rk_status_t st;
    assert_int_equal(snap_store_open(f->snaps, &f->store, &st), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    snap_store_close(f->store);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void reopen(fx_t *f)
{
    rk_status_t st;
    snap_store_close(f->store);
    assert_int_equal(snap_store_open(f->snaps, &f->store, &st), 0);
}

static bool exists(fx_t *f, const char *name)
{
    char p[4400];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", f->snaps, name);
    return stat(p, &sb) == 0;
}

static size_t count_entries(fx_t *f)
{
    DIR *d = opendir(f->snaps);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Writes snapshot `index` with files "a" (len_a bytes) and "b". */
static void make_snapshot(fx_t *f, uint64_t index, size_t len_a)
{
    rk_status_t st;
    rk_configuration_t conf, old;
    assert_int_equal(rk_configuration_parse(&conf,
                                            "127.0.0.1:8081,127.0.0.1:8082:1:50,"
                                            "127.0.0.1:8084/learner",
                                            &st),
                     0);
    assert_int_equal(rk_configuration_parse(&old, "127.0.0.1:8081", &st), 0);
    snap_writer_t *w;
    assert_int_equal(
        snap_writer_begin(f->store, index, index / 10 + 1, &conf, index % 2 ? &old : NULL, &w, &st),
        0);
    unsigned char *a = malloc(len_a + 1);
    tu_payload_fill(index, 1, a, len_a);
    assert_int_equal(snap_writer_write_file(w, "a", a, len_a, &st), 0);
    free(a);
    /* "b" is written by the "state machine" itself, then added by name */
    char p[4400];
    snprintf(p, sizeof p, "%s/b", snap_writer_path(w));
    FILE *fp = fopen(p, "w");
    fprintf(fp, "state at %llu", (unsigned long long)index);
    fclose(fp);
    assert_int_equal(snap_writer_add_file(w, "b", &st), 0);
    assert_int_equal(snap_writer_commit(w, &st), 0);
}

static void committed_snapshot_reads_back_with_its_metadata(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    make_snapshot(f, 21, 100000);
    reopen(f);
    assert_int_equal(snap_store_latest_index(f->store), 21);
    snap_reader_t *r;
    assert_int_equal(snap_reader_open(f->store, &r, &st), 0);
    const snap_meta_t *m = snap_reader_meta(r);
    assert_int_equal(m->last_index, 21);
    assert_int_equal(m->last_term, 3);
    assert_int_equal(m->conf.n_peers, 2);
    assert_int_equal(m->conf.n_learners, 1);
    assert_int_equal(m->conf.peers[1].priority, 50);
    assert_int_equal(m->conf.peers[1].idx, 1);
    assert_string_equal(m->conf.learners[0].endpoint.host, "127.0.0.1");
    assert_true(m->has_old_conf);
    assert_int_equal(m->old_conf.n_peers, 1);
    assert_int_equal(m->n_files, 2);
    assert_string_equal(m->files[0].name, "a");
    assert_int_equal(m->files[0].size, 100000);
    /* read "a" in 7000-byte chunks, as a throttled GetFile copy would */
    unsigned char *got = malloc(100000), chunk[7000];
    uint64_t off = 0;
    bool eof = false;
    while (!eof) {
        size_t n;
        assert_int_equal(snap_reader_read(r, "a", off, chunk, sizeof chunk, &n, &eof, &st), 0);
        memcpy(got + off, chunk, n);
        off += n;
    }
    assert_int_equal(off, 100000);
    assert_true(tu_payload_check(21, 1, got, 100000));
    free(got);
    size_t n;
    assert_int_equal(snap_reader_read(r, "a", 200000, chunk, 10, &n, &eof, &st), RK_EINVAL);
    assert_int_equal(snap_reader_read(r, "zzz", 0, chunk, 10, &n, &eof, &st), RK_ENOTFOUND);
    assert_int_equal(snap_reader_read(r, "b", 0, chunk, sizeof chunk, &n, &eof, &st), 0);
    assert_true(eof);
    assert_memory_equal(chunk, "state at 21", n);
    snap_reader_close(r);
    snap_meta_t dummy = {0};
    snap_meta_free(&dummy);
}

static void newest_wins_and_older_ones_are_removed(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    make_snapshot(f, 10, 10);
    make_snapshot(f, 20, 10);
    assert_false(exists(f, "snapshot_10"));
    assert_true(exists(f, "snapshot_20"));
    assert_int_equal(count_entries(f), 1);
    /* a snapshot at an index that exists is refused and the old one kept */
    snap_writer_t *w;
    rk_configuration_t conf;
    rk_configuration_init(&conf);
    assert_int_equal(snap_writer_begin(f->store, 20, 1, &conf, NULL, &w, &st), 0);
    assert_int_equal(snap_writer_commit(w, &st), RK_EEXIST);
    assert_int_equal(count_entries(f), 1);
    reopen(f);
    snap_reader_t *r;
    assert_int_equal(snap_reader_open(f->store, &r, &st), 0);
    assert_int_equal(snap_reader_meta(r)->last_index, 20);
    snap_reader_close(r);
}

static void an_open_reader_keeps_its_snapshot_until_closed(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    make_snapshot(f, 10, 5000);
    snap_reader_t *r;
    assert_int_equal(snap_reader_open(f->store, &r, &st), 0);
    make_snapshot(f, 30, 10);
    assert_true(exists(f, "snapshot_10")); /* still being transferred */
    unsigned char buf[5000];
    size_t n;
    bool eof;
    assert_int_equal(snap_reader_read(r, "a", 0, buf, sizeof buf, &n, &eof, &st), 0);
    assert_int_equal(n, 5000);
    snap_reader_close(r);
    assert_false(exists(f, "snapshot_10"));
    assert_true(exists(f, "snapshot_30"));
}

static void interrupted_writes_leave_nothing_behind(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    rk_configuration_t conf;
    rk_configuration_init(&conf);
    snap_writer_t *w;
    assert_int_equal(snap_writer_begin(f->store, 5, 1, &conf, NULL, &w, &st), 0);
    assert_int_equal(snap_writer_write_file(w, "x", "abc", 3, &st), 0);
    /* a crash here leaves the temporary directory; open removes it */
    assert_int_equal(count_entries(f), 1);
    reopen(f);
    assert_int_equal(count_entries(f), 0);
    assert_int_equal(snap_store_latest_index(f->store), 0);
    snap_reader_t *r;
    assert_int_equal(snap_reader_open(f->store, &r, &st), RK_ENOTFOUND);
    snap_writer_abort(w); /* directory already gone: still fine */
    assert_int_equal(snap_writer_begin(f->store, 6, 1, &conf, NULL, &w, &st), 0);
    snap_writer_abort(w);
    assert_int_equal(count_entries(f), 0);
}

static void bad_file_names_and_missing_files_are_refused(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    rk_configuration_t conf;
    rk_configuration_init(&conf);
    snap_writer_t *w;
    assert_int_equal(snap_writer_begin(f->store, 5, 1, &conf, NULL, &w, &st), 0);
    assert_int_equal(snap_writer_add_file(w, "", &st), RK_EINVAL);
    assert_int_equal(snap_writer_add_file(w, "../x", &st), RK_EINVAL);
    assert_int_equal(snap_writer_add_file(w, "..", &st), RK_EINVAL);
    assert_int_equal(snap_writer_add_file(w, SNAP_META_NAME, &st), RK_EINVAL);
    assert_int_equal(snap_writer_add_file(w, "ghost", &st), 0);
    assert_int_equal(snap_writer_add_file(w, "ghost", &st), RK_EEXIST);
    assert_int_equal(snap_writer_commit(w, &st), RK_ENOTFOUND);
    assert_non_null(strstr(st.msg, "ghost"));
    assert_int_equal(count_entries(f), 0);
    assert_int_equal(snap_store_latest_index(f->store), 0);
}

static void flip_byte(const char *path, long off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void corrupt_file_or_metadata_is_refused_with_its_name(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    char p[4400];
    snap_reader_t *r;
    make_snapshot(f, 40, 3000);
    snprintf(p, sizeof p, "%s/snapshot_40/a", f->snaps);
    flip_byte(p, 1234);
    assert_int_equal(snap_reader_open(f->store, &r, &st), RK_ECORRUPT);
    assert_non_null(strstr(st.msg, "file a"));
    assert_non_null(strstr(st.msg, "checksum"));
    flip_byte(p, 1234); /* repaired */
    assert_int_equal(snap_reader_open(f->store, &r, &st), 0);
    snap_reader_close(r);
    /* truncated file */
    assert_int_equal(truncate(p, 2999), 0);
    assert_int_equal(snap_reader_open(f->store, &r, &st), RK_ECORRUPT);
    assert_non_null(strstr(st.msg, "size"));
    /* metadata */
    make_snapshot(f, 50, 100);
    snprintf(p, sizeof p, "%s/snapshot_50/%s", f->snaps, SNAP_META_NAME);
    flip_byte(p, 20);
    assert_int_equal(snap_reader_open(f->store, &r, &st), RK_ECORRUPT);
    assert_non_null(strstr(st.msg, "metadata"));
    flip_byte(p, 20);
    assert_int_equal(snap_reader_open(f->store, &r, &st), 0);
    snap_reader_close(r);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(snap_reader_open(f->store, &r, &st), RK_ECORRUPT);
    /* a missing data file */
    make_snapshot(f, 60, 100);
    snprintf(p, sizeof p, "%s/snapshot_60/b", f->snaps);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(snap_reader_open(f->store, &r, &st), RK_ECORRUPT);
    assert_non_null(strstr(st.msg, "missing"));
}

/* Copies the newest snapshot of `from` into `to` through the download API,
 * chunk by chunk, in reverse order and with one chunk sent twice. If
 * corrupt_at >= 0, flips a byte of file "a" at that offset in transit. */
static int copy_snapshot(snap_store_t *from, snap_store_t *to, long corrupt_at, rk_status_t *st)
{
    snap_reader_t *r;
    assert_int_equal(snap_reader_open(from, &r, st), 0);
    unsigned char rec[65536];
    size_t rec_len;
    bool eof;
    assert_int_equal(snap_reader_read(r, SNAP_META_NAME, 0, rec, sizeof rec, &rec_len, &eof, st),
                     0);
    assert_true(eof);
    snap_download_t *d;
    assert_int_equal(snap_download_begin(to, rec, rec_len, &d, st), 0);
    const snap_meta_t *m = snap_download_meta(d);
    for (uint32_t i = 0; i < m->n_files; i++) {
        const snap_file_t *sf = &m->files[i];
        const size_t chunk = 4096;
        size_t nchunks = (size_t)(sf->size + chunk - 1) / chunk;
        for (size_t c = nchunks; c-- > 0;) {
            unsigned char buf[4096];
            size_t n;
            assert_int_equal(snap_reader_read(r, sf->name, c * chunk, buf, chunk, &n, &eof, st), 0);
            long rel = corrupt_at - (long)(c * chunk);
            if (strcmp(sf->name, "a") == 0 && rel >= 0 && rel < (long)n)
                buf[rel] ^= 1;
            assert_int_equal(snap_download_write(d, sf->name, c * chunk, buf, n, st), 0);
            if (c == 1) /* a resumed copy sends a chunk again */
                assert_int_equal(snap_download_write(d, sf->name, c * chunk, buf, n, st), 0);
        }
    }
    snap_reader_close(r);
    return snap_download_commit(d, st);
}

static void download_installs_a_verified_copy(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    make_snapshot(f, 70, 50000);
    char p[4400];
    snprintf(p, sizeof p, "%s/follower", f->dir);
    snap_store_t *fol;
    assert_int_equal(snap_store_open(p, &fol, &st), 0);
    assert_int_equal(copy_snapshot(f->store, fol, -1, &st), 0);
    assert_int_equal(snap_store_latest_index(fol), 70);
    snap_store_close(fol);
    assert_int_equal(snap_store_open(p, &fol, &st), 0);
    snap_reader_t *r;
    assert_int_equal(snap_reader_open(fol, &r, &st), 0);
    assert_int_equal(snap_reader_meta(r)->last_index, 70);
    assert_int_equal(snap_reader_meta(r)->conf.n_peers, 2);
    snap_reader_close(r);
    snap_store_close(fol);
}

static void download_with_a_bad_chunk_is_refused_and_not_installed(void **state)
{
    fx_t *f = *state;
    rk_status_t st;
    make_snapshot(f, 80, 20000);
    char p[4400];
    snprintf(p, sizeof p, "%s/follower", f->dir);
    snap_store_t *fol;
    assert_int_equal(snap_store_open(p, &fol, &st), 0);
    assert_int_equal(copy_snapshot(f->store, fol, 9999, &st), RK_ECORRUPT);
    assert_non_null(strstr(st.msg, "file a"));
    assert_int_equal(snap_store_latest_index(fol), 0);
    snap_reader_t *r;
    assert_int_equal(snap_reader_open(fol, &r, &st), RK_ENOTFOUND);

    /* chunks outside the metadata, and a forged metadata record */
    assert_int_equal(snap_reader_open(f->store, &r, &st), 0);
    unsigned char rec[65536];
    size_t rec_len;
    bool eof;
    assert_int_equal(snap_reader_read(r, SNAP_META_NAME, 0, rec, sizeof rec, &rec_len, &eof, &st),
                     0);
    snap_reader_close(r);
    snap_download_t *d;
    assert_int_equal(snap_download_begin(fol, rec, rec_len, &d, &st), 0);
    assert_int_equal(snap_download_write(d, "nope", 0, "x", 1, &st), RK_ENOTFOUND);
    assert_int_equal(snap_download_write(d, "a", 19999, "xy", 2, &st), RK_EINVAL);
    /* files never written are found at commit */
    assert_int_equal(snap_download_commit(d, &st), RK_ECORRUPT);
    rec[10] ^= 1;
    assert_int_equal(snap_download_begin(fol, rec, rec_len, &d, &st), RK_ECORRUPT);
    assert_int_equal(snap_download_begin(fol, rec, 5, &d, &st), RK_ECORRUPT);
    snap_store_close(fol);
    /* nothing left behind in the follower's directory */
    DIR *dd = opendir(p);
    struct dirent *de;
    size_t n = 0;
    while ((de = readdir(dd)) != NULL)
        n += de->d_name[0] != '.';
    closedir(dd);
    assert_int_equal(n, 0);
}

static void metadata_record_rejects_every_single_byte_flip(void **state)
{
    (void)state;
    snap_meta_t m = {.last_index = 9, .last_term = 2};
    rk_status_t st;
    assert_int_equal(rk_configuration_parse(&m.conf, "10.0.0.1:1,10.0.0.2:2", &st), 0);
    snap_file_t files[2] = {{"one", 10, 123}, {"two", 0, 456}};
    m.files = files;
    m.n_files = 2;
    uint8_t *rec;
    size_t len;
    assert_int_equal(snap_meta_encode(&m, &rec, &len), 0);
    snap_meta_t d;
    assert_int_equal(snap_meta_decode(rec, len, &d), 0);
    assert_int_equal(d.n_files, 2);
    assert_int_equal(d.files[1].checksum, 456);
    snap_meta_free(&d);
    for (size_t i = 0; i < len; i++) {
        rec[i] ^= 0x10;
        assert_int_equal(snap_meta_decode(rec, len, &d), RK_ECORRUPT);
        rec[i] ^= 0x10;
    }
    assert_int_equal(snap_meta_decode(rec, len - 1, &d), RK_ECORRUPT);
    free(rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(committed_snapshot_reads_back_with_its_metadata, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(newest_wins_and_older_ones_are_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(an_open_reader_keeps_its_snapshot_until_closed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(interrupted_writes_leave_nothing_behind, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_file_names_and_missing_files_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(corrupt_file_or_metadata_is_refused_with_its_name, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(download_installs_a_verified_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(download_with_a_bad_chunk_is_refused_and_not_installed,
                                        setup, teardown),
        cmocka_unit_test(metadata_record_rejects_every_single_byte_flip),
    };
    return cmocka_run_group_tests_name("storage_snapshot", tests, NULL, NULL);
}
