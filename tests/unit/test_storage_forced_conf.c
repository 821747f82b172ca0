/* The forced configuration file (storage/forced_conf_store.h): what is
 * saved reads back, a damaged or truncated file is reported corrupt (never
 * used), a file in the format earlier versions wrote still loads, and
 * removal is final. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "storage/forced_conf_store.h"
#include "tools/common/storage_util.h"

static int setup(void **state)
{
    *state = tu_mkdtemp("fconf");
    return 0;
}

static int teardown(void **state)
{
    tu_rm_rf(*state);
    free(*state);
    return 0;
}

static void file_path(const char *dir, char *p)
{
    snprintf(p, PATH_MAX, "%s/forced_conf", dir);
}

static void saved_configuration_reads_back_and_a_later_save_replaces_it(void **state)
{
    const char *dir = *state;
    rk_status_t st;
    uint8_t *conf;
    size_t len;
    uint64_t index;
    assert_int_equal(forced_conf_store_load(dir, &index, &conf, &len, &st), RK_ENOTFOUND);
    assert_int_equal(forced_conf_store_save(dir, 42, "peers-a", 7, &st), 0);
    assert_int_equal(forced_conf_store_save(dir, 57, "peers-bb", 8, &st), 0);
    assert_int_equal(forced_conf_store_load(dir, &index, &conf, &len, &st), 0);
    assert_int_equal(index, 57);
    assert_int_equal(len, 8);
    assert_memory_equal(conf, "peers-bb", 8);
    free(conf);
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s/forced_conf.tmp", dir);
    assert_int_equal(access(tmp, F_OK), -1); /* renamed into place */
}

static void damaged_or_truncated_file_is_corrupt(void **state)
{
    const char *dir = *state;
    rk_status_t st;
    uint8_t *conf;
    size_t len;
    uint64_t index;
    assert_int_equal(forced_conf_store_save(dir, 9, "0123456789", 10, &st), 0);
    char p[PATH_MAX];
    file_path(dir, p);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    for (off_t at = 0; at < sb.st_size; at++) { /* every byte matters */
        int fd = open(p, O_RDWR);
        uint8_t b;
        assert_int_equal(pread(fd, &b, 1, at), 1);
        b ^= 0x10;
        assert_int_equal(pwrite(fd, &b, 1, at), 1);
        assert_int_equal(forced_conf_store_load(dir, &index, &conf, &len, &st), RK_ECORRUPT);
        b ^= 0x10;
        assert_int_equal(pwrite(fd, &b, 1, at), 1);
        close(fd);
    }
    assert_int_equal(truncate(p, sb.st_size - 1), 0);
    assert_int_equal(forced_conf_store_load(dir, &index, &conf, &len, &st), RK_ECORRUPT);
    assert_non_null(strstr(st.msg, "forced_conf"));
    assert_int_equal(truncate(p, 3), 0);
    assert_int_equal(forced_conf_store_load(dir, &index, &conf, &len, &st), RK_ECORRUPT);
}

/* Byte for byte what src/node/forced_conf.c wrote before the file moved
 * into storage: a node upgraded between reset_peers and its next term as
 * leader keeps its forced configuration. */
static void file_of_the_earlier_format_loads(void **state)
{
    const char *dir = *state;
    uint8_t rec[20 + 5 + 8];
    memcpy(rec, "RKFC", 4);
    codec_put_le32(rec + 4, 1);
    codec_put_le64(rec + 8, 0x0102030405060708ull);
    codec_put_le32(rec + 16, 5);
    memcpy(rec + 20, "abcde", 5);
    codec_put_le64(rec + 25, XXH64(rec, 25, 0));
    char p[PATH_MAX];
    file_path(dir, p);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(write(fd, rec, sizeof rec), (ssize_t)sizeof rec);
    close(fd);
    rk_status_t st;
    uint8_t *conf;
    size_t len;
    uint64_t index;
    assert_int_equal(forced_conf_store_load(dir, &index, &conf, &len, &st), 0);
    assert_int_equal(index, 0x0102030405060708ull);
    assert_int_equal(len, 5);
    assert_memory_equal(conf, "abcde", 5);
    free(conf);
}

static void removed_configuration_is_gone_and_removing_twice_is_fine(void **state)
{
    const char *dir = *state;
    rk_status_t st;
    uint8_t *conf;
    size_t len;
    uint64_t index;
    assert_int_equal(forced_conf_store_save(dir, 3, "x", 1, &st), 0);
    assert_int_equal(forced_conf_store_remove(dir, &st), 0);
    assert_int_equal(forced_conf_store_load(dir, &index, &conf, &len, &st), RK_ENOTFOUND);
    assert_int_equal(forced_conf_store_remove(dir, &st), 0);
}

static void oversized_configuration_is_refused_and_changes_nothing(void **state)
{
    const char *dir = *state;
    rk_status_t st;
    assert_int_equal(forced_conf_store_save(dir, 5, "keep", 4, &st), 0);
    uint8_t *big = calloc(1, FORCED_CONF_MAX + 1);
    assert_int_equal(forced_conf_store_save(dir, 6, big, FORCED_CONF_MAX + 1, &st), RK_EINVAL);
    free(big);
    uint8_t *conf;
    size_t len;
    uint64_t index;
    assert_int_equal(forced_conf_store_load(dir, &index, &conf, &len, &st), 0);
    assert_int_equal(index, 5);
    free(conf);
}

static void unwritable_directory_is_an_error_not_a_crash(void **state)
{
    const char *dir = *state;
    char file[PATH_MAX], below[PATH_MAX + 16];
    snprintf(file, sizeof file, "%s/a-file", dir);
    snprintf(below, sizeof below, "%s/no/dir", file);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    rk_status_t st;
    assert_int_equal(forced_conf_store_save(below, 1, "x", 1, &st), RK_EIO);
    assert_non_null(strstr(st.msg, "forced_conf"));
}

/* A group's directory is created with its first file (a group on a shared
 * server has none until it needs one). */
static void missing_directory_is_created(void **state)
{
    const char *dir = *state;
    char missing[PATH_MAX];
    snprintf(missing, sizeof missing, "%s/groups/g1", dir);
    rk_status_t st;
    assert_int_equal(forced_conf_store_save(missing, 7, "x", 1, &st), 0);
    uint8_t *conf;
    size_t len;
    uint64_t index;
    assert_int_equal(forced_conf_store_load(missing, &index, &conf, &len, &st), 0);
    assert_int_equal(index, 7);
    free(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(saved_configuration_reads_back_and_a_later_save_replaces_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(damaged_or_truncated_file_is_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(file_of_the_earlier_format_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(removed_configuration_is_gone_and_removing_twice_is_fine,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_configuration_is_refused_and_changes_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(missing_directory_is_created, setup, teardown),
        cmocka_unit_test_setup_teardown(unwritable_directory_is_an_error_not_a_crash, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("storage_forced_conf", tests, NULL, NULL);
}
