/* The leveled logger: level parsing, filtering, line format, sinks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "raftkit/status.h"

struct capture {
    int lines;
    char last[1024];
    rk_log_level_t last_level;
};

static void capture_sink(void *arg, rk_log_level_t level, const char *line)
{
    struct capture *c = arg;
    c->lines++;
    c->last_level = level;
    strncpy(c->last, line, sizeof c->last - 1);
}

static void level_names_parse(void **state)
{
    (void)state;
    rk_log_level_t l;
    assert_int_equal(rk_log_level_parse("DEBUG", &l), 0);
    assert_int_equal(l, RK_LOG_DEBUG);
    assert_int_equal(rk_log_level_parse("off", &l), 0);
    assert_int_equal(l, RK_LOG_OFF);
    assert_int_equal(rk_log_level_parse("warning", &l), 0);
    assert_int_equal(l, RK_LOG_WARN);
    assert_int_equal(rk_log_level_parse("loud", &l), RK_EINVAL);
    assert_string_equal(rk_log_level_name(RK_LOG_ERROR), "error");
}

static void lines_below_level_are_dropped(void **state)
{
    (void)state;
    struct capture c = {0};
    rk_log_set_sink(capture_sink, &c);
    rk_log_set_level(RK_LOG_WARN);
    RK_INFO("g", "p", "hidden %d", 1);
    assert_int_equal(c.lines, 0);
    RK_WARN("g", "p", "shown %d", 2);
    assert_int_equal(c.lines, 1);
    assert_int_equal(c.last_level, RK_LOG_WARN);
    rk_log_set_level(RK_LOG_OFF);
    RK_ERROR("g", "p", "hidden too");
    assert_int_equal(c.lines, 1);
    rk_log_set_sink(NULL, NULL);
}

static void line_has_time_level_group_and_peer(void **state)
{
    (void)state;
    struct capture c = {0};
    rk_log_set_sink(capture_sink, &c);
    rk_log_set_level(RK_LOG_TRACE);
    RK_INFO("counter", "127.0.0.1:8081", "became leader at term %d", 3);
    /* 2026-11-22T13:50:01.123Z INFO  [counter 127.0.0.1:8081] became leader at term 3 */
    assert_int_equal(strlen(c.last) > 24, 1);
    assert_int_equal(c.last[4], '-');
    assert_int_equal(c.last[10], 'T');
    assert_int_equal(c.last[23], 'Z');
    assert_non_null(strstr(c.last, " INFO  [counter 127.0.0.1:8081] became leader at term 3"));
    RK_DEBUG(NULL, NULL, "no context");
    assert_non_null(strstr(c.last, "DEBUG [- -] no context"));
    rk_log_set_sink(NULL, NULL);
}

static void overlong_lines_are_truncated(void **state)
{
    (void)state;
    struct capture c = {0};
    char big[4096];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rk_log_set_sink(capture_sink, &c);
    rk_log_set_level(RK_LOG_INFO);
    RK_INFO("g", "p", "%s", big);
    assert_int_equal(c.lines, 1);
    assert_true(strlen(c.last) < 1024);
    rk_log_set_sink(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(level_names_parse),
        cmocka_unit_test(lines_below_level_are_dropped),
        cmocka_unit_test(line_has_time_level_group_and_peer),
        cmocka_unit_test(overlong_lines_are_truncated),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
