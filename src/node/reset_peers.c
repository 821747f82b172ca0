/* rk_node_reset_peers: the operator forces a configuration on this node
 * (JRaft's resetPeers, for a group that lost its quorum). The core is
 * rebuilt from the durable state with the forced configuration, which is
 * saved first (forced_conf.c) so that a restart keeps it until the log
 * carries it; as leader the node then proposes it (update.c).
 */
#include <string.h>

#include "raftkit/log.h"
#include "src/node/node_internal.h"

typedef struct reset_arg {
    rk_node_t *n;
    const rk_configuration_t *conf;
    int rc;
} reset_arg_t;

/* The core's initial state: n's durable state as the core reports it,
 * with conf in effect from the last index on. */
static void reset_init(rk_node_t *n, const core_status_t *cs, const rk_configuration_t *conf,
                       core_init_t *in)
{
    memset(in, 0, sizeof(*in));
    node_core_options(n, &in->opts);
    in->opts.seed = uv_hrtime();
    in->hs.term = cs->term;
    in->hs.vote = cs->vote;
    in->hs.commit = cs->commit;
    in->snapshot.index = n->last_snapshot_index;
    in->snapshot.term = n->last_snapshot_term;
    in->compact_index = cs->first_index - 1;
    if (in->compact_index > 0 &&
        log_store_term(n->store, in->compact_index, &in->compact_term, NULL))
        in->compact_term = 0;
    in->last_index = cs->last_index;
    in->last_term = cs->last_term;
    node_conf_to_core(conf, &in->conf);
    in->prev_conf = in->conf;
    in->conf_index = cs->last_index;
    in->snapshot.conf = in->conf;
    in->applied = cs->applied;
}

/* Loop thread. Only when no write is in flight (else RK_EAGAIN), so the
 * durable state is the whole state. */
static void reset_on_loop(void *p)
{
    reset_arg_t *a = p;
    rk_node_t *n = a->n;
    if (n->stopping || n->core == NULL) {
        a->rc = RK_ESHUTDOWN;
        return;
    }
    if (n->persist_head != NULL) {
        a->rc = RK_EAGAIN;
        return;
    }
    core_status_t cs;
    core_get_status(n->core, &cs);
    core_init_t in;
    reset_init(n, &cs, a->conf, &in);
    core_storage_t cst = node_core_storage(n);
    int err = 0;
    core_t *c = core_new(&in, &cst, &err);
    if (c == NULL) {
        a->rc = err ? err : RK_ENOMEM;
        return;
    }
    /* Durable before we answer: a restart keeps the forced configuration. */
    if ((a->rc = forced_conf_save(n, &in.conf, in.conf_index)) != 0) {
        core_free(c);
        return;
    }
    catchup_abort(n, RK_ELEADERLOST, "peers reset");
    if (cs.role == CORE_LEADER) {
        pend_fail_above(n, cs.commit, RK_ELEADERLOST, "peers reset");
        rk_status_t st;
        rk_status_set(&st, RK_ELEADERLOST, "peers reset");
        fsm_post_simple(n, FSM_LEADER_STOP, cs.term, &st);
    }
    core_free(n->core);
    n->core = c;
    n->reset_pending_conf = true;
    RK_WARN(n->group, n->self_str, "peers reset by the operator; committed data may be lost");
    a->rc = 0;
    node_drive(n);
}

int rk_node_reset_peers(rk_node_t *n, const rk_configuration_t *conf)
{
    if (n == NULL || conf == NULL || conf->n_peers == 0)
        return RK_EINVAL;
    rk_status_t st;
    if (rk_configuration_validate(conf, &st) != 0)
        return RK_EINVAL;
    for (int tries = 0; tries < 1000; tries++) {
        reset_arg_t a = {.n = n, .conf = conf};
        if (node_rt_call(n->rt, reset_on_loop, &a) != 0)
            return RK_ESHUTDOWN;
        if (a.rc != RK_EAGAIN)
            return a.rc;
        uv_sleep(2);
    }
    return RK_EBUSY;
}
