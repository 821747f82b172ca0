/* A minimal blocking HTTP/1.1 client for tests of the admin endpoint. */
#ifndef RAFTKIT_TESTS_HTTP_CLIENT_H
#define RAFTKIT_TESTS_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct http_reply {
    int code;      /* 0: connection closed without a status line */
    char *headers; /* status line and headers (malloc'd) */
    char *body;    /* malloc'd */
} http_reply_t;

/* A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick;
 * another process may take it before the caller binds it), or 0. */
uint16_t http_free_port(void);

/* A TCP connection to 127.0.0.1:port, or -1. */
int http_connect(uint16_t port);

/* Sends req[0..len) as is on a new connection, half-closes it, reads until
 * the server closes (or 10 s pass) and splits the answer. A connection that
 * cannot be opened gives code 0 and empty headers and body. Free the reply
 * with http_reply_free. */
http_reply_t http_exchange(uint16_t port, const char *req, size_t len);

/* method path HTTP/1.1 with a Host header and Connection: close. */
http_reply_t http_request(uint16_t port, const char *method, const char *path);

void http_reply_free(http_reply_t *r);

/* GETs path from 127.0.0.1:port with Connection: close. Returns the status
 * code (0 when the connection closed without one) and the body in *body
 * (malloc'd; free it). */
int http_get(uint16_t port, const char *path, char **body);

#endif
