/* The admin endpoint's status page: "/" (status.html) and the script and
 * style sheet it loads (/status.js, /status.css), compiled into the library
 * from src/admin/status.{html,js,css}. The page reads /status from the same
 * origin and loads nothing from anywhere else, so it works offline. */
#ifndef RAFTKIT_ADMIN_STATUS_PAGE_H
#define RAFTKIT_ADMIN_STATUS_PAGE_H

#include <microhttpd.h>

typedef struct status_page_file status_page_file_t;

/* The page file served at url ("/", "/status.js", "/status.css"), or NULL. */
const status_page_file_t *status_page_find(const char *url);

/* Queues file f as the answer to c, with its Content-Type (charset utf-8),
 * a Content-Security-Policy that allows only this origin's script, style
 * and /status, and headers that forbid framing and MIME sniffing. Returns
 * what MHD_queue_response returns (MHD_NO: the connection is closed). */
enum MHD_Result status_page_reply(struct MHD_Connection *c, const status_page_file_t *f);

#endif /* RAFTKIT_ADMIN_STATUS_PAGE_H */
