/* The test HTTP client of http_client.h: one request per connection, reads
 * until the server closes (at most 10 s). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/http_client.h"

int http_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

http_reply_t http_exchange(uint16_t port, const char *req, size_t len)
{
    http_reply_t r = {0};
    int fd = http_connect(port);
    if (fd < 0) {
        r.headers = strdup("");
        r.body = strdup("");
        return r;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may answer and close before reading it all */
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0)
            break;
        if (got == cap)
            buf = realloc(buf, (cap *= 2) + 1);
        ssize_t n = recv(fd, buf + got, cap - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &r.code) != 1)
        r.code = 0;
    r.headers = strndup(buf, sep ? (size_t)(sep - buf) : got);
    r.body = strdup(sep ? sep + 4 : "");
    free(buf);
    return r;
}

http_reply_t http_request(uint16_t port, const char *method, const char *path)
{
    char req[512];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
                     method, path);
    return http_exchange(port, req, (size_t)n);
}

void http_reply_free(http_reply_t *r)
{
    free(r->headers);
    free(r->body);
}

int http_get(uint16_t port, const char *path, char **body)
{
    http_reply_t r = http_request(port, "GET", path);
    free(r.headers);
    *body = r.body;
    return r.code;
}

uint16_t http_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
             getsockname(fd, (struct sockaddr *)&sa, &len) == 0;
    close(fd);
    return ok ? ntohs(sa.sin_port) : 0;
}
