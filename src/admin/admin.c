/* The admin endpoint on libmicrohttpd: routing, the three resources, and the
 * process-wide table that lets groups share one ip:port.
 *
 * libmicrohttpd parses HTTP and answers malformed requests (400; strict mode:
 * HTTP/1.1 needs a Host header, no spaces in header names), over-long headers
 * (431) and slow clients (timeout) itself; this file only sees well-formed
 * requests. We answer GET and HEAD, 405 for other methods, 404
 * for other paths, and never read a request body.
 *
 * A process may serve thousands of groups here, so what costs per group is
 * asked for explicitly (README "Admin endpoint"):
 *
 *   /metrics              the process series (raftkit_process_*: group
 *                         counts, counters summed, histograms merged); and
 *                         every group's series too while the endpoint
 *                         serves at most PER_GROUP_DEFAULT_MAX groups
 *   /metrics?groups=all   the process series and every group's series
 *   /metrics?group=G      group G's series only
 *   /status               the one group's status when there is one; else
 *                         {"summary", "total", "offset", "limit",
 *                         "next_offset", "groups": [a page]}
 *   /status?offset=O&limit=L   that page (groups ordered by id, then peer)
 *   /status?group=G       G's status
 *
 * Groups are kept sorted by (group id, peer), so pages are stable while
 * no group comes or goes and ?group= is a binary search.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "raftkit/log.h"
#include "src/admin/admin.h"
#include "src/admin/status_page.h"

#define CONN_LIMIT            64
#define CONN_TIMEOUT          10          /* seconds a client may idle */
#define CONN_MEMORY           (32 * 1024) /* bytes per connection: bounds header size */

#define PER_GROUP_DEFAULT_MAX 16   /* /metrics has per-group series by default up to this */
#define PAGE_DEFAULT          100  /* /status page size without ?limit= */
#define PAGE_MAX              1000 /* largest ?limit= */

struct admin_server {
    struct admin_server *next; /* in the process-wide table */
    char ip[RK_HOST_MAX];
    uint16_t port;  /* as asked for; 0 = ephemeral, never shared */
    uint16_t bound; /* as bound */
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock; /* groups */
    size_t n_groups, cap_groups;
    metrics_node_t **groups; /* sorted by group_cmp */
    /* security (admin_security_t): PEM texts kept while the daemon runs */
    char *cert_pem, *key_pem;
    char *token; /* NULL: none */
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static admin_server_t *table;

uint16_t admin_server_port(const admin_server_t *s)
{
    return s->bound;
}

/* ---- responses ---- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body)
{
    if (body == NULL) {
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
        type = "text/plain; charset=utf-8";
        body = strdup("out of memory\n");
        if (body == NULL)
            return MHD_NO; /* closes the connection */
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned code, const char *text)
{
    return reply(c, code, "text/plain; charset=utf-8", strdup(text));
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned code, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (s) {
        /* A trailing newline is kinder to curl users. */
        size_t n = strlen(s);
        char *t = realloc(s, n + 2);
        if (t) {
            t[n] = '\n';
            t[n + 1] = '\0';
            s = t;
        }
    }
    return reply(c, code, "application/json", s);
}

typedef enum route { ROUTE_NONE, ROUTE_METRICS, ROUTE_STATUS, ROUTE_HEALTH } route_t;

static route_t route_of(const char *url)
{
    if (strcmp(url, "/metrics") == 0)
        return ROUTE_METRICS;
    if (strcmp(url, "/status") == 0)
        return ROUTE_STATUS;
    if (strcmp(url, "/health") == 0)
        return ROUTE_HEALTH;
    return ROUTE_NONE;
}

/* ---- the group table ---- */

/* Order of the table: group id, then peer (groups of one id hosted here
 * with different peers, as a test cluster in one process has). */
static int group_cmp(const metrics_node_t *a, const metrics_node_t *b)
{
    int c = strcmp(metrics_node_group(a), metrics_node_group(b));
    if (c != 0)
        return c;
    char pa[RK_PEER_ID_STRLEN], pb[RK_PEER_ID_STRLEN];
    rk_peer_id_format(metrics_node_self(a), pa, sizeof pa);
    rk_peer_id_format(metrics_node_self(b), pb, sizeof pb);
    return strcmp(pa, pb);
}

/* The first index whose group id is >= group. Called with s->lock held. */
static size_t lower_bound(const admin_server_t *s, const char *group)
{
    size_t lo = 0, hi = s->n_groups;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(metrics_node_group(s->groups[mid]), group) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The groups [*from, *to) whose id is group. Called with s->lock held. */
static void find_group(const admin_server_t *s, const char *group, size_t *from, size_t *to)
{
    *from = *to = lower_bound(s, group);
    while (*to < s->n_groups && strcmp(metrics_node_group(s->groups[*to]), group) == 0)
        (*to)++;
}

/* ---- the request's query ---- */

typedef struct query {
    const char *group; /* ?group=, or NULL */
    bool all;          /* ?groups=all */
    bool paged;        /* ?offset= or ?limit= given */
    size_t offset, limit;
} query_t;

/* A decimal number in [min, max], digits only. */
static bool parse_count(const char *v, size_t min, size_t max, size_t *out)
{
    if (v == NULL || v[0] == '\0' || strlen(v) > 9 || strspn(v, "0123456789") != strlen(v))
        return false;
    size_t n = (size_t)strtoul(v, NULL, 10);
    if (n < min || n > max)
        return false;
    *out = n;
    return true;
}

/* Reads the query arguments route r understands into q. Returns NULL, or
 * the reason for a 400. */
static const char *parse_query(struct MHD_Connection *c, route_t r, query_t *q)
{
    memset(q, 0, sizeof *q);
    q->limit = PAGE_DEFAULT;
    q->group = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "group");
    if (q->group != NULL && q->group[0] == '\0')
        return "bad request: group must name a group (?group=ID)\n";
    if (r == ROUTE_METRICS) {
        const char *all = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "groups");
        if (all != NULL && strcmp(all, "all") != 0)
            return "bad request: groups takes only the value all (?groups=all)\n";
        q->all = all != NULL;
        if (q->all && q->group != NULL)
            return "bad request: use either ?group=ID or ?groups=all\n";
    }
    if (r == ROUTE_STATUS) {
        const char *off = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "offset");
        const char *lim = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
        q->paged = off != NULL || lim != NULL;
        if (off != NULL && !parse_count(off, 0, 999999999, &q->offset))
            return "bad request: offset must be a number of groups (0 or more)\n";
        if (lim != NULL && !parse_count(lim, 1, PAGE_MAX, &q->limit))
            return "bad request: limit must be a number from 1 to 1000\n";
        if (q->paged && q->group != NULL)
            return "bad request: use either ?group=ID or ?offset=&limit=\n";
    }
    return NULL;
}

/* ---- resources ---- */

/* Snapshots of groups [from, to); NULL when out of memory. Called with
 * s->lock held. */
static rk_metrics_t **snapshot_range(admin_server_t *s, size_t from, size_t to)
{
    rk_metrics_t **ms = calloc(to > from ? to - from : 1, sizeof *ms);
    for (size_t i = from; ms != NULL && i < to; i++) {
        ms[i - from] = metrics_snapshot(s->groups[i]);
        if (ms[i - from] == NULL) {
            for (size_t k = from; k < i; k++)
                rk_metrics_free(ms[k - from]);
            free(ms);
            ms = NULL;
        }
    }
    return ms;
}

static void free_range(rk_metrics_t **ms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rk_metrics_free(ms[i]);
    free(ms);
}

/* The body of /metrics for q: the process series unless one group is
 * asked for, then the per-group series of [from, to). Called with s->lock
 * held. NULL when out of memory. */
static char *render_metrics(admin_server_t *s, const query_t *q, size_t from, size_t to)
{
    char *totals = NULL;
    if (q->group == NULL) {
        metrics_totals_t *t = malloc(sizeof *t);
        if (t == NULL)
            return NULL;
        metrics_totals_init(t);
        for (size_t i = 0; i < s->n_groups; i++)
            metrics_totals_add(t, s->groups[i]);
        totals = metrics_totals_render(t);
        free(t);
        if (totals == NULL)
            return NULL;
    }
    if (from == to)
        return totals;
    rk_metrics_t **ms = snapshot_range(s, from, to);
    char *groups =
        ms ? metrics_prometheus_render((const rk_metrics_t *const *)ms, to - from) : NULL;
    if (ms)
        free_range(ms, to - from);
    if (totals == NULL || groups == NULL) {
        if (totals != NULL)
            free(totals);
        return groups;
    }
    size_t a = strlen(totals), b = strlen(groups);
    char *body = realloc(totals, a + b + 1);
    if (body != NULL)
        memcpy(body + a, groups, b + 1);
    else
        free(totals);
    free(groups);
    return body;
}

static enum MHD_Result get_metrics(struct MHD_Connection *c, admin_server_t *s, const query_t *q)
{
    size_t from = 0, to = 0;
    pthread_mutex_lock(&s->lock);
    if (q->group != NULL)
        find_group(s, q->group, &from, &to);
    else if (q->all || s->n_groups <= PER_GROUP_DEFAULT_MAX)
        to = s->n_groups;
    bool unknown = q->group != NULL && from == to;
    char *body = unknown ? NULL : render_metrics(s, q, from, to);
    pthread_mutex_unlock(&s->lock);
    if (unknown)
        return reply_text(c, MHD_HTTP_NOT_FOUND, "unknown group: not served here\n");
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body);
}

/* Statuses of groups [from, to) as a JSON array. Called with s->lock held. */
static json_t *status_array(admin_server_t *s, size_t from, size_t to)
{
    json_t *arr = json_array();
    rk_node_status_t *st = malloc(sizeof *st); /* 19 KiB: off the server thread's stack */
    if (arr == NULL || st == NULL) {
        json_decref(arr);
        free(st);
        return NULL;
    }
    for (size_t i = from; i < to; i++) {
        metrics_read_status(s->groups[i], st);
        if (json_array_append_new(arr, metrics_status_json(st)) != 0) {
            json_decref(arr);
            arr = NULL;
            break;
        }
    }
    free(st);
    return arr;
}

static enum MHD_Result get_status(struct MHD_Connection *c, admin_server_t *s, const query_t *q)
{
    json_t *o = NULL;
    bool unknown = false;
    pthread_mutex_lock(&s->lock);
    if (q->group != NULL) {
        /* One group: its status object; several hosted here under one id:
         * {"groups": [...]}. */
        size_t from, to;
        find_group(s, q->group, &from, &to);
        unknown = from == to;
        json_t *arr = unknown ? NULL : status_array(s, from, to);
        if (arr != NULL && to - from == 1) {
            o = json_incref(json_array_get(arr, 0));
            json_decref(arr);
        } else if (arr != NULL) {
            o = json_pack("{s:o}", "groups", arr);
        }
    } else if (!q->paged && s->n_groups == 1) {
        json_t *arr = status_array(s, 0, 1);
        o = arr ? json_incref(json_array_get(arr, 0)) : NULL;
        json_decref(arr);
    } else {
        metrics_summary_t sum = {0};
        for (size_t i = 0; i < s->n_groups; i++) {
            metrics_brief_t b;
            metrics_read_brief(s->groups[i], &b);
            metrics_summary_add(&sum, &b);
        }
        size_t from = q->offset < s->n_groups ? q->offset : s->n_groups;
        size_t to = s->n_groups - from > q->limit ? from + q->limit : s->n_groups;
        json_t *arr = status_array(s, from, to);
        json_t *next = to < s->n_groups ? json_integer((json_int_t)to) : json_null();
        o = arr ? json_pack("{s:o, s:I, s:I, s:I, s:o, s:o}", "summary", metrics_summary_json(&sum),
                            "total", (json_int_t)s->n_groups, "offset", (json_int_t)q->offset,
                            "limit", (json_int_t)q->limit, "next_offset", next, "groups", arr)
                : NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (unknown)
        return reply_text(c, MHD_HTTP_NOT_FOUND, "unknown group: not served here\n");
    if (o == NULL)
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", NULL);
    return reply_json(c, MHD_HTTP_OK, o);
}

/* Healthy: a leader is known and the node is not in error or shutting
 * down. All selected groups must be healthy. */
static const char *unhealthy_reason(const metrics_brief_t *st)
{
    switch (st->state) {
    case RK_STATE_ERROR:
        return "node is in error";
    case RK_STATE_UNINITIALIZED:
        return "node is not started";
    case RK_STATE_SHUTTING:
    case RK_STATE_SHUTDOWN:
        return "node is shutting down";
    default:
        break;
    }
    if (rk_peer_id_is_empty(&st->leader))
        return "no leader known";
    return NULL;
}

static enum MHD_Result get_health(struct MHD_Connection *c, admin_server_t *s, const query_t *q)
{
    json_t *groups = json_array();
    bool healthy = true;
    pthread_mutex_lock(&s->lock);
    size_t from = 0, to = s->n_groups;
    if (q->group != NULL)
        find_group(s, q->group, &from, &to);
    for (size_t i = from; i < to; i++) {
        metrics_brief_t b;
        metrics_read_brief(s->groups[i], &b);
        const char *why = unhealthy_reason(&b);
        char leader[RK_PEER_ID_STRLEN] = "";
        if (!rk_peer_id_is_empty(&b.leader))
            rk_peer_id_format(&b.leader, leader, sizeof leader);
        healthy = healthy && why == NULL;
        json_array_append_new(groups, json_pack("{s:s, s:s, s:s?, s:s?}", "group",
                                                metrics_node_group(s->groups[i]), "state",
                                                metrics_state_name(b.state), "leader",
                                                leader[0] ? leader : NULL, "reason", why));
    }
    pthread_mutex_unlock(&s->lock);
    if (from == to) {
        json_decref(groups);
        return reply_text(c, MHD_HTTP_NOT_FOUND, "unknown group: not served here\n");
    }
    json_t *o = json_pack("{s:s, s:o}", "status", healthy ? "ok" : "unavailable", "groups", groups);
    return reply_json(c, healthy ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, o);
}

/* The request carries "Authorization: Bearer <token>" (compared in
 * constant time by OpenSSL). */
static bool authorized(const admin_server_t *s, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    size_t n = strlen(s->token);

    if (h == NULL || strncmp(h, "Bearer ", 7) != 0 || strlen(h + 7) != n)
        return false;
    return CRYPTO_memcmp(h + 7, s->token, n) == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req)
{
    (void)version;
    (void)upload;
    (void)req;
    admin_server_t *s = cls;
    /* Answering on the first call means a request body is never read;
     * libmicrohttpd discards it (or closes the connection). */
    *upload_size = 0;
    route_t route = route_of(url);
    const status_page_file_t *page = status_page_find(url); /* "/" and its files */
    if (route == ROUTE_NONE && page == NULL)
        return reply_text(c, MHD_HTTP_NOT_FOUND,
                          "not found: try / (status page), /metrics, /status, /health\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n");
    if (page != NULL)
        return status_page_reply(c, page);
    /* The page's files are static and public; the data it shows comes
     * from /status, which the token guards. */
    if (s->token != NULL && route != ROUTE_HEALTH && !authorized(s, c))
        return reply_text(c, MHD_HTTP_UNAUTHORIZED,
                          "unauthorized: send Authorization: Bearer <admin_token>\n");

    query_t q;
    const char *bad = parse_query(c, route, &q);
    if (bad != NULL)
        return reply_text(c, MHD_HTTP_BAD_REQUEST, bad);
    switch (route) {
    case ROUTE_METRICS:
        return get_metrics(c, s, &q);
    case ROUTE_STATUS:
        return get_status(c, s, &q);
    default:
        return get_health(c, s, &q);
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    admin_server_t *s = cls;
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    RK_DEBUG(NULL, NULL, "admin %s:%u: %s", s->ip, s->bound, line);
}

/* "%HH" decoding of paths and arguments, except that a string holding an
 * escaped NUL is left as it came: decoded, "/%00x" would read as "/" (C
 * strings end at the NUL) and reach a resource it does not name. Left
 * escaped, it matches no route and no group. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    if (strstr(s, "%00") != NULL)
        return strlen(s);
    return MHD_http_unescape(s);
}

/* ---- starting and the shared table ---- */

static int resolve(const char *ip, uint16_t port, struct sockaddr_storage *out, rk_status_t *err)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char svc[8];
    snprintf(svc, sizeof svc, "%u", port);
    int rc = getaddrinfo(ip, svc, &hints, &res);
    if (rc != 0 || res == NULL)
        return rk_status_set(err, RK_EINVAL, "admin address %s: %s", ip, gai_strerror(rc));
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* A PEM file's text (malloc'ed), or NULL with err set. */
static char *read_pem(const char *what, const char *path, rk_status_t *err)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL) {
        rk_status_set(err, RK_EINVAL, "admin endpoint %s '%s': cannot open", what, path);
        return NULL;
    }
    do {
        if (len + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap = cap * 2 + 8192);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                rk_status_set(err, RK_ENOMEM, "out of memory");
                return NULL;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, 4096, f);
        len += n;
    } while (n > 0 && len < (1u << 20));
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static void server_free_security(admin_server_t *s)
{
    if (s->key_pem != NULL)
        OPENSSL_cleanse(s->key_pem, strlen(s->key_pem));
    if (s->token != NULL)
        OPENSSL_cleanse(s->token, strlen(s->token));
    free(s->cert_pem);
    free(s->key_pem);
    free(s->token);
}

static admin_server_t *server_start(const char *ip, uint16_t port, const admin_security_t *sec,
                                    rk_status_t *err)
{
    if (ip == NULL || ip[0] == '\0' || strlen(ip) >= RK_HOST_MAX) {
        rk_status_set(err, RK_EINVAL, "admin address must be a host or IP");
        return NULL;
    }
    struct sockaddr_storage sa;
    if (resolve(ip, port, &sa, err) != 0)
        return NULL;
    admin_server_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        rk_status_set(err, RK_ENOMEM, "admin server");
        return NULL;
    }
    snprintf(s->ip, sizeof s->ip, "%s", ip);
    s->port = port;
    bool tls = sec != NULL && sec->cert_file != NULL && sec->cert_file[0] != '\0';
    if (tls && ((s->cert_pem = read_pem("certificate", sec->cert_file, err)) == NULL ||
                (s->key_pem = read_pem("key", sec->key_file ? sec->key_file : "", err)) == NULL)) {
        server_free_security(s);
        free(s);
        return NULL;
    }
    if (sec != NULL && sec->token != NULL && sec->token[0] != '\0' &&
        (s->token = strdup(sec->token)) == NULL) {
        server_free_security(s);
        free(s);
        rk_status_set(err, RK_ENOMEM, "out of memory");
        return NULL;
    }
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    pthread_mutex_init(&s->lock, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (tls)
        flags |= MHD_USE_TLS;
    if (sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, tls_opts + (tls ? 0 : 2),
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY, MHD_OPTION_STRICT_FOR_CLIENT,
        (int)1, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, MHD_OPTION_UNESCAPE_CALLBACK, unescape,
        NULL, MHD_OPTION_END);
    if (s->daemon == NULL) {
        rk_status_set(err, RK_EIO, "admin endpoint: cannot listen on %s:%u%s", ip, port,
                      tls ? " (or the TLS certificate/key is unusable)" : "");
        pthread_mutex_destroy(&s->lock);
        server_free_security(s);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->bound = info ? info->port : port;
    RK_INFO(NULL, NULL, "admin endpoint listening on %s:%u%s", ip, s->bound, tls ? " (HTTPS)" : "");
    return s;
}

admin_server_t *admin_attach(const char *ip, uint16_t port, metrics_node_t *m, rk_status_t *err)
{
    return admin_attach_secure(ip, port, m, NULL, err);
}

/* The server s was started with the same security as sec asks for. */
static bool same_security(const admin_server_t *s, const admin_security_t *sec)
{
    bool tls = sec != NULL && sec->cert_file != NULL && sec->cert_file[0] != '\0';
    const char *tok = sec != NULL && sec->token != NULL && sec->token[0] ? sec->token : NULL;

    return tls == (s->cert_pem != NULL) && (tok == NULL) == (s->token == NULL) &&
           (tok == NULL || strcmp(tok, s->token) == 0);
}

admin_server_t *admin_attach_secure(const char *ip, uint16_t port, metrics_node_t *m,
                                    const admin_security_t *sec, rk_status_t *err)
{
    if (m == NULL) {
        rk_status_set(err, RK_EINVAL, "no metrics hub");
        return NULL;
    }
    pthread_mutex_lock(&table_lock);
    admin_server_t *s = NULL;
    if (port != 0) {
        for (s = table; s; s = s->next)
            if (s->port == port && strcmp(s->ip, ip ? ip : "") == 0)
                break;
    }
    if (s != NULL && !same_security(s, sec)) {
        pthread_mutex_unlock(&table_lock);
        rk_status_set(err, RK_EINVAL,
                      "admin endpoint %s:%u is already served with other TLS/token settings", ip,
                      port);
        return NULL;
    }
    if (s == NULL) {
        s = server_start(ip, port, sec, err);
        if (s == NULL) {
            pthread_mutex_unlock(&table_lock);
            return NULL;
        }
        s->next = table;
        table = s;
    }
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    if (s->n_groups == s->cap_groups) {
        size_t cap = s->cap_groups ? 2 * s->cap_groups : 16;
        metrics_node_t **g = realloc(s->groups, cap * sizeof *g);
        if (g != NULL) {
            s->groups = g;
            s->cap_groups = cap;
        }
    }
    if (s->n_groups == s->cap_groups) {
        rc = rk_status_set(err, RK_ENOMEM, "admin endpoint: out of memory");
    } else {
        /* After the groups that sort before m or equal it. */
        size_t at = lower_bound(s, metrics_node_group(m));
        while (at < s->n_groups && group_cmp(s->groups[at], m) <= 0)
            at++;
        memmove(&s->groups[at + 1], &s->groups[at], (s->n_groups - at) * sizeof s->groups[0]);
        s->groups[at] = m;
        s->n_groups++;
    }
    bool empty = s->n_groups == 0;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&table_lock);
    if (rc != 0 && empty)
        admin_detach(s, NULL); /* stops the server this call started */
    return rc != 0 ? NULL : s;
}

void admin_detach(admin_server_t *s, metrics_node_t *m)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&table_lock);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_groups; i++) {
        if (s->groups[i] == m) {
            memmove(&s->groups[i], &s->groups[i + 1], (s->n_groups - i - 1) * sizeof s->groups[0]);
            s->n_groups--;
            break;
        }
    }
    bool last = s->n_groups == 0;
    pthread_mutex_unlock(&s->lock);
    if (last) {
        admin_server_t **pp = &table;
        while (*pp && *pp != s)
            pp = &(*pp)->next;
        if (*pp)
            *pp = s->next;
    }
    pthread_mutex_unlock(&table_lock);
    if (!last)
        return;
    /* Waits for the server thread and closes every connection. */
    MHD_stop_daemon(s->daemon);
    pthread_mutex_destroy(&s->lock);
    server_free_security(s);
    free(s->groups);
    free(s);
}
