/* Test support: a counter state machine and an in-process loopback cluster
 * (see cluster.h). */
#include "tests/node/cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "src/core/core_internal.h"
#include "src/node/node_internal.h"

void tc_msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- counter ---- */

static void c_apply(rk_state_machine_t *sm, rk_iterator_t *it)
{
    tc_counter_t *c = (tc_counter_t *)sm;
    for (; rk_iterator_valid(it); rk_iterator_next(it)) {
        size_t len = 0;
        const uint8_t *p = rk_iterator_data(it, &len);
        uint64_t v = 0;
        for (size_t i = 0; i < len && i < 8; i++)
            v |= (uint64_t)p[i] << (8 * i);
        atomic_fetch_add(&c->sum, v);
        atomic_fetch_add(&c->applied, 1);
        atomic_store(&c->last_index, (uint64_t)rk_iterator_index(it));
        if (c->apply_delay_us)
            usleep((useconds_t)c->apply_delay_us);
    }
}

static void c_leader_start(rk_state_machine_t *sm, int64_t term)
{
    (void)term;
    atomic_fetch_add(&((tc_counter_t *)sm)->leader_starts, 1);
}

static void c_leader_stop(rk_state_machine_t *sm, const rk_status_t *st)
{
    (void)st;
    atomic_fetch_add(&((tc_counter_t *)sm)->leader_stops, 1);
}

static void c_start_following(rk_state_machine_t *sm, const rk_leader_change_t *lc)
{
    (void)lc;
    atomic_fetch_add(&((tc_counter_t *)sm)->start_following, 1);
}

static void c_save(rk_state_machine_t *sm, rk_snapshot_writer_t *w, rk_closure_t *done)
{
    tc_counter_t *c = (tc_counter_t *)sm;
    char path[600];
    snprintf(path, sizeof(path), "%s/counter", rk_snapshot_writer_path(w));
    FILE *f = fopen(path, "w");
    rk_status_t st;
    rk_status_clear(&st);
    if (f == NULL) {
        rk_status_set(&st, RK_EIO, "open %s", path);
    } else {
        fprintf(f, "%llu %llu\n", (unsigned long long)atomic_load(&c->sum),
                (unsigned long long)atomic_load(&c->applied));
        fclose(f);
        rk_snapshot_writer_add_file(w, "counter");
    }
    atomic_fetch_add(&c->saves, 1);
    done->run(done, &st);
}

static int c_load(rk_state_machine_t *sm, rk_snapshot_reader_t *r)
{
    tc_counter_t *c = (tc_counter_t *)sm;
    char path[600];
    snprintf(path, sizeof(path), "%s/counter", rk_snapshot_reader_path(r));
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return RK_EIO;
    unsigned long long s = 0, a = 0;
    int k = fscanf(f, "%llu %llu", &s, &a);
    fclose(f);
    if (k != 2)
        return RK_ECORRUPT;
    atomic_store(&c->sum, s);
    atomic_store(&c->applied, a);
    atomic_store(&c->last_index, (uint64_t)rk_snapshot_reader_index(r));
    atomic_fetch_add(&c->loads, 1);
    return 0;
}

static void c_error(rk_state_machine_t *sm, const rk_status_t *st)
{
    (void)st;
    atomic_fetch_add(&((tc_counter_t *)sm)->errors, 1);
}

static void c_shutdown(rk_state_machine_t *sm)
{
    atomic_fetch_add(&((tc_counter_t *)sm)->shutdowns, 1);
}

void tc_counter_init(tc_counter_t *c)
{
    memset(c, 0, sizeof(*c));
    c->sm.on_apply = c_apply;
    c->sm.on_leader_start = c_leader_start;
    c->sm.on_leader_stop = c_leader_stop;
    c->sm.on_snapshot_save = c_save;
    c->sm.on_snapshot_load = c_load;
    c->sm.on_start_following = c_start_following;
    c->sm.on_error = c_error;
    c->sm.on_shutdown = c_shutdown;
}

static void req_run(rk_closure_t *self, const rk_status_t *st)
{
    tc_req_t *r = (tc_req_t *)self;
    atomic_store(&r->code, st->code);
    atomic_fetch_add(&r->runs, 1);
}

void tc_req_init(tc_req_t *r)
{
    r->closure.run = req_run;
    atomic_store(&r->runs, 0);
    atomic_store(&r->code, 1);
}

/* ---- cluster ---- */

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

void tc_cluster_init(tc_cluster_t *c, const char *group, int n, int n_voters,
                     const rk_node_options_t *opts)
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    snprintf(c->group, sizeof(c->group), "%s", group);
    snprintf(c->root, sizeof(c->root), "/tmp/rk_node_test_XXXXXX");
    if (mkdtemp(c->root) == NULL)
        abort();
    rk_configuration_init(&c->conf);
    for (int i = 0; i < n; i++) {
        tc_node_t *t = &c->nodes[i];
        memset(&t->id, 0, sizeof(t->id));
        snprintf(t->id.endpoint.host, sizeof(t->id.endpoint.host), "127.0.0.1");
        t->id.endpoint.port = free_port();
        t->id.priority = RK_PRIORITY_DISABLED;
        snprintf(t->dir, sizeof(t->dir), "%s/n%d", c->root, i);
        if (i < n_voters)
            rk_configuration_add_peer(&c->conf, &t->id);
    }
    if (opts)
        c->base_opts = *opts;
    else {
        rk_node_options_init(&c->base_opts);
        c->base_opts.election_timeout_ms = 300;
        c->base_opts.raft_options.sync = false;
    }
}

int tc_start(tc_cluster_t *c, int i, bool empty_conf)
{
    tc_node_t *t = &c->nodes[i];
    tc_counter_init(&t->fsm);
    rk_node_options_t o = c->base_opts;
    o.fsm = &t->fsm.sm;
    o.data_path = t->dir;
    if (!empty_conf)
        o.initial_conf = c->conf;
    else
        rk_configuration_init(&o.initial_conf);
    rk_status_t st;
    t->svc = t->server ? rk_group_service_new_shared(c->group, &t->id, &o, t->server, &st)
                       : rk_group_service_new(c->group, &t->id, &o, &st);
    if (t->svc == NULL)
        return st.code;
    t->node = rk_group_service_start(t->svc, &st);
    if (t->node == NULL) {
        fprintf(stderr, "start %d: %s\n", i, st.msg);
        rk_group_service_free(t->svc);
        t->svc = NULL;
        return st.code;
    }
    return 0;
}

void tc_stop(tc_cluster_t *c, int i)
{
    tc_node_t *t = &c->nodes[i];
    if (t->svc == NULL)
        return;
    rk_group_service_shutdown(t->svc);
    rk_group_service_join(t->svc);
    rk_group_service_free(t->svc);
    t->svc = NULL;
    t->node = NULL;
}

void tc_cluster_stop_all(tc_cluster_t *c)
{
    for (int i = 0; i < c->n; i++)
        if (c->nodes[i].svc)
            rk_group_service_shutdown(c->nodes[i].svc);
    for (int i = 0; i < c->n; i++)
        tc_stop(c, i);
}

void tc_cluster_destroy(tc_cluster_t *c)
{
    tc_cluster_stop_all(c);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->root);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", c->root);
}

int tc_wait_leader(tc_cluster_t *c, int ms)
{
    for (int waited = 0; waited <= ms; waited += 10) {
        int leader = -1, count = 0;
        for (int i = 0; i < c->n; i++) {
            if (c->nodes[i].node && rk_node_is_leader(c->nodes[i].node)) {
                leader = i;
                count++;
            }
        }
        if (count == 1)
            return leader;
        tc_msleep(10);
    }
    return -1;
}

bool tc_wait(bool (*cond)(void *), void *arg, int ms)
{
    for (int waited = 0; waited < ms; waited += 5) {
        if (cond(arg))
            return true;
        tc_msleep(5);
    }
    return cond(arg);
}

typedef struct applied_arg {
    tc_cluster_t *c;
    int64_t index;
} applied_arg_t;

static bool all_applied(void *p)
{
    applied_arg_t *a = p;
    for (int i = 0; i < a->c->n; i++)
        if (a->c->nodes[i].node && rk_node_applied_index(a->c->nodes[i].node) < a->index)
            return false;
    return true;
}

bool tc_wait_applied(tc_cluster_t *c, int64_t index, int ms)
{
    applied_arg_t a = {c, index};
    return tc_wait(all_applied, &a, ms);
}

int tc_apply(tc_cluster_t *c, int i, uint64_t value, tc_req_t *req, int64_t expected_term)
{
    uint8_t buf[8];
    for (int k = 0; k < 8; k++)
        buf[k] = (uint8_t)(value >> (8 * k));
    rk_task_t task = {
        .data = buf, .len = 8, .done = req ? &req->closure : NULL, .expected_term = expected_term};
    return rk_node_apply(c->nodes[i].node, &task);
}

typedef struct many_arg {
    tc_req_t *reqs;
    int count;
} many_arg_t;

static bool all_ran(void *p)
{
    many_arg_t *a = p;
    for (int i = 0; i < a->count; i++)
        if (atomic_load(&a->reqs[i].runs) == 0)
            return false;
    return true;
}

int tc_apply_many(tc_cluster_t *c, int leader, int count)
{
    tc_req_t *reqs = calloc((size_t)count, sizeof(*reqs));
    int accepted = 0;
    for (int i = 0; i < count; i++) {
        tc_req_init(&reqs[i]);
        int rc;
        while ((rc = tc_apply(c, leader, 1, &reqs[i], -1)) == RK_EBUSY)
            tc_msleep(1);
        if (rc != 0)
            atomic_store(&reqs[i].runs, 1), atomic_store(&reqs[i].code, rc);
        else
            accepted++;
    }
    many_arg_t a = {reqs, count};
    tc_wait(all_ran, &a, 20000);
    int ok = 0;
    for (int i = 0; i < count; i++) {
        if (atomic_load(&reqs[i].runs) > 1) {
            fprintf(stderr, "closure %d ran %d times\n", i, atomic_load(&reqs[i].runs));
            abort();
        }
        if (atomic_load(&reqs[i].runs) == 1 && atomic_load(&reqs[i].code) == 0)
            ok++;
    }
    free(reqs);
    return ok;
}

typedef struct ticks_arg {
    rk_node_t *n;
    uint64_t ticks;
} ticks_arg_t;

static void ticks_on_loop(void *p)
{
    ticks_arg_t *a = p;
    a->ticks = a->n->core != NULL ? a->n->core->ticks : 0;
}

uint64_t tc_node_ticks(rk_node_t *n)
{
    ticks_arg_t a = {.n = n};
    if (node_rt_call(n->rt, ticks_on_loop, &a) != 0) {
        fprintf(stderr, "tc_node_ticks: the node's loop is gone\n");
        abort();
    }
    return a.ticks;
}
