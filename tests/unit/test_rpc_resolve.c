/* Host names on the RPC client and on the listen side, resolved through a
 * resolver this test controls: the suite moves into a private network and
 * mount namespace (it needs root, as CI has) and bind-mounts its own hosts
 * file over /etc/hosts, which glibc's getaddrinfo reads on every lookup.
 * Servers listen on other loopback addresses (127.0.0.2, .3, ...) of the
 * private lo, so a name can be moved from one server to another while a
 * channel to it lives.
 *
 * Checked: a name is resolved off the loop and again on every reconnect (a
 * peer that moved is found); a name that does not resolve makes the channel
 * unreachable, logged once however many retries, and reachable as soon as
 * the name appears; a listen name is resolved at start, and one that does
 * not resolve is a clear error; a group service whose own name does not
 * resolve starts on its listen address. Without root or namespaces the suite fails
 * saying so: it never passes without having run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <net/if.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "raftkit/log.h"
#include "raftkit/node.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_server.h"

static char hosts_path[256];

/* Replaces the hosts file's content in place (same inode: the bind mount
 * keeps showing it). */
static void set_hosts(const char *content)
{
    char all[1024];
    snprintf(all, sizeof all, "127.0.0.1 localhost\n%s", content);
    int fd = open(hosts_path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, all, strlen(all)), (ssize_t)strlen(all));
    close(fd);
}

static int enter_private_namespaces(void)
{
    if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
        fprintf(stderr,
                "test_rpc_resolve: FAIL: cannot create private network and mount namespaces "
                "(unshare: %s). This suite needs root (CI runs as root); it does not pass "
                "without running.\n",
                strerror(errno));
        return -1;
    }
    /* Keep the bind mount below out of the parent namespace. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        fprintf(stderr, "test_rpc_resolve: FAIL: making mounts private: %s\n", strerror(errno));
        return -1;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0 ||
        (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) != 0)) {
        fprintf(stderr, "test_rpc_resolve: FAIL: bringing lo up: %s\n", strerror(errno));
        return -1;
    }
    close(s);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(hosts_path, sizeof hosts_path, "%s/raftkit-hosts.XXXXXX", tmp);
    int fd = mkstemp(hosts_path);
    if (fd < 0 || mount(hosts_path, "/etc/hosts", NULL, MS_BIND, NULL) != 0) {
        fprintf(stderr, "test_rpc_resolve: FAIL: bind-mounting a hosts file: %s\n",
                strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

/* ---- log lines, counted by pattern ---- */

static atomic_int n_cannot_resolve, n_resolves_to_a, n_resolves_to_b, n_moved, n_multi;

static void sink(void *arg, rk_log_level_t level, const char *line)
{
    (void)arg;
    (void)level;
    if (strstr(line, "cannot resolve 'svc-late'") && strstr(line, "peer unreachable") == NULL)
        atomic_fetch_add(&n_cannot_resolve, 1);
    if (strstr(line, "'svc-late' resolves to 127.0.0.4"))
        atomic_fetch_add(&n_resolves_to_a, 1);
    if (strstr(line, "'svc-a' resolves to 127.0.0.3"))
        atomic_fetch_add(&n_resolves_to_b, 1);
    if (strstr(line, "'svc-multi' resolves to 127.0.0.8, 127.0.0.9"))
        atomic_fetch_add(&n_multi, 1);
    if (strstr(line, "(address changed)"))
        atomic_fetch_add(&n_moved, 1);
}

/* ---- loop helpers ---- */

typedef struct reach {
    int up, down;
    char last_why[RK_STATUS_MSG_MAX];
} reach_t;

static void on_reach(void *arg, rpc_channel_t *ch, bool reachable, const rk_status_t *why)
{
    reach_t *r = arg;
    (void)ch;
    if (reachable)
        r->up++;
    else
        r->down++;
    snprintf(r->last_why, sizeof r->last_why, "%s", why->msg);
}

static void noop_timer(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *counter reaches want, for at most ms (a bound, not a
 * measured time). Returns whether it did. */
static bool run_until_count(uv_loop_t *loop, const int *counter, int want, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uint64_t end = uv_now(loop) + ms;
    while (*counter < want && uv_now(loop) < end) {
        uv_timer_start(&t, noop_timer, 10, 0);
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *counter >= want;
}

/* Keeps the loop running for ms, so that a channel retries several times. */
static void run_for(uv_loop_t *loop, uint64_t ms)
{
    int never = 0;
    run_until_count(loop, &never, 1, ms);
}

static void set_flag(void *arg)
{
    *(int *)arg = 1;
}

static rpc_server_t *server_at(uv_loop_t *loop, const char *ip, uint16_t port)
{
    rpc_server_opts_t so = {.name = "resolve-test"};
    rpc_server_t *s = rpc_server_new(loop, &so);
    rk_status_t err;
    assert_non_null(s);
    if (rpc_server_listen(s, ip, port, &err) != 0)
        fail_msg("listen on %s:%u: %s", ip, port, err.msg);
    return s;
}

static uint64_t accepted(const rpc_server_t *s)
{
    rpc_server_stats_t st;
    rpc_server_stats(s, &st);
    return st.accepted;
}

static void close_all(uv_loop_t *loop, rpc_client_t *c, rpc_server_t *s1, rpc_server_t *s2)
{
    int closed = 0, sdone = 0;
    rpc_client_close(c, set_flag, &closed);
    if (s1 != NULL)
        rpc_server_close(s1, set_flag, &sdone);
    if (s2 != NULL)
        rpc_server_close(s2, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(loop), 0);
}

static rpc_client_t *client(uv_loop_t *loop, reach_t *r)
{
    rpc_client_opts_t co = {.name = "resolve-test",
                            .backoff_min_ms = 10,
                            .backoff_max_ms = 40,
                            .connect_timeout_ms = 2000,
                            .on_reachability = on_reach,
                            .arg = r};
    rpc_client_t *c = rpc_client_new(loop, &co);
    assert_non_null(c);
    return c;
}

/* ---- tests ---- */

/* A peer that comes back at another address under its name is found by the
 * next connection attempt: the name is resolved on every reconnect. */
static void name_is_resolved_again_on_every_reconnect(void **state)
{
    (void)state;
    uv_loop_t loop;
    reach_t r = {0};
    uv_loop_init(&loop);
    set_hosts("127.0.0.2 svc-a\n");
    rpc_server_t *a = server_at(&loop, "127.0.0.2", 0);
    uint16_t port = rpc_server_port(a);
    rpc_server_t *b = server_at(&loop, "127.0.0.3", port);
    rpc_client_t *c = client(&loop, &r);
    char ep[64], upper[64];
    snprintf(ep, sizeof ep, "svc-a:%u", port);
    snprintf(upper, sizeof upper, "SVC-A:%u", port);
    rk_status_t err;
    rpc_channel_t *ch = rpc_client_channel(c, ep, &err);
    assert_non_null(ch);
    assert_ptr_equal(rpc_client_channel(c, upper, &err), ch); /* one peer, one channel */

    rpc_channel_connect(ch);
    assert_false(rpc_channel_reachable(ch)); /* nothing resolved or connected inside the call */
    assert_true(run_until_count(&loop, &r.up, 1, 10000));
    assert_int_equal(accepted(a), 1);
    assert_int_equal(accepted(b), 0);

    /* The peer "restarts" at 127.0.0.3: the name moves, the old address
     * stops answering. */
    set_hosts("127.0.0.3 svc-a\n");
    int a_closed = 0;
    rpc_server_close(a, set_flag, &a_closed);
    assert_true(run_until_count(&loop, &r.down, 1, 10000));
    assert_true(run_until_count(&loop, &r.up, 2, 10000));
    assert_true(rpc_channel_reachable(ch));
    assert_int_equal(accepted(b), 1);
    assert_int_equal(atomic_load(&n_resolves_to_b), 1);
    assert_int_equal(atomic_load(&n_moved), 1);
    assert_int_equal(a_closed, 1);
    close_all(&loop, c, b, NULL);
}

/* A name that does not resolve (a peer listed before its DNS record exists)
 * is an unreachable peer retried with backoff, logged once, not an error;
 * it becomes reachable when the name appears. */
static void unresolvable_name_is_unreachable_until_it_appears(void **state)
{
    (void)state;
    uv_loop_t loop;
    reach_t r = {0};
    uv_loop_init(&loop);
    set_hosts("");
    rpc_server_t *s = server_at(&loop, "127.0.0.4", 0);
    rpc_client_t *c = client(&loop, &r);
    char ep[64];
    snprintf(ep, sizeof ep, "svc-late:%u", rpc_server_port(s));
    rk_status_t err;
    rpc_channel_t *ch = rpc_client_channel(c, ep, &err);
    assert_non_null(ch);
    rpc_channel_connect(ch);
    assert_true(run_until_count(&loop, &r.down, 1, 10000));
    assert_non_null(strstr(r.last_why, "cannot resolve 'svc-late'"));
    /* Retries every 10..40 ms meanwhile: still one log line, one report. */
    run_for(&loop, 500);
    assert_int_equal(atomic_load(&n_cannot_resolve), 1);
    assert_int_equal(r.down, 1);
    assert_int_equal(r.up, 0);
    assert_int_equal(accepted(s), 0);

    set_hosts("127.0.0.4 svc-late\n");
    assert_true(run_until_count(&loop, &r.up, 1, 10000));
    assert_int_equal(accepted(s), 1);
    assert_int_equal(atomic_load(&n_resolves_to_a), 1);
    assert_int_equal(atomic_load(&n_moved), 1); /* only the earlier test's move */
    close_all(&loop, c, s, NULL);
}

/* A name with two addresses whose preferred one has no server: the channel
 * moves on to the other address after the failed attempt, and the set of
 * addresses is logged once. */
static void name_with_a_dead_address_is_reached_at_the_other(void **state)
{
    (void)state;
    uv_loop_t loop;
    reach_t r = {0};
    uv_loop_init(&loop);
    set_hosts("127.0.0.8 svc-multi\n127.0.0.9 svc-multi\n");
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    assert_int_equal(getaddrinfo("svc-multi", "1", &hints, &res), 0);
    assert_non_null(res->ai_next); /* both addresses come back */
    char first[INET6_ADDRSTRLEN];
    uv_ip4_name((struct sockaddr_in *)res->ai_addr, first, sizeof first);
    freeaddrinfo(res);
    /* The server listens at the address getaddrinfo does not prefer. */
    const char *live = strcmp(first, "127.0.0.8") == 0 ? "127.0.0.9" : "127.0.0.8";
    rpc_server_t *s = server_at(&loop, live, 0);
    rpc_client_t *c = client(&loop, &r);
    char ep[64];
    snprintf(ep, sizeof ep, "svc-multi:%u", rpc_server_port(s));
    rk_status_t err;
    rpc_channel_t *ch = rpc_client_channel(c, ep, &err);
    assert_non_null(ch);
    rpc_channel_connect(ch);
    assert_true(run_until_count(&loop, &r.up, 1, 10000));
    assert_int_equal(r.down, 1); /* the attempt at the dead address */
    assert_int_equal(accepted(s), 1);
    assert_int_equal(atomic_load(&n_multi), 1);
    close_all(&loop, c, s, NULL);
}

/* IPv6 keeps working: a bracketed literal, and a name whose only address
 * is IPv6. */
static void ipv6_literal_and_ipv6_name_are_reached(void **state)
{
    (void)state;
    uv_loop_t loop;
    reach_t r = {0};
    uv_loop_init(&loop);
    set_hosts("::1 svc-v6\n");
    rpc_server_t *s = server_at(&loop, "::1", 0);
    rpc_client_t *c = client(&loop, &r);
    char lit[64], name[64];
    snprintf(lit, sizeof lit, "[::1]:%u", rpc_server_port(s));
    snprintf(name, sizeof name, "svc-v6:%u", rpc_server_port(s));
    rk_status_t err;
    rpc_channel_t *by_lit = rpc_client_channel(c, lit, &err);
    rpc_channel_t *by_name = rpc_client_channel(c, name, &err);
    assert_non_null(by_lit);
    assert_non_null(by_name);
    rpc_channel_connect(by_lit);
    assert_true(run_until_count(&loop, &r.up, 1, 10000));
    rpc_channel_connect(by_name);
    assert_true(run_until_count(&loop, &r.up, 2, 10000));
    assert_int_equal(accepted(s), 2);
    close_all(&loop, c, s, NULL);
}

static void bad_host_name_is_refused_at_channel_creation(void **state)
{
    (void)state;
    uv_loop_t loop;
    reach_t r = {0};
    uv_loop_init(&loop);
    rpc_client_t *c = client(&loop, &r);
    rk_status_t err;
    rk_status_clear(&err);
    assert_null(rpc_client_channel(c, "svc_bad:80", &err));
    assert_int_equal(err.code, RK_EINVAL);
    assert_non_null(strstr(err.msg, "bad character '_'"));
    close_all(&loop, c, NULL, NULL);
}

/* A listen host name is resolved when the server starts and the numeric
 * address is bound; one that does not resolve is a clear error. */
static void listen_name_is_resolved_at_start(void **state)
{
    (void)state;
    set_hosts("127.0.0.5 self-name\n");
    rk_endpoint_t ep;
    rk_status_t err;
    assert_int_equal(rk_endpoint_parse(&ep, "self-name:1", NULL), 0);
    ep.port = 0;
    rk_server_t *srv = rk_server_new(&ep, &err);
    if (srv == NULL)
        fail_msg("rk_server_new(self-name): %s", err.msg);
    uint16_t port = rk_server_port(srv);

    uv_loop_t loop;
    reach_t r = {0};
    uv_loop_init(&loop);
    rpc_client_t *c = client(&loop, &r);
    char lit[64];
    snprintf(lit, sizeof lit, "127.0.0.5:%u", port);
    rpc_channel_connect(rpc_client_channel(c, lit, &err));
    assert_true(run_until_count(&loop, &r.up, 1, 10000));
    close_all(&loop, c, NULL, NULL);
    rk_server_free(srv);

    assert_int_equal(rk_endpoint_parse(&ep, "nowhere-name:1", NULL), 0);
    rk_status_clear(&err);
    assert_null(rk_server_new(&ep, &err));
    assert_int_equal(err.code, RK_EUNREACHABLE);
    assert_non_null(strstr(err.msg, "cannot resolve 'nowhere-name'"));
}

/* A group service whose own name does not resolve yet (a StatefulSet pod
 * before its DNS record) starts when its options give a listen address,
 * binds that address, and works. */
static void group_service_binds_listen_while_its_name_does_not_resolve(void **state)
{
    (void)state;
    set_hosts("");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/raftkit-listen.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(dir));
    rk_state_machine_t sm = {0};
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.fsm = &sm;
    o.data_path = dir;
    o.election_timeout_ms = 100;
    assert_int_equal(rk_configuration_parse(&o.initial_conf, "pod-0.svc:8101", NULL), 0);
    assert_int_equal(rk_endpoint_parse(&o.listen, "127.0.0.6:8101", NULL), 0);
    rk_peer_id_t self;
    assert_int_equal(rk_peer_id_parse(&self, "pod-0.svc:8101", NULL), 0);
    rk_status_t err;
    rk_group_service_t *svc = rk_group_service_new("g", &self, &o, &err);
    assert_non_null(svc);
    rk_node_t *n = rk_group_service_start(svc, &err);
    if (n == NULL)
        fail_msg("start with listen 127.0.0.6:8101: %s", err.msg);

    uv_loop_t loop;
    reach_t r = {0};
    uv_loop_init(&loop);
    rpc_client_t *c = client(&loop, &r);
    rpc_channel_connect(rpc_client_channel(c, "127.0.0.6:8101", &err));
    assert_true(run_until_count(&loop, &r.up, 1, 10000));
    close_all(&loop, c, NULL, NULL);
    for (int i = 0; i < 1000 && !rk_node_is_leader(n); i++)
        uv_sleep(10);
    assert_true(rk_node_is_leader(n)); /* a one-voter group elects itself */

    rk_group_service_shutdown(svc);
    rk_group_service_join(svc);
    rk_group_service_free(svc);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void listen_option_is_validated(void **state)
{
    (void)state;
    rk_node_options_t o;
    rk_state_machine_t sm = {0};
    rk_status_t err;
    rk_node_options_init(&o);
    o.fsm = &sm;
    o.data_path = "/nonexistent";
    assert_int_equal(rk_node_options_validate(&o, &err), 0); /* empty: bind the peer id */
    assert_int_equal(rk_endpoint_parse(&o.listen, "0.0.0.0:8101", NULL), 0);
    assert_int_equal(rk_node_options_validate(&o, &err), 0);
    o.listen.port = 0;
    assert_int_equal(rk_node_options_validate(&o, &err), RK_EINVAL);
    assert_non_null(strstr(err.msg, "listen"));
    snprintf(o.listen.host, sizeof o.listen.host, "bad_name");
    o.listen.port = 1;
    assert_int_equal(rk_node_options_validate(&o, &err), RK_EINVAL);
    assert_non_null(strstr(err.msg, "listen"));
}

int main(void)
{
    if (enter_private_namespaces() != 0)
        return 1;
    rk_log_set_level(RK_LOG_INFO);
    rk_log_set_sink(sink, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(name_is_resolved_again_on_every_reconnect),
        cmocka_unit_test(unresolvable_name_is_unreachable_until_it_appears),
        cmocka_unit_test(name_with_a_dead_address_is_reached_at_the_other),
        cmocka_unit_test(ipv6_literal_and_ipv6_name_are_reached),
        cmocka_unit_test(bad_host_name_is_refused_at_channel_creation),
        cmocka_unit_test(listen_name_is_resolved_at_start),
        cmocka_unit_test(group_service_binds_listen_while_its_name_does_not_resolve),
        cmocka_unit_test(listen_option_is_validated),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(hosts_path);
    return rc;
}
