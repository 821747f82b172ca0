/* counter-server: JRaft's counter example. A replicated 64-bit counter:
 * incrementAndGet goes through rk_node_apply, get through
 * rk_node_read_index, and the value is saved in snapshots.
 *
 *   counter-server --conf conf/counter/n1.conf [flags, see --help]
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/common/app_server.h"
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
    int rc = app_server_conf(&conf, argc, argv, "counter-server", "counter");
    if (rc >= 0)
        return rc;
    if (conf.shards != 1) {
        fprintf(stderr, "counter-server: shards must be 1: the counter is one group\n");
        return 2;
    }
    counter_sm_t sm = {.group = conf.group};
    sm.base.on_apply = on_apply;
    sm.base.on_snapshot_save = on_snapshot_save;
    sm.base.on_snapshot_load = on_snapshot_load;
    rk_state_machine_t *fsm = &sm.base;
    app_server_spec_t spec = {.prog = "counter-server",
                              .fsm = &fsm,
                              .method = COUNTER_METHOD,
                              .handler = handle,
                              .handler_arg = &sm,
                              .node = &sm.node};
    return app_server_run(&conf, &spec);
}
