/* RaftGroupService: creates one group's node on its own loop runtime (or on
 * a shared rk_server_t), starts it, and takes it down again: shutdown fails
 * pending work with RK_ESHUTDOWN, join waits for every thread and frees
 * what the node used. */
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "src/node/node_internal.h"

/* rt: the shared server's runtime, NULL for a service with its own. */
static rk_group_service_t *svc_new(const char *group_id, const rk_peer_id_t *self,
                                   const rk_node_options_t *opts, node_rt_t *rt, rk_status_t *err)
{
    if (group_id == NULL || group_id[0] == '\0' || strlen(group_id) >= LOG_GROUP_ID_MAX) {
        rk_status_set(err, RK_EINVAL, "group_id must be 1..%d bytes", LOG_GROUP_ID_MAX - 1);
        return NULL;
    }
    if (self == NULL || rk_peer_id_is_empty(self)) {
        rk_status_set(err, RK_EINVAL, "self peer id is required");
        return NULL;
    }
    /* a server with a data_path gives each group a directory of its own */
    if (node_options_check(opts, rt == NULL || rt->data_path == NULL, err) != 0)
        return NULL;
    rk_group_service_t *s = calloc(1, sizeof(*s));
    if (s != NULL && (s->opts = malloc(sizeof(*s->opts))) == NULL) {
        free(s);
        s = NULL;
    }
    if (s == NULL) {
        rk_status_set(err, RK_ENOMEM, "group service");
        return NULL;
    }
    snprintf(s->group, sizeof(s->group), "%s", group_id);
    s->self = *self;
    *s->opts = *opts;
    s->rt = rt;
    pthread_mutex_init(&s->join_mu, NULL);
    return s;
}

rk_group_service_t *rk_group_service_new(const char *group_id, const rk_peer_id_t *self,
                                         const rk_node_options_t *opts, rk_status_t *err)
{
    rk_group_service_t *s = svc_new(group_id, self, opts, NULL, err);
    if (s)
        s->own_rt = true;
    return s;
}

rk_group_service_t *rk_group_service_new_shared(const char *group_id, const rk_peer_id_t *self,
                                                const rk_node_options_t *opts, rk_server_t *server,
                                                rk_status_t *err)
{
    if (server == NULL) {
        rk_status_set(err, RK_EINVAL, "server is NULL");
        return NULL;
    }
    return svc_new(group_id, self, opts, node_server_rt(server), err);
}

static void node_free(rk_node_t *n)
{
    if (n == NULL)
        return;
    node_obs_free(n);
    if (n->core)
        core_free(n->core);
    node_storage_close(n);
    if (n->snaps)
        snap_store_close(n->snaps);
    for (size_t i = 0; i < n->task_count; i++)
        buf_unref(n->tasks[(n->task_head + i) % n->task_cap].data);
    free(n->tasks);
    free(n->pend);
    while (n->fsm_head) {
        fsm_item_t *it = n->fsm_head;
        n->fsm_head = it->next;
        free(it->ctx);
        free(it);
    }
    pthread_mutex_destroy(&n->mu);
    pthread_mutex_destroy(&n->pend_mu);
    pthread_mutex_destroy(&n->fsm_mu);
    pthread_cond_destroy(&n->fsm_cv);
    pthread_mutex_destroy(&n->st_mu);
    core_conf_release(n->fsm_conf);
    core_conf_release(n->conf);
    core_conf_release(n->alive);
    free(n->log_dir);
    free(n->group_dir);
    free(n->snap_dir);
    free(n);
}

static rk_node_t *node_new(rk_group_service_t *s, rk_status_t *err)
{
    rk_node_t *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        rk_status_set(err, RK_ENOMEM, "node");
        return NULL;
    }
    n->svc = s;
    n->rt = s->rt;
    snprintf(n->group, sizeof(n->group), "%s", s->group);
    n->self = s->self;
    rk_peer_id_format(&n->self, n->self_str, sizeof(n->self_str));
    n->opts = *s->opts;
    n->opts.data_path = NULL; /* not kept: the caller owns the string */
    n->fsm = s->opts->fsm;
    pthread_mutex_init(&n->mu, NULL);
    pthread_mutex_init(&n->pend_mu, NULL);
    pthread_mutex_init(&n->fsm_mu, NULL);
    pthread_cond_init(&n->fsm_cv, NULL);
    pthread_mutex_init(&n->st_mu, NULL);
    n->state = RK_STATE_UNINITIALIZED;
    if (node_storage_paths(n, s->opts->data_path, err) != 0) {
        node_free(n);
        return NULL;
    }
    return n;
}

static void stop_on_loop(void *p)
{
    node_loop_stop(p);
}

static void check_closed(void *p)
{
    rk_node_t *n = p;
    n->svc->shut = n->close_pending == 0 && n->log_reqs == 0;
}

/* Waits until the node's handles are closed, its log writes completed and
 * its FSM thread is gone. */
static void node_wait_stopped(rk_group_service_t *s, rk_node_t *n)
{
    fsm_join(n);
    while (atomic_load(&n->snap_inflight) > 0)
        uv_sleep(1);
    if (s->own_rt) {
        node_rt_stop(s->rt); /* the loop runs until every handle is closed */
        return;
    }
    for (;;) {
        s->shut = false;
        if (node_rt_call(s->rt, check_closed, n) != 0 || s->shut)
            return;
        uv_sleep(1);
    }
}

static rk_node_t *start_node(rk_group_service_t *s, rk_status_t *err)
{
    const rk_endpoint_t *bind =
        s->opts->listen.host[0] != '\0' ? &s->opts->listen : &s->self.endpoint;
    if (s->own_rt) {
        if (node_rt_new(bind, s->opts, &s->rt, err) != 0)
            return NULL;
        /* a server of one group, whose data_path is the group's */
        s->rt->data_path = strdup(s->opts->data_path);
        s->rt->sync = s->opts->raft_options.sync;
        if (s->rt->data_path == NULL) {
            rk_status_set(err, RK_ENOMEM, "data_path");
            node_rt_stop(s->rt);
            node_rt_free(s->rt);
            s->rt = NULL;
            return NULL;
        }
    }
    rk_node_t *n = node_new(s, err);
    if (n == NULL)
        return NULL;
    /* data_path is only needed while starting */
    n->opts.data_path = s->opts->data_path;
    int rc = node_start(n, err);
    n->opts.data_path = NULL;
    if (rc != 0) {
        RK_ERROR(s->group, n->self_str, "start failed: %s", err ? err->msg : rk_strerror(rc));
        node_rt_call(s->rt, stop_on_loop, n);
        node_wait_stopped(s, n);
        node_free(n);
        if (s->own_rt) {
            node_rt_free(s->rt);
            s->rt = NULL;
        }
        return NULL;
    }
    s->node = n;
    RK_INFO(s->group, n->self_str, "started");
    return n;
}

rk_node_t *rk_group_service_start(rk_group_service_t *s, rk_status_t *err)
{
    if (s == NULL || s->started) {
        rk_status_set(err, RK_EINVAL, "service NULL or already started");
        return NULL;
    }
    s->started = true;
    rk_node_t *n = start_node(s, err);
    /* The options serve only to start (once); a started node has its own
     * copy, so a group does not keep two (~5 KB each, mostly initial_conf). */
    free(s->opts);
    s->opts = NULL;
    return n;
}

void rk_group_service_shutdown(rk_group_service_t *s)
{
    if (s == NULL || s->node == NULL)
        return;
    rk_node_t *n = s->node;
    pthread_mutex_lock(&n->mu);
    bool first = !n->shutdown_requested;
    n->shutdown_requested = true;
    pthread_mutex_unlock(&n->mu);
    if (first)
        node_rt_call(s->rt, stop_on_loop, n);
}

void rk_group_service_join(rk_group_service_t *s)
{
    if (s == NULL || s->node == NULL)
        return;
    rk_group_service_shutdown(s);
    /* Checked and done under one lock: of several joiners one waits for
     * the threads (joining each exactly once), the others wait for it. */
    pthread_mutex_lock(&s->join_mu);
    if (!s->joined) {
        node_wait_stopped(s, s->node);
        node_set_state(s->node, RK_STATE_SHUTDOWN);
        s->joined = true;
    }
    pthread_mutex_unlock(&s->join_mu);
}

void rk_group_service_free(rk_group_service_t *s)
{
    if (s == NULL)
        return;
    if (s->node) {
        rk_group_service_join(s);
        node_free(s->node);
    }
    if (s->own_rt && s->rt)
        node_rt_free(s->rt);
    pthread_mutex_destroy(&s->join_mu);
    free(s->opts);
    free(s);
}
