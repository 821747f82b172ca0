/* raftkit error scheme: one set of codes for the whole library.
 *
 * Every function that can fail returns 0 or a negative RK_E* code, and every
 * closure is handed an rk_status_t whose code is one of the same values. The
 * codes are stable (part of the ABI); rk_strerror() and rk_err_name() decode
 * them. A function that takes a closure and returns an error never runs the
 * closure; a closure that was accepted runs exactly once.
 */
#ifndef RAFTKIT_STATUS_H
#define RAFTKIT_STATUS_H

#include <stdarg.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; what is declared here is its API. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define RK_ERRNO_MAP(X)                                                       \
    X(EINVAL, -1, "invalid argument")                                         \
    X(ENOMEM, -2, "out of memory")                                            \
    X(EBUSY, -3, "busy: queue full, try again later")                         \
    X(ENOTLEADER, -4, "this node is not the leader")                          \
    X(ETERM, -5, "term mismatch: leadership changed since the expected term") \
    X(ESHUTDOWN, -6, "node is shutting down or stopped")                      \
    X(ETIMEDOUT, -7, "timed out")                                             \
    X(EIO, -8, "storage I/O error")                                           \
    X(ECORRUPT, -9, "corrupt data: checksum or format mismatch")              \
    X(ENOSPC, -10, "no space left on device")                                 \
    X(ECONFCHANGE, -11, "a configuration change is already in progress")      \
    X(ETRANSFER, -12, "leadership transfer in progress")                      \
    X(ELEADERLOST, -13, "leadership lost before the entry was committed")     \
    X(ENOTFOUND, -14, "not found")                                            \
    X(EEXIST, -15, "already exists")                                          \
    X(EUNREACHABLE, -16, "peer unreachable")                                  \
    X(ECANCELED, -17, "canceled")                                             \
    X(EPROTO, -18, "protocol error: malformed message")                       \
    X(ETOOBIG, -19, "message or entry too large")                             \
    X(ESTALE, -20, "stale request")                                           \
    X(ENOLEADER, -21, "no leader known")                                      \
    X(ECONF, -22, "bad cluster configuration")                                \
    X(EAGAIN, -23, "resource temporarily unavailable, try again")             \
    X(ESTATE, -24, "operation not allowed in the node's current state")       \
    X(ECATCHUP, -25, "peer failed to catch up")                               \
    X(EINTERNAL, -26, "internal error")                                       \
    X(ENOGROUP, -27, "unknown group id")                                      \
    X(EUNKNOWNPEER, -28, "unknown peer")                                      \
    X(EPERM, -29, "permission denied: this identity may not do that")

enum rk_errno {
    RK_OK = 0,
#define RK__ERRNO_ENUM(name, val, text) RK_##name = (val),
    RK_ERRNO_MAP(RK__ERRNO_ENUM)
#undef RK__ERRNO_ENUM
};

/* Status handed to closures. msg adds detail to the code's fixed text; it is
 * always NUL-terminated and may be empty. */
#define RK_STATUS_MSG_MAX 128
typedef struct rk_status {
    int code;
    char msg[RK_STATUS_MSG_MAX];
} rk_status_t;

/* Fixed text for a code ("timed out"); "unknown error" for anything else.
 * Thread-safe; the string is static. */
const char *rk_strerror(int code);

/* The code's symbolic name ("RK_ETIMEDOUT"); "RK_UNKNOWN" for anything else. */
const char *rk_err_name(int code);

/* st->code = RK_OK, st->msg = "". NULL-safe. */
void rk_status_clear(rk_status_t *st);

/* Sets code and a printf-style message (truncated to fit); returns code so a
 * caller can write `return rk_status_set(st, RK_EINVAL, "bad port %d", p);`.
 * st may be NULL, then only the code is returned. */
int rk_status_set(rk_status_t *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int rk_status_vset(rk_status_t *st, int code, const char *fmt, va_list ap);

static inline bool rk_status_ok(const rk_status_t *st)
{
    return st->code == RK_OK;
}

/* "RK_ETIMEDOUT: timed out (after 500 ms)" into buf; returns buf. */
const char *rk_status_str(const rk_status_t *st, char *buf, unsigned long len);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* RAFTKIT_STATUS_H */
