/* A tiny appending string buffer for the text renderers of src/metrics:
 * either growing (malloc'd, handed to the caller) or a caller's fixed array
 * with snprintf semantics (writes what fits, counts the full length). */
#ifndef RAFTKIT_METRICS_STRBUF_H
#define RAFTKIT_METRICS_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct metrics_buf {
    char *p;
    size_t len; /* length of the full text, even past cap for a fixed buffer */
    size_t cap;
    bool fixed;
    bool oom; /* a growing buffer failed to grow: the text is incomplete */
} metrics_buf_t;

/* A growing buffer; p is NULL until the first append. */
void metrics_buf_init(metrics_buf_t *b);
/* A fixed buffer over buf[len]; NUL-terminated from the start when len > 0. */
void metrics_buf_init_fixed(metrics_buf_t *b, char *buf, size_t len);

void metrics_buf_printf(metrics_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void metrics_buf_puts(metrics_buf_t *b, const char *s);
void metrics_buf_putn(metrics_buf_t *b, const char *s, size_t n);
void metrics_buf_putc(metrics_buf_t *b, char c);

/* Growing buffers: hands the string to the caller (free() it), or NULL when
 * an append ran out of memory (then the buffer is freed). */
char *metrics_buf_take(metrics_buf_t *b);

#endif /* RAFTKIT_METRICS_STRBUF_H */
