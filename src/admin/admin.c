/* The admin endpoint on libmicrohttpd: routing, the three resources, and the
 * process-wide table that lets groups share one ip:port.
 *
 * libmicrohttpd parses HTTP and answers malformed requests (400; strict mode:
 * HTTP/1.1 needs a Host header, no spaces in header names), over-long headers
 * (431) and slow clients (timeout) itself; this file only sees well-formed
 * requests. We answer GET and HEAD, 405 for other methods, 404
 * for other paths, and never read a request body.
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

#define MAX_GROUPS   1024
#define CONN_LIMIT   64
#define CONN_TIMEOUT 10          /* seconds a client may idle */
#define CONN_MEMORY  (32 * 1024) /* bytes per connection: bounds header size */

struct admin_server {
    struct admin_server *next; /* in the process-wide table */
    char ip[RK_HOST_MAX];
    uint16_t port;  /* as asked for; 0 = ephemeral, never shared */
    uint16_t bound; /* as bound */
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock; /* groups */
    size_t n_groups;
    metrics_node_t *groups[MAX_GROUPS];
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

/* Snapshots of the groups the request asks for (?group=ID, or all); sets
 * *n. Returns NULL with *n = 0 when none matches, or on out of memory
 * (*oom). Called with s->lock held. */
static rk_metrics_t **select_groups(admin_server_t *s, const char *group, size_t *n, bool *oom)
{
    *n = 0;
    *oom = false;
    rk_metrics_t **ms = calloc(s->n_groups ? s->n_groups : 1, sizeof *ms);
    if (ms == NULL) {
        *oom = true;
        return NULL;
    }
    for (size_t i = 0; i < s->n_groups; i++) {
        if (group && strcmp(group, metrics_node_group(s->groups[i])) != 0)
            continue;
        ms[*n] = metrics_snapshot(s->groups[i]);
        if (ms[*n] == NULL) {
            *oom = true;
            break;
        }
        (*n)++;
    }
    if (*oom || *n == 0) {
        for (size_t i = 0; i < *n; i++)
            rk_metrics_free(ms[i]);
        free(ms);
        *n = 0;
        return NULL;
    }
    return ms;
}

static void free_groups(rk_metrics_t **ms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rk_metrics_free(ms[i]);
    free(ms);
}

static enum MHD_Result get_metrics(struct MHD_Connection *c, rk_metrics_t **ms, size_t n)
{
    char *body = metrics_prometheus_render((const rk_metrics_t *const *)ms, n);
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body);
}

/* One group: its status object. Several: {"groups": [status, ...]}. */
static enum MHD_Result get_status(struct MHD_Connection *c, rk_metrics_t **ms, size_t n)
{
    if (n == 1)
        return reply_json(c, MHD_HTTP_OK, metrics_status_json(&ms[0]->status));
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, metrics_status_json(&ms[i]->status));
    return reply_json(c, MHD_HTTP_OK, json_pack("{s:o}", "groups", arr));
}

/* Healthy: a leader is known and the node is not in error or shutting
 * down. All selected groups must be healthy. */
static const char *unhealthy_reason(const rk_node_status_t *st)
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

static enum MHD_Result get_health(struct MHD_Connection *c, rk_metrics_t **ms, size_t n)
{
    json_t *groups = json_array();
    bool healthy = true;
    for (size_t i = 0; i < n; i++) {
        const rk_node_status_t *st = &ms[i]->status;
        const char *why = unhealthy_reason(st);
        char leader[RK_PEER_ID_STRLEN] = "";
        if (!rk_peer_id_is_empty(&st->leader))
            rk_peer_id_format(&st->leader, leader, sizeof leader);
        healthy = healthy && why == NULL;
        json_array_append_new(groups, json_pack("{s:s, s:s, s:s?, s:s?}", "group", st->group,
                                                "state", metrics_state_name(st->state), "leader",
                                                leader[0] ? leader : NULL, "reason", why));
    }
    json_t *o = json_pack("{s:s, s:o}", "status", healthy ? "ok" : "unavailable", "groups", groups);
    return reply_json(c, healthy ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, o);
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

    const char *group = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "group");
    size_t n;
    bool oom;
    pthread_mutex_lock(&s->lock);
    rk_metrics_t **ms = select_groups(s, group, &n, &oom);
    pthread_mutex_unlock(&s->lock);
    if (oom)
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", NULL);
    if (n == 0)
        return reply_text(c, MHD_HTTP_NOT_FOUND, group ? "unknown group\n" : "no group attached\n");
    enum MHD_Result ret;
    switch (route) {
    case ROUTE_METRICS:
        ret = get_metrics(c, ms, n);
        break;
    case ROUTE_STATUS:
        ret = get_status(c, ms, n);
        break;
    default:
        ret = get_health(c, ms, n);
        break;
    }
    free_groups(ms, n);
    return ret;
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
    /* A server that is full already has groups, so refusing one never
     * leaves an empty server behind. */
    if (s->n_groups == MAX_GROUPS)
        rc = rk_status_set(err, RK_ETOOBIG, "admin endpoint: too many groups");
    else
        s->groups[s->n_groups++] = m;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&table_lock);
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
            s->groups[i] = s->groups[--s->n_groups];
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
    free(s);
}
