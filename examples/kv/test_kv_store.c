/* Unit tests of the kv example's state: the operations, the deduplication of
 * retried writes, and the snapshot file round trip and its corruption check. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "examples/kv/kv_store.h"

static Kv__Command cmd(Kv__Op op, const char *k, const char *v, const char *exp, uint64_t cid,
                       uint64_t seq)
{
    Kv__Command c = KV__COMMAND__INIT;
    c.op = op;
    c.key.data = (uint8_t *)k;
    c.key.len = strlen(k);
    if (v) {
        c.value.data = (uint8_t *)v;
        c.value.len = strlen(v);
    }
    if (exp) {
        c.expected.data = (uint8_t *)exp;
        c.expected.len = strlen(exp);
    }
    c.client_id = cid;
    c.seq = seq;
    return c;
}

static Kv__Result exec(kv_store_t *s, Kv__Op op, const char *k, const char *v, const char *exp,
                       uint64_t cid, uint64_t seq, kv_outcome_t *out)
{
    Kv__Command c = cmd(op, k, v, exp, cid, seq);
    assert_int_equal(kv_store_exec(s, &c, seq, out), 0);
    return out->result;
}

static void assert_value(kv_store_t *s, const char *k, const char *want)
{
    const uint8_t *v;
    size_t len;
    Kv__Result r = kv_store_get(s, (const uint8_t *)k, strlen(k), &v, &len);
    if (want == NULL) {
        assert_int_equal(r, KV__RESULT__RES_NOT_FOUND);
        return;
    }
    assert_int_equal(r, KV__RESULT__RES_OK);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
}

static void put_get_del_behave_like_a_map(void **state)
{
    (void)state;
    kv_store_t *s = kv_store_new();
    kv_outcome_t o;
    assert_value(s, "a", NULL);
    assert_int_equal(exec(s, KV__OP__OP_PUT, "a", "1", NULL, 0, 1, &o), KV__RESULT__RES_OK);
    assert_value(s, "a", "1");
    assert_int_equal(exec(s, KV__OP__OP_PUT, "a", "22", NULL, 0, 2, &o), KV__RESULT__RES_OK);
    assert_value(s, "a", "22");
    assert_int_equal(kv_store_count(s), 1);
    assert_int_equal(exec(s, KV__OP__OP_DEL, "a", NULL, NULL, 0, 3, &o), KV__RESULT__RES_OK);
    assert_value(s, "a", NULL);
    assert_int_equal(exec(s, KV__OP__OP_DEL, "a", NULL, NULL, 0, 4, &o), KV__RESULT__RES_NOT_FOUND);
    assert_int_equal(kv_store_count(s), 0);
    kv_store_free(s);
}

static void cas_swaps_only_on_the_expected_value(void **state)
{
    (void)state;
    kv_store_t *s = kv_store_new();
    kv_outcome_t o;
    /* empty expected value: create only if absent */
    assert_int_equal(exec(s, KV__OP__OP_CAS, "k", "v1", "", 0, 1, &o), KV__RESULT__RES_OK);
    assert_int_equal(exec(s, KV__OP__OP_CAS, "k", "v2", "", 0, 2, &o), KV__RESULT__RES_MISMATCH);
    assert_int_equal(o.value_len, 2);
    assert_memory_equal(o.value, "v1", 2);
    assert_int_equal(exec(s, KV__OP__OP_CAS, "k", "v2", "zz", 0, 3, &o), KV__RESULT__RES_MISMATCH);
    assert_value(s, "k", "v1");
    assert_int_equal(exec(s, KV__OP__OP_CAS, "k", "v2", "v1", 0, 4, &o), KV__RESULT__RES_OK);
    assert_value(s, "k", "v2");
    /* absent key with a non-empty expectation is a mismatch without a value */
    assert_int_equal(exec(s, KV__OP__OP_CAS, "x", "v", "old", 0, 5, &o), KV__RESULT__RES_MISMATCH);
    assert_null(o.value);
    kv_store_free(s);
}

static void a_retried_write_is_applied_once(void **state)
{
    (void)state;
    kv_store_t *s = kv_store_new();
    kv_outcome_t o;
    assert_int_equal(exec(s, KV__OP__OP_CAS, "k", "1", "", 7, 1, &o), KV__RESULT__RES_OK);
    assert_int_equal(o.duplicate, 0);
    /* the same (client, seq) again: answered from the session, not re-run
     * (re-running would report MISMATCH) */
    assert_int_equal(exec(s, KV__OP__OP_CAS, "k", "1", "", 7, 1, &o), KV__RESULT__RES_OK);
    assert_int_equal(o.duplicate, 1);
    /* another client's identical command runs */
    assert_int_equal(exec(s, KV__OP__OP_CAS, "k", "1", "", 8, 1, &o), KV__RESULT__RES_MISMATCH);
    /* the next seq of client 7 runs */
    assert_int_equal(exec(s, KV__OP__OP_PUT, "k", "2", NULL, 7, 2, &o), KV__RESULT__RES_OK);
    assert_int_equal(o.duplicate, 0);
    assert_value(s, "k", "2");
    /* a delayed copy of seq 1 changes nothing */
    assert_int_equal(exec(s, KV__OP__OP_PUT, "k", "old", NULL, 7, 1, &o), KV__RESULT__RES_OK);
    assert_int_equal(o.duplicate, 1);
    assert_value(s, "k", "2");
    kv_store_free(s);
}

static void unknown_ops_are_refused(void **state)
{
    (void)state;
    kv_store_t *s = kv_store_new();
    kv_outcome_t o;
    Kv__Command c = cmd(KV__OP__OP_GET, "k", NULL, NULL, 0, 0);
    assert_int_equal(kv_store_exec(s, &c, 1, &o), -1);
    kv_store_free(s);
}

static void snapshot_round_trip_keeps_keys_and_sessions(void **state)
{
    (void)state;
    char path[] = "/tmp/kvsnapXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    kv_store_t *s = kv_store_new();
    kv_outcome_t o;
    char k[32], v[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "key%d", i);
        snprintf(v, sizeof v, "value%d", i * 7);
        exec(s, KV__OP__OP_PUT, k, v, NULL, (uint64_t)(i % 5) + 1, (uint64_t)i + 1, &o);
    }
    exec(s, KV__OP__OP_PUT, "empty", "", NULL, 0, 2000, &o);
    assert_int_equal(kv_store_save(s, path), 0);

    kv_store_t *t = kv_store_new();
    exec(t, KV__OP__OP_PUT, "junk", "x", NULL, 0, 1, &o);
    assert_int_equal(kv_store_load(t, path), 0);
    assert_int_equal(kv_store_count(t), 1001);
    assert_value(t, "junk", NULL);
    assert_value(t, "key999", "value6993");
    assert_value(t, "empty", "");
    /* sessions survived: client 5's last seq was 1000 */
    assert_int_equal(exec(t, KV__OP__OP_PUT, "key0", "changed", NULL, 5, 1000, &o),
                     KV__RESULT__RES_OK);
    assert_int_equal(o.duplicate, 1);
    assert_value(t, "key0", "value0");

    /* a flipped byte is detected and leaves the state alone */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 20, SEEK_SET);
    fputc('#', f);
    fclose(f);
    assert_int_equal(kv_store_load(t, path), -EILSEQ);
    assert_int_equal(kv_store_count(t), 1001);
    assert_int_equal(kv_store_load(t, "/nonexistent/kv.data"), -ENOENT);

    kv_store_free(s);
    kv_store_free(t);
    unlink(path);
}

/* The snapshot file is little-endian whatever the host: these bytes, laid
 * out by hand, load on every architecture, and a save writes them back. */
static void snapshot_integers_are_little_endian(void **state)
{
    (void)state;
    uint8_t file[] = {'R', 'K', 'K', 'V', '0', '0', '0', '1', /* magic */
                      1,   0,   0,   0,   0,   0,   0,   0,   /* one key */
                      2,   0,   0,   0,   'a', 'b', 3,   0,   0, 0, 'x',
                      'y', 'z', 0,   0,   0,   0,   0,   0,   0, 0, /* no session */
                      0,   0,   0,   0,   0,   0,   0,   0};        /* xxh3, below */
    size_t body = sizeof file - 8;
    uint64_t sum = XXH3_64bits(file, body);
    for (int i = 0; i < 8; i++)
        file[body + i] = (uint8_t)(sum >> (8 * i));
    char path[] = "/tmp/kvleXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, file, sizeof file), (ssize_t)sizeof file);
    close(fd);

    kv_store_t *s = kv_store_new();
    assert_int_equal(kv_store_load(s, path), 0);
    assert_int_equal(kv_store_count(s), 1);
    assert_value(s, "ab", "xyz");

    assert_int_equal(kv_store_save(s, path), 0);
    uint8_t back[sizeof file + 1];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(back, 1, sizeof back, f), sizeof file);
    fclose(f);
    assert_memory_equal(back, file, sizeof file);
    kv_store_free(s);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_del_behave_like_a_map),
        cmocka_unit_test(cas_swaps_only_on_the_expected_value),
        cmocka_unit_test(a_retried_write_is_applied_once),
        cmocka_unit_test(unknown_ops_are_refused),
        cmocka_unit_test(snapshot_round_trip_keeps_keys_and_sessions),
        cmocka_unit_test(snapshot_integers_are_little_endian),
    };
    return cmocka_run_group_tests_name("kv_store", tests, NULL, NULL);
}
