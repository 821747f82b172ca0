/* The error table behind rk_strerror()/rk_err_name() and rk_status_t helpers. */
#include <stdio.h>
#include <string.h>

#include "raftkit/status.h"

const char *rk_strerror(int code)
{
    switch (code) {
    case RK_OK:
        return "success";
#define RK__STR(name, val, text) \
    case RK_##name:              \
        return text;
        RK_ERRNO_MAP(RK__STR)
#undef RK__STR
    }
    return "unknown error";
}

const char *rk_err_name(int code)
{
    switch (code) {
    case RK_OK:
        return "RK_OK";
#define RK__NAME(name, val, text) \
    case RK_##name:               \
        return "RK_" #name;
        RK_ERRNO_MAP(RK__NAME)
#undef RK__NAME
    }
    return "RK_UNKNOWN";
}

void rk_status_clear(rk_status_t *st)
{
    if (st == NULL)
        return;
    st->code = RK_OK;
    st->msg[0] = '\0';
}

int rk_status_vset(rk_status_t *st, int code, const char *fmt, va_list ap)
{
    if (st == NULL)
        return code;
    st->code = code;
    if (fmt == NULL)
        st->msg[0] = '\0';
    else
        vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    return code;
}

int rk_status_set(rk_status_t *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rk_status_vset(st, code, fmt, ap);
    va_end(ap);
    return code;
}

const char *rk_status_str(const rk_status_t *st, char *buf, unsigned long len)
{
    if (st->msg[0] != '\0')
        snprintf(buf, len, "%s: %s (%s)", rk_err_name(st->code), rk_strerror(st->code), st->msg);
    else
        snprintf(buf, len, "%s: %s", rk_err_name(st->code), rk_strerror(st->code));
    return buf;
}
