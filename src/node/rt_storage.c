/* The runtime's storage: the log environments of the groups it hosts, each
 * with ONE log writer, and the flush of their held writes once per loop
 * iteration.
 *
 * Why shared: an environment is one LMDB file, one journal and one writer
 * thread (storage/env.h). With one per group, ten thousand groups would mean
 * ten thousand writer threads, 80 GiB of preallocated journals and one fsync
 * per group per batch. With one per runtime, the writer takes the batches of
 * every group in one transaction and one journal fdatasync (group commit
 * across groups), and a group costs a key range in the B-tree.
 *
 * Directories (include/raftkit/node.h, data_path): a server with a data_path
 * keeps one environment at <data_path>/log for all its groups; a group's own
 * directory (snapshots, forced configuration) is its data_path when set,
 * else <server data_path>/groups/<group id, escaped>. A lone group service
 * is a server whose data_path is the group's, so its layout is
 * <data_path>/log and <data_path>/snapshot. A server without data_path opens
 * <group data_path>/log per group, through the same table, so that groups
 * naming one directory share it.
 *
 * The table and the name sets are touched on the loop thread only; the
 * group's log store is opened and closed on the caller's thread, since that
 * reads (and may write) the environment.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "raftkit/log.h"
#include "src/node/node_internal.h"

/* ---- name sets: which group directories and group ids are taken ---- */

typedef struct name_ent {
    struct name_ent *next;
    const char *key; /* borrowed from the node that holds it */
} name_ent_t;

struct node_names {
    name_ent_t **b;
    size_t cap, n;
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static bool names_has(const struct node_names *ns, const char *key)
{
    if (ns == NULL || ns->cap == 0)
        return false;
    for (name_ent_t *e = ns->b[name_hash(key) & (ns->cap - 1)]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return true;
    return false;
}

static int names_grow(struct node_names *ns)
{
    size_t cap = ns->cap ? ns->cap * 2 : 64;
    name_ent_t **b = calloc(cap, sizeof *b);
    if (b == NULL)
        return RK_ENOMEM;
    for (size_t i = 0; i < ns->cap; i++) {
        while (ns->b[i]) {
            name_ent_t *e = ns->b[i];
            ns->b[i] = e->next;
            size_t k = name_hash(e->key) & (cap - 1);
            e->next = b[k];
            b[k] = e;
        }
    }
    free(ns->b);
    ns->b = b;
    ns->cap = cap;
    return 0;
}

static int names_add(struct node_names **nsp, const char *key)
{
    if (*nsp == NULL && (*nsp = calloc(1, sizeof **nsp)) == NULL)
        return RK_ENOMEM;
    struct node_names *ns = *nsp;
    if (ns->n >= ns->cap && names_grow(ns) != 0)
        return RK_ENOMEM;
    name_ent_t *e = malloc(sizeof *e);
    if (e == NULL)
        return RK_ENOMEM;
    size_t k = name_hash(key) & (ns->cap - 1);
    e->key = key;
    e->next = ns->b[k];
    ns->b[k] = e;
    ns->n++;
    return 0;
}

static void names_del(struct node_names *ns, const char *key)
{
    if (ns == NULL || ns->cap == 0)
        return;
    for (name_ent_t **pp = &ns->b[name_hash(key) & (ns->cap - 1)]; *pp; pp = &(*pp)->next) {
        if ((*pp)->key == key) {
            name_ent_t *e = *pp;
            *pp = e->next;
            free(e);
            ns->n--;
            return;
        }
    }
}

static void names_free(struct node_names *ns)
{
    if (ns == NULL)
        return;
    for (size_t i = 0; i < ns->cap; i++) {
        while (ns->b[i]) {
            name_ent_t *e = ns->b[i];
            ns->b[i] = e->next;
            free(e);
        }
    }
    free(ns->b);
    free(ns);
}

/* ---- paths ---- */

static char *path_join(const char *a, const char *b)
{
    size_t len = strlen(a) + strlen(b) + 2;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s/%s", a, b);
    return p;
}

/* The group id as one file name: bytes other than letters, digits, '-',
 * '_' and a '.' that does not lead become %XX, so "../x" or "a/b" stay
 * inside groups/ and distinct ids get distinct names ('%' is escaped too). */
static char *escape_group(const char *g)
{
    char *out = malloc(strlen(g) * 3 + 1), *p = out;
    if (out == NULL)
        return NULL;
    for (const char *c = g; *c; c++) {
        unsigned char ch = (unsigned char)*c;
        bool keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || (ch == '.' && c != g);
        if (keep)
            *p++ = (char)ch;
        else
            p += sprintf(p, "%%%02X", ch);
    }
    *p = '\0';
    return out;
}

int node_storage_paths(rk_node_t *n, const char *data_path, rk_status_t *err)
{
    const char *root = n->rt->data_path;
    bool own = data_path != NULL && data_path[0] != '\0';
    n->log_dir = path_join(root ? root : data_path, "log");
    if (own) {
        n->group_dir = strdup(data_path);
    } else {
        char *esc = escape_group(n->group), *groups = path_join(root, "groups");
        n->group_dir = esc && groups ? path_join(groups, esc) : NULL;
        free(esc);
        free(groups);
    }
    n->snap_dir = n->group_dir ? path_join(n->group_dir, "snapshot") : NULL;
    if (n->log_dir == NULL || n->group_dir == NULL || n->snap_dir == NULL)
        return rk_status_set(err, RK_ENOMEM, "storage paths");
    return 0;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* ---- the table ---- */

/* Loop thread: a checkpoint the writer thread ran on its own failed. The
 * environment refuses every write from now on, for every group in it; say
 * so now rather than at each group's next write, which an idle group may
 * not make for a long time. (A group still starting has no core yet: its
 * first write fails instead.) */
static void store_failed(void *arg, int code, const rk_status_t *st)
{
    node_rt_store_t *s = arg;
    for (rk_node_t *n = s->nodes; n; n = n->rs_next)
        if (n->core != NULL)
            node_enter_error(n, code, "storage failed: %s",
                             st->msg[0] ? st->msg : rk_strerror(code));
}

void node_storage_failed(rk_node_t *n)
{
    rk_status_t st;
    int code = log_env_failed(n->env, &st);
    if (code != 0 && n->rs != NULL)
        store_failed(n->rs, code, &st);
}

static int store_open(rk_node_t *n, node_rt_store_t **out, rk_status_t *err)
{
    node_rt_t *rt = n->rt;
    if (mkdir_p(n->log_dir) != 0)
        return rk_status_set(err, RK_EIO, "cannot create %s: %s", n->log_dir, strerror(errno));
    node_rt_store_t *s = calloc(1, sizeof *s + strlen(n->log_dir) + 1);
    if (s == NULL)
        return rk_status_set(err, RK_ENOMEM, "log environment");
    strcpy(s->dir, n->log_dir);
    log_env_options_t eo;
    log_env_options_init(&eo);
    /* the server's setting for its shared environment, else the group's */
    eo.sync = rt->data_path != NULL ? rt->sync : n->opts.raft_options.sync;
    int rc = log_env_open(s->dir, &eo, &s->env, err);
    if (rc != 0) {
        free(s);
        return rc;
    }
    log_writer_options_t wo = {
        .max_batch_bytes = (size_t)n->opts.raft_options.max_append_buffer_size,
        .on_failure = store_failed,
        .failure_arg = s,
    };
    rk_status_t st;
    if ((rc = log_writer_start(s->env, &rt->loop, &wo, &s->writer, &st)) != 0) {
        log_env_close(s->env);
        free(s);
        return rk_status_set(err, rc, "log writer: %s", st.msg);
    }
    s->next = rt->stores;
    rt->stores = s;
    *out = s;
    return 0;
}

static void store_close(node_rt_t *rt, node_rt_store_t *s)
{
    for (node_rt_store_t **pp = &rt->stores; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    if (s->writer)
        log_writer_stop(s->writer);
    log_env_close(s->env);
    names_free(s->groups);
    free(s);
}

typedef struct attach_arg {
    rk_node_t *n;
    rk_status_t *err;
    int rc;
} attach_arg_t;

static void attach_on_loop(void *p)
{
    attach_arg_t *a = p;
    rk_node_t *n = a->n;
    node_rt_t *rt = n->rt;
    if (names_has(rt->group_dirs, n->group_dir)) {
        a->rc = rk_status_set(a->err, RK_EBUSY,
                              "group directory %s is used by another group of this server",
                              n->group_dir);
        return;
    }
    node_rt_store_t *s = rt->stores;
    while (s && strcmp(s->dir, n->log_dir) != 0)
        s = s->next;
    if (s && names_has(s->groups, n->group)) {
        a->rc = rk_status_set(a->err, RK_EBUSY, "group %s already has its log in %s on this server",
                              n->group, s->dir);
        return;
    }
    if (s == NULL && (a->rc = store_open(n, &s, a->err)) != 0)
        return;
    if (names_add(&rt->group_dirs, n->group_dir) != 0) {
        a->rc = rk_status_set(a->err, RK_ENOMEM, "storage table");
    } else if (names_add(&s->groups, n->group) != 0) {
        names_del(rt->group_dirs, n->group_dir);
        a->rc = rk_status_set(a->err, RK_ENOMEM, "storage table");
    }
    if (a->rc != 0) {
        if (s->refs == 0)
            store_close(rt, s);
        return;
    }
    s->refs++;
    n->rs = s;
    n->rs_next = s->nodes;
    n->rs_pprev = &s->nodes;
    if (s->nodes)
        s->nodes->rs_pprev = &n->rs_next;
    s->nodes = n;
    n->env = s->env;
    n->writer = s->writer;
}

static void detach_on_loop(void *p)
{
    rk_node_t *n = p;
    node_rt_store_t *s = n->rs;
    *n->rs_pprev = n->rs_next;
    if (n->rs_next)
        n->rs_next->rs_pprev = n->rs_pprev;
    names_del(n->rt->group_dirs, n->group_dir);
    names_del(s->groups, n->group);
    n->rs = NULL;
    n->env = NULL;
    n->writer = NULL;
    if (--s->refs == 0)
        store_close(n->rt, s);
}

int node_storage_open(rk_node_t *n, rk_status_t *err)
{
    attach_arg_t a = {.n = n, .err = err};
    if (node_rt_call(n->rt, attach_on_loop, &a) != 0)
        return rk_status_set(err, RK_ESHUTDOWN, "runtime stopped");
    if (a.rc != 0)
        return a.rc;
    return log_store_open(n->env, n->group, NULL, &n->store, err);
}

void node_storage_close(rk_node_t *n)
{
    if (n->store)
        log_store_close(n->store);
    n->store = NULL;
    if (n->rs == NULL)
        return;
    /* A stopped runtime (a lone group service frees its node after the
     * loop thread ended) has no loop to go to: the caller is its only
     * thread now. */
    if (!n->rt->running || node_rt_call(n->rt, detach_on_loop, n) != 0)
        detach_on_loop(n);
}

/* ---- group commit across groups ---- */

static void idle_cb(uv_idle_t *h)
{
    (void)h; /* only there so that the poll phase does not block */
}

int node_storage_submit_held(rk_node_t *n, log_write_req_t *req, log_write_cb cb)
{
    int rc = log_writer_submit_held(n->writer, req, cb);
    node_rt_t *rt = n->rt;
    if (rc == 0 && !rt->flush_pending && rt->flush_open) {
        rt->flush_pending = true;
        uv_idle_start(&rt->flush_idle, idle_cb);
    }
    return rc;
}

void node_rt_storage_flush(node_rt_t *rt)
{
    rt->flush_pending = false;
    if (rt->flush_open)
        uv_idle_stop(&rt->flush_idle);
    for (node_rt_store_t *s = rt->stores; s; s = s->next)
        if (s->writer)
            log_writer_flush(s->writer);
}

void node_rt_storage_open(node_rt_t *rt)
{
    uv_idle_init(&rt->loop, &rt->flush_idle);
    rt->flush_open = true;
}

void node_rt_storage_stop(node_rt_t *rt)
{
    for (node_rt_store_t *s = rt->stores; s; s = s->next) {
        if (s->writer)
            log_writer_stop(s->writer); /* runs outstanding completions */
        s->writer = NULL;
        for (rk_node_t *n = s->nodes; n; n = n->rs_next)
            n->writer = NULL;
    }
    if (rt->flush_open) {
        rt->flush_open = false;
        uv_close((uv_handle_t *)&rt->flush_idle, NULL);
    }
}

void node_rt_storage_free(node_rt_t *rt)
{
    while (rt->stores)
        store_close(rt, rt->stores);
    names_free(rt->group_dirs);
    rt->group_dirs = NULL;
}
