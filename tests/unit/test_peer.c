/* Endpoints, peer ids and configurations in the JRaft textual forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "raftkit/peer.h"

static void endpoint_parses_ipv4_hostname_and_ipv6(void **state)
{
    (void)state;
    rk_endpoint_t ep;
    char buf[128];
    assert_int_equal(rk_endpoint_parse(&ep, "127.0.0.1:8081", NULL), 0);
    assert_string_equal(ep.host, "127.0.0.1");
    assert_int_equal(ep.port, 8081);
    assert_int_equal(rk_endpoint_parse(&ep, "localhost:65535", NULL), 0);
    assert_int_equal(ep.port, 65535);
    assert_int_equal(rk_endpoint_parse(&ep, "[::1]:9000", NULL), 0);
    assert_string_equal(ep.host, "::1");
    rk_endpoint_format(&ep, buf, sizeof buf);
    assert_string_equal(buf, "[::1]:9000");
}

static void endpoint_rejects_malformed_input(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",      "127.0.0.1", ":8081",         "127.0.0.1:", "h:0",    "h:65536",
        "h:80x", "h:-1",      "h:80:1",        "[::1:80",    "::1:80", "a b:80",
        "h:+80", "[]:80",     "h:99999999999", "h:80 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rk_endpoint_t ep;
        rk_status_t err;
        rk_status_clear(&err);
        int rv = rk_endpoint_parse(&ep, bad[i], &err);
        if (rv != RK_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(err.code, RK_EINVAL);
        assert_true(strlen(err.msg) > 0);
    }
    char longhost[RK_HOST_MAX + 8];
    memset(longhost, 'a', RK_HOST_MAX);
    strcpy(longhost + RK_HOST_MAX, ":80");
    rk_endpoint_t ep;
    assert_int_equal(rk_endpoint_parse(&ep, longhost, NULL), RK_EINVAL);
}

static void peer_id_defaults_and_round_trips(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
        int idx, prio;
    } cases[] = {
        {"127.0.0.1:8081", "127.0.0.1:8081", 0, RK_PRIORITY_DISABLED},
        {"127.0.0.1:8081:0", "127.0.0.1:8081", 0, RK_PRIORITY_DISABLED},
        {"127.0.0.1:8081:2", "127.0.0.1:8081:2", 2, RK_PRIORITY_DISABLED},
        {"127.0.0.1:8081:0:100", "127.0.0.1:8081:0:100", 0, 100},
        {"127.0.0.1:8081:1:0", "127.0.0.1:8081:1:0", 1, 0},
        {"127.0.0.1:8081:1:-1", "127.0.0.1:8081:1", 1, RK_PRIORITY_DISABLED},
        {"[::1]:7:3", "[::1]:7:3", 3, RK_PRIORITY_DISABLED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rk_peer_id_t p;
        char buf[RK_PEER_ID_STRLEN];
        assert_int_equal(rk_peer_id_parse(&p, cases[i].in, NULL), 0);
        assert_int_equal(p.idx, cases[i].idx);
        assert_int_equal(p.priority, cases[i].prio);
        rk_peer_id_format(&p, buf, sizeof buf);
        assert_string_equal(buf, cases[i].out);
    }
}

static void peer_id_rejects_bad_fields(void **state)
{
    (void)state;
    static const char *bad[] = {"h:80:x",  "h:80:1:2:3", "h:80:",        "h:80:1:",
                                "h:80:-2", "h:80:1:-2",  "h:80/learner", "h:80::1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rk_peer_id_t p;
        if (rk_peer_id_parse(&p, bad[i], NULL) != RK_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(rk_peer_id_is_empty(&p));
    }
}

static void peer_identity_ignores_priority(void **state)
{
    (void)state;
    rk_peer_id_t a, b, c;
    rk_peer_id_parse(&a, "10.0.0.1:80:1:5", NULL);
    rk_peer_id_parse(&b, "10.0.0.1:80:1:9", NULL);
    rk_peer_id_parse(&c, "10.0.0.1:80:2:5", NULL);
    assert_true(rk_peer_id_equal(&a, &b));
    assert_false(rk_peer_id_equal(&a, &c));
}

static void configuration_parses_voters_and_learners(void **state)
{
    (void)state;
    rk_configuration_t c;
    char buf[512];
    rk_peer_id_t p;
    assert_int_equal(
        rk_configuration_parse(&c, " 127.0.0.1:1, 127.0.0.1:2:1 ,127.0.0.1:3/learner", NULL), 0);
    assert_int_equal(c.n_peers, 2);
    assert_int_equal(c.n_learners, 1);
    rk_peer_id_parse(&p, "127.0.0.1:3", NULL);
    assert_true(rk_configuration_is_learner(&c, &p));
    assert_false(rk_configuration_contains(&c, &p));
    rk_configuration_format(&c, buf, sizeof buf);
    assert_string_equal(buf, "127.0.0.1:1,127.0.0.1:2:1,127.0.0.1:3/learner");

    rk_configuration_t again;
    assert_int_equal(rk_configuration_parse(&again, buf, NULL), 0);
    assert_true(rk_configuration_equal(&c, &again));
    assert_int_equal(rk_configuration_parse(&again, "", NULL), 0);
    assert_true(rk_configuration_is_empty(&again));
}

static void configuration_rejects_duplicates_and_garbage(void **state)
{
    (void)state;
    static const char *bad[] = {"h:1,h:1",         "h:1,h:1/learner", "h:1,,h:2",    "h:1,",
                                "h:1,h:2:0:5,h:2", "h:1,bogus",       "h:1/Learner", ","};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rk_configuration_t c;
        rk_status_t err;
        rk_status_clear(&err);
        if (rk_configuration_parse(&c, bad[i], &err) != RK_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(rk_configuration_is_empty(&c));
        assert_true(strlen(err.msg) > 0);
    }
}

static void configuration_set_operations(void **state)
{
    (void)state;
    rk_configuration_t c, d;
    rk_peer_id_t a, b;
    rk_configuration_init(&c);
    rk_peer_id_parse(&a, "h:1", NULL);
    rk_peer_id_parse(&b, "h:2", NULL);
    assert_int_equal(rk_configuration_add_peer(&c, &a), 0);
    assert_int_equal(rk_configuration_add_peer(&c, &a), RK_EEXIST);
    assert_int_equal(rk_configuration_add_learner(&c, &a), RK_EEXIST);
    assert_int_equal(rk_configuration_add_learner(&c, &b), 0);
    assert_int_equal(rk_configuration_remove_peer(&c, &b), RK_ENOTFOUND);
    assert_int_equal(rk_configuration_remove_learner(&c, &b), 0);
    assert_int_equal(rk_configuration_remove_peer(&c, &a), 0);
    assert_true(rk_configuration_is_empty(&c));

    rk_configuration_parse(&c, "h:1,h:2", NULL);
    rk_configuration_parse(&d, "h:2,h:1", NULL);
    assert_true(rk_configuration_equal(&c, &d));
    rk_configuration_parse(&d, "h:2,h:1/learner", NULL);
    assert_false(rk_configuration_equal(&c, &d));
}

static void configuration_capacity_is_enforced(void **state)
{
    (void)state;
    char big[RK_CONF_MAX_PEERS * 24 + 64] = "";
    size_t used = 0;
    for (int i = 1; i <= RK_CONF_MAX_PEERS + 1; i++)
        used += (size_t)snprintf(big + used, sizeof big - used, "%sh:%d", i > 1 ? "," : "", i);
    rk_configuration_t c;
    assert_int_equal(rk_configuration_parse(&c, big, NULL), RK_EINVAL);
}

static void configuration_validate_catches_duplicates(void **state)
{
    (void)state;
    rk_configuration_t c;
    rk_status_t err;
    rk_configuration_parse(&c, "h:1,h:2", NULL);
    assert_int_equal(rk_configuration_validate(&c, &err), 0);
    c.learners[c.n_learners++] = c.peers[0]; /* bypassing add_learner */
    assert_int_equal(rk_configuration_validate(&c, &err), RK_ECONF);
    assert_non_null(strstr(err.msg, "h:1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(endpoint_parses_ipv4_hostname_and_ipv6),
        cmocka_unit_test(endpoint_rejects_malformed_input),
        cmocka_unit_test(peer_id_defaults_and_round_trips),
        cmocka_unit_test(peer_id_rejects_bad_fields),
        cmocka_unit_test(peer_identity_ignores_priority),
        cmocka_unit_test(configuration_parses_voters_and_learners),
        cmocka_unit_test(configuration_rejects_duplicates_and_garbage),
        cmocka_unit_test(configuration_set_operations),
        cmocka_unit_test(configuration_capacity_is_enforced),
        cmocka_unit_test(configuration_validate_catches_duplicates),
    };
    return cmocka_run_group_tests_name("peer", tests, NULL, NULL);
}
