/* Parsing and printing of endpoints, peer ids and configurations in JRaft's
 * textual forms, plus the small set operations the rest of raftkit needs. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "raftkit/peer.h"

/* Parses a decimal integer occupying exactly [s, s+len). Rejects empty input,
 * signs, and values outside [min, max]. */
static int parse_int(const char *s, size_t len, long min, long max, long *out)
{
    long v = 0;
    if (len == 0 || len > 10)
        return RK_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return RK_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return RK_EINVAL;
    *out = v;
    return 0;
}

/* Checks an IPv6 literal (the text between the brackets): an address
 * inet_pton accepts, optionally followed by "%zone" (fe80::1%eth0). */
static int check_ipv6(const char *host, size_t hlen, const char *s, rk_status_t *err)
{
    char addr[RK_HOST_MAX];
    struct in6_addr a6;
    size_t alen = hlen;
    const char *zone = memchr(host, '%', hlen);

    if (zone != NULL) {
        alen = (size_t)(zone - host);
        if (hlen - alen < 2)
            return rk_status_set(err, RK_EINVAL, "empty IPv6 zone in '%s'", s);
        for (const char *z = zone + 1; z < host + hlen; z++)
            if (!isalnum((unsigned char)*z) && *z != '-' && *z != '_' && *z != '.')
                return rk_status_set(err, RK_EINVAL, "bad character in IPv6 zone of '%s'", s);
    }
    memcpy(addr, host, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET6, addr, &a6) != 1)
        return rk_status_set(err, RK_EINVAL, "'%s' in '%s' is not an IPv6 address", addr, s);
    return 0;
}

/* Checks an unbracketed host: an IPv4 literal, or a host name as RFC 1123
 * (section 2.1) and RFC 952 define it: dot-separated labels of 1..63
 * letters, digits and hyphens, neither starting nor ending with a hyphen.
 * A name whose last label is all digits is refused: getaddrinfo would read
 * "10.1" or "1.2.3.400"-like text as a (mistyped) IPv4 address. */
static int check_hostname(const char *host, size_t hlen, const char *s, rk_status_t *err)
{
    char addr[RK_HOST_MAX];
    struct in_addr a4;
    const char *label = host, *end = host + hlen;
    bool all_digits = true;

    memcpy(addr, host, hlen);
    addr[hlen] = '\0';
    if (inet_pton(AF_INET, addr, &a4) == 1)
        return 0;
    for (const char *c = host;; c++) {
        if (c == end || *c == '.') {
            size_t llen = (size_t)(c - label);
            if (llen == 0)
                return rk_status_set(err, RK_EINVAL, "empty label in host name '%s' of '%s'", addr,
                                     s);
            if (label[0] == '-' || c[-1] == '-')
                return rk_status_set(err, RK_EINVAL,
                                     "label of host name '%s' in '%s' starts or ends with '-'",
                                     addr, s);
            if (c == end)
                break;
            label = c + 1;
            all_digits = true;
            continue;
        }
        if (!isalnum((unsigned char)*c) && *c != '-')
            return rk_status_set(err, RK_EINVAL,
                                 "bad character '%c' in host name '%s' of '%s' (letters, digits, "
                                 "'-' and '.' only; IPv6 addresses go in brackets)",
                                 isprint((unsigned char)*c) ? *c : '?', addr, s);
        if (!isdigit((unsigned char)*c))
            all_digits = false;
    }
    if (all_digits)
        return rk_status_set(err, RK_EINVAL,
                             "'%s' in '%s' is neither an IPv4 address nor a host name", addr, s);
    return 0;
}

/* Host and port from the front of s; *rest points past the port. IPv6
 * literals must be bracketed, because their colons would otherwise be
 * ambiguous with the idx and priority fields. Host names and IPv6 literals
 * are stored in lower case, so that ids differing only in case are one peer
 * everywhere ids are compared or used as keys. */
static int parse_endpoint_prefix(rk_endpoint_t *out, const char *s, const char **rest,
                                 rk_status_t *err)
{
    const char *host = s, *host_end, *p;
    bool bracketed = *s == '[';
    memset(out, 0, sizeof *out);
    if (bracketed) {
        host = s + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL)
            return rk_status_set(err, RK_EINVAL, "unterminated '[' in '%s'", s);
        p = host_end + 1;
    } else {
        host_end = strchr(s, ':');
        if (host_end == NULL)
            return rk_status_set(err, RK_EINVAL, "missing ':port' in '%s'", s);
        p = host_end;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0)
        return rk_status_set(err, RK_EINVAL, "empty host in '%s'", s);
    if (hlen >= RK_HOST_MAX)
        return rk_status_set(err, RK_EINVAL, "host longer than %d bytes in '%s'", RK_HOST_MAX - 1,
                             s);
    int rv = bracketed ? check_ipv6(host, hlen, s, err) : check_hostname(host, hlen, s, err);
    if (rv != 0)
        return rv;
    if (*p != ':')
        return rk_status_set(err, RK_EINVAL, "missing ':port' in '%s'", s);
    p++;
    const char *port_end = p;
    while (*port_end != '\0' && *port_end != ':')
        port_end++;
    long port;
    if (parse_int(p, (size_t)(port_end - p), 1, 65535, &port) != 0)
        return rk_status_set(err, RK_EINVAL, "bad port in '%s' (want 1..65535)", s);
    for (size_t i = 0; i < hlen; i++)
        out->host[i] = (char)tolower((unsigned char)host[i]);
    out->host[hlen] = '\0';
    out->port = (uint16_t)port;
    *rest = port_end;
    return 0;
}

int rk_endpoint_parse(rk_endpoint_t *out, const char *s, rk_status_t *err)
{
    const char *rest;
    if (out == NULL || s == NULL)
        return rk_status_set(err, RK_EINVAL, "NULL argument");
    int rv = parse_endpoint_prefix(out, s, &rest, err);
    if (rv != 0)
        return rv;
    if (*rest != '\0') {
        memset(out, 0, sizeof *out);
        return rk_status_set(err, RK_EINVAL, "trailing characters in endpoint '%s'", s);
    }
    return 0;
}

int rk_endpoint_format(const rk_endpoint_t *ep, char *buf, size_t len)
{
    if (strchr(ep->host, ':') != NULL)
        return snprintf(buf, len, "[%s]:%u", ep->host, ep->port);
    return snprintf(buf, len, "%s:%u", ep->host, ep->port);
}

bool rk_endpoint_equal(const rk_endpoint_t *a, const rk_endpoint_t *b)
{
    return a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

int rk_peer_id_parse(rk_peer_id_t *out, const char *s, rk_status_t *err)
{
    const char *rest;
    if (out == NULL || s == NULL)
        return rk_status_set(err, RK_EINVAL, "NULL argument");
    rk_peer_id_clear(out);
    int rv = parse_endpoint_prefix(&out->endpoint, s, &rest, err);
    if (rv != 0)
        return rv;
    long fields[2] = {0, RK_PRIORITY_DISABLED};
    for (int i = 0; i < 2 && *rest == ':'; i++) {
        const char *f = rest + 1, *end = f;
        while (*end != '\0' && *end != ':')
            end++;
        /* priority may be -1 (disabled), written explicitly by some configs */
        if (i == 1 && (size_t)(end - f) == 2 && f[0] == '-' && f[1] == '1')
            fields[1] = RK_PRIORITY_DISABLED;
        else if (parse_int(f, (size_t)(end - f), 0, INT32_MAX, &fields[i]) != 0) {
            rk_peer_id_clear(out);
            return rk_status_set(err, RK_EINVAL, "bad %s in peer id '%s'",
                                 i == 0 ? "index" : "priority", s);
        }
        rest = end;
    }
    if (*rest != '\0') {
        rk_peer_id_clear(out);
        return rk_status_set(err, RK_EINVAL, "trailing characters in peer id '%s'", s);
    }
    out->idx = (int32_t)fields[0];
    out->priority = (int32_t)fields[1];
    return 0;
}

int rk_peer_id_format(const rk_peer_id_t *p, char *buf, size_t len)
{
    char ep[RK_HOST_MAX + 16];
    rk_endpoint_format(&p->endpoint, ep, sizeof ep);
    if (p->priority != RK_PRIORITY_DISABLED)
        return snprintf(buf, len, "%s:%d:%d", ep, p->idx, p->priority);
    if (p->idx != 0)
        return snprintf(buf, len, "%s:%d", ep, p->idx);
    return snprintf(buf, len, "%s", ep);
}

bool rk_peer_id_equal(const rk_peer_id_t *a, const rk_peer_id_t *b)
{
    return a->idx == b->idx && rk_endpoint_equal(&a->endpoint, &b->endpoint);
}

bool rk_peer_id_is_empty(const rk_peer_id_t *p)
{
    return p->endpoint.host[0] == '\0' && p->endpoint.port == 0;
}

void rk_peer_id_clear(rk_peer_id_t *p)
{
    memset(p, 0, sizeof *p);
    p->priority = RK_PRIORITY_DISABLED;
}

/* ---- configuration ---- */

void rk_configuration_init(rk_configuration_t *c)
{
    memset(c, 0, sizeof *c);
}

static int find(const rk_peer_id_t *list, uint32_t n, const rk_peer_id_t *p)
{
    for (uint32_t i = 0; i < n; i++)
        if (rk_peer_id_equal(&list[i], p))
            return (int)i;
    return -1;
}

bool rk_configuration_contains(const rk_configuration_t *c, const rk_peer_id_t *p)
{
    return find(c->peers, c->n_peers, p) >= 0;
}

bool rk_configuration_is_learner(const rk_configuration_t *c, const rk_peer_id_t *p)
{
    return find(c->learners, c->n_learners, p) >= 0;
}

bool rk_configuration_is_empty(const rk_configuration_t *c)
{
    return c->n_peers == 0 && c->n_learners == 0;
}

static int add_to(rk_peer_id_t *list, uint32_t *n, const rk_configuration_t *c,
                  const rk_peer_id_t *p)
{
    if (rk_configuration_contains(c, p) || rk_configuration_is_learner(c, p))
        return RK_EEXIST;
    if (*n >= RK_CONF_MAX_PEERS)
        return RK_ETOOBIG;
    list[(*n)++] = *p;
    return 0;
}

static int remove_from(rk_peer_id_t *list, uint32_t *n, const rk_peer_id_t *p)
{
    int i = find(list, *n, p);
    if (i < 0)
        return RK_ENOTFOUND;
    memmove(&list[i], &list[i + 1], (*n - (uint32_t)i - 1) * sizeof *list);
    (*n)--;
    return 0;
}

int rk_configuration_add_peer(rk_configuration_t *c, const rk_peer_id_t *p)
{
    return add_to(c->peers, &c->n_peers, c, p);
}

int rk_configuration_remove_peer(rk_configuration_t *c, const rk_peer_id_t *p)
{
    return remove_from(c->peers, &c->n_peers, p);
}

int rk_configuration_add_learner(rk_configuration_t *c, const rk_peer_id_t *p)
{
    return add_to(c->learners, &c->n_learners, c, p);
}

int rk_configuration_remove_learner(rk_configuration_t *c, const rk_peer_id_t *p)
{
    return remove_from(c->learners, &c->n_learners, p);
}

static bool same_set(const rk_peer_id_t *a, uint32_t na, const rk_peer_id_t *b, uint32_t nb)
{
    if (na != nb)
        return false;
    for (uint32_t i = 0; i < na; i++)
        if (find(b, nb, &a[i]) < 0)
            return false;
    return true;
}

bool rk_configuration_equal(const rk_configuration_t *a, const rk_configuration_t *b)
{
    return same_set(a->peers, a->n_peers, b->peers, b->n_peers) &&
           same_set(a->learners, a->n_learners, b->learners, b->n_learners);
}

int rk_configuration_parse(rk_configuration_t *out, const char *s, rk_status_t *err)
{
    static const char learner_suffix[] = "/learner";
    const size_t suffix_len = sizeof learner_suffix - 1;
    char item[RK_PEER_ID_STRLEN + 16];

    if (out == NULL || s == NULL)
        return rk_status_set(err, RK_EINVAL, "NULL argument");
    rk_configuration_init(out);
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0')
        return 0;
    for (;;) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        while (len > 0 && isspace((unsigned char)*s))
            s++, len--;
        while (len > 0 && isspace((unsigned char)s[len - 1]))
            len--;
        if (len == 0) {
            rk_configuration_init(out);
            return rk_status_set(err, RK_EINVAL, "empty entry in configuration");
        }
        if (len >= sizeof item) {
            rk_configuration_init(out);
            return rk_status_set(err, RK_EINVAL, "configuration entry too long");
        }
        memcpy(item, s, len);
        item[len] = '\0';
        bool learner = len > suffix_len && strcmp(item + len - suffix_len, learner_suffix) == 0;
        if (learner)
            item[len - suffix_len] = '\0';
        rk_peer_id_t p;
        int rv = rk_peer_id_parse(&p, item, err);
        if (rv != 0) {
            rk_configuration_init(out);
            return rv;
        }
        rv = learner ? rk_configuration_add_learner(out, &p) : rk_configuration_add_peer(out, &p);
        if (rv != 0) {
            rk_configuration_init(out);
            return rk_status_set(err, RK_EINVAL, "%s peer '%s' in configuration",
                                 rv == RK_EEXIST ? "duplicate" : "too many peers at", item);
        }
        if (end == NULL)
            return 0;
        s = end + 1;
    }
}

static int append_list(char *buf, size_t len, size_t *used, const rk_peer_id_t *list, uint32_t n,
                       const char *suffix, bool *first)
{
    char one[RK_PEER_ID_STRLEN];
    int total = 0;
    for (uint32_t i = 0; i < n; i++) {
        rk_peer_id_format(&list[i], one, sizeof one);
        int w = snprintf(buf + *used, *used < len ? len - *used : 0, "%s%s%s", *first ? "" : ",",
                         one, suffix);
        *first = false;
        total += w;
        *used += (size_t)w;
    }
    return total;
}

int rk_configuration_format(const rk_configuration_t *c, char *buf, size_t len)
{
    size_t used = 0;
    bool first = true;
    if (len > 0)
        buf[0] = '\0';
    append_list(buf, len, &used, c->peers, c->n_peers, "", &first);
    append_list(buf, len, &used, c->learners, c->n_learners, "/learner", &first);
    if (len > 0 && used >= len)
        buf[len - 1] = '\0';
    return (int)used;
}

int rk_configuration_validate(const rk_configuration_t *c, rk_status_t *err)
{
    char one[RK_PEER_ID_STRLEN];
    if (c->n_peers > RK_CONF_MAX_PEERS || c->n_learners > RK_CONF_MAX_PEERS)
        return rk_status_set(err, RK_ECONF, "more than %d voters or learners", RK_CONF_MAX_PEERS);
    for (uint32_t i = 0; i < c->n_peers + c->n_learners; i++) {
        const rk_peer_id_t *p = i < c->n_peers ? &c->peers[i] : &c->learners[i - c->n_peers];
        if (rk_peer_id_is_empty(p))
            return rk_status_set(err, RK_ECONF, "empty peer in configuration");
        for (uint32_t j = i + 1; j < c->n_peers + c->n_learners; j++) {
            const rk_peer_id_t *q = j < c->n_peers ? &c->peers[j] : &c->learners[j - c->n_peers];
            if (rk_peer_id_equal(p, q)) {
                rk_peer_id_format(p, one, sizeof one);
                return rk_status_set(err, RK_ECONF, "peer %s listed twice", one);
            }
        }
    }
    return 0;
}
