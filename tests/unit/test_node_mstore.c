/* Many groups, one storage engine: the groups of a server with a data_path
 * share one log environment (one data.mdb, one journal) and one writer; a
 * group's own directory holds only what it needs, when it needs it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "raftkit/log.h"
#include "raftkit/node.h"
#include "src/core/core.h"
#include "storage/forced_conf_store.h"
#include "tests/node/cluster.h"
#include "tools/common/storage_util.h"

/* ---- fault injection: fdatasync / fsync of a file named data.mdb ---- */

static volatile int fail_data_sync; /* errno to fail with, 0: none */

static bool is_data_mdb(int fd)
{
    char link[64], p[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, p, sizeof p - 1);
    p[n > 0 ? n : 0] = '\0';
    n = (ssize_t)strlen(p);
    return n >= 9 && strcmp(p + n - 9, "/data.mdb") == 0;
}

int fdatasync(int fd)
{
    if (fail_data_sync && is_data_mdb(fd))
        return errno = fail_data_sync, -1;
    return (int)syscall(SYS_fdatasync, fd);
}

int fsync(int fd)
{
    if (fail_data_sync && is_data_mdb(fd))
        return errno = fail_data_sync, -1;
    return (int)syscall(SYS_fsync, fd);
}

/* ---- a server hosting single-member groups ---- */

#define MAX_GROUPS 4

typedef struct host {
    char root[256];
    rk_peer_id_t self;
    rk_server_t *server;
    tc_counter_t fsm[MAX_GROUPS];
    rk_group_service_t *svc[MAX_GROUPS];
    rk_node_t *node[MAX_GROUPS];
} host_t;

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void host_init(host_t *h)
{
    memset(h, 0, sizeof *h);
    char *root = tu_mkdtemp("mstore");
    snprintf(h->root, sizeof h->root, "%s", root);
    free(root);
    char id[64];
    snprintf(id, sizeof id, "127.0.0.1:%u", free_port());
    assert_int_equal(rk_peer_id_parse(&h->self, id, NULL), 0);
}

/* server_dir: the server's data_path (NULL: none). */
static void host_open(host_t *h, const char *server_dir)
{
    rk_node_options_t so;
    rk_node_options_init(&so);
    so.data_path = server_dir;
    rk_status_t st;
    h->server = rk_server_new_opts(&h->self.endpoint, &so, &st);
    assert_non_null(h->server);
}

/* Starts group i as a one-member group; data_path may be NULL. Returns 0 or
 * the error of the start. */
static int host_start(host_t *h, int i, const char *group, const char *data_path)
{
    rk_node_options_t o;
    rk_node_options_init(&o);
    tc_counter_init(&h->fsm[i]);
    o.fsm = &h->fsm[i].sm;
    o.data_path = data_path;
    o.election_timeout_ms = 100;
    o.snapshot_interval_secs = 0;
    o.initial_conf.n_peers = 1;
    o.initial_conf.peers[0] = h->self;
    rk_status_t st;
    h->svc[i] = rk_group_service_new_shared(group, &h->self, &o, h->server, &st);
    assert_non_null(h->svc[i]);
    h->node[i] = rk_group_service_start(h->svc[i], &st);
    if (h->node[i] == NULL) {
        rk_group_service_free(h->svc[i]);
        h->svc[i] = NULL;
        return st.code;
    }
    return 0;
}

static void host_stop(host_t *h, int i)
{
    if (h->svc[i] == NULL)
        return;
    rk_group_service_shutdown(h->svc[i]);
    rk_group_service_join(h->svc[i]);
    rk_group_service_free(h->svc[i]);
    h->svc[i] = NULL;
    h->node[i] = NULL;
}

static void host_close(host_t *h)
{
    for (int i = 0; i < MAX_GROUPS; i++)
        host_stop(h, i);
    rk_server_free(h->server);
    h->server = NULL;
}

static bool is_leader(void *arg)
{
    return rk_node_is_leader(arg);
}

/* Applies value to group i (its leader) and waits until it is applied. */
static void apply(host_t *h, int i, uint64_t value)
{
    assert_true(tc_wait(is_leader, h->node[i], 10000));
    tc_req_t req;
    tc_req_init(&req);
    uint8_t b[8];
    for (int k = 0; k < 8; k++)
        b[k] = (uint8_t)(value >> (8 * k));
    rk_task_t t = {.data = b, .len = 8, .done = &req.closure, .expected_term = -1};
    rk_node_apply(h->node[i], &t);
    for (int k = 0; k < 10000 && atomic_load(&req.runs) == 0; k++)
        tc_msleep(1);
    assert_int_equal(atomic_load(&req.runs), 1);
    assert_int_equal(atomic_load(&req.code), 0);
}

static bool exists(const char *root, const char *rel)
{
    char p[PATH_MAX];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", root, rel);
    return stat(p, &sb) == 0;
}

/* Files named name anywhere under dir. */
static int count_named(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (stat(p, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode))
            n += count_named(p, name);
        else if (strcmp(de->d_name, name) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* ---- tests ---- */

/* Three groups on a server with a data_path write one data.mdb and one
 * journal; a restart reopens all of them with their logs (the counter is
 * rebuilt by replaying each group's own log). No group has a directory of
 * its own until it needs one. */
static void groups_share_one_environment_and_restart_with_their_logs(void **state)
{
    (void)state;
    host_t h;
    host_init(&h);
    const char *names[3] = {"alpha", "beta", "g/../x"};
    host_open(&h, h.root);
    for (int i = 0; i < 3; i++)
        assert_int_equal(host_start(&h, i, names[i], NULL), 0);
    for (int i = 0; i < 3; i++)
        for (uint64_t v = 1; v <= 3; v++)
            apply(&h, i, v * (uint64_t)(i + 1) * 10);
    assert_int_equal(count_named(h.root, "data.mdb"), 1);
    assert_int_equal(count_named(h.root, "journal.wal"), 1);
    assert_true(exists(h.root, "log/data.mdb"));
    assert_false(exists(h.root, "groups")); /* nothing needed one yet */
    host_close(&h);

    host_open(&h, h.root);
    for (int i = 0; i < 3; i++)
        assert_int_equal(host_start(&h, i, names[i], NULL), 0);
    for (int i = 0; i < 3; i++) {
        apply(&h, i, 1); /* once it leads, everything before is applied */
        assert_int_equal(atomic_load(&h.fsm[i].sum), 60 * (uint64_t)(i + 1) + 1);
    }
    assert_int_equal(count_named(h.root, "data.mdb"), 1);
    host_close(&h);
    tu_rm_rf(h.root);
}

/* Two groups of one server may not use the same group directory, nor the
 * same group id in one environment: the second start fails with RK_EBUSY
 * and the first carries on. */
static void a_directory_or_group_taken_twice_is_refused(void **state)
{
    (void)state;
    host_t h;
    host_init(&h);
    char own[PATH_MAX];
    snprintf(own, sizeof own, "%s/own", h.root);
    host_open(&h, h.root);
    assert_int_equal(host_start(&h, 0, "a", own), 0);
    assert_int_equal(host_start(&h, 1, "b", own), RK_EBUSY);  /* same group directory */
    assert_int_equal(host_start(&h, 2, "a", NULL), RK_EBUSY); /* same id, same environment */
    apply(&h, 0, 5);
    host_close(&h);

    /* a server without data_path: each group's log is under its own
     * data_path, and two groups naming one directory are refused */
    host_open(&h, NULL);
    assert_int_equal(host_start(&h, 0, "a", own), 0);
    assert_int_equal(host_start(&h, 1, "b", own), RK_EBUSY);
    apply(&h, 0, 5);
    assert_int_equal(atomic_load(&h.fsm[0].sum), 5); /* a log of its own, new */
    host_close(&h);
    tu_rm_rf(h.root);
}

static void snapshot_done(rk_closure_t *c, const rk_status_t *st)
{
    tc_req_t *r = (tc_req_t *)c;
    atomic_store(&r->code, st->code);
    atomic_fetch_add(&r->runs, 1);
}

/* A group's snapshot directory (and its group directory) appears with its
 * first snapshot, not when it starts. */
static void no_snapshot_directory_before_the_first_snapshot(void **state)
{
    (void)state;
    host_t h;
    host_init(&h);
    host_open(&h, h.root);
    assert_int_equal(host_start(&h, 0, "s", NULL), 0);
    apply(&h, 0, 7);
    assert_false(exists(h.root, "groups/s"));
    tc_req_t req;
    tc_req_init(&req);
    req.closure.run = snapshot_done;
    assert_int_equal(rk_node_snapshot(h.node[0], &req.closure), 0);
    for (int k = 0; k < 10000 && atomic_load(&req.runs) == 0; k++)
        tc_msleep(1);
    assert_int_equal(atomic_load(&req.code), 0);
    assert_true(exists(h.root, "groups/s/snapshot"));
    host_close(&h);

    /* and a restart loads it from there */
    host_open(&h, h.root);
    assert_int_equal(host_start(&h, 0, "s", NULL), 0);
    apply(&h, 0, 1);
    assert_int_equal(atomic_load(&h.fsm[0].loads), 1);
    assert_int_equal(atomic_load(&h.fsm[0].sum), 8);
    host_close(&h);
    tu_rm_rf(h.root);
}

static bool in_error(void *arg)
{
    return rk_node_state(arg) == RK_STATE_ERROR;
}

/* The shared environment fails for good (its checkpoint cannot sync
 * data.mdb): every group on it enters the error state, also one that
 * writes nothing. */
static void a_failed_environment_puts_every_group_in_error(void **state)
{
    (void)state;
    host_t h;
    host_init(&h);
    host_open(&h, h.root);
    assert_int_equal(host_start(&h, 0, "busy", NULL), 0);
    assert_int_equal(host_start(&h, 1, "idle", NULL), 0);
    apply(&h, 0, 1);
    apply(&h, 1, 1);
    fail_data_sync = EIO;
    /* writes make a checkpoint due; it fails. (A task of a group in error
     * completes only at shutdown: each closure lives until then.) */
    static tc_req_t req[50];
    for (int k = 0; k < 50 && rk_node_state(h.node[0]) != RK_STATE_ERROR; k++) {
        tc_req_init(&req[k]);
        uint8_t b[8] = {1};
        rk_task_t t = {.data = b, .len = 8, .done = &req[k].closure, .expected_term = -1};
        rk_node_apply(h.node[0], &t);
        for (int j = 0; j < 1000 && atomic_load(&req[k].runs) == 0; j++)
            tc_msleep(1);
        tc_msleep(20);
    }
    bool busy_failed = tc_wait(in_error, h.node[0], 10000);
    bool idle_failed = tc_wait(in_error, h.node[1], 10000);
    fail_data_sync = 0; /* the environment refuses writes for good anyway */
    assert_true(busy_failed);
    assert_true(idle_failed);
    assert_true(atomic_load(&h.fsm[1].errors) >= 1);
    host_close(&h);
    tu_rm_rf(h.root);
}

/* A configuration forced by reset_peers is kept in the group's directory;
 * one written by the previous version in <data_path>/log is still used. */
static void forced_configuration_in_the_old_place_is_still_read(void **state)
{
    (void)state;
    host_t h;
    host_init(&h);
    char own[PATH_MAX], old[PATH_MAX + 8];
    snprintf(own, sizeof own, "%s/own", h.root);
    snprintf(old, sizeof old, "%s/log", own);
    host_open(&h, NULL);
    assert_int_equal(host_start(&h, 0, "f", own), 0);
    apply(&h, 0, 1);
    host_close(&h);

    /* what reset_peers wrote before the upgrade: this node and another */
    core_conf_t cc;
    memset(&cc, 0, sizeof cc);
    cc.cur.n_peers = 2;
    cc.cur.peers[0] = h.self;
    assert_int_equal(rk_peer_id_parse(&cc.cur.peers[1], "127.0.0.1:1", NULL), 0);
    buf_t *b = core_conf_encode(&cc);
    assert_non_null(b);
    rk_status_t st;
    assert_int_equal(forced_conf_store_save(old, 2, b->data, b->len, &st), 0);
    buf_unref(b);

    host_open(&h, NULL);
    assert_int_equal(host_start(&h, 0, "f", own), 0);
    rk_configuration_t peers;
    rk_node_list_peers(h.node[0], &peers);
    assert_int_equal(peers.n_peers, 2);
    host_close(&h);
    tu_rm_rf(h.root);
}

int main(void)
{
    rk_log_set_level(RK_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(groups_share_one_environment_and_restart_with_their_logs),
        cmocka_unit_test(a_directory_or_group_taken_twice_is_refused),
        cmocka_unit_test(no_snapshot_directory_before_the_first_snapshot),
        cmocka_unit_test(a_failed_environment_puts_every_group_in_error),
        cmocka_unit_test(forced_configuration_in_the_old_place_is_still_read),
    };
    return cmocka_run_group_tests_name("node_mstore", tests, NULL, NULL);
}
