/* counter-server: JRaft's counter example. A replicated 64-bit counter:
 * incrementAndGet goes through rk_node_apply, get through
 * rk_node_read_index, and the value is saved in snapshots.
 *
 *   counter-server --conf conf/counter/n1.conf [flags, see --help]
 */
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "examples/common/app_conf.h"
#include "examples/counter/counter.h"
#include "raftkit/log.h"
#include "raftkit/node.h"

typedef struct counter_sm {
    rk_state_machine_t base;
    _Atomic int64_t value; /* written on the FSM thread, read anywhere */
    rk_node_t *_Atomic node;
    const char *group;
} counter_sm_t;

/* A request in flight; result is filled in by on_apply. */
typedef struct req {
    rk_closure_t done;
    rk_read_index_closure_t read_done;
    rk_rpc_call_t *call;
    counter_sm_t *sm;
    int64_t result;
} req_t;

static void reply(rk_rpc_call_t *call, counter_sm_t *sm, int code, int64_t value)
{
    uint8_t buf[COUNTER_RESP_MIN + RK_PEER_ID_STRLEN];
    int32_t c = code;
    size_t len = COUNTER_RESP_MIN;
    memcpy(buf, &c, 4);
    counter_put64(buf + 4, value);
    rk_peer_id_t leader;
    if (code == RK_ENOTLEADER && sm->node != NULL && rk_node_leader_id(sm->node, &leader) == 0)
        len += (size_t)rk_peer_id_format(&leader, (char *)buf + len, RK_PEER_ID_STRLEN);
    rk_rpc_call_reply(call, buf, len);
}

static void on_apply(rk_state_machine_t *base, rk_iterator_t *it)
{
    counter_sm_t *sm = (counter_sm_t *)base;
    for (; rk_iterator_valid(it); rk_iterator_next(it)) {
        size_t len;
        const uint8_t *d = rk_iterator_data(it, &len);
        if (len != 8)
            continue;
        int64_t v = atomic_load(&sm->value) + counter_get64(d);
        atomic_store(&sm->value, v);
        rk_closure_t *done = rk_iterator_done(it);
        if (done != NULL)
            rk_container_of(done, req_t, done)->result = v;
    }
}

static void on_snapshot_save(rk_state_machine_t *base, rk_snapshot_writer_t *w, rk_closure_t *done)
{
    counter_sm_t *sm = (counter_sm_t *)base;
    char path[1024];
    rk_status_t st;
    rk_status_clear(&st);
    snprintf(path, sizeof path, "%s/counter", rk_snapshot_writer_path(w));
    FILE *f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%" PRId64 "\n", atomic_load(&sm->value)) < 0 || fclose(f) != 0)
        rk_status_set(&st, RK_EIO, "writing %s", path);
    else if (rk_snapshot_writer_add_file(w, "counter") != 0)
        rk_status_set(&st, RK_EIO, "adding %s", path);
    done->run(done, &st);
}

static int on_snapshot_load(rk_state_machine_t *base, rk_snapshot_reader_t *r)
{
    counter_sm_t *sm = (counter_sm_t *)base;
    char path[1024];
    snprintf(path, sizeof path, "%s/counter", rk_snapshot_reader_path(r));
    FILE *f = fopen(path, "r");
    int64_t v;
    int ok = f != NULL && fscanf(f, "%" SCNd64, &v) == 1;
    if (f != NULL)
        fclose(f);
    if (!ok)
        return RK_ECORRUPT;
    atomic_store(&sm->value, v);
    RK_INFO(sm->group, NULL, "snapshot loaded: value %" PRId64, v);
    return 0;
}

static void incr_done(rk_closure_t *self, const rk_status_t *st)
{
    req_t *r = rk_container_of(self, req_t, done);
    reply(r->call, r->sm, st->code, r->result);
    free(r);
}

static void get_done(rk_read_index_closure_t *self, const rk_status_t *st, int64_t index,
                     const void *ctx, size_t len)
{
    (void)index;
    (void)ctx;
    (void)len;
    req_t *r = rk_container_of(self, req_t, read_done);
    reply(r->call, r->sm, st->code, atomic_load(&r->sm->value));
    free(r);
}

static void handle(rk_rpc_call_t *call, const void *body, size_t len, void *arg)
{
    counter_sm_t *sm = arg;
    const uint8_t *b = body;
    rk_node_t *node = sm->node;
    if (len != COUNTER_REQ_LEN) {
        rk_rpc_call_fail(call, RK_EPROTO, "bad counter request");
        return;
    }
    if (node == NULL) {
        reply(call, sm, RK_EAGAIN, 0);
        return;
    }
    if (!rk_node_is_leader(node)) {
        reply(call, sm, RK_ENOTLEADER, 0);
        return;
    }
    req_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        reply(call, sm, RK_ENOMEM, 0);
        return;
    }
    r->call = call;
    r->sm = sm;
    int rc;
    if (b[0] == COUNTER_OP_INCR) {
        r->done.run = incr_done;
        rk_task_t t = {.data = b + 1, .len = 8, .done = &r->done, .expected_term = -1};
        rc = rk_node_apply(node, &t);
    } else {
        r->read_done.run = get_done;
        rc = rk_node_read_index(node, NULL, 0, &r->read_done);
    }
    if (rc != 0) {
        reply(call, sm, rc, 0);
        free(r);
    }
}

int main(int argc, char **argv)
{
    app_conf_t conf;
    char err[512];
    int rc =
        app_conf_parse(&conf, argc, argv, "counter-server", "counter", stdout, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc != 0) {
        fprintf(stderr, "counter-server: %s\n", err);
        return 2;
    }
    rk_log_level_t level;
    if (rk_log_level_parse(conf.log_level, &level) == 0)
        rk_log_set_level(level);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    mkdir(conf.data, 0755);

    counter_sm_t sm = {.group = conf.group};
    sm.base.on_apply = on_apply;
    sm.base.on_snapshot_save = on_snapshot_save;
    sm.base.on_snapshot_load = on_snapshot_load;
    rk_node_options_t opts;
    rk_node_options_init(&opts);
    opts.fsm = &sm.base;
    opts.data_path = conf.data;
    opts.initial_conf = conf.conf;
    opts.election_timeout_ms = conf.election_timeout_ms;
    opts.snapshot_interval_secs = conf.snapshot_interval_s;
    opts.admin_port = conf.admin_port;

    rk_status_t st;
    rk_server_t *server = rk_server_new(&conf.self.endpoint, &st);
    rk_rpc_server_t *rpc = NULL;
    rk_group_service_t *svc = NULL;
    int code = 1;
    if (server == NULL) {
        fprintf(stderr, "counter-server: cannot listen on %s: %s\n", conf.peer, st.msg);
        return 1;
    }
    if ((rpc = rk_rpc_server_attach(server, &st)) == NULL ||
        rk_rpc_server_register(rpc, COUNTER_METHOD, handle, &sm) != 0) {
        fprintf(stderr, "counter-server: registering the counter service: %s\n", st.msg);
        goto out;
    }
    if ((svc = rk_group_service_new_shared(conf.group, &conf.self, &opts, server, &st)) == NULL ||
        (sm.node = rk_group_service_start(svc, &st)) == NULL) {
        fprintf(stderr, "counter-server: %s\n", st.msg);
        goto out;
    }
    RK_INFO(conf.group, conf.peer, "counter-server up: peers %s, data %s", conf.peers, conf.data);
    int sig;
    sigwait(&sigs, &sig);
    code = 0;
out:
    if (svc != NULL) {
        rk_group_service_shutdown(svc);
        rk_group_service_join(svc);
        rk_group_service_free(svc);
    }
    rk_rpc_server_detach(rpc);
    rk_server_free(server);
    return code;
}
