/* Starting a node: open its storage and recover the core's initial state
 * from it (hard state, newest snapshot, log bounds, configuration), bootstrap
 * a new member, repair what a crash may have left half done, then start the
 * node on an FSM executor and, on the loop, the core and the handles.
 */
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "src/node/node_internal.h"

void node_core_options(rk_node_t *n, core_options_t *o)
{
    core_options_init(o);
    o->self = n->self;
    o->self.priority = n->opts.election_priority;
    o->election_ticks = NODE_ELECTION_TICKS;
    o->heartbeat_ticks = 1;
    o->pre_vote = n->opts.raft_options.pre_vote;
    o->check_quorum = n->opts.raft_options.check_quorum;
    o->read_only = n->opts.raft_options.read_only_option == RK_READ_ONLY_LEASE_BASED
                       ? CORE_READ_LEASE
                       : CORE_READ_SAFE;
    /* JRaft: lease = election timeout * leader_lease_time_ratio / 100, in
     * whole ticks (at least one). */
    o->lease_ticks = o->election_ticks * (uint32_t)n->opts.leader_lease_time_ratio / 100;
    if (o->lease_ticks == 0)
        o->lease_ticks = 1;
    o->max_inflight_msgs = n->opts.raft_options.replicator_pipeline
                               ? (uint32_t)n->opts.raft_options.max_replicator_inflight_msgs
                               : 1;
    o->max_entries_per_msg = (uint32_t)n->opts.raft_options.max_entries_size;
    o->max_bytes_per_msg = (uint64_t)n->opts.raft_options.max_body_size;
    o->quiesce = n->opts.raft_options.quiesce;
}

/* Opens the group's log in the runtime's environment (rt_storage.c) and its
 * snapshot store (created on the first snapshot). */
static int open_stores(rk_node_t *n, rk_status_t *err)
{
    int rc = node_storage_open(n, err);
    if (rc != 0)
        return rc;
    return snap_store_open(n->snap_dir, &n->snaps, err);
}

/* The durable term, vote and commit index; also what the node considers
 * submitted already (persist.c compares new hard states with it). */
static int load_hard_state(rk_node_t *n, core_init_t *in, rk_status_t *err)
{
    meta_hard_state_t hs;
    int rc = meta_store_load(n->store, &hs, err);
    if (rc != 0)
        return rc;
    in->hs.term = hs.term;
    in->hs.commit = hs.commit;
    if (hs.voted_for[0] != '\0' && rk_peer_id_parse(&in->hs.vote, hs.voted_for, NULL) != 0)
        return rk_status_set(err, RK_ECORRUPT, "bad voted_for '%s'", hs.voted_for);
    /* what is durable now, spelled as node_persist_update spells it */
    memset(&n->hs_submitted, 0, sizeof(n->hs_submitted));
    n->hs_submitted.term = hs.term;
    n->hs_submitted.commit = hs.commit;
    if (!core_peer_is_none(&in->hs.vote))
        rk_peer_id_format(&in->hs.vote, n->hs_submitted.voted_for,
                          sizeof(n->hs_submitted.voted_for));
    n->hs_submitted_valid = true;
    return 0;
}

/* The newest complete snapshot's metadata, when there is one. */
static int load_snapshot_meta(rk_node_t *n, core_init_t *in, bool *have_snap, rk_status_t *err)
{
    snap_reader_t *r = NULL;
    int rc = snap_reader_open(n->snaps, &r, err);
    *have_snap = rc == 0;
    if (rc == RK_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    const snap_meta_t *m = snap_reader_meta(r);
    in->snapshot.index = m->last_index;
    in->snapshot.term = m->last_term;
    in->snapshot.conf.cur = m->conf;
    in->snapshot.conf.joint = m->has_old_conf;
    if (m->has_old_conf)
        in->snapshot.conf.old = m->old_conf;
    snap_reader_close(r);
    return 0;
}

/* Bootstrap: every initial member writes the same configuration entry at
 * index 1, term 1 (as etcd does), so the membership is in the log and a
 * restart needs no initial_conf. Identical entries on every member keep the
 * Log Matching property (section 5.3).
 *
 * The entry is not written here, synchronously: that would be one fdatasync
 * per new group, ten thousand in a row for a process creating ten thousand
 * groups. The core starts as if it were in the log, and start_on_loop hands
 * it to the runtime's writer as the group's first request, group-committed
 * with the bootstraps of every group starting meanwhile; the node takes no
 * message and drives nothing until it is durable (boot_done). Why nothing
 * can depend on it before then: the writer executes and completes requests
 * in submission order, so every later write of this group -- a vote, an
 * appended entry, the hard state an acknowledgement waits for -- is durable
 * only after the bootstrap is. Should the process die before it is, the
 * next start finds an empty log and no term and bootstraps again with the
 * identical entry; rewriting it after a crash that kept it cannot happen
 * (the log is not empty then), and would be harmless anyway since the entry
 * is the same on every member and committed by definition. */
static void bootstrap(rk_node_t *n, core_init_t *in)
{
    n->booting = true;
    in->hs.term = 1;
    in->hs.commit = 1;
    in->compact_index = 0;
    in->compact_term = 0;
    in->last_index = 1;
    in->last_term = 1;
    in->applied = 0;
    node_conf_to_core(&n->opts.initial_conf, &in->conf);
    in->prev_conf = in->conf;
    in->conf_index = 1;
}

typedef struct boot_req {
    log_write_req_t req;
    buf_t *conf;
    log_entry_t e;
    meta_hard_state_t hs;
} boot_req_t;

/* Loop thread: the bootstrap entry is durable; the node joins the runtime's
 * transport and starts driving its core. */
static void boot_done(log_write_req_t *req, int status)
{
    boot_req_t *b = (boot_req_t *)req;
    rk_node_t *n = req->data;
    buf_unref(b->conf);
    free(b);
    n->log_reqs--;
    n->booting = false;
    if (n->stopping || n->core == NULL) /* stopped, or its start failed */
        return;
    int rc = status != 0 ? status : transport_add_node(n);
    if (rc != 0) {
        node_enter_error(n, rc, "%s: %s",
                         status != 0 ? "bootstrap write failed" : "registering with the server",
                         rk_strerror(rc));
        n->fatal = true;
        return;
    }
    node_drive(n);
}

/* Loop thread: hands the bootstrap entry to the writer (see bootstrap). */
static int boot_submit(rk_node_t *n, rk_status_t *err)
{
    boot_req_t *b = calloc(1, sizeof *b);
    core_conf_t cc;
    node_conf_to_core(&n->opts.initial_conf, &cc);
    if (b == NULL || (b->conf = core_conf_encode(&cc)) == NULL) {
        free(b);
        return rk_status_set(err, RK_ENOMEM, "bootstrap configuration");
    }
    b->e = (log_entry_t){
        .index = 1, .term = 1, .type = LOG_ENTRY_CONF, .data = b->conf->data, .len = b->conf->len};
    b->hs = (meta_hard_state_t){.term = 1, .commit = 1};
    b->req.op = (log_op_t){.store = n->store,
                           .kind = LOG_OP_APPEND,
                           .truncate_from = 1,
                           .entries = &b->e,
                           .n_entries = 1,
                           .hard_state = &b->hs};
    b->req.data = n;
    int rc = log_writer_submit(n->writer, &b->req, boot_done);
    if (rc != 0) {
        buf_unref(b->conf);
        free(b);
        return rk_status_set(err, rc, "bootstrap write: %s", rk_strerror(rc));
    }
    n->log_reqs++;
    return 0;
}

/* The log's bounds and their terms for the core. A snapshot the log does
 * not join (a crash between installing it and resetting the log) resets the
 * log to it first. The commit index is capped to the log. */
static int recover_log_bounds(rk_node_t *n, core_init_t *in, bool have_snap, rk_status_t *err)
{
    int rc;
    uint64_t first = log_store_first_index(n->store);
    uint64_t last = log_store_last_index(n->store);
    if (have_snap && (in->snapshot.index > last || in->snapshot.index + 1 < first)) {
        if ((rc = log_store_reset(n->store, in->snapshot.index, in->snapshot.term, err)) != 0)
            return rc;
        first = log_store_first_index(n->store);
        last = log_store_last_index(n->store);
    }
    in->compact_index = first - 1;
    in->compact_term = 0;
    if (in->compact_index > 0 &&
        (rc = log_store_term(n->store, in->compact_index, &in->compact_term, err)) != 0)
        return rc;
    in->last_index = last;
    in->last_term = in->compact_term;
    if (last > in->compact_index && (rc = log_store_term(n->store, last, &in->last_term, err)) != 0)
        return rc;
    if (have_snap && in->hs.commit < in->snapshot.index)
        in->hs.commit = in->snapshot.index;
    if (in->hs.commit > last)
        in->hs.commit = last;
    in->applied = have_snap ? in->snapshot.index : 0;
    return 0;
}

/* Finds the configuration in effect: the last CONF entry after the snapshot,
 * else the snapshot's, else the bootstrap configuration. Reads only entries
 * after the snapshot (those startup replays anyway). */
static int recover_conf(rk_node_t *n, core_init_t *in, bool have_snap, rk_status_t *err)
{
    core_conf_t base;
    if (have_snap) {
        base = in->snapshot.conf;
        in->conf_index = in->snapshot.index;
    } else {
        node_conf_to_core(&n->opts.initial_conf, &base);
        in->conf_index = 0;
    }
    in->conf = base;
    in->prev_conf = base;
    uint64_t lo = (have_snap ? in->snapshot.index : 0) + 1;
    if (lo < log_store_first_index(n->store))
        lo = log_store_first_index(n->store);
    uint64_t last = log_store_last_index(n->store);
    while (lo <= last) {
        log_entry_t *ents = NULL;
        size_t cnt = 0;
        int rc = log_store_fetch(n->store, lo, 4096, 64u << 20, &ents, &cnt, err);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < cnt; i++) {
            if (ents[i].type != LOG_ENTRY_CONF)
                continue;
            core_conf_t c;
            if (core_conf_decode(ents[i].data, ents[i].len, &c) != 0) {
                log_entries_free(ents, cnt);
                return rk_status_set(err, RK_ECORRUPT, "bad configuration entry %llu",
                                     (unsigned long long)ents[i].index);
            }
            in->prev_conf = in->conf;
            in->conf = c;
            in->conf_index = ents[i].index;
        }
        lo += cnt;
        log_entries_free(ents, cnt);
    }
    if (in->conf_index <= in->hs.commit)
        in->prev_conf = in->conf;
    return 0;
}

/* A configuration forced by reset_peers that the log does not carry yet
 * wins over the log's (forced_conf.c); this node re-proposes it as leader. */
static int recover_forced_conf(rk_node_t *n, core_init_t *in, rk_status_t *err)
{
    core_conf_t fc;
    uint64_t index = 0;
    int rc = forced_conf_load(n, &fc, &index);
    if (rc == RK_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rk_status_set(err, rc, "forced configuration (reset_peers): %s", rk_strerror(rc));
    if (index < in->conf_index) { /* the log has a newer configuration */
        forced_conf_remove(n);
        return 0;
    }
    in->conf = fc;
    in->prev_conf = fc;
    in->conf_index = index < in->last_index ? index : in->last_index;
    n->reset_pending_conf = true;
    RK_WARN(n->group, n->self_str, "using the configuration forced by reset_peers at index %llu",
            (unsigned long long)index);
    return 0;
}

/* Opens the node's storage and fills in the core's initial state. */
static int open_storage(rk_node_t *n, core_init_t *in, rk_status_t *err)
{
    bool have_snap = false;
    int rc;
    if ((rc = open_stores(n, err)) != 0 || (rc = load_hard_state(n, in, err)) != 0 ||
        (rc = load_snapshot_meta(n, in, &have_snap, err)) != 0)
        return rc;
    if (!have_snap && log_store_last_index(n->store) == 0 && in->hs.term == 0 &&
        n->opts.initial_conf.n_peers > 0)
        bootstrap(n, in);
    else if ((rc = recover_log_bounds(n, in, have_snap, err)) != 0 ||
             (rc = recover_conf(n, in, have_snap, err)) != 0)
        return rc;
    n->last_snapshot_index = in->snapshot.index;
    n->last_snapshot_term = in->snapshot.term;
    if ((rc = recover_forced_conf(n, in, err)) != 0)
        return rc;
    rk_status_t cst;
    if (rk_configuration_validate(&in->conf.cur, &cst) != 0)
        return rk_status_set(err, RK_ECONF, "configuration: %s", cst.msg);
    /* the FSM starts from the snapshot's configuration, or the bootstrap
     * one; replaying the log re-applies later CONF entries */
    core_conf_t boot;
    if (!have_snap)
        node_conf_to_core(&n->opts.initial_conf, &boot);
    n->fsm_conf = core_conf_intern(have_snap ? &in->snapshot.conf : &boot);
    if (n->fsm_conf == NULL)
        return rk_status_set(err, RK_ENOMEM, "configuration");
    RK_INFO(n->group, n->self_str,
            "recovered: term %llu commit %llu log [%llu, %llu] snapshot %llu conf@%llu",
            (unsigned long long)in->hs.term, (unsigned long long)in->hs.commit,
            (unsigned long long)in->compact_index + 1, (unsigned long long)in->last_index,
            (unsigned long long)in->snapshot.index, (unsigned long long)in->conf_index);
    return 0;
}

typedef struct start_arg {
    rk_node_t *n;
    core_init_t *in;
    int rc;
    rk_status_t *err;
} start_arg_t;

/* Loop thread: the core, the route from the transport and the handles;
 * then the first drive. */
static void start_on_loop(void *p)
{
    start_arg_t *a = p;
    rk_node_t *n = a->n;
    int rc;
    if (n->booting && (a->rc = boot_submit(n, a->err)) != 0)
        return;
    core_storage_t cst = node_core_storage(n);
    int err = 0;
    n->core = core_new(a->in, &cst, &err);
    if (n->core == NULL) {
        a->rc = rk_status_set(a->err, err ? err : RK_ENOMEM, "raft core: %s", rk_strerror(err));
        return;
    }
    if (!n->booting && (rc = transport_add_node(n)) != 0) { /* else boot_done */
        a->rc = rk_status_set(a->err, rc, "registering %s/%s with the RPC server", n->group,
                              n->self_str);
        return;
    }
    if ((rc = node_tick_start(n)) != 0) {
        a->rc = rk_status_set(a->err, rc, "tick");
        return;
    }
    node_wake_open(n);
    n->snapshot_due_ms = node_now_ms(n) + (uint64_t)n->opts.snapshot_interval_secs * 1000;
    node_publish_status(n);
    node_drive(n);
    a->rc = 0;
}

int node_start(rk_node_t *n, rk_status_t *err)
{
    core_init_t in;
    memset(&in, 0, sizeof(in));
    int rc = open_storage(n, &in, err);
    if (rc != 0)
        return rc;
    if ((rc = node_obs_init(n, err)) != 0)
        return rc;
    node_core_options(n, &in.opts);
    uint64_t seed = (uint64_t)uv_hrtime();
    for (const char *p = n->self_str; *p; p++)
        seed = seed * 1099511628211ull ^ (uint8_t)*p;
    in.opts.seed = seed;
    atomic_store(&n->applied, 0);
    if ((rc = fsm_start(n)) != 0)
        return rk_status_set(err, rc, "FSM executor");
    if (in.snapshot.index > 0)
        fsm_post_simple(n, FSM_SNAPSHOT_LOAD, in.snapshot.index, NULL);
    start_arg_t a = {.n = n, .in = &in, .err = err};
    if (node_rt_call(n->rt, start_on_loop, &a) != 0)
        return rk_status_set(err, RK_ESHUTDOWN, "runtime stopped");
    return a.rc;
}
