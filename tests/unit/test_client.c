/* The client library's refusals carry a message saying what was wrong and,
 * where there is one, the limit: tools print rk_status_t.msg as it is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftkit/client.h"
#include "raftkit/rpc.h"

/* Nothing listens on port 1: a call that gets past the argument checks
 * fails with a transport error, never with the messages asserted here. */
static rk_endpoint_t closed_port(void)
{
    rk_endpoint_t ep;
    assert_int_equal(rk_endpoint_parse(&ep, "127.0.0.1:1", NULL), 0);
    return ep;
}

static void rpc_call_over_the_frame_limit_names_size_and_limit(void **state)
{
    (void)state;
    rk_rpc_client_t *c = rk_rpc_client_new(NULL);
    assert_non_null(c);
    rk_endpoint_t ep = closed_port();
    size_t len = (64u << 20) + 1;
    char *body = calloc(1, len);
    assert_non_null(body);
    rk_rpc_reply_t r;
    assert_int_equal(rk_rpc_client_call(c, &ep, RK_RPC_APP_FIRST, body, len, 1000, &r), RK_ETOOBIG);
    assert_int_equal(r.status.code, RK_ETOOBIG);
    char want[96];
    snprintf(want, sizeof want, "request of %zu bytes is over the RPC frame limit of %u bytes", len,
             64u << 20);
    assert_non_null(strstr(r.status.msg, want));
    assert_false(r.maybe_delivered);
    rk_rpc_reply_release(&r);
    free(body);
    rk_rpc_client_free(c);
}

static void rpc_call_bad_arguments_say_which(void **state)
{
    (void)state;
    rk_rpc_client_t *c = rk_rpc_client_new(NULL);
    assert_non_null(c);
    rk_endpoint_t ep = closed_port();
    rk_rpc_reply_t r;
    assert_int_equal(rk_rpc_client_call(c, &ep, 3, "x", 1, 1000, &r), RK_EINVAL);
    char want[80];
    snprintf(want, sizeof want, "method 3 is reserved (application methods start at %u)",
             (unsigned)RK_RPC_APP_FIRST);
    assert_string_equal(r.status.msg, want);
    assert_int_equal(rk_rpc_client_call(c, &ep, RK_RPC_APP_FIRST, NULL, 5, 1000, &r), RK_EINVAL);
    assert_string_equal(r.status.msg, "body is NULL with len 5");
    assert_int_equal(rk_rpc_client_call(c, NULL, RK_RPC_APP_FIRST, "x", 1, 1000, &r), RK_EINVAL);
    assert_string_equal(r.status.msg, "client or endpoint is NULL");
    rk_rpc_client_free(c);
}

static void cli_refusals_before_sending_name_the_problem(void **state)
{
    (void)state;
    rk_cli_client_t *c = rk_cli_client_new(1000);
    assert_non_null(c);
    rk_configuration_t conf, empty, out;
    rk_status_t st;
    assert_int_equal(rk_configuration_parse(&conf, "127.0.0.1:1", NULL), 0);
    assert_int_equal(rk_configuration_parse(&empty, "", NULL), 0);

    assert_int_equal(rk_cli_change_peers(c, "g", &conf, &empty, &out, &st), RK_EINVAL);
    assert_string_equal(st.msg, "the new configuration has no voter");

    static rk_peer_id_t many[RK_CONF_MAX_PEERS + 1];
    assert_int_equal(rk_cli_add_learners(c, "g", &conf, many, RK_CONF_MAX_PEERS + 1, &out, &st),
                     RK_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "%d learners is over the limit of %d", RK_CONF_MAX_PEERS + 1,
             RK_CONF_MAX_PEERS);
    assert_string_equal(st.msg, want);
    assert_int_equal(rk_cli_remove_learners(c, "g", &conf, NULL, 2, &out, &st), RK_EINVAL);
    assert_string_equal(st.msg, "learners is NULL with n 2");

    rk_peer_id_t leader;
    assert_int_equal(rk_cli_get_leader(c, "g", &empty, &leader, &st), RK_EINVAL);
    assert_string_equal(st.msg, "no peers to ask");
    rk_cli_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rpc_call_over_the_frame_limit_names_size_and_limit),
        cmocka_unit_test(rpc_call_bad_arguments_say_which),
        cmocka_unit_test(cli_refusals_before_sending_name_the_problem),
    };
    return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}
