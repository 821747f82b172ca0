/* rk_strerror / rk_err_name / rk_status_t: one documented error scheme. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "raftkit/status.h"

static void every_code_has_a_distinct_name_and_text(void **state)
{
    (void)state;
    int codes[] = {
#define X(name, val, text) RK_##name,
        RK_ERRNO_MAP(X)
#undef X
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] < 0);
        assert_string_not_equal(rk_strerror(codes[i]), "unknown error");
        assert_string_not_equal(rk_err_name(codes[i]), "RK_UNKNOWN");
        for (size_t j = i + 1; j < n; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(rk_err_name(codes[i]), rk_err_name(codes[j]));
        }
    }
}

static void unknown_codes_decode_to_unknown(void **state)
{
    (void)state;
    assert_string_equal(rk_strerror(12345), "unknown error");
    assert_string_equal(rk_err_name(-9999), "RK_UNKNOWN");
    assert_string_equal(rk_strerror(RK_OK), "success");
    assert_string_equal(rk_err_name(RK_ETIMEDOUT), "RK_ETIMEDOUT");
}

static void status_set_formats_and_returns_code(void **state)
{
    (void)state;
    rk_status_t st;
    char buf[256];
    rk_status_clear(&st);
    assert_true(rk_status_ok(&st));
    assert_int_equal(rk_status_set(&st, RK_ETIMEDOUT, "after %d ms", 500), RK_ETIMEDOUT);
    assert_false(rk_status_ok(&st));
    assert_string_equal(st.msg, "after 500 ms");
    assert_string_equal(rk_status_str(&st, buf, sizeof buf),
                        "RK_ETIMEDOUT: timed out (after 500 ms)");
    assert_int_equal(rk_status_set(NULL, RK_EIO, "ignored"), RK_EIO);
}

static void status_message_is_truncated_not_overflowed(void **state)
{
    (void)state;
    rk_status_t st;
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rk_status_set(&st, RK_EINVAL, "%s", big);
    assert_int_equal(strlen(st.msg), RK_STATUS_MSG_MAX - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_a_distinct_name_and_text),
        cmocka_unit_test(unknown_codes_decode_to_unknown),
        cmocka_unit_test(status_set_formats_and_returns_code),
        cmocka_unit_test(status_message_is_truncated_not_overflowed),
    };
    return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
