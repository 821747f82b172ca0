/* Security on real nodes: a cluster whose nodes speak mutual TLS elects,
 * replicates and serves the CLI; a client certificate may ask for the
 * leader and the status but not reset or change peers (RK_EPERM), an admin
 * certificate may; a plaintext CLI gets nothing. A cluster on cluster keys
 * moves from key A to key B with its nodes restarted one at a time, and no
 * write is refused once each restart has completed. Bad security options
 * are refused when the service is created. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftkit/client.h"
#include "raftkit/log.h"
#include "raftkit/rpc.h"
#include "tests/node/cluster.h"
#include "tests/unit/tls_test_util.h"

#define KEY_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define KEY_B "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"

static int group_setup(void **state)
{
    (void)state;
    if (tls_dir_setup("test-node-tls", "") != 0)
        return -1;
    tls_write_file("A", KEY_A "\n");
    tls_write_file("AB", KEY_A "\n" KEY_B "\n");
    tls_write_file("BA", KEY_B "\n" KEY_A "\n");
    tls_write_file("B", KEY_B "\n");
    tls_write_file("adminB", KEY_B "\nadmin " KEY_A KEY_B "\n");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return tls_dir_teardown();
}

static rk_node_options_t base_opts(void)
{
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.election_timeout_ms = 300;
    o.raft_options.sync = false;
    return o;
}

static rk_cli_client_t *cli_with(const char *who)
{
    char crt[64], key[64];
    rk_status_t err;

    snprintf(crt, sizeof crt, "%s.crt", who);
    snprintf(key, sizeof key, "%s.key", who);
    rk_rpc_client_options_t o = {.tls_cert = tls_path(crt),
                                 .tls_key = tls_path(key),
                                 .tls_ca = tls_path("ca.crt"),
                                 .tls_peer_names = "peer.raftkit"};
    rk_cli_client_t *c = rk_cli_client_open(2000, &o, &err);
    if (c == NULL)
        fail_msg("cli client for %s: %s", who, err.msg);
    return c;
}

static void tls_cluster_serves_clients_by_role(void **state)
{
    (void)state;
    rk_node_options_t o = base_opts();
    o.tls_cert = tls_path("node1.crt");
    o.tls_key = tls_path("node1.key");
    o.tls_ca = tls_path("ca.crt");
    o.tls_peer_names = "peer.raftkit";
    o.tls_admin_names = "admin.raftkit";
    tc_cluster_t c;
    tc_cluster_init(&c, "gtls", 3, 3, &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tc_start(&c, i, false), 0);
    int leader = tc_wait_leader(&c, 10000);
    assert_true(leader >= 0);
    assert_int_equal(tc_apply_many(&c, leader, 20), 20);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(c.nodes[leader].node), 5000));

    rk_status_t st;
    rk_peer_id_t l;
    rk_configuration_t target = c.conf;
    target.n_peers = 2;

    /* an application client: queries yes, membership no */
    rk_cli_client_t *cli = cli_with("client");
    assert_int_equal(rk_cli_get_leader(cli, "gtls", &c.conf, &l, &st), 0);
    assert_true(rk_peer_id_equal(&l, &c.nodes[leader].id));
    rk_node_status_t *s = malloc(sizeof *s);
    assert_int_equal(rk_cli_node_status(cli, "gtls", &c.nodes[leader].id, s, &st), 0);
    assert_int_equal(s->state, RK_STATE_LEADER);
    free(s);
    assert_int_equal(rk_cli_reset_peer(cli, "gtls", &c.nodes[0].id, &target, &st), RK_EPERM);
    assert_non_null(strstr(st.msg, "admin"));
    assert_int_equal(rk_cli_change_peers(cli, "gtls", &c.conf, &target, NULL, &st), RK_EPERM);
    assert_int_equal(rk_cli_snapshot(cli, "gtls", &c.nodes[0].id, &st), RK_EPERM);
    rk_cli_client_free(cli);
    /* nothing was changed */
    rk_configuration_t now;
    rk_node_list_peers(c.nodes[leader].node, &now);
    assert_int_equal(now.n_peers, 3);

    /* the admin may */
    cli = cli_with("admin");
    assert_int_equal(rk_cli_snapshot(cli, "gtls", &c.nodes[leader].id, &st), 0);
    rk_cli_client_free(cli);

    /* plaintext gets nothing, and the cluster still works afterwards */
    cli = rk_cli_client_new(1000);
    assert_int_not_equal(rk_cli_get_leader(cli, "gtls", &c.conf, &l, &st), 0);
    rk_cli_client_free(cli);
    assert_int_equal(tc_apply_many(&c, leader, 5), 5);
    tc_cluster_destroy(&c);
}

/* A follower that missed what a snapshot compacted away catches up
 * through InstallSnapshot and GetFile, which travel over TLS between
 * peer certificates. */
static void follower_installs_a_snapshot_over_tls(void **state)
{
    (void)state;
    rk_node_options_t o = base_opts();
    o.tls_cert = tls_path("node2.crt");
    o.tls_key = tls_path("node2.key");
    o.tls_ca = tls_path("ca.crt");
    o.tls_peer_names = "peer.raftkit";
    tc_cluster_t c;
    tc_cluster_init(&c, "gsnap", 3, 3, &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tc_start(&c, i, false), 0);
    int leader = tc_wait_leader(&c, 10000);
    assert_true(leader >= 0);
    int behind = (leader + 1) % 3;
    tc_stop(&c, behind);
    assert_int_equal(tc_apply_many(&c, leader, 50), 50);
    tc_req_t req;
    tc_req_init(&req);
    assert_int_equal(rk_node_snapshot(c.nodes[leader].node, &req.closure), 0);
    for (int i = 0; i < 500 && atomic_load(&req.runs) == 0; i++)
        tc_msleep(10);
    assert_int_equal(atomic_load(&req.runs), 1);
    assert_int_equal(atomic_load(&req.code), 0);
    assert_int_equal(tc_apply_many(&c, leader, 10), 10);
    int loads = atomic_load(&c.nodes[behind].fsm.loads);
    assert_int_equal(tc_start(&c, behind, false), 0);
    assert_true(tc_wait_applied(&c, rk_node_last_log_index(c.nodes[leader].node), 10000));
    assert_true(atomic_load(&c.nodes[behind].fsm.loads) > loads);
    assert_int_equal(atomic_load(&c.nodes[behind].fsm.sum), 60);
    tc_cluster_destroy(&c);
}

/* Restarts every node in turn with key file f; after each restart the
 * cluster has a leader and takes every write. */
static void restart_all_with(tc_cluster_t *c, const char *f, int *writes)
{
    for (int i = 0; i < 3; i++) {
        tc_stop(c, i);
        c->base_opts.cluster_key_file = tls_path(f);
        assert_int_equal(tc_start(c, i, false), 0);
        int leader = tc_wait_leader(c, 10000);
        assert_true(leader >= 0);
        /* the restarted node is back in the cluster: it applies what the
         * leader has */
        assert_int_equal(tc_apply_many(c, leader, 10), 10);
        assert_true(tc_wait_applied(c, rk_node_last_log_index(c->nodes[leader].node), 10000));
        *writes += 10;
    }
}

static void cluster_key_rotates_without_refusing_writes(void **state)
{
    (void)state;
    rk_node_options_t o = base_opts();
    o.cluster_key_file = tls_path("A");
    tc_cluster_t c;
    int writes = 0;

    tc_cluster_init(&c, "gkey", 3, 3, &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tc_start(&c, i, false), 0);
    int leader = tc_wait_leader(&c, 10000);
    assert_true(leader >= 0);
    assert_int_equal(tc_apply_many(&c, leader, 10), 10);
    writes += 10;
    /* 1: accept B while still using A; 2: use B, accept A; 3: B alone */
    restart_all_with(&c, "AB", &writes);
    restart_all_with(&c, "BA", &writes);
    restart_all_with(&c, "B", &writes);
    leader = tc_wait_leader(&c, 10000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&c.nodes[i].fsm.sum), (uint64_t)writes);

    /* A client holding only the old key is refused now. */
    rk_rpc_client_options_t ko = {.cluster_key_file = tls_path("A")};
    rk_status_t st;
    rk_peer_id_t l;
    rk_cli_client_t *cli = rk_cli_client_open(1000, &ko, &st);
    assert_non_null(cli);
    assert_int_not_equal(rk_cli_get_leader(cli, "gkey", &c.conf, &l, &st), 0);
    rk_cli_client_free(cli);
    ko.cluster_key_file = tls_path("B");
    cli = rk_cli_client_open(2000, &ko, &st);
    assert_int_equal(rk_cli_get_leader(cli, "gkey", &c.conf, &l, &st), 0);
    /* the cluster key is a peer's, not an admin's */
    assert_int_equal(rk_cli_snapshot(cli, "gkey", &l, &st), RK_EPERM);
    rk_cli_client_free(cli);
    tc_cluster_destroy(&c);
}

static void bad_security_options_are_refused_at_creation(void **state)
{
    (void)state;
    tc_counter_t fsm;
    rk_peer_id_t self;
    rk_status_t err;
    rk_node_options_t o = base_opts();

    tc_counter_init(&fsm);
    o.fsm = &fsm.sm;
    o.data_path = tls_path("unused");
    assert_int_equal(rk_peer_id_parse(&self, "127.0.0.1:1", &err), 0);
    rk_configuration_parse(&o.initial_conf, "127.0.0.1:1", NULL);

    o.tls_cert = tls_path("node1.crt");
    o.tls_key = tls_path("node2.key");
    o.tls_ca = tls_path("ca.crt");
    o.tls_peer_names = "peer.raftkit";
    assert_null(rk_group_service_new("g", &self, &o, &err));
    assert_non_null(strstr(err.msg, "does not match"));

    o.tls_key = tls_path("node1.key");
    o.tls_peer_names = NULL;
    assert_null(rk_group_service_new("g", &self, &o, &err));
    assert_non_null(strstr(err.msg, "tls_peer_names"));

    o.tls_peer_names = "peer.raftkit";
    o.admin_port = 1;
    assert_null(rk_group_service_new("g", &self, &o, &err));
    assert_non_null(strstr(err.msg, "admin_token"));

    rk_node_options_t p = base_opts();
    p.fsm = &fsm.sm;
    p.data_path = tls_path("unused");
    p.initial_conf = o.initial_conf;
    p.admin_token = "secret";
    assert_null(rk_group_service_new("g", &self, &p, &err));
    assert_non_null(strstr(err.msg, "admin_token needs TLS"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_cluster_serves_clients_by_role),
        cmocka_unit_test(cluster_key_rotates_without_refusing_writes),
        cmocka_unit_test(follower_installs_a_snapshot_over_tls),
        cmocka_unit_test(bad_security_options_are_refused_at_creation),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
