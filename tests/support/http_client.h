/* A minimal blocking HTTP/1.1 client for tests of the admin endpoint. */
#ifndef RAFTKIT_TESTS_HTTP_CLIENT_H
#define RAFTKIT_TESTS_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* GETs path from 127.0.0.1:port with Connection: close. Returns the status
 * code (0 when the connection closed without one) and the body in *body
 * (malloc'd; free it). */
int http_get(uint16_t port, const char *path, char **body);

#endif
