/* Commands on the loop thread: what rk_node_read_index, rk_node_snapshot,
 * the membership calls and a finished snapshot queue (node_post_cmd) is run
 * here against the core, and every command ends with its closure posted to
 * the FSM thread exactly once.
 */
#include <stdlib.h>

#include "src/node/node_internal.h"

void node_fail_cmd(rk_node_t *n, node_cmd_t *c, int code, const char *msg)
{
    switch (c->type) {
    case CMD_READ:
        node_post_read_result(n, c, code, 0, msg);
        return;
    case CMD_CHANGE_CONF:
        fsm_post_closure(n, c->u.change.done, code, msg);
        break;
    case CMD_SNAPSHOT:
        fsm_post_closure(n, c->u.snapshot.done, code, msg);
        break;
    case CMD_SNAPSHOT_DONE:
        break;
    }
    free(c);
}

void node_post_read_result(rk_node_t *n, node_cmd_t *c, int code, uint64_t index, const char *msg)
{
    fsm_item_t *it = c->u.read.item; /* allocated with c: the closure always runs */
    it->type = FSM_READ;
    it->read_done = c->u.read.done;
    it->ctx = c->u.read.ctx;
    it->ctx_len = c->u.read.ctx_len;
    it->t0_ns = c->u.read.t0_ns;
    if (code == 0) {
        it->a = index;
    } else { /* a failed read: st carries the error */
        it->a = 0;
        rk_status_set(&it->st, code, "%s", msg ? msg : "");
    }
    free(c);
    fsm_post(n, it);
}

/* The configuration c asks for, derived from cur. Returns 0, RK_EEXIST or
 * RK_ENOTFOUND (a peer already in, or not in, the configuration). */
static int change_target(const node_cmd_t *c, const rk_configuration_t *cur, rk_configuration_t *t)
{
    *t = *cur;
    int rc = 0;
    switch (c->u.change.op) {
    case CONF_OP_CHANGE_PEERS:
        *t = c->u.change.conf;
        break;
    case CONF_OP_ADD_PEER:
        rc = rk_configuration_add_peer(t, &c->u.change.peers[0]);
        break;
    case CONF_OP_REMOVE_PEER:
        rc = rk_configuration_remove_peer(t, &c->u.change.peers[0]);
        break;
    case CONF_OP_ADD_LEARNERS:
        for (size_t i = 0; i < c->u.change.n_peers && rc == 0; i++)
            rc = rk_configuration_add_learner(t, &c->u.change.peers[i]);
        break;
    case CONF_OP_REMOVE_LEARNERS:
        for (size_t i = 0; i < c->u.change.n_peers && rc == 0; i++)
            rc = rk_configuration_remove_learner(t, &c->u.change.peers[i]);
        break;
    case CONF_OP_RESET_LEARNERS:
        t->n_learners = 0;
        for (size_t i = 0; i < c->u.change.n_peers && rc == 0; i++)
            rc = rk_configuration_add_learner(t, &c->u.change.peers[i]);
        break;
    }
    return rc;
}

/* Why the leader cannot start a change now (NULL: it can). */
static const char *change_refusal(rk_node_t *n, const core_conf_t *cur, int *code)
{
    core_status_t cs;
    core_get_status(n->core, &cs);
    *code = RK_ECONFCHANGE;
    if (cs.role != CORE_LEADER) {
        *code = RK_ENOTLEADER;
        return "not the leader";
    }
    if (n->conf_cmd != NULL || catchup_busy(n))
        return "a configuration change is in progress";
    if (cur->joint)
        return "a joint configuration is in progress";
    return NULL;
}

static void run_change_conf(rk_node_t *n, node_cmd_t *c)
{
    uint64_t ci;
    const core_conf_t *cur = core_get_conf(n->core, &ci);
    int rc;
    const char *why = change_refusal(n, cur, &rc);
    if (why != NULL) {
        node_fail_cmd(n, c, rc, why);
        return;
    }
    rk_configuration_t t;
    if ((rc = change_target(c, &cur->cur, &t)) != 0) {
        node_fail_cmd(n, c, rc,
                      rc == RK_EEXIST ? "peer already in the configuration"
                                      : "peer not in the configuration");
        return;
    }
    if (rk_configuration_equal(&t, &cur->cur)) {
        fsm_post_closure(n, c->u.change.done, 0, NULL);
        free(c);
        return;
    }
    /* New voters catch up as learners first (thesis 4.2.1). */
    rc = catchup_begin(n, c, cur, &t);
    if (rc <= 0) {
        if (rc < 0)
            node_fail_cmd(n, c, rc, "change refused");
        return;
    }
    uint64_t idx = 0;
    if ((rc = core_change_conf(n->core, &t, &idx)) != 0) {
        node_fail_cmd(n, c, rc, "change refused");
        return;
    }
    n->conf_cmd = c;
    n->conf_cmd_index = idx;
}

/* Asks the core for a read index; c waits in n->reads for the answer. */
static void run_read(rk_node_t *n, node_cmd_t *c)
{
    c->u.read.id = ++n->next_read_id;
    int rc = core_read_index(n->core, c->u.read.id);
    if (rc != 0) {
        node_fail_cmd(n, c, rc, rc == RK_ENOLEADER ? "no leader known" : "read refused");
        return;
    }
    c->u.read.deadline = node_now_ms(n) + 3 * (uint64_t)n->opts.election_timeout_ms;
    c->next = n->reads;
    n->reads = c;
}

void node_run_cmd(rk_node_t *n, node_cmd_t *c)
{
    if (n->stopping) {
        node_fail_cmd(n, c, RK_ESHUTDOWN, "node is shutting down");
        return;
    }
    switch (c->type) {
    case CMD_CHANGE_CONF:
        run_change_conf(n, c);
        break;
    case CMD_SNAPSHOT:
        snap_exec_maybe_start(n, c->u.snapshot.done, true);
        free(c);
        break;
    case CMD_READ:
        run_read(n, c);
        break;
    case CMD_SNAPSHOT_DONE:
        n->snapshot_running = false;
        if (c->u.saved.status == 0 && c->u.saved.index > 0)
            snap_after_save(n, c->u.saved.index, c->u.saved.term, &c->u.saved.conf);
        free(c);
        break;
    }
}

void node_on_snapshot_saved(rk_node_t *n, uint64_t index, uint64_t term, const core_conf_t *conf,
                            int status)
{
    node_cmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->type = CMD_SNAPSHOT_DONE;
    c->u.saved.index = index;
    c->u.saved.term = term;
    if (conf)
        c->u.saved.conf = *conf;
    c->u.saved.status = status;
    if (node_post_cmd(n, c) != 0)
        free(c); /* the node stopped: nothing is left to do with it */
}
