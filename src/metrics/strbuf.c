/* The appending string buffer of strbuf.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/metrics/strbuf.h"

void metrics_buf_init(metrics_buf_t *b)
{
    memset(b, 0, sizeof *b);
}

void metrics_buf_init_fixed(metrics_buf_t *b, char *buf, size_t len)
{
    memset(b, 0, sizeof *b);
    b->p = buf;
    b->cap = len;
    b->fixed = true;
    if (len > 0)
        buf[0] = '\0';
}

static bool reserve(metrics_buf_t *b, size_t need)
{
    if (b->fixed || b->oom)
        return false;
    if (b->len + need + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + need + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void metrics_buf_printf(metrics_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    if (b->oom)
        return;
    char *dst = b->p && b->len < b->cap ? b->p + b->len : NULL;
    size_t room = dst ? b->cap - b->len : 0;
    va_start(ap, fmt);
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < room || b->fixed) {
        b->len += (size_t)n;
        return;
    }
    if (!reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void metrics_buf_putn(metrics_buf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (!b->fixed && !reserve(b, n))
        return;
    if (b->len < b->cap) {
        /* Fixed buffers keep snprintf's promise: truncated, NUL-terminated. */
        size_t room = b->cap - b->len - 1;
        size_t k = n < room ? n : room;
        memcpy(b->p + b->len, s, k);
        b->p[b->len + k] = '\0';
    }
    b->len += n;
}

void metrics_buf_puts(metrics_buf_t *b, const char *s)
{
    metrics_buf_putn(b, s, strlen(s));
}

void metrics_buf_putc(metrics_buf_t *b, char c)
{
    metrics_buf_putn(b, &c, 1);
}

char *metrics_buf_take(metrics_buf_t *b)
{
    if (b->oom) {
        free(b->p);
        metrics_buf_init(b);
        return NULL;
    }
    if (b->p == NULL && !reserve(b, 0))
        return NULL;
    b->p[b->len] = '\0';
    char *p = b->p;
    metrics_buf_init(b);
    return p;
}
