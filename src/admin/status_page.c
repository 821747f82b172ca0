/* The status page's files, embedded at build time (src/admin/module.mk runs
 * xxd -i over src/admin/status.{html,js,css}), and their HTTP headers. */
#include <string.h>

#include "src/admin/status_page.h"

static const unsigned char html[] = {
#include "src/admin/status.html.inc"
};
static const unsigned char js[] = {
#include "src/admin/status.js.inc"
};
static const unsigned char css[] = {
#include "src/admin/status.css.inc"
};

struct status_page_file {
    const char *url;
    const char *type;
    const unsigned char *body;
    size_t len;
};

static const status_page_file_t files[] = {
    {"/", "text/html; charset=utf-8", html, sizeof html},
    {"/status.js", "text/javascript; charset=utf-8", js, sizeof js},
    {"/status.css", "text/css; charset=utf-8", css, sizeof css},
};

/* Only this origin's files and /status; no inline script or style, no
 * plugins, no forms, no framing. */
#define CSP                                                                                 \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src " \
    "'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const status_page_file_t *status_page_find(const char *url)
{
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (strcmp(url, files[i].url) == 0)
            return &files[i];
    return NULL;
}

enum MHD_Result status_page_reply(struct MHD_Connection *c, const status_page_file_t *f)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(f->len, (void *)f->body, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, f->type);
    MHD_add_response_header(r, "Content-Security-Policy", CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}
