/* Endpoints, peer ids and configurations, in the forms JRaft users know:
 *
 *   endpoint       host:port                 127.0.0.1:8081, [::1]:8081, kv-0.kv:8081
 *   peer id        host:port[:idx[:priority]] 127.0.0.1:8081:0:100, kv-0.kv:8081
 *   learner        <peer id>/learner         127.0.0.1:8084/learner
 *   configuration  comma-separated peers and learners
 *                  127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083,127.0.0.1:8084/learner
 *
 * host is an IPv4 literal, a bracketed IPv6 literal (an optional "%zone"
 * allowed), or a DNS host name (RFC 1123: dot-separated labels of letters,
 * digits and '-', at most RK_HOST_MAX - 1 bytes in all). Nothing here
 * resolves a name: the RPC client resolves it, without blocking its loop,
 * each time it (re)connects, so a peer that moved to another address is
 * found again. A peer id stays its name: two ids are the same peer when
 * their hosts match (case-insensitively; parsing stores names and IPv6
 * literals in lower case), never because they resolve to one address.
 *
 * All types are plain values: copy them with `=`, no allocation, nothing to
 * free. Every function here is pure and thread-safe.
 */
#ifndef RAFTKIT_PEER_H
#define RAFTKIT_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; what is declared here is its API. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define RK_HOST_MAX       64  /* host name or IP literal, including the NUL */
#define RK_PEER_ID_STRLEN 112 /* enough for any formatted peer id or learner */
#define RK_CONF_MAX_PEERS 32  /* voters, and separately learners, per configuration */

/* Election priority (JRaft's electionPriority): -1 disables priority-based
 * election (the default), 0 means this peer never becomes leader, higher values
 * are preferred. */
#define RK_PRIORITY_DISABLED    (-1)
#define RK_PRIORITY_NOT_ELECTED 0

typedef struct rk_endpoint {
    char host[RK_HOST_MAX]; /* lower case; IPv6 literals are stored without brackets */
    uint16_t port;          /* 1..65535; 0 only in an empty endpoint */
} rk_endpoint_t;

typedef struct rk_peer_id {
    rk_endpoint_t endpoint;
    int32_t idx;      /* >= 0; distinguishes several peers on one endpoint */
    int32_t priority; /* RK_PRIORITY_DISABLED (-1), or >= 0 */
} rk_peer_id_t;

/* A cluster membership: voters ("peers") and non-voting learners. A peer
 * appears at most once in the union of the two lists. */
typedef struct rk_configuration {
    uint32_t n_peers;
    uint32_t n_learners;
    rk_peer_id_t peers[RK_CONF_MAX_PEERS];
    rk_peer_id_t learners[RK_CONF_MAX_PEERS];
} rk_configuration_t;

/* ---- endpoint ---- */

/* Parses "host:port" or "[v6addr]:port"; host is an IPv4 literal or a host
 * name (see above), stored in lower case. Returns 0, or RK_EINVAL with a
 * reason in err (may be NULL) for an empty or over-long host, a host name
 * that breaks RFC 1123 (empty label as in "a..b" or "a.", a character other
 * than letters, digits, '-' and '.', a label starting or ending with '-',
 * an all-numeric name that is no IPv4 address such as "1.2.3"),
 * a bracketed host that is no IPv6 address, a missing, non-numeric, zero or
 * out-of-range port, or trailing characters. */
int rk_endpoint_parse(rk_endpoint_t *out, const char *s, rk_status_t *err);

/* Writes "host:port" ("[host]:port" for IPv6) into buf. Returns the length
 * that was (or would have been) written, as snprintf does. */
int rk_endpoint_format(const rk_endpoint_t *ep, char *buf, size_t len);

/* Same port and same host, compared case-insensitively (never resolved). */
bool rk_endpoint_equal(const rk_endpoint_t *a, const rk_endpoint_t *b);

/* ---- peer id ---- */

/* Parses "host:port[:idx[:priority]]". idx defaults to 0, priority to
 * RK_PRIORITY_DISABLED. Returns 0 or RK_EINVAL with the reason in err. A
 * "/learner" suffix is not accepted here (see rk_configuration_parse). */
int rk_peer_id_parse(rk_peer_id_t *out, const char *s, rk_status_t *err);

/* Formats the shortest form that parses back to the same peer: "host:port"
 * when idx is 0 and priority disabled, "host:port:idx" when only priority is
 * disabled, else "host:port:idx:priority". Returns as snprintf. */
int rk_peer_id_format(const rk_peer_id_t *p, char *buf, size_t len);

/* Identity: endpoint (see rk_endpoint_equal) and idx. Priority is an
 * attribute, not part of identity. */
bool rk_peer_id_equal(const rk_peer_id_t *a, const rk_peer_id_t *b);
bool rk_peer_id_is_empty(const rk_peer_id_t *p);
void rk_peer_id_clear(rk_peer_id_t *p);

/* ---- configuration ---- */

void rk_configuration_init(rk_configuration_t *c);

/* Parses a comma-separated list; entries ending in "/learner" are learners.
 * Spaces around entries are ignored; an empty string is an empty
 * configuration. Returns 0, or RK_EINVAL for a malformed entry, an empty
 * entry ("a,,b"), a duplicate peer, or more than RK_CONF_MAX_PEERS voters or
 * learners; err names the offending entry. */
int rk_configuration_parse(rk_configuration_t *out, const char *s, rk_status_t *err);

/* Formats voters then learners, comma-separated. Returns as snprintf. */
int rk_configuration_format(const rk_configuration_t *c, char *buf, size_t len);

bool rk_configuration_is_empty(const rk_configuration_t *c);
bool rk_configuration_contains(const rk_configuration_t *c, const rk_peer_id_t *p); /* voter */
bool rk_configuration_is_learner(const rk_configuration_t *c, const rk_peer_id_t *p);

/* Add/remove a voter or a learner. Adding returns RK_EEXIST if the peer is
 * already a voter or learner, RK_ETOOBIG when the list is full; removing
 * returns RK_ENOTFOUND if absent. */
int rk_configuration_add_peer(rk_configuration_t *c, const rk_peer_id_t *p);
int rk_configuration_remove_peer(rk_configuration_t *c, const rk_peer_id_t *p);
int rk_configuration_add_learner(rk_configuration_t *c, const rk_peer_id_t *p);
int rk_configuration_remove_learner(rk_configuration_t *c, const rk_peer_id_t *p);

/* Same voters and same learners, in any order. */
bool rk_configuration_equal(const rk_configuration_t *a, const rk_configuration_t *b);

/* Checks a configuration is usable: no duplicate among voters and learners,
 * no empty peer. Returns 0 or RK_ECONF with the reason in err. */
int rk_configuration_validate(const rk_configuration_t *c, rk_status_t *err);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* RAFTKIT_PEER_H */
