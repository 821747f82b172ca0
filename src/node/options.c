/* Node options: JRaft's defaults, and the validation that refuses a bad
 * field at init with a message naming it. */
#include <string.h>

#include "raftkit/node.h"
#include "rpc/rpc_tls.h"
#include "src/node/node_internal.h"

void rk_node_options_init(rk_node_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->election_timeout_ms = 1000;
    o->election_priority = RK_PRIORITY_DISABLED;
    o->leader_lease_time_ratio = 90;
    o->snapshot_interval_secs = 3600;
    o->snapshot_log_index_margin = 0;
    o->snapshot_log_count = 0;
    o->catchup_margin = 1000;
    rk_configuration_init(&o->initial_conf);
    rk_raft_options_t *r = &o->raft_options;
    r->max_entries_size = 1024;
    r->max_body_size = 512 * 1024;
    r->max_append_buffer_size = 256 * 1024;
    r->max_byte_count_per_rpc = 128 * 1024;
    r->apply_batch = 32;
    r->apply_queue_size = 16384;
    r->sync = true;
    r->replicator_pipeline = true;
    r->max_replicator_inflight_msgs = 256;
    r->read_only_option = RK_READ_ONLY_SAFE;
    r->pre_vote = true;
    r->check_quorum = true;
    r->snapshot_throttle_bytes_per_sec = 0;
    r->quiesce = true;
}

/* ---- security options (README "Security") ---- */

void node_tls_config(const rk_node_options_t *o, rpc_tls_config_t *out)
{
    memset(out, 0, sizeof *out);
    if (o == NULL)
        return;
    out->cert = o->tls_cert;
    out->key = o->tls_key;
    out->ca = o->tls_ca;
    out->peer_names = o->tls_peer_names;
    out->admin_names = o->tls_admin_names;
    out->cluster_key_file = o->cluster_key_file;
}

static bool opt_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* Loads the files once now, so that a bad certificate or key file is
 * refused when the service is created, with the reason. */
static int node_security_validate(const rk_node_options_t *o, rk_status_t *err)
{
    rpc_tls_config_t tc;
    rpc_tls_ctx_t *ctx = NULL;
    int rc;

    node_tls_config(o, &tc);
    if (!rpc_tls_configured(&tc)) {
        if (opt_set(o->admin_token))
            return rk_status_set(err, RK_EINVAL,
                                 "admin_token needs TLS (tls_cert...): a token over plain HTTP "
                                 "could be read on the wire");
        if (opt_set(o->tls_peer_names) || opt_set(o->tls_admin_names))
            return rk_status_set(
                err, RK_EINVAL, "tls_peer_names/tls_admin_names need tls_cert, tls_key and tls_ca");
        return 0;
    }
    if (opt_set(o->tls_cert) && !opt_set(o->tls_peer_names))
        return rk_status_set(err, RK_EINVAL,
                             "tls_peer_names is required with tls_cert: the names every node's "
                             "certificate carries");
    rc = rpc_tls_ctx_new(&tc, true, &ctx, err);
    rpc_tls_ctx_unref(ctx);
    if (rc == 0) {
        rc = rpc_tls_ctx_new(&tc, false, &ctx, err);
        rpc_tls_ctx_unref(ctx);
    }
    if (rc != 0)
        return rc;
    if (o->admin_port > 0 && !opt_set(o->admin_token))
        return rk_status_set(err, RK_EINVAL,
                             "admin_token is required when TLS and admin_port are set: /status "
                             "and /metrics are served only to its bearer");
    if (o->admin_port > 0 && !opt_set(o->tls_cert))
        return rk_status_set(err, RK_EINVAL,
                             "admin_port with cluster_key_file: the admin endpoint needs tls_cert "
                             "and tls_key for HTTPS");
    return 0;
}

#define CHECK(cond, ...)                                       \
    do {                                                       \
        if (!(cond))                                           \
            return rk_status_set(err, RK_EINVAL, __VA_ARGS__); \
    } while (0)

int node_options_check_executors(const rk_node_options_t *o, rk_status_t *err)
{
    CHECK(o->fsm_executor_threads >= 0 && o->fsm_executor_threads <= RK_FSM_EXECUTOR_THREADS_MAX,
          "fsm_executor_threads must be in 0..%d (0: one per CPU; got %d)",
          RK_FSM_EXECUTOR_THREADS_MAX, o->fsm_executor_threads);
    return 0;
}

int rk_node_options_validate(const rk_node_options_t *o, rk_status_t *err)
{
    return node_options_check(o, true, err);
}

int node_options_check(const rk_node_options_t *o, bool need_data_path, rk_status_t *err)
{
    CHECK(o != NULL, "options: NULL");
    CHECK(o->election_timeout_ms >= 10, "election_timeout_ms must be >= 10 (got %d)",
          o->election_timeout_ms);
    CHECK(o->election_priority >= RK_PRIORITY_DISABLED,
          "election_priority must be -1 (disabled) or >= 0 (got %d)", o->election_priority);
    CHECK(o->leader_lease_time_ratio > 0 && o->leader_lease_time_ratio <= 100,
          "leader_lease_time_ratio must be in 1..100 (got %d)", o->leader_lease_time_ratio);
    CHECK(o->snapshot_interval_secs >= 0, "snapshot_interval_secs must be >= 0 (got %d)",
          o->snapshot_interval_secs);
    CHECK(o->snapshot_log_index_margin >= 0, "snapshot_log_index_margin must be >= 0 (got %d)",
          o->snapshot_log_index_margin);
    CHECK(o->snapshot_log_count >= 0, "snapshot_log_count must be >= 0 (got %d)",
          o->snapshot_log_count);
    CHECK(o->catchup_margin >= 0, "catchup_margin must be >= 0 (got %d)", o->catchup_margin);
    CHECK(!need_data_path || (o->data_path != NULL && o->data_path[0] != '\0'),
          "data_path is required (unless the server has one)");
    CHECK(o->data_path == NULL || strlen(o->data_path) < 4000, "data_path is too long");
    CHECK(o->fsm != NULL, "fsm is required");
    rk_status_t cst;
    if (rk_configuration_validate(&o->initial_conf, &cst) != 0)
        return rk_status_set(err, RK_EINVAL, "initial_conf: %s", cst.msg);
    const rk_raft_options_t *r = &o->raft_options;
    CHECK(r->max_entries_size >= 1, "raft_options.max_entries_size must be >= 1 (got %d)",
          r->max_entries_size);
    CHECK(r->max_body_size >= 1024, "raft_options.max_body_size must be >= 1024 (got %d)",
          r->max_body_size);
    CHECK(r->max_append_buffer_size >= 1, "raft_options.max_append_buffer_size must be >= 1");
    CHECK(r->max_byte_count_per_rpc >= 1024,
          "raft_options.max_byte_count_per_rpc must be >= 1024 (got %d)",
          r->max_byte_count_per_rpc);
    CHECK(r->apply_batch >= 1, "raft_options.apply_batch must be >= 1 (got %d)", r->apply_batch);
    CHECK(r->apply_queue_size >= 1, "raft_options.apply_queue_size must be >= 1 (got %d)",
          r->apply_queue_size);
    CHECK(r->max_replicator_inflight_msgs >= 1,
          "raft_options.max_replicator_inflight_msgs must be >= 1 (got %d)",
          r->max_replicator_inflight_msgs);
    CHECK(r->read_only_option == RK_READ_ONLY_SAFE ||
              r->read_only_option == RK_READ_ONLY_LEASE_BASED,
          "raft_options.read_only_option must be RK_READ_ONLY_SAFE or RK_READ_ONLY_LEASE_BASED");
    /* LEASE_BASED no longer needs check_quorum: the leader checks its lease
     * (leader_lease_time_ratio) on every lease read. */
    CHECK(r->snapshot_throttle_bytes_per_sec >= 0,
          "raft_options.snapshot_throttle_bytes_per_sec must be >= 0");
    CHECK(memchr(o->listen.host, '\0', sizeof o->listen.host) != NULL,
          "listen: host is not NUL-terminated");
    if (o->listen.host[0] != '\0') {
        char ep[RK_HOST_MAX + 16];
        rk_endpoint_t parsed;
        rk_status_t lst;
        rk_endpoint_format(&o->listen, ep, sizeof ep);
        CHECK(o->listen.port != 0, "listen: port must be 1..65535");
        if (rk_endpoint_parse(&parsed, ep, &lst) != 0)
            return rk_status_set(err, RK_EINVAL, "listen: %s", lst.msg);
    }
    if (node_options_check_executors(o, err) != 0)
        return RK_EINVAL;
    return node_security_validate(o, err);
}

const char *rk_node_state_name(rk_node_state_t s)
{
    switch (s) {
    case RK_STATE_LEADER:
        return "leader";
    case RK_STATE_TRANSFERRING:
        return "transferring";
    case RK_STATE_CANDIDATE:
        return "candidate";
    case RK_STATE_FOLLOWER:
        return "follower";
    case RK_STATE_ERROR:
        return "error";
    case RK_STATE_UNINITIALIZED:
        return "uninitialized";
    case RK_STATE_SHUTTING:
        return "shutting";
    case RK_STATE_SHUTDOWN:
        return "shutdown";
    }
    return "unknown";
}

void node_conf_to_core(const rk_configuration_t *c, core_conf_t *out)
{
    memset(out, 0, sizeof(*out));
    out->cur = *c;
    out->joint = false;
}
