/* Host name resolution for RPC endpoints (see rpc_resolve.h). */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/rpc_resolve.h"

struct rpc_resolve {
    uv_getaddrinfo_t req;
    rpc_resolve_fn cb; /* NULL once canceled */
    void *arg;
};

static const struct addrinfo hints = {
    /* No AI_ADDRCONFIG: it ignores loopback addresses, so a name that maps
     * to 127.0.0.x would not resolve on a host (or network namespace)
     * whose only interface is lo. */
    .ai_family = AF_UNSPEC,
    .ai_socktype = SOCK_STREAM,
    .ai_flags = AI_NUMERICSERV,
};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    rpc_resolve_t *r = req->data;
    struct sockaddr_storage ss[RPC_RESOLVE_MAX];
    unsigned n = 0;

    if (r->cb != NULL) {
        for (struct addrinfo *a = status == 0 ? res : NULL; a != NULL && n < RPC_RESOLVE_MAX;
             a = a->ai_next) {
            if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
                a->ai_addrlen > sizeof ss[0])
                continue;
            memset(&ss[n], 0, sizeof ss[n]);
            memcpy(&ss[n], a->ai_addr, a->ai_addrlen);
            n++;
        }
        if (status == 0 && n == 0)
            status = UV_EAI_NONAME;
        r->cb(r->arg, status, status == 0 ? ss : NULL, n);
    }
    uv_freeaddrinfo(res);
    free(r);
}

int rpc_resolve_start(uv_loop_t *loop, const char *host, uint16_t port, rpc_resolve_fn cb,
                      void *arg, rpc_resolve_t **out)
{
    char svc[8];
    rpc_resolve_t *r = calloc(1, sizeof *r);
    int rv;

    if (r == NULL)
        return UV_ENOMEM;
    r->cb = cb;
    r->arg = arg;
    r->req.data = r;
    snprintf(svc, sizeof svc, "%u", port);
    rv = uv_getaddrinfo(loop, &r->req, on_resolved, host, svc, &hints);
    if (rv != 0) {
        free(r);
        return rv;
    }
    *out = r;
    return 0;
}

void rpc_resolve_cancel(rpc_resolve_t *r)
{
    r->cb = NULL;
    /* Only succeeds while the request waits for a pool thread; a running
     * getaddrinfo finishes and on_resolved frees r. */
    uv_cancel((uv_req_t *)&r->req);
}

int rpc_resolve_sync(const char *host, uint16_t port, struct sockaddr_storage *ss, rk_status_t *err)
{
    char svc[8];
    struct addrinfo *res = NULL;
    int rc;

    snprintf(svc, sizeof svc, "%u", port);
    rc = getaddrinfo(host, svc, &hints, &res);
    if (rc != 0 || res == NULL || res->ai_addrlen > sizeof *ss) {
        if (res != NULL)
            freeaddrinfo(res);
        return rk_status_set(err, RK_EUNREACHABLE, "cannot resolve '%s': %s", host,
                             rc != 0 ? gai_strerror(rc) : "no usable address");
    }
    memset(ss, 0, sizeof *ss);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

void rpc_addr_name(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    int rv;

    if (ss->ss_family == AF_INET6)
        rv = uv_ip6_name((const struct sockaddr_in6 *)ss, buf, len);
    else
        rv = uv_ip4_name((const struct sockaddr_in *)ss, buf, len);
    if (rv != 0 && len > 0)
        snprintf(buf, len, "?");
}
