/* Host names in endpoints, peer ids and configurations: what RFC 1123
 * accepts parses (and is kept as the peer's identity, in lower case), what
 * it refuses gets a clear RK_EINVAL, and IP literals keep working. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "raftkit/peer.h"

static void endpoint_accepts_rfc1123_host_names(void **state)
{
    (void)state;
    static const struct {
        const char *in, *host;
    } cases[] = {
        {"kv-1:8101", "kv-1"},
        {"kv-0.kv.default.svc.cluster.local:8101", "kv-0.kv.default.svc.cluster.local"},
        {"3com.example:1", "3com.example"}, /* RFC 1123: labels may start with a digit */
        {"a:1", "a"},
        {"Node-A.Example.ORG:80", "node-a.example.org"},
        {"x1.y2.z3:65535", "x1.y2.z3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rk_endpoint_t ep;
        rk_status_t err;
        rk_status_clear(&err);
        if (rk_endpoint_parse(&ep, cases[i].in, &err) != 0)
            fail_msg("'%s' refused: %s", cases[i].in, err.msg);
        assert_string_equal(ep.host, cases[i].host);
    }
    /* The longest host that fits (RK_HOST_MAX - 1 bytes, labels <= 63). */
    char longest[RK_HOST_MAX + 8];
    memset(longest, 'a', RK_HOST_MAX - 1);
    longest[30] = '.';
    strcpy(longest + RK_HOST_MAX - 1, ":80");
    rk_endpoint_t ep;
    assert_int_equal(rk_endpoint_parse(&ep, longest, NULL), 0);
    assert_int_equal(strlen(ep.host), RK_HOST_MAX - 1);
}

/* Each bad host is refused with RK_EINVAL and a message that says why. */
static void endpoint_refuses_bad_host_names_saying_why(void **state)
{
    (void)state;
    static const struct {
        const char *in, *why;
    } cases[] = {
        {"a..b:80", "empty label"},
        {".a:80", "empty label"},
        {"a.:80", "empty label"},
        {"-a:80", "starts or ends with '-'"},
        {"a-.b:80", "starts or ends with '-'"},
        {"a_b:80", "bad character '_'"},
        {"a*b:80", "bad character '*'"},
        {"caf\xc3\xa9:80", "bad character"},
        {"a/b:80", "bad character '/'"},
        {"a,b:80", "bad character ','"},
        {"1.2.3:80", "neither an IPv4 address nor a host name"},
        {"256.1.1.1:80", "neither an IPv4 address nor a host name"},
        {"10:80", "neither an IPv4 address nor a host name"},
        {"[kv-1]:80", "not an IPv6 address"},
        {"[1.2.3.4]:80", "not an IPv6 address"},
        {"[fe80::1%]:80", "empty IPv6 zone"},
        {"[fe80::1%e th0]:80", "bad character in IPv6 zone"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rk_endpoint_t ep;
        rk_status_t err;
        rk_status_clear(&err);
        if (rk_endpoint_parse(&ep, cases[i].in, &err) != RK_EINVAL)
            fail_msg("'%s' was accepted", cases[i].in);
        if (strstr(err.msg, cases[i].why) == NULL)
            fail_msg("'%s': message '%s' does not say '%s'", cases[i].in, err.msg, cases[i].why);
        assert_string_equal(ep.host, ""); /* nothing half-filled */
    }
    char toolong[RK_HOST_MAX + 8];
    memset(toolong, 'a', RK_HOST_MAX);
    toolong[30] = '.';
    strcpy(toolong + RK_HOST_MAX, ":80");
    rk_endpoint_t ep;
    rk_status_t err;
    assert_int_equal(rk_endpoint_parse(&ep, toolong, &err), RK_EINVAL);
    assert_non_null(strstr(err.msg, "longer than"));
}

static void ip_literals_keep_working(void **state)
{
    (void)state;
    static const struct {
        const char *in, *host, *out;
    } cases[] = {
        {"10.0.0.7:8101", "10.0.0.7", "10.0.0.7:8101"},
        {"0.0.0.0:1", "0.0.0.0", "0.0.0.0:1"},
        {"[::1]:9000", "::1", "[::1]:9000"},
        {"[::]:9000", "::", "[::]:9000"},
        {"[2001:DB8::A]:80", "2001:db8::a", "[2001:db8::a]:80"},
        {"[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", "[::ffff:10.0.0.1]:80"},
        {"[fe80::1%eth0]:80", "fe80::1%eth0", "[fe80::1%eth0]:80"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rk_endpoint_t ep;
        char buf[128];
        rk_status_t err;
        rk_status_clear(&err);
        if (rk_endpoint_parse(&ep, cases[i].in, &err) != 0)
            fail_msg("'%s' refused: %s", cases[i].in, err.msg);
        assert_string_equal(ep.host, cases[i].host);
        rk_endpoint_format(&ep, buf, sizeof buf);
        assert_string_equal(buf, cases[i].out);
    }
}

/* A peer id is its name: ids that differ only in the case of the host are one
 * peer; ids whose names might resolve alike are not. */
static void peer_id_identity_is_the_name_case_insensitively(void **state)
{
    (void)state;
    rk_peer_id_t a, b, c;
    char buf[RK_PEER_ID_STRLEN];
    assert_int_equal(rk_peer_id_parse(&a, "KV-1.Example:8101:2:50", NULL), 0);
    assert_int_equal(rk_peer_id_parse(&b, "kv-1.example:8101:2", NULL), 0);
    assert_int_equal(rk_peer_id_parse(&c, "localhost:8101:2", NULL), 0);
    assert_int_equal(a.idx, 2);
    assert_int_equal(a.priority, 50);
    rk_peer_id_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "kv-1.example:8101:2:50");
    assert_true(rk_peer_id_equal(&a, &b));
    assert_false(rk_peer_id_equal(&a, &c));
    /* Equality does not depend on parsing having lowered the case. */
    rk_endpoint_t x = {.host = "Kv-1", .port = 1}, y = {.host = "kV-1", .port = 1};
    assert_true(rk_endpoint_equal(&x, &y));
    y.port = 2;
    assert_false(rk_endpoint_equal(&x, &y));
}

static void configuration_of_names_parses_and_finds_duplicates(void **state)
{
    (void)state;
    rk_configuration_t c;
    rk_status_t err;
    char buf[512];
    assert_int_equal(
        rk_configuration_parse(&c, "kv-1:8101, kv-2:8101,kv-3:8101:0:10,[::1]:8104/learner", &err),
        0);
    assert_int_equal(c.n_peers, 3);
    assert_int_equal(c.n_learners, 1);
    rk_configuration_format(&c, buf, sizeof buf);
    assert_string_equal(buf, "kv-1:8101,kv-2:8101,kv-3:8101:0:10,[::1]:8104/learner");
    rk_peer_id_t p;
    assert_int_equal(rk_peer_id_parse(&p, "KV-2:8101", NULL), 0);
    assert_true(rk_configuration_contains(&c, &p));

    assert_int_equal(rk_configuration_parse(&c, "kv-1:8101,KV-1:8101", &err), RK_EINVAL);
    assert_non_null(strstr(err.msg, "duplicate"));
    assert_true(rk_configuration_is_empty(&c));
    assert_int_equal(rk_configuration_parse(&c, "kv-1:8101,kv_2:8101", &err), RK_EINVAL);
    assert_non_null(strstr(err.msg, "kv_2"));
    assert_true(rk_configuration_is_empty(&c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(endpoint_accepts_rfc1123_host_names),
        cmocka_unit_test(endpoint_refuses_bad_host_names_saying_why),
        cmocka_unit_test(ip_literals_keep_working),
        cmocka_unit_test(peer_id_identity_is_the_name_case_insensitively),
        cmocka_unit_test(configuration_of_names_parses_and_finds_duplicates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
